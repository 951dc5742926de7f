//! The crate's only `unsafe` code: kernel calls that no safe wrapper in our dependencies
//! offers. Each function here is small, documented, and says why it is sound.
//!
//! * [`adjtimex_read`]: `adjtimex(2)` with `modes = 0` reads the kernel's clock
//!   discipline state (`STA_UNSYNC`, `maxerror`) without changing anything. `nix` has no
//!   wrapper for it.

use std::io;

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
mod tests {
    #[test]
    fn adjtimex_reads_without_privileges() {
        let a = super::adjtimex_read().expect("adjtimex(2) with modes=0 needs no privilege");
        assert!((0..=5).contains(&a.state), "{a:?}");
        assert!(a.max_error_us >= 0);
    }
}
