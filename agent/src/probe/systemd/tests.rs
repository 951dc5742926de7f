use super::*;

fn fam(text: &str) -> String {
    distro(&parse_os_release(text)).family
}

#[test]
fn distro_families() {
    assert_eq!(
        fam("NAME=\"CentOS Linux\"\nID=\"centos\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"7\"\n"),
        "el7"
    );
    assert_eq!(
        fam("ID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"8.10\"\n"),
        "el8"
    );
    assert_eq!(
        fam("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n"),
        "el9"
    );
    assert_eq!(
        fam("ID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.5\"\n"),
        "el9"
    );
    assert_eq!(
        fam("ID=\"ol\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"8.9\"\n"),
        "el8"
    );
    assert_eq!(fam("ID=fedora\nVERSION_ID=40\n"), "fedora");
    assert_eq!(
        fam("ID=\"amzn\"\nID_LIKE=\"centos rhel fedora\"\nVERSION_ID=\"2\"\n"),
        "amzn2"
    );
    assert_eq!(
        fam("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n"),
        "debian"
    );
    assert_eq!(
        fam("ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\n"),
        "ubuntu"
    );
    assert_eq!(fam("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n"), "ubuntu");
    assert_eq!(fam("ID=raspbian\nID_LIKE=debian\n"), "debian");
    assert_eq!(fam("ID=\"sles\"\nID_LIKE=\"suse\"\n"), "suse");
    assert_eq!(fam("ID=flatcar\n"), "flatcar");
    let m = parse_os_release("# c\nNAME='A \\\"b\\\"'\nX=1\n\n");
    assert_eq!(m["NAME"], "A \"b\"");
}

#[test]
fn dpkg_status_and_rpm_output() {
    let status = "Package: libsystemd0\nStatus: install ok installed\nVersion: 252.33-1~deb12u1\n\nPackage: systemd\nStatus: deinstall ok config-files\nVersion: 241-7\n\nPackage: systemd\nStatus: install ok installed\nPriority: important\nVersion: 252.33-1~deb12u1\n";
    assert_eq!(
        dpkg_installed_version(status, "systemd").as_deref(),
        Some("252.33-1~deb12u1")
    );
    assert_eq!(dpkg_installed_version(status, "nope"), None);
    assert_eq!(
        rpm_query_version("(none):219-78.el7_9.9\n").as_deref(),
        Some("219-78.el7_9.9")
    );
    assert_eq!(
        rpm_query_version("(none):219-67.el7\n(none):219-78.el7\n").as_deref(),
        Some("219-78.el7")
    );
    assert_eq!(
        rpm_query_version("package systemd is not installed\n"),
        None
    );
}

fn mins() -> Vec<SystemdMinimum> {
    crate::runbook::default_runbook()
        .runbook
        .spec
        .probes
        .systemd
        .minimums
}

fn found(manager: &str, os: &str, pkg: Option<&str>) -> Found {
    Found {
        manager: Some(manager.into()),
        distro: Some(distro(&parse_os_release(os))),
        package: pkg.map(str::to_string),
    }
}

#[test]
fn policy() {
    let el7 = "ID=\"centos\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"7\"\n";
    let (v, s, _) = judge(&found("219", el7, Some("219-62.el7_6.9")), &mins());
    assert_eq!(v, Verdict::Failing, "{s}");
    let (v, _, m) = judge(&found("219", el7, Some("219-78.el7_9.9")), &mins());
    assert_eq!(v, Verdict::Healthy);
    assert_eq!(m.as_deref(), Some("el7: 219-67.el7"));
    // an el7 minimum cannot be checked without the package
    let (v, _, _) = judge(&found("219", el7, None), &mins());
    assert_eq!(v, Verdict::Unknown);
    // No generic floor by default: the distros that ship an older systemd
    // than 244 (Debian 10, EL8, Ubuntu 18.04, Amazon Linux 2) are healthy.
    let deb = "ID=debian\nVERSION_ID=\"10\"\n";
    let el8 = "ID=\"rhel\"\nVERSION_ID=\"8.10\"\n";
    let bionic = "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"18.04\"\n";
    let al2 =
        "NAME=\"Amazon Linux\"\nID=\"amzn\"\nID_LIKE=\"centos rhel fedora\"\nVERSION_ID=\"2\"\n";
    for (os, mgr, pkg) in [
        (deb, "241", "241-7~deb10u10"),
        (el8, "239 (239-82.el8)", "239-82.el8"),
        (bionic, "237", "237-3ubuntu10.57"),
        (al2, "219", "219-78.amzn2.0.22"),
    ] {
        let (v, s, m) = judge(&found(mgr, os, Some(pkg)), &mins());
        assert_eq!(v, Verdict::Healthy, "{os}: {s}");
        assert_eq!(m, None, "{os}");
    }
    // A runbook may still set its own floor.
    let floor = vec![SystemdMinimum {
        distro: "default".into(),
        version: "244".into(),
    }];
    let (v, _, m) = judge(&found("241", deb, Some("241-7~deb10u10")), &floor);
    assert_eq!(v, Verdict::Failing);
    assert_eq!(m.as_deref(), Some("default: 244"));
    let (v, _, _) = judge(&found("252.33-1~deb12u1", deb, None), &floor);
    assert_eq!(v, Verdict::Healthy);
    // a dpkg distro minimum uses dpkg ordering
    let m = vec![SystemdMinimum {
        distro: "ubuntu".into(),
        version: "245.4-4ubuntu3.20".into(),
    }];
    let ub = "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"20.04\"\n";
    assert_eq!(
        judge(&found("245", ub, Some("245.4-4ubuntu3.24")), &m).0,
        Verdict::Healthy
    );
    assert_eq!(
        judge(&found("245", ub, Some("245.4-4ubuntu3.4")), &m).0,
        Verdict::Failing
    );
    assert_eq!(
        judge(&found("245", ub, Some("245.4-4ubuntu3.20~rc1")), &m).0,
        Verdict::Failing
    );
}
