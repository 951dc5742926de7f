use std::collections::HashMap;

use zbus::Variant;
use zbus::wire::serialized::Context;
use zbus::wire::{LE, to_bytes};

use super::*;

/// Encode `props` as a `GetAll` reply's `a{sv}` and decode it as the agent does.
fn decode(props: &HashMap<&str, Variant<'_>>) -> zbus::Result<UnitProps> {
    let data = to_bytes(Context::new(LE, 0), props)?;
    let (p, used) = data.deserialize::<UnitProps>()?;
    assert_eq!(used, data.len(), "the whole reply is read");
    Ok(p)
}

/// `ExecStart`'s element as systemd sends it (`a(sasbttttuii)`): path, argv, ignore
/// failure, four timestamps, pid, exit code, status.
type ExecCommand = (String, Vec<String>, bool, u64, u64, u64, u64, u32, i32, i32);

/// A `GetAll("")` reply of a running service, shaped as systemd 252 sends it: the
/// nine properties among others of every kind (strings, arrays of strings, arrays of
/// structures, booleans, nested arrays).
fn running_service() -> HashMap<&'static str, Variant<'static>> {
    let exec: Vec<ExecCommand> = vec![(
        "/usr/bin/kubelet".into(),
        vec![
            "/usr/bin/kubelet".into(),
            "--config=/var/lib/kubelet/config.yaml".into(),
        ],
        false,
        1,
        2,
        3,
        4,
        4242,
        1,
        0,
    )];
    let mut m: HashMap<&str, Variant> = HashMap::new();
    m.insert("Id", "kubelet.service".into());
    m.insert(
        "Names",
        Variant::from(vec!["kubelet.service".to_string(), "k.service".into()]),
    );
    m.insert("Description", "kubelet".into());
    m.insert("LoadState", "loaded".into());
    m.insert("ActiveState", "active".into());
    m.insert("SubState", "running".into());
    m.insert(
        "InvocationID",
        Variant::from((1u8..=16).collect::<Vec<u8>>()),
    );
    m.insert(
        "ActiveEnterTimestamp",
        Variant::from(1_700_000_000_123_456u64),
    );
    m.insert(
        "InactiveExitTimestamp",
        Variant::from(1_700_000_000_000_001u64),
    );
    m.insert("CanStart", Variant::from(true));
    m.insert("ExecStart", Variant::from(exec));
    m.insert("Environment", Variant::from(Vec::<String>::new()));
    m.insert("MainPID", Variant::from(4242u32));
    m.insert("ControlPID", Variant::from(0u32));
    m.insert("NRestarts", Variant::from(3u32));
    m.insert("ExecMainStatus", Variant::from(0i32));
    m
}

#[test]
fn the_nine_properties_are_kept_and_the_rest_skipped() {
    let p = decode(&running_service()).expect("decodes");
    assert_eq!(
        p,
        UnitProps {
            id: Some("kubelet.service".into()),
            load_state: Some("loaded".into()),
            active_state: Some("active".into()),
            sub_state: Some("running".into()),
            invocation_id: Some((1u8..=16).collect()),
            active_enter_us: Some(1_700_000_000_123_456),
            inactive_exit_us: Some(1_700_000_000_000_001),
            main_pid: Some(4242),
            n_restarts: Some(3),
        }
    );
}

#[test]
fn a_property_missing_or_of_another_type_reads_as_absent() {
    let mut m = running_service();
    // systemd < 235 has no NRestarts; a unit that is not a service has no MainPID
    m.remove("NRestarts");
    m.remove("MainPID");
    // a type the agent does not expect is skipped, not an error
    m.insert("SubState", Variant::from(7u32));
    m.insert("ActiveEnterTimestamp", Variant::from("yesterday"));
    m.insert("InvocationID", Variant::from(vec!["not bytes".to_string()]));
    let p = decode(&m).expect("decodes");
    assert_eq!(p.sub_state, None);
    assert_eq!(p.active_enter_us, None);
    assert_eq!(p.invocation_id, None);
    assert_eq!((p.main_pid, p.n_restarts), (None, None));
    assert_eq!(p.active_state.as_deref(), Some("active"));
    assert_eq!(p.inactive_exit_us, Some(1_700_000_000_000_001));
}

#[test]
fn an_empty_reply_is_all_absent() {
    assert_eq!(
        decode(&HashMap::new()).expect("decodes"),
        UnitProps::default()
    );
}

#[test]
fn a_truncated_reply_is_an_error() {
    let data = to_bytes(Context::new(LE, 0), &running_service()).expect("encodes");
    for cut in [4, data.len() / 2, data.len() - 1] {
        let short = zbus::wire::serialized::Data::new(&data[..cut], Context::new(LE, 0));
        assert!(
            short.deserialize::<UnitProps>().is_err(),
            "cut at {cut} of {}",
            data.len()
        );
    }
}

#[test]
fn the_service_interface_read_apart_fills_what_the_unit_lacks() {
    let mut unit = running_service();
    let mut service = HashMap::new();
    for k in ["MainPID", "NRestarts"] {
        service.insert(k, unit.remove(k).expect("in the reply"));
    }
    // a Service reply never carries the Unit's names; one that did would not win
    service.insert("LoadState", "masked".into());
    let mut p = decode(&unit).expect("decodes");
    assert_eq!((p.main_pid, p.n_restarts), (None, None));
    p.merge(decode(&service).expect("decodes"));
    assert_eq!(p, decode(&running_service()).expect("decodes"));
}
