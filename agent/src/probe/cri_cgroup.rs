//! The cgroup driver as the runtime itself states it over CRI, and whether the kubelet
//! takes it from there (KEP-4033, "Discover cgroup driver from CRI").
//!
//! - `RuntimeService/RuntimeConfig` (CRI API ≥ 1.28; containerd 2.x, CRI-O ≥ 1.28;
//!   cri-dockerd answers `Unimplemented`, cri-dockerd issue 222) replies
//!   `RuntimeConfigResponse { LinuxRuntimeConfiguration linux = 1 }` with
//!   `LinuxRuntimeConfiguration { CgroupDriver cgroup_driver = 1 }` and
//!   `enum CgroupDriver { SYSTEMD = 0; CGROUPFS = 1 }` (k8s.io/cri-api api.proto). proto3
//!   leaves a zero out, so `systemd` is an empty `linux` message (`0a 00`), or none.
//! - The kubelet's feature gate `KubeletCgroupDriverFromCRI`: alpha (off) in 1.28–1.30,
//!   beta (on) from 1.31, GA and locked on from 1.34 (k8s.io/kubernetes
//!   pkg/features/kube_features.go). With the gate on, the kubelet asks `RuntimeConfig`
//!   at start-up and uses the runtime's answer in place of its own `cgroupDriver`; when
//!   the runtime answers `Unimplemented` it falls back to its own setting
//!   (cmd/kubelet/app/server.go `getCgroupDriverFromCRI`). So with the gate on and a
//!   runtime that answers, the two cannot differ.

use std::path::Path;
use std::time::Duration;

use super::io;
use super::kubelet_invocation::Invocation;

/// The runtime's answer to `RuntimeConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CriAnswer {
    /// `systemd` or `cgroupfs`.
    Driver(&'static str),
    /// `Unimplemented`: an older runtime (the kubelet then uses its own setting).
    Unimplemented,
    /// Anything else (no socket, an error, a reply that does not decode), and why.
    Failed(String),
}

/// Asks the CRI socket `RuntimeConfig` (the v1 API only: the RPC was added with v1),
/// within `deadline`.
pub async fn ask(socket: &Path, deadline: Duration) -> CriAnswer {
    let r = io::grpc_unary_unix(socket, "/runtime.v1.RuntimeService/RuntimeConfig", deadline).await;
    match r {
        Ok(g) if g.ok() => match decode(&g.message) {
            Ok(d) => CriAnswer::Driver(d),
            Err(e) => CriAnswer::Failed(e),
        },
        Ok(g) if g.grpc_status == Some(io::GRPC_UNIMPLEMENTED) => CriAnswer::Unimplemented,
        Ok(g) => CriAnswer::Failed(format!(
            "RuntimeConfig: HTTP {} grpc-status {} {}",
            g.http_status,
            g.grpc_status.map_or("missing".into(), |s| s.to_string()),
            g.grpc_message.unwrap_or_default()
        )),
        Err(e) => CriAnswer::Failed(format!("RuntimeConfig: {e}")),
    }
}

/// Reads one protobuf varint at the start of `b`: the value and the bytes it took.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, byte) in b.iter().take(10).enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Field 1 of a message: a varint (wire type 0) or bytes (wire type 2), skipping other
/// fields as protobuf readers do. `Ok(None)`: absent.
fn field1(mut b: &[u8]) -> Result<Option<Field<'_>>, String> {
    let mut found = None;
    while !b.is_empty() {
        let (key, n) = varint(b).ok_or("a truncated field key")?;
        b = &b[n..];
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => {
                let (v, n) = varint(b).ok_or("a truncated varint")?;
                b = &b[n..];
                Field::Varint(v)
            }
            2 => {
                let (len, n) = varint(b).ok_or("a truncated length")?;
                let len = usize::try_from(len).map_err(|_| "a length out of range")?;
                let end = n.checked_add(len).ok_or("a length out of range")?;
                let body = b.get(n..end).ok_or("a truncated field")?;
                b = b.get(end..).ok_or("a truncated field")?;
                Field::Bytes(body)
            }
            1 => {
                b = b.get(8..).ok_or("a truncated fixed64")?;
                continue;
            }
            5 => {
                b = b.get(4..).ok_or("a truncated fixed32")?;
                continue;
            }
            w => return Err(format!("wire type {w} is not read here")),
        };
        if num == 1 {
            // the last occurrence wins, as in protobuf
            found = Some(f);
        }
    }
    Ok(found)
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// `RuntimeConfigResponse` → the driver (see the module doc for the schema).
pub fn decode(msg: &[u8]) -> Result<&'static str, String> {
    let bad = |e: String| format!("RuntimeConfig reply does not decode: {e}");
    let linux: &[u8] = match field1(msg).map_err(bad)? {
        Some(Field::Bytes(b)) => b,
        Some(Field::Varint(_)) => return Err(bad("linux is not a message".into())),
        // no `linux`: the kubelet's getter reads the zero value, SYSTEMD
        None => &[],
    };
    match field1(linux).map_err(bad)? {
        None | Some(Field::Varint(0)) => Ok("systemd"),
        Some(Field::Varint(1)) => Ok("cgroupfs"),
        Some(Field::Varint(v)) => Err(bad(format!(
            "cgroup_driver {v} is neither SYSTEMD nor CGROUPFS"
        ))),
        Some(Field::Bytes(_)) => Err(bad("cgroup_driver is not an enum".into())),
    }
}

/// Whether the kubelet takes its cgroup driver from the runtime, and why we think so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    On(String),
    Off(String),
    Unknown(String),
}

const GATE: &str = "KubeletCgroupDriverFromCRI";

/// `A=true,B=false` → B's value, if named.
fn in_gate_list(list: &str, name: &str) -> Option<bool> {
    list.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == name).then(|| v.trim().eq_ignore_ascii_case("true"))
    })
}

/// The gate as this kubelet runs it: `--feature-gates` wins over the KubeletConfiguration's
/// `featureGates` (the kubelet's flag precedence), else the default of its version
/// (`kubelet_version`: the Node's `nodeInfo.kubeletVersion`, e.g. `v1.31.2`).
pub fn gate(inv: &Invocation, kubelet_version: Option<&str>) -> Gate {
    let version = kubelet_version.and_then(super::layout::minor_version);
    if version.is_some_and(|v| v >= (1, 34)) {
        return Gate::On(format!("{GATE} is GA and locked on in kubelet 1.34+"));
    }
    if let Some(f) = inv.flag("--feature-gates")
        && let Some(on) = in_gate_list(&f.value, GATE)
    {
        let why = format!("{GATE}={on} ({})", f.source);
        return if on { Gate::On(why) } else { Gate::Off(why) };
    }
    if let Ok(c) = inv.config()
        && let Some(g) = &c.feature_gates
        && let Some(on) = g.value.get(GATE).copied()
    {
        let why = format!("featureGates {GATE}={on} ({})", inv.at(g));
        return if on { Gate::On(why) } else { Gate::Off(why) };
    }
    match (version, kubelet_version) {
        (Some(v), Some(kv)) if v >= (1, 31) => {
            Gate::On(format!("{GATE} is on by default in kubelet {kv}"))
        }
        (Some(_), Some(kv)) => Gate::Off(format!("{GATE} is off by default in kubelet {kv}")),
        _ => Gate::Unknown(format!(
            "{GATE} not set and the kubelet's version unknown (on by default from 1.31)"
        )),
    }
}

#[cfg(test)]
#[path = "cri_cgroup/tests.rs"]
mod tests;
