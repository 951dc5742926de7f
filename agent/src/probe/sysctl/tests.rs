use super::*;
use crate::runbook::DEFAULT_SYSCTLS;

fn defaults() -> Vec<Sysctl> {
    DEFAULT_SYSCTLS
        .iter()
        .map(|(n, v)| Sysctl {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect()
}

/// A /proc tree as the kernel lays it out: values end in a newline ("1\n", as
/// `cat /proc/sys/net/ipv4/ip_forward` shows); without br_netfilter there is no
/// /proc/sys/net/bridge directory at all.
fn tree(ip_forward: &str, bridge: Option<&str>) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let ipv4 = d.path().join("sys/net/ipv4");
    std::fs::create_dir_all(&ipv4).unwrap();
    std::fs::write(ipv4.join("ip_forward"), ip_forward).unwrap();
    if let Some(b) = bridge {
        let br = d.path().join("sys/net/bridge");
        std::fs::create_dir_all(&br).unwrap();
        std::fs::write(br.join("bridge-nf-call-iptables"), b).unwrap();
        std::fs::write(br.join("bridge-nf-call-ip6tables"), b).unwrap();
    }
    d
}

#[tokio::test]
async fn all_set_is_healthy() {
    let d = tree("1\n", Some("1\n"));
    let c = SysctlCheck {
        sysctls: defaults(),
        proc_root: d.path().into(),
    };
    let o = c.run(Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Healthy, "{o:?}");
    assert_eq!(o.evidence["net.ipv4.ip_forward"], "net.ipv4.ip_forward = 1");
}

#[tokio::test]
async fn forwarding_off_and_no_br_netfilter_fail_with_reasons() {
    let d = tree("0\n", None);
    let c = SysctlCheck {
        sysctls: defaults(),
        proc_root: d.path().into(),
    };
    let o = c.run(Timestamp::now()).await;
    assert_eq!(o.verdict, Verdict::Failing);
    assert!(
        o.summary.contains("net.ipv4.ip_forward = 0, want 1"),
        "{}",
        o.summary
    );
    assert!(
        o.summary
            .contains("net.bridge.bridge-nf-call-iptables absent: br_netfilter is not loaded"),
        "{}",
        o.summary
    );
}

#[test]
fn unreadable_is_unknown_unless_something_is_wrong() {
    let s = defaults();
    let l1 = judge_one(&s[0], &Read::Unreadable("permission denied".into()));
    let l2 = judge_one(&s[2], &Read::Value("1\n".into()));
    assert_eq!(judge(&[l1.clone(), l2]).0, Verdict::Unknown);
    let l3 = judge_one(&s[2], &Read::Value("0\n".into()));
    assert_eq!(judge(&[l1, l3]).0, Verdict::Failing);
}
