use super::*;
use std::os::unix::fs::symlink;

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fifo");
    nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let e = read_file(&p, 100, Follow::Symlinks).unwrap_err();
    assert!(e.to_string().contains("a FIFO"), "{e}");
}

#[test]
fn devices_and_directories_are_refused() {
    let e = read_file(Path::new("/dev/zero"), 100, Follow::Symlinks).unwrap_err();
    assert!(e.to_string().contains("character device"), "{e}");
    let e = read_file(Path::new("/"), 100, Follow::Symlinks).unwrap_err();
    assert!(e.to_string().contains("directory"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("zero");
    symlink("/dev/zero", &l).unwrap();
    assert!(matches!(
        read_file(&l, 100, Follow::Symlinks),
        Err(ReadError::NotRegular(_))
    ));
    assert!(matches!(
        read_file(&l, 100, Follow::NoSymlinks),
        Err(ReadError::Symlink)
    ));
}

#[test]
fn reading_stops_at_the_limit() {
    // /dev/zero never ends: a limit read from it must still stop.
    let f = File::open("/dev/zero").unwrap();
    assert!(matches!(
        read_limited(f, 1 << 20),
        Err(ReadError::TooLarge { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, b"12345").unwrap();
    assert_eq!(read_file(&p, 5, Follow::NoSymlinks).unwrap(), b"12345");
    assert!(matches!(
        read_file(&p, 4, Follow::NoSymlinks),
        Err(ReadError::TooLarge { limit: 4 })
    ));
    assert!(matches!(
        read_file(&dir.path().join("nope"), 4, Follow::NoSymlinks),
        Err(ReadError::NotFound)
    ));
}

#[test]
fn atomic_write_never_follows_a_planted_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let p = dir.path().join("state.json");
    // The old fixed temp name, and a guess at the new ones.
    symlink(&victim, dir.path().join("state.json.tmp")).unwrap();
    write_atomic(&p, b"new").unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(std::fs::read(&p).unwrap(), b"new");
    remove_stale_temps(&p);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn moving_aside_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ledger.json");
    let mut moved = Vec::new();
    for i in 0..3 {
        std::fs::write(&p, format!("{i}")).unwrap();
        moved.push(move_aside(&p, "corrupt").unwrap());
    }
    for (i, m) in moved.iter().enumerate() {
        assert_eq!(std::fs::read_to_string(m).unwrap(), i.to_string());
    }
    assert!(!p.exists());
}
