//! Host adapters: the node's own interfaces, used by the probes and the
//! actuators alike. systemd and logind over D-Bus, `exec` steps as child
//! processes, sd_notify, and the one syscall wrapper that needs `unsafe`.
//! Nothing here decides anything; every call is bounded in time.

pub mod exec;
pub mod notify;
/// The daemon's idle memory: malloc's arenas and free pages, start-up's code pages.
pub mod resident;
/// The only `unsafe` in the crate (adjtimex, the static build's NSS pin, chroot before
/// exec for --host-root, malloc tuning and page-out); see the module's safety notes.
#[allow(unsafe_code)]
pub mod sys;
pub mod systemd;
pub mod who;
