//! Files the agent reads and writes, opened so that a hostile or broken
//! filesystem cannot hang it, exhaust its memory or redirect its writes.
//!
//! - Inputs are opened `O_NONBLOCK` (a FIFO opens at once instead of waiting
//!   for a writer), checked with `fstat` *after* open (no race between a
//!   check and the open), refused unless they are regular files, and read
//!   through a reader that stops at the size limit (a symlink to `/dev/zero`
//!   or a growing file cannot make us read gigabytes).
//! - State files may also be opened `O_NOFOLLOW`.
//! - Temp files are created `O_CREAT|O_EXCL|O_NOFOLLOW` under a unique name, so
//!   a planted symlink or a stale file is never followed or reused, and they
//!   are removed when the write fails half-way.
//! - Moving a file aside uses `link(2)`, which never replaces an existing file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Whether the last path component may be a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Follow it (a runbook mounted from a ConfigMap is a chain of symlinks).
    Symlinks,
    /// Refuse it (`O_NOFOLLOW`): state files the agent owns.
    NoSymlinks,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("does not exist")]
    NotFound,
    #[error("is a symbolic link, which is not followed for this file")]
    Symlink,
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Io(std::io::Error),
}

impl ReadError {
    fn from_open(e: std::io::Error) -> ReadError {
        match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::NotFound,
            _ if e.raw_os_error() == Some(libc::ELOOP) => ReadError::Symlink,
            _ => ReadError::Io(e),
        }
    }
}

fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

/// Open `path` for reading without blocking, and only if it is a regular file.
pub fn open_regular(path: &Path, follow: Follow) -> Result<File, ReadError> {
    let mut flags = libc::O_NONBLOCK;
    if follow == Follow::NoSymlinks {
        flags |= libc::O_NOFOLLOW;
    }
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(ReadError::from_open)?;
    let t = f.metadata().map_err(ReadError::Io)?.file_type();
    if !t.is_file() {
        return Err(ReadError::NotRegular(kind_of(t)));
    }
    Ok(f)
}

/// Read everything `r` gives, but never more than `limit` bytes.
pub fn read_limited(r: impl Read, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    r.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(buf)
}

/// Read a regular file of at most `limit` bytes.
pub fn read_file(path: &Path, limit: u64, follow: Follow) -> Result<Vec<u8>, ReadError> {
    let f = open_regular(path, follow)?;
    read_limited(f, limit)
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);
/// How many fresh names to try before giving up.
const UNIQUE_TRIES: usize = 16;

/// A name no other writer in this or another process uses at the same time.
fn unique_suffix() -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}.{n}.{nanos}", std::process::id())
}

/// Create a new file next to `path`, named `<name>.tmp.<unique>`, exclusively
/// (`O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600).
pub fn create_temp(path: &Path) -> std::io::Result<(File, PathBuf)> {
    let mut last = None;
    // Names are unique per process and call; a clash means a planted file. Bounded.
    for _ in 0..UNIQUE_TRIES {
        let tmp = PathBuf::from(format!("{}.tmp.{}", path.display(), unique_suffix()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no unique temp file name")))
}

/// Which stage of an atomic write failed.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {source}")]
pub struct WriteError {
    pub op: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// Write `bytes` to `path` atomically: a fresh temp file in the same
/// directory, fsync, rename over `path`, fsync the directory. On failure the
/// temp file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let err = |op: &'static str| move |source| WriteError { op, source };
    let (mut f, tmp) = create_temp(path).map_err(err("create temp file"))?;
    let written = f
        .write_all(bytes)
        .map_err(err("write temp file"))
        .and_then(|()| f.sync_all().map_err(err("fsync temp file")))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(err("rename temp file into place")));
    drop(f);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(parent_dir(path))
        .and_then(|d| d.sync_all())
        .map_err(err("fsync directory"))
}

/// Temp files `create_temp` left next to `path` (a crash between create and rename).
pub fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.tmp", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name();
        let n = n.to_string_lossy();
        if n.starts_with(&prefix) && e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Move `path` aside to `<path>.<label>-<unique>`: the new name is created
/// with `link(2)`, which fails instead of replacing an existing file, then
/// the old name is removed. Returns the new name.
pub fn move_aside(path: &Path, label: &str) -> std::io::Result<PathBuf> {
    let mut last = None;
    for _ in 0..UNIQUE_TRIES {
        let to = PathBuf::from(format!("{}.{label}-{}", path.display(), unique_suffix()));
        match std::fs::hard_link(path, &to) {
            Ok(()) => {
                std::fs::remove_file(path)?;
                return Ok(to);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no unique name to move the file to")))
}

/// The directory a file lives in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests;
