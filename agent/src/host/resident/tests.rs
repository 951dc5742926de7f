use super::*;

// the shape of a real static-pie's /proc/self/maps (this bench machine, kernel 6.18)
const MAPS: &str = "\
55d0c0000000-55d0c02c9000 r--p 00000000 fd:01 4718 /usr/bin/nodewarden
55d0c02c9000-55d0c0a6b000 r-xp 002c8000 fd:01 4718 /usr/bin/nodewarden
55d0c0a6b000-55d0c0ac9000 r--p 00a69000 fd:01 4718 /usr/bin/nodewarden
55d0c0ac9000-55d0c0acb000 rw-p 00ac6000 fd:01 4718 /usr/bin/nodewarden
55d0c0acb000-55d0c0ad7000 rw-p 00000000 00:00 0 
55d0c1e2a000-55d0c1e6d000 rw-p 00000000 00:00 0                          [heap]
7f1c00000000-7f1c00021000 rw-p 00000000 00:00 0 
7f1c0a000000-7f1c0a001000 r--p 00000000 fd:01 9999 /usr/bin/other
7ffd5e9f1000-7ffd5ea12000 rw-p 00000000 00:00 0                          [stack]
";

#[test]
fn only_the_executables_read_only_mappings() {
    let r = exe_ranges(MAPS, "/usr/bin/nodewarden", 4718);
    assert_eq!(
        r,
        vec![
            (0x55d0c0000000, 0x2c9000),
            (0x55d0c02c9000, 0x7a2000),
            (0x55d0c0a6b000, 0x5e000),
        ]
    );
    assert!(exe_ranges(MAPS, "/usr/bin/nodewarden", 1).is_empty());
    assert!(exe_ranges(MAPS, "/usr/bin/nodewarden (deleted)", 4718).is_empty());
}

#[test]
fn settle_keeps_this_process_working() {
    // the test binary pages its own code out and goes on running it
    let s = settle();
    let again: u64 = (1..=10u64).sum();
    assert_eq!(again, 55);
    assert!(s.ranges > 0 || s.error.is_some(), "{s:?}");
}
