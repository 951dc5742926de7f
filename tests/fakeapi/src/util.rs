//! Small helpers: time formatting, identifiers, query strings, `Status` errors.

use jiff::{SignedDuration, Timestamp, Unit};
use serde_json::{Value, json};

/// The server's wall clock: the real clock shifted by the configured skew.
pub(crate) fn server_now(skew: SignedDuration) -> Timestamp {
    Timestamp::now()
        .checked_add(skew)
        .unwrap_or_else(|_| Timestamp::now())
}

/// RFC 3339 with second resolution, as the apiserver writes `metav1.Time`.
pub(crate) fn rfc3339(ts: Timestamp) -> String {
    let ts = ts
        .round(
            jiff::TimestampRound::new()
                .smallest(Unit::Second)
                .mode(jiff::RoundMode::Trunc),
        )
        .unwrap_or(ts);
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// RFC 7231 / RFC 9110 IMF-fixdate, as in the HTTP `Date` header.
pub(crate) fn http_date(ts: Timestamp) -> String {
    jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&ts)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 GMT".to_string())
}

/// splitmix64: deterministic-enough pseudo randomness for UIDs and names.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn uuid(seed: u64) -> String {
    let a = mix(seed);
    let b = mix(a ^ 0xA5A5_A5A5);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// The 5-character suffix alphabet of `generateName` (no vowels, no confusables).
pub(crate) fn name_suffix(seed: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut x = mix(seed);
    (0..5)
        .map(|_| {
            let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
            x /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` decoding of one component.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// An apiserver error, rendered as a `metav1.Status` body.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .details(json!({}))
    }

    pub fn method_not_allowed(method: &str, what: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({method} {what})"
            ),
        )
    }

    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

/// Walks a dotted path (`spec.nodeName`) into a JSON value.
pub(crate) fn dig<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, seg| cur.get(seg))
}

/// A field value as the apiserver's field-selector sees it (`""` when unset).
pub(crate) fn field_string(v: &Value, path: &str) -> String {
    match dig(v, path) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        let q = parse_query(Some("fieldSelector=spec.nodeName%3Dn1&watch=true&x&l=a+b"));
        assert_eq!(q[0], ("fieldSelector".into(), "spec.nodeName=n1".into()));
        assert_eq!(q[1], ("watch".into(), "true".into()));
        assert_eq!(q[2], ("x".into(), String::new()));
        assert_eq!(q[3], ("l".into(), "a b".into()));
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn formats_times() {
        let ts: Timestamp = "2024-03-05T07:08:09.75Z".parse().unwrap();
        assert_eq!(rfc3339(ts), "2024-03-05T07:08:09Z");
        assert_eq!(http_date(ts), "Tue, 05 Mar 2024 07:08:09 GMT");
    }

    #[test]
    fn ids_look_right() {
        let u = uuid(7);
        assert_eq!(u.len(), 36);
        assert_ne!(uuid(7), uuid(8));
        assert_eq!(name_suffix(3).len(), 5);
    }
}
