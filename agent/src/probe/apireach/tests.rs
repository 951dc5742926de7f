use super::*;

fn w(current: bool, failure: Option<(bool, &str)>, ago: Option<u64>) -> WatchHealth {
    WatchHealth {
        what: "node watch",
        current,
        failure: failure.map(|(no_answer, d)| Failure {
            no_answer,
            detail: d.into(),
        }),
        answered_ago: ago.map(Duration::from_secs),
    }
}

#[test]
fn one_current_watch_is_enough() {
    let j = judge(&[
        w(true, None, Some(3)),
        w(false, Some((true, "refused")), Some(90)),
    ]);
    assert_eq!(j.verdict, Verdict::Healthy);
}

#[test]
fn no_answer_fails_and_says_where_to_look() {
    let j = judge(&[
        w(
            false,
            Some((
                true,
                "watch metadata.name=n1: the API server is unreachable: connection refused",
            )),
            Some(130),
        ),
        w(false, None, Some(130)),
    ]);
    assert_eq!(j.verdict, Verdict::Failing);
    assert!(j.summary.contains("connection refused"), "{}", j.summary);
    assert!(j.summary.contains("last answered 2m ago"), "{}", j.summary);
    assert!(j.summary.contains("6443"));
    assert_eq!(j.evidence[0].0, "node_watch");
    assert!(
        j.evidence[0].1.starts_with("no answer: "),
        "{:?}",
        j.evidence
    );
    let never = judge(&[w(false, Some((true, "timed out")), None)]);
    assert!(
        never.summary.contains("never answered"),
        "{}",
        never.summary
    );
}

#[test]
fn an_error_status_is_reachable() {
    let j = judge(&[w(false, Some((false, "403 Forbidden")), Some(300))]);
    assert_eq!(j.verdict, Verdict::Healthy);
    assert!(j.summary.contains("403"));
}

#[test]
fn nothing_known_is_unknown() {
    assert_eq!(judge(&[]).verdict, Verdict::Unknown);
    assert_eq!(judge(&[w(false, None, None)]).verdict, Verdict::Unknown);
}
