//! [`DbusSystemd`]: the D-Bus plumbing behind the [`Systemd`] trait. One lazily
//! (re)connected system-bus connection; every call under a deadline.

use std::future::Future;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::Mutex;
use tokio::time::Instant;
use zbus::proxy::CacheProperties;
use zbus::{Connection, OwnedObjectPath};

use super::*;

mod props;
mod restart;

use props::UnitProps;

/// Where and how patiently to talk to systemd.
#[derive(Debug, Clone)]
pub struct DbusOptions {
    /// Bus address (`unix:path=/run/dbus/system_bus_socket`); `None`: `DBUS_SYSTEM_BUS_ADDRESS`,
    /// else the standard system bus socket.
    pub address: Option<String>,
    /// Deadline for connecting and authenticating.
    pub connect_timeout: Duration,
    /// Deadline for each single D-Bus call.
    pub call_timeout: Duration,
    /// Pause between polls of the unit's state after its restart job is done.
    pub poll_interval: Duration,
}

impl Default for DbusOptions {
    fn default() -> Self {
        DbusOptions {
            address: None,
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(100),
        }
    }
}

struct Conn {
    conn: Connection,
    subscribed: bool,
}

/// [`Systemd`] over the system bus.
pub struct DbusSystemd {
    opts: DbusOptions,
    conn: Mutex<Option<Conn>>,
}

const SD_DEST: &str = "org.freedesktop.systemd1";
const UNIT_IFACE: &str = "org.freedesktop.systemd1.Unit";
const SERVICE_IFACE: &str = "org.freedesktop.systemd1.Service";
const PROPERTIES_IFACE: &str = "org.freedesktop.DBus.Properties";

/// The object path of `unit`, as systemd names it (`unit_dbus_path`: sd-bus's label
/// escaping, the same since systemd 219): every byte but `[A-Za-z0-9]` (and a leading
/// digit) as `_xx` in lower-case hex, so `kubelet.service` is
/// `/org/freedesktop/systemd1/unit/kubelet_2eservice`. systemd loads a unit on the first
/// access to its path (`manager_load_unit_from_dbus_path`), a missing one as
/// `LoadState=not-found`, exactly as `LoadUnit` does: one D-Bus call per status less.
pub(crate) fn unit_path(unit: &str) -> Result<OwnedObjectPath, SystemdError> {
    let mut p = String::from("/org/freedesktop/systemd1/unit/");
    if unit.is_empty() {
        p.push('_');
    }
    for (i, b) in unit.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()) {
            p.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            p.push('_');
            p.push(char::from(HEX[usize::from(b >> 4)]));
            p.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    OwnedObjectPath::try_from(p).map_err(|e| SystemdError::Protocol {
        what: format!("the object path of {unit}"),
        detail: e.to_string(),
    })
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Manager {
    fn subscribe(&self) -> zbus::Result<()>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn kill_unit(&self, name: &str, whom: &str, signal: i32) -> zbus::Result<()>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
}

#[zbus::proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1"
)]
trait Login1 {
    fn reboot(&self, interactive: bool) -> zbus::Result<()>;
}

impl DbusSystemd {
    /// A client that connects on first use.
    pub fn new(opts: DbusOptions) -> Self {
        DbusSystemd {
            opts,
            conn: Mutex::new(None),
        }
    }

    /// Connect now (to fail early at start-up) and return the client.
    pub async fn connect(opts: DbusOptions) -> Result<Self, SystemdError> {
        let s = Self::new(opts);
        let _conn = s.connection().await?;
        Ok(s)
    }

    /// The bus address in use, for messages.
    pub fn address(&self) -> String {
        self.opts.address.clone().unwrap_or_else(|| {
            std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                .unwrap_or_else(|_| "unix:path=/var/run/dbus/system_bus_socket".into())
        })
    }

    async fn connection(&self) -> Result<Connection, SystemdError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.conn.clone());
        }
        let builder = match &self.opts.address {
            Some(a) => zbus::connection::Builder::address(a.as_str()),
            None => zbus::connection::Builder::system(),
        }
        .method_timeout(self.opts.call_timeout);
        let conn = match tokio::time::timeout(self.opts.connect_timeout, builder.build()).await {
            Ok(Ok(c)) => c,
            Ok(Err(source)) => {
                return Err(SystemdError::Connect {
                    address: self.address(),
                    source,
                });
            }
            Err(_) => {
                return Err(SystemdError::Timeout {
                    what: format!("connecting to the system bus at {}", self.address()),
                    after: self.opts.connect_timeout,
                });
            }
        };
        *slot = Some(Conn {
            conn: conn.clone(),
            subscribed: false,
        });
        Ok(conn)
    }

    /// After a failed read-only call: forget a broken connection, and say whether the call
    /// is worth one more try (the connection was dead: the first call after systemd
    /// re-exec'd, dbus restarted, or the machine came back from a reboot).
    async fn retry_after(&self, e: &SystemdError) -> bool {
        self.on_error(e).await;
        matches!(e, SystemdError::Bus { source, .. } if is_transport_error(source))
    }

    async fn status_once(&self, unit: &str) -> Result<UnitStatus, SystemdError> {
        let conn = self.connection().await?;
        self.status_on(&conn, unit, None).await
    }

    async fn version_once(&self) -> Result<String, SystemdError> {
        let conn = self.connection().await?;
        let mgr = self.manager(&conn).await?;
        self.call(|| "Get(Manager.Version)".to_string(), None, mgr.version())
            .await
    }

    async fn presence_once(&self, units: &[&str]) -> Result<Vec<UnitPresence>, SystemdError> {
        let conn = self.connection().await?;
        let mut out = Vec::with_capacity(units.len());
        for &unit in units {
            let what = || format!("reading the properties of {unit}");
            let path = unit_path(unit)?;
            let p = self
                .get_props(&conn, &path, UNIT_IFACE, &what, None)
                .await?;
            out.push(UnitPresence {
                name: unit.to_string(),
                load_state: p.load_state.unwrap_or_default(),
                active_state: p.active_state.unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Forget a connection that failed at the transport level; the next call reconnects.
    async fn on_error(&self, e: &SystemdError) {
        let broken = match e {
            SystemdError::Bus { source, .. } => is_transport_error(source),
            // a call that got no answer at all may be a dead peer (container rebooted)
            SystemdError::Timeout { .. } => true,
            _ => false,
        };
        if broken {
            *self.conn.lock().await = None;
        }
    }

    async fn manager(&self, conn: &Connection) -> Result<ManagerProxy<'static>, SystemdError> {
        ManagerProxy::builder(conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|source| SystemdError::Bus {
                what: "creating a systemd1.Manager proxy".into(),
                source,
            })
    }

    /// Run one D-Bus call under `min(call_timeout, until deadline)`.
    async fn call<T, F>(
        &self,
        what: impl Fn() -> String,
        deadline: Option<Instant>,
        fut: F,
    ) -> Result<T, SystemdError>
    where
        F: Future<Output = zbus::Result<T>>,
    {
        let mut limit = self.opts.call_timeout;
        if let Some(d) = deadline {
            limit = limit.min(d.saturating_duration_since(Instant::now()));
        }
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(map_bus_error(what(), e, limit)),
            Err(_) => Err(SystemdError::Timeout {
                what: format!("no answer to {}", what()),
                after: limit,
            }),
        }
    }

    /// `GetAll(iface)` on `path`, decoded into the properties the agent reads. An empty
    /// `iface` asks for every interface of the object in one reply (props.rs says why).
    async fn get_props(
        &self,
        conn: &Connection,
        path: &OwnedObjectPath,
        iface: &'static str,
        what: &(dyn Fn() -> String + Sync),
        deadline: Option<Instant>,
    ) -> Result<UnitProps, SystemdError> {
        self.call(what, deadline, async {
            let reply = conn
                .call_method(
                    Some(SD_DEST),
                    path.as_str(),
                    Some(PROPERTIES_IFACE),
                    "GetAll",
                    &(iface,),
                )
                .await?;
            reply.body().deserialize::<UnitProps>()
        })
        .await
    }

    async fn status_on(
        &self,
        conn: &Connection,
        unit: &str,
        deadline: Option<Instant>,
    ) -> Result<UnitStatus, SystemdError> {
        let path = unit_path(unit)?;
        let what = || format!("reading the properties of {unit}");
        // every interface at once: Unit and, for a service, Service
        let mut p = self.get_props(conn, &path, "", &what, deadline).await?;
        if p.load_state.is_none() {
            // A bus that did not take "" for every interface (sd-bus always has): ask
            // each interface, as before, rather than read a unit with no state.
            p = self
                .get_props(conn, &path, UNIT_IFACE, &what, deadline)
                .await?;
            if unit.ends_with(".service") {
                let svc = self
                    .get_props(conn, &path, SERVICE_IFACE, &what, deadline)
                    .await?;
                p.merge(svc);
            }
        }
        let load_state = p.load_state.unwrap_or_default();
        if load_state == "not-found" {
            return Err(SystemdError::NotFound {
                unit: unit.to_string(),
            });
        }
        let invocation_id = p
            .invocation_id
            .filter(|b| !b.is_empty() && b.iter().any(|&x| x != 0))
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect());
        let name = match p.id {
            Some(s) if !s.is_empty() => s,
            _ => unit.to_string(),
        };
        Ok(UnitStatus {
            name,
            load_state,
            active_state: p.active_state.unwrap_or_default(),
            sub_state: p.sub_state.unwrap_or_default(),
            invocation_id,
            main_pid: p.main_pid.filter(|&pid| pid != 0),
            active_enter: p.active_enter_us.and_then(usec_to_timestamp),
            inactive_exit: p.inactive_exit_us.and_then(usec_to_timestamp),
            n_restarts: p.n_restarts,
        })
    }
}

/// Run a read-only call; on a dead connection, reconnect and run it once more.
macro_rules! retry_read {
    ($self:ident, $call:expr) => {
        match $call.await {
            Err(e) if $self.retry_after(&e).await => {
                let r = $call.await;
                if let Err(e) = &r {
                    $self.on_error(e).await;
                }
                r
            }
            r => r,
        }
    };
}

impl Systemd for DbusSystemd {
    fn unit_status<'a>(&'a self, unit: &'a str) -> SdFuture<'a, UnitStatus> {
        Box::pin(async move { retry_read!(self, self.status_once(unit)) })
    }

    fn restart_unit<'a>(
        &'a self,
        unit: &'a str,
        timeout: Duration,
    ) -> SdFuture<'a, RestartOutcome> {
        Box::pin(async move {
            let started = Instant::now();
            let deadline = started + timeout;
            // the outer deadline also covers connecting and our own bookkeeping
            let r = match tokio::time::timeout_at(
                deadline,
                self.restart_inner(unit, deadline, started),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(SystemdError::Timeout {
                    what: format!("restarting {unit}"),
                    after: timeout,
                }),
            };
            if let Err(e) = &r {
                self.on_error(e).await;
            }
            r
        })
    }

    fn manager_version(&self) -> SdFuture<'_, String> {
        Box::pin(async move { retry_read!(self, self.version_once()) })
    }

    fn reboot(&self) -> SdFuture<'_, ()> {
        Box::pin(async move {
            let r = async {
                let conn = self.connection().await?;
                let login = Login1Proxy::builder(&conn)
                    .cache_properties(CacheProperties::No)
                    .build()
                    .await
                    .map_err(|source| SystemdError::Bus {
                        what: "creating a login1 proxy".into(),
                        source,
                    })?;
                match self
                    .call(
                        || "login1 Reboot(false)".to_string(),
                        None,
                        login.reboot(false),
                    )
                    .await
                {
                    Err(SystemdError::Bus { source, .. })
                        if error_name(&source).is_some_and(|n| {
                            n == "org.freedesktop.DBus.Error.ServiceUnknown"
                                || n == "org.freedesktop.DBus.Error.NameHasNoOwner"
                        }) =>
                    {
                        // no logind (minimal images): ask systemd directly, as logind would
                        let mgr = self.manager(&conn).await?;
                        self.call(
                            || "StartUnit(reboot.target, replace-irreversibly)".to_string(),
                            None,
                            mgr.start_unit("reboot.target", "replace-irreversibly"),
                        )
                        .await
                        .map(|_| ())
                    }
                    other => other,
                }
            }
            .await;
            if let Err(e) = &r {
                self.on_error(e).await;
            }
            match r {
                // The bus closed the connection before logind's answer (EOF): dbus-daemon
                // goes down with the reboot it was just asked for (seen on the testbed,
                // agent/tests/pod.rs). A refusal is an error reply, never an EOF. So the
                // reboot counts as requested; the new boot ID confirms it at start-up, and
                // one that did not happen only spends the reboot cap.
                Err(SystemdError::Bus { source, .. }) if bus_closed(&source) => {
                    tracing::warn!(error = %source, "login1 Reboot: the system bus closed before the answer; the reboot counts as requested");
                    Ok(())
                }
                r => r,
            }
        })
    }

    fn kill_unit_signal<'a>(&'a self, unit: &'a str, signal: Signal) -> SdFuture<'a, ()> {
        Box::pin(async move {
            let r = async {
                let conn = self.connection().await?;
                let mgr = self.manager(&conn).await?;
                self.call(
                    || format!("KillUnit({unit}, main, {})", signal.as_str()),
                    None,
                    mgr.kill_unit(unit, "main", signal as i32),
                )
                .await
                .map_err(|e| match e {
                    SystemdError::Bus { source, .. } if is_no_such_unit(&source) => {
                        SystemdError::NotFound {
                            unit: unit.to_string(),
                        }
                    }
                    e => e,
                })
            }
            .await;
            if let Err(e) = &r {
                self.on_error(e).await;
            }
            r
        })
    }

    fn units_present<'a>(&'a self, units: &'a [&'a str]) -> SdFuture<'a, Vec<UnitPresence>> {
        Box::pin(async move { retry_read!(self, self.presence_once(units)) })
    }
}

fn same_conn(a: &Connection, b: &Connection) -> bool {
    a.unique_name().is_some() && a.unique_name() == b.unique_name()
}

fn usec_to_timestamp(us: u64) -> Option<jiff::Timestamp> {
    if us == 0 {
        return None;
    }
    jiff::Timestamp::from_microsecond(i64::try_from(us).ok()?).ok()
}

/// The D-Bus error name of a method error reply, if `e` is one.
fn error_name(e: &zbus::Error) -> Option<String> {
    use zbus::DBusError;
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str().to_string()),
        zbus::Error::FDO(f) => Some(f.name().as_str().to_string()),
        _ => None,
    }
}

fn is_no_such_unit(e: &zbus::Error) -> bool {
    error_name(e).is_some_and(|n| n == "org.freedesktop.systemd1.NoSuchUnit")
}

/// The peer closed the connection (EOF, reset): not an answer, the bus went away.
fn bus_closed(e: &zbus::Error) -> bool {
    use std::io::ErrorKind;
    matches!(e, zbus::Error::InputOutput(io) if matches!(io.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof))
}

fn is_transport_error(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::InputOutput(_) | zbus::Error::Handshake(_))
}

fn map_bus_error(what: String, e: zbus::Error, after: Duration) -> SystemdError {
    match error_name(&e).as_deref() {
        Some("org.freedesktop.DBus.Error.AccessDenied")
        | Some("org.freedesktop.DBus.Error.InteractiveAuthorizationRequired") => {
            let message = match &e {
                zbus::Error::MethodError(_, m, _) => m.clone().unwrap_or_default(),
                other => other.to_string(),
            };
            SystemdError::PermissionDenied { what, message }
        }
        _ if matches!(&e, zbus::Error::InputOutput(io) if io.kind() == std::io::ErrorKind::TimedOut) => {
            SystemdError::Timeout {
                what: format!("no answer to {what}"),
                after,
            }
        }
        _ => SystemdError::Bus { what, source: e },
    }
}

/// Map `NoSuchUnit` from a job call (RestartUnit on a unit without a file) to
/// [`SystemdError::NotFound`].
fn not_found_or(unit: &str, e: SystemdError) -> SystemdError {
    match e {
        SystemdError::Bus { source, .. } if is_no_such_unit(&source) => SystemdError::NotFound {
            unit: unit.to_string(),
        },
        e => e,
    }
}

#[cfg(test)]
mod tests;
