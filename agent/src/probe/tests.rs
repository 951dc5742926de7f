use super::*;

struct Hangs(Problem, Verdict);
impl Probe for Hangs {
    fn problem(&self) -> Problem {
        self.0
    }
    fn run(&self, _now: Timestamp) -> ProbeFuture<'_> {
        Box::pin(std::future::pending())
    }
    fn timeout_verdict(&self) -> Verdict {
        self.1
    }
}
struct Quick(Problem);
impl Probe for Quick {
    fn problem(&self) -> Problem {
        self.0
    }
    fn run(&self, now: Timestamp) -> ProbeFuture<'_> {
        let p = self.0;
        Box::pin(async move { Observation::new(p, now, Verdict::Healthy, "fine") })
    }
}

fn timing(interval_ms: u64, timeout_ms: u64) -> Timing {
    Timing {
        enabled: true,
        interval: Dur::from_millis(interval_ms),
        timeout: Dur::from_millis(timeout_ms),
        fail_for: Dur::ZERO,
        ok_for: Dur::ZERO,
    }
}

#[tokio::test]
async fn a_hung_probe_times_out_and_does_not_delay_the_others() {
    let set = ProbeSet::from_probes(vec![
        (
            Arc::new(Hangs(
                Problem::ContainerRuntimeUnresponsive,
                Verdict::Failing,
            )),
            timing(1000, 300),
        ),
        (
            Arc::new(Quick(Problem::KubeletUnhealthy)),
            timing(1000, 300),
        ),
        (
            Arc::new(Hangs(Problem::SystemdOutdated, Verdict::Unknown)),
            timing(1000, 300),
        ),
    ]);
    let obs = set.run_once(Timestamp::now()).await;
    assert_eq!(obs[0].verdict, Verdict::Failing);
    assert_eq!(obs[0].evidence["probe"], "timeout after 300ms");
    assert!(obs[0].summary.contains("timed out"));
    assert_eq!(obs[1].verdict, Verdict::Healthy);
    assert_eq!(obs[2].verdict, Verdict::Unknown);
}

#[tokio::test]
async fn continuous_probes_report_on_their_own_intervals() {
    let set = ProbeSet::from_probes(vec![
        (
            Arc::new(Hangs(
                Problem::ContainerRuntimeUnresponsive,
                Verdict::Failing,
            )),
            timing(200, 100),
        ),
        (Arc::new(Quick(Problem::KubeletUnhealthy)), timing(50, 50)),
    ]);
    let (tx, mut rx) = mpsc::channel(64);
    let tasks = set.spawn(tx);
    let mut quick = 0;
    let mut hung = 0;
    while quick < 4 || hung < 2 {
        let o = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("observations keep coming")
            .expect("channel open");
        match o.problem {
            Problem::KubeletUnhealthy => quick += 1,
            _ => {
                assert_eq!(o.evidence["probe"], "timeout after 100ms");
                hung += 1
            }
        }
    }
    drop(tasks);
    // all senders are gone once the tasks stop
    while rx.recv().await.is_some() {}
}

#[test]
fn step_units_come_from_the_runbook() {
    let rb = crate::runbook::default_runbook().runbook;
    let u = step_units(&rb);
    assert!(u.contains(&"kubelet.service".to_string()));
    assert!(u.contains(&"containerd.service".to_string()));
    assert!(u.contains(&"chronyd.service".to_string()));
}
