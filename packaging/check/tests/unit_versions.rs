//! The unit loads on every systemd the packages support (issue 14):
//!
//! - `systemd/nodewarden.service` uses only what systemd 219 (EL7) understands;
//! - each drop-in under `systemd/dropins/` declares exactly the version its most
//!   recent line needs (`# nodewarden-requires-systemd: N`): lower would break old
//!   nodes, higher would withhold hardening from nodes that could have it;
//! - `systemd/select-dropins.sh` links exactly those drop-ins for 219, 239 (EL8),
//!   245, 247, 252 and an unreadable version, and removes them again;
//! - the .deb and the .rpm ship the drop-ins and the selector.
//!
//! The per-directive table is `nodewarden_packaging::unit::VERSIONS`.

use std::path::{Path, PathBuf};
use std::process::Command;

use nodewarden_packaging::repo_root;
use nodewarden_packaging::unit::{self, BASE_FLOOR, UnitFile};

fn load(p: &Path) -> UnitFile {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    unit::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn dropins() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join("systemd/dropins"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no drop-ins under systemd/dropins");
    v
}

#[test]
fn base_unit_needs_nothing_newer_than_systemd_219() {
    let f = load(&repo_root().join("systemd/nodewarden.service"));
    assert!(f.lines.len() > 10, "parsed too little: {:?}", f.lines);
    let (need, line) = unit::needs(&f).unwrap_or_else(|e| panic!("nodewarden.service: {e}"));
    assert!(
        need <= BASE_FLOOR,
        "nodewarden.service needs systemd {need} for {line:?}; the base unit must load on \
         systemd {BASE_FLOOR}: move the line to a drop-in in systemd/dropins/"
    );
    assert!(f.requires.is_none(), "the base unit has no version header");
}

#[test]
fn each_dropin_declares_exactly_what_its_lines_need() {
    for p in dropins() {
        let f = load(&p);
        let (need, line) = unit::needs(&f).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let declared = f
            .requires
            .unwrap_or_else(|| panic!("{}: no `# nodewarden-requires-systemd: N`", p.display()));
        assert_eq!(
            declared,
            need,
            "{}: declares systemd {declared}, its lines need {need} (highest: {line:?})",
            p.display()
        );
        assert!(
            declared > BASE_FLOOR,
            "{}: needs only {declared}: put its lines in the base unit",
            p.display()
        );
    }
}

#[test]
fn the_table_catches_a_new_directive_and_a_new_value() {
    // a directive nobody wrote down
    let f = unit::parse("[Service]\nProtectProc=invisible\n").unwrap();
    let e = unit::needs(&f).unwrap_err();
    assert!(e.contains("ProtectProc"), "{e}");
    // a new value of an old directive
    let f = unit::parse("[Service]\nProtectSystem=strict\n").unwrap();
    assert_eq!(unit::needs(&f).unwrap().0, 232);
    let f = unit::parse("[Service]\nProtectSystem=full\n").unwrap();
    assert_eq!(unit::needs(&f).unwrap().0, 214);
    // a syscall group inside a list, in a deny list
    let f = unit::parse("[Service]\nSystemCallFilter=~@mount @system-service\n").unwrap();
    assert_eq!(unit::needs(&f).unwrap().0, 239);
    let f = unit::parse("[Service]\nSystemCallFilter=@pkey\n").unwrap();
    assert!(unit::needs(&f).unwrap_err().contains("@pkey"));
    // the same key in the wrong section is not the same directive
    let f = unit::parse("[Service]\nStartLimitIntervalSec=0\n").unwrap();
    assert!(unit::needs(&f).is_err());
}

/// What select-dropins.sh links for a given `systemctl --version` first line.
fn selected(version_line: &str) -> (Vec<String>, String) {
    let t = tempfile_dir();
    let bin = t.join("systemctl");
    std::fs::write(
        &bin,
        format!("#!/bin/sh\necho '{version_line}'\necho '+PAM +AUDIT'\n"),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&bin).status().unwrap();
    let dst = t.join("nodewarden.service.d");
    let run = |verb: &str| {
        let out = Command::new("sh")
            .arg(repo_root().join("systemd/select-dropins.sh"))
            .arg(verb)
            .env("NODEWARDEN_DROPIN_SRC", repo_root().join("systemd/dropins"))
            .env("NODEWARDEN_DROPIN_DST", &dst)
            .env("NODEWARDEN_SYSTEMCTL", &bin)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let log = run("install");
    let mut linked: Vec<String> = match std::fs::read_dir(&dst) {
        Ok(rd) => rd
            .map(|e| {
                let p = e.unwrap().path();
                let target = std::fs::read_link(&p).expect("a symlink");
                assert!(target.starts_with(repo_root().join("systemd/dropins")));
                p.file_name().unwrap().to_string_lossy().to_string()
            })
            .collect(),
        Err(_) => vec![],
    };
    linked.sort();
    // idempotent, and `remove` leaves nothing behind
    assert_eq!(run("install"), log);
    run("remove");
    assert!(!dst.exists(), "remove left {}", dst.display());
    std::fs::remove_dir_all(&t).unwrap();
    (linked, log)
}

fn tempfile_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let p = std::env::temp_dir().join(format!(
        "nodewarden-dropins-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&p).unwrap();
    p
}

#[test]
fn select_dropins_links_what_each_systemd_understands() {
    let all: Vec<(String, u32)> = dropins()
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                load(p).requires.unwrap(),
            )
        })
        .collect();
    for (line, have) in [
        ("systemd 219", Some(219)),
        ("systemd 239 (239-78.el8)", Some(239)),
        ("systemd 245 (245.4-4ubuntu3.24)", Some(245)),
        ("systemd 247 (247.3-7+deb11u6)", Some(247)),
        ("systemd 252 (252.30-1~deb12u2)", Some(252)),
        ("systemd 257.9-1", Some(257)),
        ("not systemd at all", None),
    ] {
        let (linked, log) = selected(line);
        let want: Vec<String> = all
            .iter()
            .filter(|(_, need)| have.is_some_and(|h| h >= *need))
            .map(|(n, _)| n.clone())
            .collect();
        assert_eq!(linked, want, "{line}: {log}");
        // one line per drop-in saying what was decided
        assert_eq!(log.lines().count(), all.len(), "{log}");
    }
    // EL7 gets the base unit alone; Debian 11 and 12 get every drop-in
    assert!(selected("systemd 219").0.is_empty());
    assert_eq!(selected("systemd 247").0.len(), all.len());
}

#[test]
fn the_packages_ship_the_dropins_and_the_selector() {
    let cargo = std::fs::read_to_string(repo_root().join("agent/Cargo.toml")).unwrap();
    let deb = cargo
        .split("[package.metadata.deb]")
        .nth(1)
        .and_then(|s| s.split("[package.metadata.generate-rpm]").next())
        .expect("deb metadata");
    let rpm = cargo
        .split("[package.metadata.generate-rpm]")
        .nth(1)
        .expect("rpm metadata");
    for p in dropins() {
        let name = format!(
            "systemd/dropins/{}",
            p.file_name().unwrap().to_string_lossy()
        );
        assert!(deb.contains(&name), "the .deb does not ship {name}");
        assert!(rpm.contains(&name), "the .rpm does not ship {name}");
    }
    for meta in [deb, rpm] {
        assert!(meta.contains("systemd/select-dropins.sh"));
    }
    for script in [
        "packaging/deb/maintainer-scripts/postinst",
        "packaging/deb/maintainer-scripts/prerm",
        "packaging/rpm/post.sh",
        "packaging/rpm/preun.sh",
    ] {
        let s = std::fs::read_to_string(repo_root().join(script)).unwrap();
        assert!(
            s.contains("/usr/share/nodewarden/systemd/select-dropins.sh"),
            "{script} does not run select-dropins.sh"
        );
    }
}
