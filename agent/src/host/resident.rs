//! The daemon's idle memory (issue 15, docs/benchmarks.md).
//!
//! Start-up runs code that the idle loop never runs again (flag parsing, the runbook's
//! YAML, TLS and client set-up, the first round of every probe) and frees buffers it no
//! longer needs. The kernel keeps both resident until memory runs short: the executable's
//! pages because they were touched once (and the pages around them: a fault maps up to
//! 64 KiB of an already cached file), malloc's free pages because glibc keeps them.
//!
//! [`settle`], once the daemon is up, hands them back: malloc's free pages
//! (`malloc_trim`), and the executable's read-only pages, code and constants
//! (`MADV_PAGEOUT`). The idle loop faults back in the pages it uses, from the page cache
//! or the file. Nothing here changes what any memory holds; on a kernel before 5.4 the
//! page-out is refused and only the trim applies.

use std::io;

use super::sys;

/// malloc arenas: one for every thread. Two runtime workers and a few blocking
/// threads, mostly asleep, do not contend for malloc's lock.
pub const MALLOC_ARENAS: i32 = 1;

/// Cap malloc's arenas ([`MALLOC_ARENAS`]); call before any thread starts.
pub fn limit_arenas() -> bool {
    sys::limit_malloc_arenas(MALLOC_ARENAS)
}

/// What [`settle`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Settled {
    /// malloc gave memory back.
    pub trimmed: bool,
    /// Read-only mappings of the executable paged out, and their size in bytes.
    pub ranges: usize,
    pub bytes: usize,
    /// Why the page-out did not happen (or stopped), if it did not.
    pub error: Option<String>,
}

/// The read-only mappings of the executable in `/proc/self/maps` text: lines whose inode
/// is `inode` and whose path is `exe`, without `w` in their permissions. Writable ones
/// (.data, .bss) are left alone; the RELRO part, read-only after relocation, is included
/// (a page-out keeps anonymous pages' contents).
pub fn exe_ranges(maps: &str, exe: &str, inode: u64) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|l| {
            let mut f = l.splitn(6, ' ');
            let range = f.next()?;
            let perms = f.next()?;
            let _offset = f.next()?;
            let _dev = f.next()?;
            let ino: u64 = f.next()?.parse().ok()?;
            let path = f.next()?.trim_start();
            if ino != inode || path != exe || perms.contains('w') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let a = usize::from_str_radix(a, 16).ok()?;
            let b = usize::from_str_radix(b, 16).ok()?;
            (b > a).then_some((a, b - a))
        })
        .collect()
}

/// Give back what start-up left resident (see the module doc). Blocking (it reads
/// `/proc/self/maps` and the kernel reclaims synchronously): call it on a blocking thread.
pub fn settle() -> Settled {
    use std::os::unix::fs::MetadataExt;
    let mut out = Settled {
        trimmed: sys::malloc_trim(),
        ..Settled::default()
    };
    let found = (|| -> io::Result<Vec<(usize, usize)>> {
        let exe = std::fs::read_link("/proc/self/exe")?;
        let inode = std::fs::metadata("/proc/self/exe")?.ino();
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        Ok(exe_ranges(&maps, &exe.to_string_lossy(), inode))
    })();
    let ranges = match found {
        Ok(r) => r,
        Err(e) => {
            out.error = Some(format!("cannot read /proc/self/maps: {e}"));
            return out;
        }
    };
    for (start, len) in ranges {
        match sys::page_out(start, len) {
            Ok(()) => {
                out.ranges += 1;
                out.bytes += len;
            }
            Err(e) => {
                out.error = Some(format!("madvise(MADV_PAGEOUT): {e}"));
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
