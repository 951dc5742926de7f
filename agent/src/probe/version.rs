//! Package version ordering as rpm and dpkg define it.
//!
//! * rpm (`rpmvercmp`): versions are split into runs of digits and runs of letters; anything
//!   else only separates runs (so `2.0`, `2_0` and `2+0` are equal). Digit runs compare
//!   numerically (leading zeros ignored) and beat letter runs; `~` sorts before everything,
//!   even the end of the string (`1.0~rc1 < 1.0`); `^` sorts after the end of the string but
//!   before any further run (`1.0 < 1.0^git1 < 1.0.1`). An EVR is `[epoch:]version[-release]`;
//!   a missing epoch is 0, and the release is compared only when both sides have one.
//! * dpkg (`verrevcmp`): `[epoch:]upstream[-revision]`, split at the first `:` and the last
//!   `-`. Strings alternate between non-digit parts, compared character by character with
//!   letters before non-letters and `~` before everything (even the end), and digit parts
//!   compared numerically. A missing revision equals an empty one.
//!
//! Cases in the tests are those of rpm's `tests/rpmvercmp.at` and dpkg's
//! `scripts/t/Dpkg_Version.t` / `lib/dpkg/t/t-version.c`.

use std::cmp::Ordering;

/// Which ordering a distro's packages follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Rpm,
    Dpkg,
}

impl Scheme {
    /// Compare two full versions (`epoch:version-release`) in this scheme.
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            Scheme::Rpm => rpm_evr_cmp(a, b),
            Scheme::Dpkg => dpkg_cmp(a, b),
        }
    }
}

/// `rpmvercmp`: compare two version (or release) strings.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut one, mut two) = (a.as_bytes(), b.as_bytes());
    let is_sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while let Some((&c, rest)) = one.split_first()
            && is_sep(c)
        {
            one = rest;
        }
        while let Some((&c, rest)) = two.split_first()
            && is_sep(c)
        {
            two = rest;
        }
        // tilde: sorts before everything, including the end
        match (one.first(), two.first()) {
            (Some(b'~'), Some(b'~')) => {
                one = &one[1..];
                two = &two[1..];
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            _ => {}
        }
        // caret: like the end of the string, except that it beats the end itself
        match (one.first(), two.first()) {
            (Some(b'^'), Some(b'^')) => {
                one = &one[1..];
                two = &two[1..];
                continue;
            }
            (Some(b'^'), None) => return Ordering::Greater,
            (None, Some(b'^')) => return Ordering::Less,
            (Some(b'^'), Some(_)) => return Ordering::Less,
            (Some(_), Some(b'^')) => return Ordering::Greater,
            _ => {}
        }
        let (Some(&c1), Some(_)) = (one.first(), two.first()) else {
            break;
        };
        let numeric = c1.is_ascii_digit();
        let take = |s: &[u8]| -> usize {
            s.iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count()
        };
        let (n1, n2) = (take(one), take(two));
        let (seg1, seg2) = (&one[..n1], &two[..n2]);
        // n1 > 0 always (c1 is alnum); the other side of another type loses to a number
        if n2 == 0 {
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let ord = if numeric {
            cmp_numeric(seg1, seg2)
        } else {
            seg1.cmp(seg2)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        one = &one[n1..];
        two = &two[n2..];
    }
    match (one.is_empty(), two.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

/// Digit strings compared as numbers of any length.
fn cmp_numeric(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |s: &[u8]| -> usize { s.iter().take_while(|&&c| c == b'0').count() };
    let (a, b) = (&a[strip(a)..], &b[strip(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// An rpm `[epoch:]version[-release]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evr<'a> {
    pub epoch: u64,
    pub version: &'a str,
    pub release: Option<&'a str>,
}

/// Split an rpm EVR. `(none)` (what `rpm -q --qf %{EPOCH}` prints for no epoch) is epoch 0.
pub fn parse_evr(s: &str) -> Evr<'_> {
    let s = s.trim();
    let (epoch, rest) = match s.split_once(':') {
        Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) || e == "(none)" => {
            (e.parse().unwrap_or(0), r)
        }
        _ => (0, s),
    };
    let (version, release) = match rest.rsplit_once('-') {
        Some((v, r)) => (v, Some(r)),
        None => (rest, None),
    };
    Evr {
        epoch,
        version,
        release,
    }
}

/// Compare two rpm EVRs: epoch, then version, then release when both have one.
pub fn rpm_evr_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (parse_evr(a), parse_evr(b));
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| rpmvercmp(a.version, b.version))
        .then_with(|| match (a.release, b.release) {
            (Some(x), Some(y)) => rpmvercmp(x, y),
            _ => Ordering::Equal,
        })
}

/// A dpkg `[epoch:]upstream[-revision]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebVersion<'a> {
    pub epoch: u64,
    pub upstream: &'a str,
    pub revision: &'a str,
}

/// Split a dpkg version: epoch before the first `:`, revision after the last `-`.
pub fn parse_deb(s: &str) -> DebVersion<'_> {
    let s = s.trim();
    let (epoch, rest) = match s.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), r)
        }
        _ => (0, s),
    };
    let (upstream, revision) = rest.rsplit_once('-').unwrap_or((rest, ""));
    DebVersion {
        epoch,
        upstream,
        revision,
    }
}

/// The weight of a non-digit character in dpkg's ordering (`~` < end < letters < others).
fn deb_order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(b'~') => -1,
        Some(c) => c as i32 + 256,
    }
}

/// dpkg's `verrevcmp`: compare upstream versions or revisions.
pub fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        // non-digit prefix, character by character
        while a.first().is_some_and(|c| !c.is_ascii_digit())
            || b.first().is_some_and(|c| !c.is_ascii_digit())
        {
            let (ac, bc) = (deb_order(a.first().copied()), deb_order(b.first().copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            a = a.get(1..).unwrap_or(&[]);
            b = b.get(1..).unwrap_or(&[]);
        }
        let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
        let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let ord = cmp_numeric(&a[..na], &b[..nb]);
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[na..];
        b = &b[nb..];
    }
    Ordering::Equal
}

/// Compare two dpkg versions: epoch, upstream version, revision.
pub fn dpkg_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (parse_deb(a), parse_deb(b));
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| verrevcmp(a.upstream, b.upstream))
        .then_with(|| verrevcmp(a.revision, b.revision))
}

/// The leading number of a version (`252` of `252.33-1~deb12u1`, `219` of `219-67.el7`).
pub fn major(v: &str) -> Option<u64> {
    let v = v.trim();
    let v = match v.split_once(':') {
        Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => r,
        _ => v,
    };
    let n = v.bytes().take_while(u8::is_ascii_digit).count();
    v[..n].parse().ok()
}

#[cfg(test)]
mod tests;
