//! The crate's only `unsafe` code: kernel calls that no safe wrapper in our dependencies
//! offers. Each function here is small, documented, and says why it is sound.
//!
//! * [`adjtimex_read`]: `adjtimex(2)` with `modes = 0` reads the kernel's clock
//!   discipline state (`STA_UNSYNC`, `maxerror`) without changing anything. `nix` has no
//!   wrapper for it.
//! * [`pin_static_nss`]: in the static build only (`+crt-static`, packaging/build-static.sh),
//!   fix the `hosts` lookup to glibc's built-in `files dns` so that `getaddrinfo` never
//!   `dlopen`s an NSS module from the host's (different) glibc, which aborts the process
//!   (`_dl_call_libc_early_init: Assertion 'sym != NULL' failed`, seen with Debian 11's
//!   `libnss_hesiod.so.2`; packaging/check-static.sh reproduces it).
//! * [`chroot_before_exec`]: a child process (the host's `journalctl`, `rpm`) that runs
//!   inside the host's root tree when the agent runs in a pod with the host's `/` mounted
//!   (`--host-root`): fork → chroot(2) + chdir(2) → exec. `std`/`tokio` offer the hook only
//!   as the `unsafe` `pre_exec`.
//! * [`limit_malloc_arenas`], [`malloc_trim`], [`page_out`]: glibc's `mallopt(3)` and
//!   `malloc_trim(3)`, and `madvise(2)` with `MADV_PAGEOUT`, for the idle memory of the
//!   daemon (`host/resident.rs`, issue 15). None of them changes what any memory holds.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Make `cmd`'s child chroot(2) into `root` and chdir(2) to its `/` after fork and before
/// exec, so that the program and everything it opens are the host's. Needs
/// `CAP_SYS_CHROOT` (the DaemonSet grants only that). The program is looked up (PATH)
/// after the chroot, inside `root`.
pub fn chroot_before_exec(cmd: &mut tokio::process::Command, root: &Path) -> io::Result<()> {
    let dir = CString::new(root.as_os_str().as_bytes())?;
    let hook = move || -> io::Result<()> {
        // SAFETY: `dir` is a valid NUL-terminated string owned by this closure, made before
        // the fork; chroot(2) only reads it.
        if unsafe { libc::chroot(dir.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a static NUL-terminated string; chdir(2) only reads it.
        if unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec, where only async-signal-safe
    // calls are allowed: it calls chroot(2) and chdir(2) (both async-signal-safe system
    // calls) on memory prepared before the fork, and reads errno on failure; it allocates
    // nothing and takes no lock.
    unsafe {
        cmd.pre_exec(hook);
    }
    Ok(())
}

/// In a statically linked binary, make host-name lookups use only the NSS modules built
/// into this glibc (`files`, `dns`: /etc/hosts, then /etc/resolv.conf), whatever the
/// node's `/etc/nsswitch.conf` names. Returns whether it applied (false in the ordinary
/// dynamic build, where the host's own modules are compatible and nsswitch.conf rules).
///
/// Call it first thing in `main`, before any thread starts and before any lookup.
pub fn pin_static_nss() -> bool {
    #[cfg(all(target_env = "gnu", target_feature = "crt-static"))]
    {
        unsafe extern "C" {
            // glibc <nss.h>: "Override the default configuration for a database": parses
            // SERVICE_LINE like a line of nsswitch.conf and disables reloading it
            // (nss/nss_database.c). Exported since glibc 2.0.
            fn __nss_configure_lookup(
                dbname: *const libc::c_char,
                service_line: *const libc::c_char,
            ) -> libc::c_int;
        }
        // SAFETY: both arguments are NUL-terminated static C strings that outlive the call;
        // glibc copies what it parses. It is called before any other thread exists (see the
        // doc comment), so it cannot race a concurrent NSS lookup.
        let rc = unsafe { __nss_configure_lookup(c"hosts".as_ptr(), c"files dns".as_ptr()) };
        rc == 0
    }
    #[cfg(not(all(target_env = "gnu", target_feature = "crt-static")))]
    {
        false
    }
}

/// Cap glibc's malloc arenas at `n` (`mallopt(M_ARENA_MAX)`). glibc gives threads their
/// own arenas (up to 8 per core), each keeping its freed pages; a daemon that is idle
/// nearly always does not need them. Returns whether glibc accepted it.
///
/// Call it before the runtime starts its threads.
pub fn limit_malloc_arenas(n: i32) -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallopt(3) takes two integers and only changes malloc's own tuning; it
        // is thread-safe (it takes each arena's lock) and an unknown value is refused with 0.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, n) == 1 }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        let _ = n;
        false
    }
}

/// Return malloc's free memory to the kernel (`malloc_trim(0)`: the top of each arena and
/// the whole free pages inside it). Returns whether any memory was released.
pub fn malloc_trim() -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: malloc_trim(3) takes an integer, locks each arena while it trims it and
        // only releases pages that hold no allocation.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        false
    }
}

/// Ask the kernel to reclaim the pages of `[start, start + len)` now (`madvise(2)`
/// `MADV_PAGEOUT`, Linux 5.4+; older kernels answer `EINVAL`). Reclaim never changes
/// contents: a clean file page is dropped and read again from the file at its next use, an
/// anonymous one is swapped or, with no swap, stays. `start` must be page-aligned.
pub fn page_out(start: usize, len: usize) -> io::Result<()> {
    // SAFETY: MADV_PAGEOUT is advice that never alters the contents a process sees at any
    // address (unlike MADV_DONTNEED/MADV_FREE); on a range that is not mapped the kernel
    // answers ENOMEM and does nothing. No Rust reference is invalidated: memory stays
    // mapped and keeps its bytes.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The kernel's clock discipline state, as `adjtimex(2)` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adjtimex {
    /// The return value: `TIME_OK` (0) … `TIME_ERROR` (5).
    pub state: i32,
    /// `STA_UNSYNC` is set, or the state is `TIME_ERROR`: the clock is not synchronised.
    pub unsynchronised: bool,
    /// Maximum error estimate, µs (grows by 500 ppm while nobody disciplines the clock;
    /// the kernel caps it at 16 s).
    pub max_error_us: i64,
    /// Estimated error, µs.
    pub est_error_us: i64,
}

/// Read the kernel clock state without modifying it.
pub fn adjtimex_read() -> io::Result<Adjtimex> {
    // SAFETY: `libc::timex` is a plain C struct of integers (and padding), for which the
    // all-zero bit pattern is a valid value. `modes = 0` makes adjtimex(2) a pure read: the
    // kernel only writes into the struct we own, which lives until the call returns, and the
    // pointer is valid and properly aligned for the whole call.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = 0;
    // SAFETY: see above; `&mut tx` is a valid, exclusive pointer to a `timex`.
    let rc = unsafe { libc::adjtimex(&mut tx) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(Adjtimex {
        state: rc,
        unsynchronised: (tx.status & libc::STA_UNSYNC) != 0 || rc == libc::TIME_ERROR,
        max_error_us: tx.maxerror as i64,
        est_error_us: tx.esterror as i64,
    })
}

#[cfg(test)]
mod tests;
