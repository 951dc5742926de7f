use super::*;
use crate::health::Finding;

fn findings(ps: &[Problem]) -> Findings {
    let mut f = Findings::default();
    for p in ps {
        f.active.insert(
            *p,
            Finding {
                since: jiff::Timestamp::UNIX_EPOCH,
                summary: "systemd package 219-62.el7 is older than the el7 minimum 219-67.el7"
                    .into(),
            },
        );
    }
    f
}

#[test]
fn a_report_only_finding_is_said_once_when_it_appears_and_once_when_it_clears() {
    let rb = crate::runbook::default_runbook().runbook;
    let sd = Problem::SystemdOutdated;
    let up = changes(
        &BTreeSet::new(),
        &findings(&[sd, Problem::KubeletUnhealthy]),
        &rb,
    );
    assert_eq!(up.len(), 1, "{up:?}");
    assert!(up[0].raised);
    assert!(up[0].message.contains("219-62.el7"), "{}", up[0].message);
    assert!(
        up[0].message.contains("schedule an upgrade"),
        "the default report step's advice: {}",
        up[0].message
    );
    assert_eq!(up[0].report().reason, "ProblemReported");
    let before: BTreeSet<Problem> = [sd].into();
    assert!(changes(&before, &findings(&[sd]), &rb).is_empty());
    let down = changes(&before, &findings(&[]), &rb);
    assert_eq!(down.len(), 1);
    assert!(!down[0].raised);
    assert_eq!(down[0].report().reason, "ProblemCleared");
}
