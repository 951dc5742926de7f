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
mod tests {
    use super::*;

    fn ord(n: i32) -> Ordering {
        n.cmp(&0)
    }

    /// rpm's tests/rpmvercmp.at (version strings, as `rpm.vercmp`).
    const RPM: &[(&str, &str, i32)] = &[
        ("1.0", "1.0", 0),
        ("1.0", "2.0", -1),
        ("2.0", "1.0", 1),
        ("2.0.1", "2.0.1", 0),
        ("2.0", "2.0.1", -1),
        ("2.0.1", "2.0", 1),
        ("2.0.1a", "2.0.1a", 0),
        ("2.0.1a", "2.0.1", 1),
        ("2.0.1", "2.0.1a", -1),
        ("5.5p1", "5.5p1", 0),
        ("5.5p1", "5.5p2", -1),
        ("5.5p2", "5.5p1", 1),
        ("5.5p10", "5.5p10", 0),
        ("5.5p1", "5.5p10", -1),
        ("5.5p10", "5.5p1", 1),
        ("10xyz", "10.1xyz", -1),
        ("10.1xyz", "10xyz", 1),
        ("xyz10", "xyz10", 0),
        ("xyz10", "xyz10.1", -1),
        ("xyz10.1", "xyz10", 1),
        ("xyz.4", "xyz.4", 0),
        ("xyz.4", "8", -1),
        ("8", "xyz.4", 1),
        ("xyz.4", "2", -1),
        ("2", "xyz.4", 1),
        ("5.5p2", "5.6p1", -1),
        ("5.6p1", "5.5p2", 1),
        ("5.6p1", "6.5p1", -1),
        ("6.5p1", "5.6p1", 1),
        ("6.0.rc1", "6.0", 1),
        ("6.0", "6.0.rc1", -1),
        ("10b2", "10a1", 1),
        ("10a2", "10b2", -1),
        ("1.0aa", "1.0aa", 0),
        ("1.0a", "1.0aa", -1),
        ("1.0aa", "1.0a", 1),
        ("10.0001", "10.0001", 0),
        ("10.0001", "10.1", 0),
        ("10.1", "10.0001", 0),
        ("10.0001", "10.0039", -1),
        ("10.0039", "10.0001", 1),
        ("4.999.9", "5.0", -1),
        ("5.0", "4.999.9", 1),
        ("20101121", "20101121", 0),
        ("20101121", "20101122", -1),
        ("20101122", "20101121", 1),
        ("2_0", "2_0", 0),
        ("2.0", "2_0", 0),
        ("2_0", "2.0", 0),
        ("a", "a", 0),
        ("a+", "a+", 0),
        ("a+", "a_", 0),
        ("a_", "a+", 0),
        ("+a", "+a", 0),
        ("+a", "_a", 0),
        ("_a", "+a", 0),
        ("+_", "+_", 0),
        ("_+", "+_", 0),
        ("_+", "_+", 0),
        ("+", "_", 0),
        ("_", "+", 0),
        ("1.0~rc1", "1.0~rc1", 0),
        ("1.0~rc1", "1.0", -1),
        ("1.0", "1.0~rc1", 1),
        ("1.0~rc1", "1.0~rc2", -1),
        ("1.0~rc2", "1.0~rc1", 1),
        ("1.0~rc1~git123", "1.0~rc1~git123", 0),
        ("1.0~rc1~git123", "1.0~rc1", -1),
        ("1.0~rc1", "1.0~rc1~git123", 1),
        ("1.0^", "1.0^", 0),
        ("1.0^", "1.0", 1),
        ("1.0", "1.0^", -1),
        ("1.0^git1", "1.0^git1", 0),
        ("1.0^git1", "1.0", 1),
        ("1.0", "1.0^git1", -1),
        ("1.0^git1", "1.0^git2", -1),
        ("1.0^git2", "1.0^git1", 1),
        ("1.0^git1", "1.01", -1),
        ("1.01", "1.0^git1", 1),
        ("1.0^20160101", "1.0^20160101", 0),
        ("1.0^20160101", "1.0.1", -1),
        ("1.0.1", "1.0^20160101", 1),
        ("1.0^20160101^git1", "1.0^20160101^git1", 0),
        ("1.0^20160102", "1.0^20160101^git1", 1),
        ("1.0^20160101^git1", "1.0^20160102", -1),
        ("1.0~rc1^git1", "1.0~rc1^git1", 0),
        ("1.0~rc1^git1", "1.0~rc1", 1),
        ("1.0~rc1", "1.0~rc1^git1", -1),
        ("1.0^git1~pre", "1.0^git1~pre", 0),
        ("1.0^git1", "1.0^git1~pre", 1),
        ("1.0^git1~pre", "1.0^git1", -1),
        // "oddities" rpm documents as current behaviour (RhBug:811992)
        ("1b.fc17", "1b.fc17", 0),
        ("1b.fc17", "1.fc17", -1),
        ("1.fc17", "1b.fc17", 1),
        ("1g.fc17", "1g.fc17", 0),
        ("1g.fc17", "1.fc17", 1),
        ("1.fc17", "1g.fc17", -1),
    ];

    /// dpkg's scripts/t/Dpkg_Version.t table.
    const DPKG: &[(&str, &str, i32)] = &[
        ("1.0-1", "2.0-2", -1),
        ("2.2~rc-4", "2.2-1", -1),
        ("2.2-1", "2.2~rc-4", 1),
        ("1.0000-1", "1.0-1", 0),
        ("1", "0:1", 0),
        ("0", "0:0-0", 0),
        ("2:2.5", "1:7.5", 1),
        ("1:0foo", "0foo", 1),
        ("0:0foo", "0foo", 0),
        ("0foo", "0foo", 0),
        ("0foo-", "0foo", 0),
        ("0foo-", "0foo-0", 0),
        ("0foo", "0fo", 1),
        ("0foo-", "0foo+", -1),
        ("0foo~1", "0foo", -1),
        ("0foo~foo+Bar", "0foo~foo+bar", -1),
        ("0foo~~", "0foo~", -1),
        ("1~", "1", -1),
        (
            "12345+that-really-is-some-ver-0",
            "12345+that-really-is-some-ver-10",
            -1,
        ),
        ("0foo-0", "0foo-01", -1),
        ("0foo.bar", "0foobar", 1),
        ("0foo.bar", "0foo1bar", 1),
        ("0foo.bar", "0foo0bar", 1),
        ("0foo1bar-1", "0foobar-1", -1),
        ("0foo2.0", "0foo2", 1),
        ("0foo2.0.0", "0foo2.10.0", -1),
        ("0foo2.0", "0foo2.0.0", -1),
        ("0foo2.0", "0foo2.10", -1),
        ("0foo2.1", "0foo2.10", -1),
        ("1.09", "1.9", 0),
        ("1.0.8+nmu1", "1.0.8", 1),
        ("3.11", "3.10+nmu1", 1),
        ("0.9j-20080306-4", "0.9i-20070324-2", 1),
        ("1.2.0~b7-1", "1.2.0~b6-1", 1),
        ("1.011-1", "1.06-2", 1),
        ("0.0.9+dfsg1-1", "0.0.8+dfsg1-3", 1),
        ("4.6.99+svn6582-1", "4.6.99+svn6496-1", 1),
        ("53", "52", 1),
        ("0.9.9~pre122-1", "0.9.9~pre111-1", 1),
        ("2:2.3.2-2+lenny2", "2:2.3.2-2", 1),
        ("1:3.8.1-1", "3.8.GA-1", 1),
        ("1.0.1+gpl-1", "1.0.1-2", 1),
        ("1a", "1000a", -1),
        ("-0.6.5", "0.9.1", -1),
        // lib/dpkg/t/t-version.c
        ("0:0-00", "0:00-0", 0),
        ("1:2-3", "1:2-3", 0),
        ("0:0-0", "1:0-0", -1),
        ("0:a-0", "0:b-0", -1),
        ("0:0-a", "0:0-b", -1),
        ("0:0-0-0", "0:0-0-0", 0),
        ("0:0:0-0", "0:0:0-0", 0),
        ("0:0-0:0-0", "0:0-0:0-0", 0),
        ("0:09azAZ.-+~:-0", "0:09azAZ.-+~:-0", 0),
    ];

    #[test]
    fn rpmvercmp_matches_rpms_own_table() {
        for &(a, b, want) in RPM {
            assert_eq!(rpmvercmp(a, b), ord(want), "rpmvercmp({a}, {b})");
        }
    }

    #[test]
    fn dpkg_matches_dpkgs_own_table() {
        for &(a, b, want) in DPKG {
            assert_eq!(dpkg_cmp(a, b), ord(want), "dpkg {a} vs {b}");
            assert_eq!(dpkg_cmp(b, a), ord(-want), "dpkg {b} vs {a}");
        }
    }

    #[test]
    fn dpkg_splits_at_first_colon_and_last_hyphen() {
        assert_eq!(
            parse_deb("0:0:0-0-0"),
            DebVersion {
                epoch: 0,
                upstream: "0:0-0",
                revision: "0"
            }
        );
        assert_eq!(parse_deb("5:1").epoch, 5);
        assert_eq!(parse_deb("  0:0-1\t").revision, "1");
    }

    #[test]
    fn rpm_evrs_compare_epoch_version_release() {
        let cases: &[(&str, &str, i32)] = &[
            // the runbook's EL7 minimum
            ("219-67.el7", "219-67.el7", 0),
            ("219-62.el7_6.9", "219-67.el7", -1),
            ("219-78.el7_9.9", "219-67.el7", 1),
            ("(none):219-78.el7_9.9", "219-67.el7", 1),
            ("1:219-1.el7", "219-99.el7", 1),
            ("0:219-67.el7", "219-67.el7", 0),
            ("239-82.el8", "239-45.el8", 1),
            ("252-46.el9_5.2", "252-46.el9", 1),
            // a minimum without release compares the version only
            ("252-46.el9", "244", 1),
            ("244-1.fc32", "244", 0),
            ("243-9", "244", -1),
            ("1.0~rc1-1", "1.0-1", -1),
        ];
        for &(a, b, want) in cases {
            assert_eq!(rpm_evr_cmp(a, b), ord(want), "rpm {a} vs {b}");
            assert_eq!(rpm_evr_cmp(b, a), ord(-want), "rpm {b} vs {a}");
        }
    }

    #[test]
    fn debian_systemd_versions() {
        let cases: &[(&str, &str, i32)] = &[
            ("252.33-1~deb12u1", "252.33-1", -1),
            ("252.33-1~deb12u1", "252.30-1~deb12u2", 1),
            ("247.3-7+deb11u6", "244", 1),
            ("241-7~deb10u10", "244", -1),
            ("255.4-1ubuntu8.4", "255.4-1ubuntu8", 1),
            ("245.4-4ubuntu3.24", "244", 1),
        ];
        for &(a, b, want) in cases {
            assert_eq!(dpkg_cmp(a, b), ord(want), "dpkg {a} vs {b}");
        }
    }

    #[test]
    fn majors() {
        assert_eq!(major("252.33-1~deb12u1"), Some(252));
        assert_eq!(major("219"), Some(219));
        assert_eq!(major("239 (239-82.el8)"), Some(239));
        assert_eq!(major("1:244-1"), Some(244));
        assert_eq!(major("v1"), None);
    }

    #[test]
    fn orderings_are_antisymmetric_and_transitive_on_a_sample() {
        let sample: Vec<&str> = RPM.iter().flat_map(|c| [c.0, c.1]).collect();
        for a in &sample {
            for b in &sample {
                assert_eq!(rpmvercmp(a, b), rpmvercmp(b, a).reverse(), "{a} {b}");
                assert_eq!(verrevcmp(a, b), verrevcmp(b, a).reverse(), "{a} {b}");
            }
        }
    }
}
