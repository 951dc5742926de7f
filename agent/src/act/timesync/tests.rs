use super::*;
use crate::probe::testing::FakeSystemd;

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn the_running_candidate_is_chosen_and_none_running_starts_nothing() {
    let since = jiff::Timestamp::now();
    let cands = names(&[
        "chronyd.service",
        "ntpd.service",
        "systemd-timesyncd.service",
    ]);
    // EL7: chrony installed (loaded, inactive), ntpd running.
    let sd = FakeSystemd::new()
        .with_inactive("chronyd.service")
        .with_active("ntpd.service", since, Some(42));
    assert_eq!(
        running(&sd, "chronyd.service", &cands).await.unwrap(),
        "ntpd.service"
    );
    // The planned one wins when it runs.
    let sd = FakeSystemd::new()
        .with_active("chronyd.service", since, Some(41))
        .with_active("ntpd.service", since, Some(42));
    assert_eq!(
        running(&sd, "ntpd.service", &cands).await.unwrap(),
        "ntpd.service"
    );
    // Nothing running: an error naming each state.
    let sd = FakeSystemd::new().with_inactive("chronyd.service");
    let e = running(&sd, "chronyd.service", &cands)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no time-sync daemon is running"), "{e}");
    assert!(e.contains("chronyd.service loaded/inactive"), "{e}");
    assert!(e.contains("starts none"), "{e}");
}
