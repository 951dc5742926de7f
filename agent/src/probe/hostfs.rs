//! The host's paths as a pod sees them (`--host-root`): a path the host names (a flag on
//! the kubelet's command line, `containerRuntimeEndpoint`, a symlink's target) is looked up
//! under the host root with its symlinks resolved inside that root, as a `chroot` would.
//! Without a host root (the systemd unit) every path is taken as it is.
//!
//! Only link targets are read (`readlink`, local and non-blocking on the read-only host
//! mount); at most 40 hops, the kernel's own limit, then the rest is taken literally.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// The kernel's limit on symlinks followed in one lookup (`MAXSYMLINKS`).
const MAX_HOPS: usize = 40;

/// `p` (absolute, as the host names it) under `root`, the symlinks of its directories
/// resolved inside `root` (Debian's absolute `/var/run` → `/run` leads to `root/run`, not
/// to this process's `/run`). The last component is left alone: a socket may appear
/// later, a link may change. `..` never climbs above `root`.
pub fn under_root(root: &Path, p: &Path) -> PathBuf {
    resolve(root, p, false)
}

/// `p` as the host names it, ready to open now: under `root` (when there is one) with
/// every symlink resolved inside it, the last component's too. For files that are read
/// at once and may be absolute links (the kubelet's `kubelet-client-current.pem` →
/// `/var/lib/kubelet/pki/kubelet-client-<date>.pem`), and sockets about to be connected.
/// Call it at each read: the link moves when the kubelet rotates its certificate.
pub fn open_path(root: Option<&Path>, p: &Path) -> PathBuf {
    match root {
        Some(r) if p.is_absolute() => resolve(r, p, true),
        _ => p.to_path_buf(),
    }
}

/// A path this process already looked up under `root` (from [`under_root`]), its last
/// component now resolved inside `root` too. A path outside `root` is returned as it is.
pub fn follow_under(root: Option<&Path>, mapped: &Path) -> PathBuf {
    let Some(r) = root else {
        return mapped.to_path_buf();
    };
    match mapped.strip_prefix(r) {
        Ok(rel) => resolve(r, &Path::new("/").join(rel), true),
        Err(_) => mapped.to_path_buf(),
    }
}

fn resolve(root: &Path, p: &Path, follow_last: bool) -> PathBuf {
    let parts = |q: &Path| -> Vec<OsString> {
        q.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .rev()
            .collect()
    };
    let mut todo = parts(p);
    let mut out = PathBuf::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            out.pop();
            continue;
        }
        let cand = out.join(&c);
        if (follow_last || !todo.is_empty())
            && hops < MAX_HOPS
            && let Ok(t) = std::fs::read_link(root.join(&cand))
        {
            hops += 1;
            if t.is_absolute() {
                out = PathBuf::new();
            }
            todo.extend(parts(&t));
            continue;
        }
        out = cand;
    }
    root.join(out)
}

#[cfg(test)]
mod tests;
