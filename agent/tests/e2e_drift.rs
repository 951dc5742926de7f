//! Readiness drift end to end (#16): `nodewarden run` on the real-systemd testbed, against
//! the fake API server. Swap is on and a kernel prerequisite is off: the agent sets the
//! `SwapOn` and `KernelPrerequisitesMissing` conditions with evidence, never cordons and
//! never restarts anything; when both are fixed the conditions clear.
//!
//! Why this is faithful without touching the machine running the test: the testbed
//! container may share the host's network namespace (so `/proc/sys/net` is the host's), and
//! swap is global to the kernel, so a real `sysctl -w` or `swapon` would change the host.
//! Instead a unit inside the container bind-mounts test-controlled files over
//! `/proc/swaps` and `/proc/sys/net/ipv4/ip_forward` — in the container's own mount
//! namespace, which the host never sees (checked at the end). The agent reads the very
//! paths it reads on a node, through the same code; only the bytes come from the test, in
//! the kernel's own formats (`/proc/swaps`: the header and a line as `mm/swapfile.c`
//! prints it; a sysctl: its value and a newline).
//!
//! Needs root and the testbed rootfs (`tests/run` builds it); otherwise SKIP.

#[allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/kubelet.rs"]
mod kubelet;
mod support;

use std::time::Duration;

use harness::{E2e, Options};

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

const SWAPS_HEADER: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority";
const SWAPS_ON: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swap.img                               file\t\t2097148\t\t0\t\t-2";

const FAKES_UNIT: &str = "[Unit]\nDescription=e2e_drift: test-controlled /proc/swaps and ip_forward (this container's mount namespace only)\n\
     Before=nodewarden.service\n\n\
     [Service]\nType=oneshot\nRemainAfterExit=yes\n\
     ExecStart=/bin/mount --bind /srv/testctl/drift.swaps /proc/swaps\n\
     ExecStart=/bin/mount --bind /srv/testctl/drift.ip_forward /proc/sys/net/ipv4/ip_forward\n\n\
     [Install]\nWantedBy=multi-user.target\n";

fn runbook() -> String {
    harness::runbook_text()
        .replace(
            "    SwapOn: {enabled: false}\n",
            "    SwapOn: {interval: 1s, timeout: 1s, failFor: 2s, okFor: 2s}\n",
        )
        .replace(
            "    KernelPrerequisitesMissing: {enabled: false}\n",
            // Only ip_forward: the bridge sysctls exist only where the host loaded
            // br_netfilter, which this test does not control.
            "    KernelPrerequisitesMissing: {interval: 1s, timeout: 1s, failFor: 2s, okFor: 2s, sysctls: [{name: net.ipv4.ip_forward, value: \"1\"}]}\n",
        )
        .replace(
            "  safety:\n",
            "    - name: report-swap-on\n      when: [SwapOn]\n      action:\n        report: {message: swapoff -a and remove swap from /etc/fstab}\n    - name: report-kernel-prerequisites\n      when: [KernelPrerequisitesMissing]\n      action:\n        report: {message: set net.ipv4.ip_forward=1 in /etc/sysctl.d/k8s.conf}\n  safety:\n",
        )
}

fn cond(e: &E2e, ty: &str) -> Option<(String, String, String)> {
    e.condition(ty)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d1_swap_on_and_ip_forward_off_are_reported_then_cleared() {
    let host_swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    let rb = runbook();
    assert!(
        rb.contains("SwapOn: {interval: 1s"),
        "the e2e runbook changed shape"
    );
    let opts = Options {
        runbook: Some(rb),
        ctl: vec![
            ("drift.swaps".into(), format!("{SWAPS_ON}\n")),
            ("drift.ip_forward".into(), "0\n".into()),
        ],
        extra_units: vec![("drift-fakes.service".into(), FAKES_UNIT.into())],
        ..Options::default()
    };
    let Some(e) = E2e::start("e2e-d1", opts, |_| {}).await else {
        return;
    };
    e.wait_for("nodewarden active", s(30), |e| {
        e.tb.active_state("nodewarden.service") == "active"
    })
    .await;
    assert_eq!(e.tb.active_state("drift-fakes.service"), "active");
    e.wait_for("SwapOn and KernelPrerequisitesMissing set", s(40), |e| {
        cond(e, "SwapOn").is_some_and(|c| c.0 == "True")
            && cond(e, "KernelPrerequisitesMissing").is_some_and(|c| c.0 == "True")
    })
    .await;
    let (_, _, swap) = cond(&e, "SwapOn").unwrap();
    assert!(swap.contains("swap 2.0 GiB on /swap.img"), "{swap}");
    assert!(swap.contains("failSwapOn"), "{swap}");
    let (_, _, kern) = cond(&e, "KernelPrerequisitesMissing").unwrap();
    assert!(kern.contains("net.ipv4.ip_forward = 0, want 1"), "{kern}");
    // Report-only: no episode, no cordon, nothing restarted, not remediating.
    assert!(!e.unschedulable());
    assert!(
        !e.api
            .requests()
            .iter()
            .any(|r| r.method == "PATCH" && r.body.contains("\"unschedulable\":true")),
        "a cordon was attempted"
    );
    assert!(e.ledger()["episode"].is_null(), "{:#}", e.ledger());
    assert_eq!(
        cond(&e, "NodewardenRemediating").map(|c| c.0),
        Some("False".into())
    );
    let starts = |unit: &str| e.journal_count(unit, "starting (mode=");
    let (k0, d0) = (starts("kubelet.service"), starts("docker.service"));
    e.wait_for("ProblemReported Events", s(20), |e| {
        e.event_reasons().iter().any(|r| r == "ProblemReported")
    })
    .await;

    // Fixed: swap off, forwarding on. The conditions clear after okFor.
    e.tb.set_ctl("drift.swaps", SWAPS_HEADER);
    e.tb.set_ctl("drift.ip_forward", "1");
    e.wait_for("both conditions cleared", s(40), |e| {
        cond(e, "SwapOn").is_some_and(|c| c.0 == "False")
            && cond(e, "KernelPrerequisitesMissing").is_some_and(|c| c.0 == "False")
    })
    .await;
    assert_eq!(
        (starts("kubelet.service"), starts("docker.service")),
        (k0, d0)
    );
    assert!(!e.unschedulable());
    // The machine running the test was never touched.
    assert_eq!(
        std::fs::read_to_string("/proc/swaps").unwrap_or_default(),
        host_swaps
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default(),
        host_fwd
    );
}
