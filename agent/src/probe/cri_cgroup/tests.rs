use std::time::Duration;

use super::*;
use crate::probe::testing::{self, CgroupDriver, Mode};

fn inv(args: &[&str], config: Option<&str>) -> Invocation {
    Invocation {
        args: vec![(
            "kubelet (pid 7) command line".into(),
            Ok(args.iter().map(|s| s.to_string()).collect()),
        )],
        config_path: "/var/lib/kubelet/config.yaml".into(),
        config: config.map(str::to_string),
    }
}

#[test]
fn runtime_config_replies_decode_as_the_kubelet_reads_them() {
    // containerd 2.x encodes CGROUPFS as linux{cgroup_driver: 1}; SYSTEMD (0) is left out
    assert_eq!(decode(&[0x0a, 2, 0x08, 1]), Ok("cgroupfs"));
    assert_eq!(decode(&[0x0a, 0]), Ok("systemd"));
    assert_eq!(decode(&[0x0a, 2, 0x08, 0]), Ok("systemd"));
    // no linux at all: the getter's zero value
    assert_eq!(decode(&[]), Ok("systemd"));
    // unknown fields around it are skipped, as protobuf readers do
    assert_eq!(
        decode(&[
            0x10, 0x96, 0x01, 0x0a, 4, 0x1a, 0, 0x08, 1, 0x25, 1, 2, 3, 4
        ]),
        Ok("cgroupfs")
    );
    // hostile or broken replies are errors, never a guess or a panic
    assert!(decode(&[0x0a, 2, 0x08, 7]).is_err());
    assert!(decode(&[0x0a, 9, 0x08]).is_err());
    assert!(decode(&[0x0a]).is_err());
    assert!(decode(&[0x08, 1]).is_err());
    assert!(
        decode(&[
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ])
        .is_err()
    );
    assert!(decode(&[0x0b]).is_err());
}

#[test]
fn the_gate_follows_flag_then_file_then_version() {
    let fg = "kind: KubeletConfiguration\nfeatureGates:\n  KubeletCgroupDriverFromCRI: false\n";
    // the version's default
    assert!(matches!(
        gate(&inv(&["kubelet"], None), Some("v1.31.2")),
        Gate::On(_)
    ));
    assert!(matches!(
        gate(&inv(&["kubelet"], None), Some("v1.30.9")),
        Gate::Off(_)
    ));
    assert!(matches!(
        gate(&inv(&["kubelet"], None), None),
        Gate::Unknown(_)
    ));
    // the file, with its line
    match gate(&inv(&["kubelet"], Some(fg)), Some("v1.32.0")) {
        Gate::Off(why) => assert!(why.contains("config.yaml:3"), "{why}"),
        g => panic!("{g:?}"),
    }
    // the flag wins over the file
    let on = inv(
        &[
            "kubelet",
            "--feature-gates=Foo=true,KubeletCgroupDriverFromCRI=true",
        ],
        Some(fg),
    );
    assert!(matches!(gate(&on, Some("v1.29.1")), Gate::On(_)));
    // other gates named: the version decides
    let other = inv(&["kubelet", "--feature-gates", "Foo=false"], None);
    assert!(matches!(gate(&other, Some("v1.28.7")), Gate::Off(_)));
    // GA and locked from 1.34, whatever is written
    let off = inv(
        &[
            "kubelet",
            "--feature-gates=KubeletCgroupDriverFromCRI=false",
        ],
        None,
    );
    assert!(matches!(gate(&off, Some("v1.34.1")), Gate::On(_)));
}

#[tokio::test]
async fn the_runtime_is_asked_over_its_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("cri.sock");
    let srv = testing::cri_server(&sock, Mode::StatesCgroupDriver(CgroupDriver::Cgroupfs))
        .await
        .expect("cri fake");
    assert_eq!(
        ask(&sock, Duration::from_secs(2)).await,
        CriAnswer::Driver("cgroupfs")
    );
    srv.set_mode(Mode::StatesCgroupDriver(CgroupDriver::Systemd));
    assert_eq!(
        ask(&sock, Duration::from_secs(2)).await,
        CriAnswer::Driver("systemd")
    );
    // an older runtime: Unimplemented
    srv.set_mode(Mode::Ok);
    assert_eq!(
        ask(&sock, Duration::from_secs(2)).await,
        CriAnswer::Unimplemented
    );
    // a hung one: a failure within the deadline, not a hang
    srv.set_mode(Mode::Hang);
    let t0 = std::time::Instant::now();
    assert!(matches!(
        ask(&sock, Duration::from_millis(300)).await,
        CriAnswer::Failed(_)
    ));
    assert!(t0.elapsed() < Duration::from_secs(5));
    drop(srv);
    assert!(matches!(
        ask(&dir.path().join("none.sock"), Duration::from_secs(1)).await,
        CriAnswer::Failed(_)
    ));
}

proptest::proptest! {
    /// Whatever a socket sends back, decoding returns; it never panics.
    #[test]
    fn any_reply_decodes_or_errs(b in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
        let _ = decode(&b);
    }
}
