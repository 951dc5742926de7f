use super::*;
use std::time::Duration;

#[test]
fn http_dates() {
    let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(t.map(|t| t.as_second()), Some(784_111_777));
    assert_eq!(parse_http_date("yesterday"), None);
    assert_eq!(parse_http_date(""), None);
}

#[test]
fn a_slow_reading_does_not_replace_a_precise_one_of_the_same_second() {
    let seen = SeenDates::default();
    let t0 = Instant::now();
    let date = Timestamp::UNIX_EPOCH;
    let quick = DateReading {
        date,
        rtt: Dur::from_std(Duration::from_millis(3)),
        at: t0,
    };
    seen.record(quick);
    let slow = DateReading {
        rtt: Dur::from_std(Duration::from_millis(900)),
        ..quick
    };
    seen.record(slow);
    assert_eq!(seen.latest(), Some(quick));
    let later = DateReading {
        at: t0 + Duration::from_secs(2),
        ..slow
    };
    seen.record(later);
    assert_eq!(seen.latest(), Some(later));
}
