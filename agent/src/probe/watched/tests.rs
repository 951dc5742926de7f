use super::*;
use crate::act::seen_date::DateReading;

#[tokio::test]
async fn server_date_is_extrapolated_while_the_clocks_agree() {
    let kube = Kube::from_url("http://127.0.0.1:9", Duration::from_secs(1)).unwrap();
    let d = ApiDate::new(kube.clone());
    assert!(d.extrapolated().is_none(), "nothing measured yet");
    let rtt = Dur::from_std(Duration::from_millis(20));
    let seen = |date, at| {
        kube.seen_dates().record(DateReading { date, rtt, at });
    };
    seen(Timestamp::now(), std::time::Instant::now());
    let (at, r) = d.extrapolated().expect("agrees: no request");
    assert_eq!(r, rtt);
    assert!(at.duration_since(Timestamp::now()).as_secs_f64().abs() < 0.5);
    // The server was 10 s ahead when measured: ask it again every time.
    let ahead = Dur::from_std(Duration::from_secs(10)).after(Timestamp::now());
    seen(ahead, std::time::Instant::now());
    assert!(d.extrapolated().is_none());
    // Too old: measured again.
    let old = std::time::Instant::now().checked_sub(DATE_REFRESH + Duration::from_secs(1));
    if let Some(old) = old {
        seen(Timestamp::now(), old);
        assert!(d.extrapolated().is_none());
    }
}
