//! A background watch of one named object: its latest state and whether the
//! API server behind it is alive.
//!
//! How a long watch stays honest about a hung server:
//!
//! - The API server sends a BOOKMARK to every watcher that asked for them
//!   (`allowWatchBookmarks`, kube's `WatchParams` default) about once a minute,
//!   and one 2 s before the watch's `timeoutSeconds` ends it
//!   (`cacheWatcher.nextBookmarkTime`, `defaultBookmarkFrequency = time.Minute`
//!   in k8s.io/apiserver `pkg/storage/cacher`).
//! - But only once the resource's watch cache has seen an event newer than
//!   the watch's own resourceVersion: the cacher "never sends a bookmark event
//!   if we did not see an event", and a watcher drops a bookmark not newer
//!   than its start. Checked on a real kube-apiserver v1.28 (docs/benchmarks.md):
//!   a node watch resumed at the latest resourceVersion got no bookmark for
//!   minutes while no Node changed (Lease renewals do not count: another
//!   resource), then one a minute from the first Node change on.
//! - So one quiet watch proves nothing. The agent's watches share an
//!   [`ApiPulse`]: every event, bookmark or answered request beats it. The
//!   node's own Lease is renewed by its kubelet every 10 s, so on a healthy
//!   node the pulse beats every 10 s whatever the Node does.
//! - A watch is taken as hung only when the whole pulse has been silent for
//!   [`WatchTimes::silence`]. Even then it is first reopened at once, without
//!   marking the view stale: the view goes stale only if the reopen gets no
//!   answer (a quiet cluster with a dead kubelet costs a reopen per `silence`,
//!   never a false "API unreachable").

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::kube::{KubeError, jitter};

/// How long the server keeps one watch open, and how long a silent stream is
/// trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchTimes {
    /// The API silent (no event or bookmark on any watch sharing the
    /// [`ApiPulse`]) for this long: the watch is reopened, and marked stale if
    /// the reopen gets no answer within `silence` (at most 10 s).
    pub silence: Duration,
    /// `timeoutSeconds` asked of the server: each watch request lasts this
    /// long, then is resumed from the last `resourceVersion`.
    pub server_timeout: Duration,
    /// Ask for `server_timeout` × a random factor in [1, 2) instead, as
    /// client-go's reflector does (`minWatchTimeout` 5 min × (1 + rand)):
    /// agents that reconnected together (after an outage) do not stay in step.
    pub spread: bool,
}

impl WatchTimes {
    /// The daemon's watches: 5 to 10 minutes server-side (client-go's
    /// reflector; kube-rs's watcher asks for 290 s), so about 0.27 watch
    /// requests per watch per minute; suspect after 90 s of silence of the
    /// whole API (nine missed Lease renewals, 1.5 bookmark periods).
    pub const LONG: WatchTimes = WatchTimes {
        silence: Duration::from_secs(90),
        server_timeout: Duration::from_secs(300),
        spread: true,
    };

    /// For a server that may send no bookmark between events (no periodic
    /// bookmarks): the server ends each watch at 5/6 of `silence`, so a quiet
    /// but healthy stream is never taken for a dead one.
    pub fn without_bookmarks(silence: Duration) -> WatchTimes {
        WatchTimes {
            silence,
            server_timeout: silence * 5 / 6,
            spread: false,
        }
    }

    /// The `timeoutSeconds` of one request.
    fn timeout_seconds(&self) -> u32 {
        let t = if self.spread {
            jitter(self.server_timeout, 1.0, 2.0)
        } else {
            self.server_timeout
        };
        t.as_secs().clamp(1, 3600) as u32
    }
}

impl From<Duration> for WatchTimes {
    /// A bare silence limit: [`WatchTimes::without_bookmarks`].
    fn from(silence: Duration) -> WatchTimes {
        WatchTimes::without_bookmarks(silence)
    }
}

/// When the API server last showed life to any of the watches sharing it.
#[derive(Debug, Clone)]
pub struct ApiPulse(Arc<Mutex<Instant>>);

impl Default for ApiPulse {
    fn default() -> Self {
        ApiPulse(Arc::new(Mutex::new(Instant::now())))
    }
}

impl ApiPulse {
    pub fn beat(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
    }
}

/// What a silent stream means. Pure: the ages are arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// Another watch showed life recently: wait this much longer.
    Wait(Duration),
    /// The server should have ended this watch long ago: reopen it.
    Overdue,
    /// The whole API has been silent for `silence`: reopen, and check.
    Suspect,
}

/// Judges a stream that sent nothing for a while. `pulse_age`: since the
/// API last showed life to any watch; `open_for`: since this watch opened,
/// asking the server to end it after `asked`.
pub fn judge_silence(
    times: &WatchTimes,
    pulse_age: Duration,
    open_for: Duration,
    asked: Duration,
) -> Silence {
    if pulse_age >= times.silence {
        Silence::Suspect
    } else if open_for >= asked + times.silence {
        Silence::Overdue
    } else {
        Silence::Wait((times.silence - pulse_age).max(Duration::from_millis(100)))
    }
}

/// The latest state of one watched object.
#[derive(Debug, Clone)]
pub struct Watched<K> {
    /// `None` until first seen, or after deletion.
    pub obj: Option<K>,
    /// The watch is failing or silent; `obj` is the last one seen.
    pub stale: bool,
    /// Why the watch last failed, cleared when the server answers again: no answer
    /// ([`KubeError::is_unreachable`]) or an error status. The reachability probe reads it
    /// (`probe/apireach.rs`): the watches are the agent's standing line to the API server.
    pub failure: Option<KubeError>,
    /// When the server last answered this watch (monotonic).
    pub answered: Option<Instant>,
}

impl<K> Default for Watched<K> {
    fn default() -> Self {
        Watched {
            obj: None,
            stale: false,
            failure: None,
            answered: None,
        }
    }
}

impl<K> Watched<K> {
    /// The server answered: the view is current.
    fn current(&mut self) {
        self.stale = false;
        self.failure = None;
        self.answered = Some(Instant::now());
    }
}

/// Watches the one object `name` of `api` (a `metadata.name` field selector:
/// the server sends nothing about other objects) in the background.
///
/// One LIST at start (and after a 410 Expired), then WATCH requests resumed
/// from the last `resourceVersion` (bookmarks keep it current), each ended by
/// the server after `times.server_timeout`: a quiet object costs one watch
/// request per `server_timeout` and no LIST. A silent API (see the module
/// notes; kube has no read timeout) makes the watch reopen; if that gets no
/// answer, the view is marked `stale`. While the server cannot be reached
/// the last object is kept, `stale` is set, and attempts back off from 0.8 s
/// doubling to 30 s, jittered (no hot loop, no herd when it comes back).
pub fn watch_one<K>(
    api: kube::Api<K>,
    name: &str,
    times: impl Into<WatchTimes>,
    pulse: ApiPulse,
) -> (
    tokio::sync::watch::Receiver<Watched<K>>,
    tokio::task::JoinHandle<()>,
)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + fmt::Debug + Send + Sync + 'static,
{
    use futures::StreamExt;
    use kube::api::{ListParams, WatchEvent, WatchParams};

    let (tx, rx) = tokio::sync::watch::channel(Watched::default());
    let sel = format!("metadata.name={name}");
    let times: WatchTimes = times.into();
    let open_deadline = times.silence.min(Duration::from_secs(10));
    let task = tokio::spawn(async move {
        let mut rv: Option<String> = None;
        let mut backoff = WATCH_BACKOFF_MIN;
        let mut failed = false;
        let fail = |e: KubeError| tx.send_modify(|s| s.failure = Some(e));
        loop {
            if tx.is_closed() {
                return;
            }
            if failed {
                tx.send_modify(|s| s.stale = true);
                tokio::time::sleep(jitter(backoff, 0.5, 1.0)).await;
                backoff = (backoff * 2).min(WATCH_BACKOFF_MAX);
            }
            failed = true;
            let version = match &rv {
                Some(v) => v.clone(),
                None => {
                    let lp = ListParams::default().fields(&sel);
                    match tokio::time::timeout(open_deadline, api.list(&lp)).await {
                        Ok(Ok(list)) => {
                            pulse.beat();
                            let v = list.metadata.resource_version.clone().unwrap_or_default();
                            let obj = list.items.into_iter().next();
                            tx.send_modify(|s| {
                                s.obj = obj;
                                s.current();
                            });
                            rv = Some(v.clone());
                            v
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(selector = %sel, error = %e, "watch: list failed");
                            fail(KubeError::from_kube(format!("list {sel}"), e));
                            continue;
                        }
                        Err(_) => {
                            tracing::debug!(selector = %sel, "watch: list got no answer");
                            fail(KubeError::Timeout {
                                what: format!("list {sel}"),
                                after: open_deadline,
                            });
                            continue;
                        }
                    }
                }
            };
            // `WatchParams::default()` asks for bookmarks (allowWatchBookmarks=true).
            let server_timeout = times.timeout_seconds();
            let asked = Duration::from_secs(u64::from(server_timeout));
            let wp = WatchParams::default().fields(&sel).timeout(server_timeout);
            let mut stream =
                match tokio::time::timeout(open_deadline, api.watch(&wp, &version)).await {
                    Ok(Ok(s)) => s.boxed(),
                    Ok(Err(e)) => {
                        tracing::debug!(selector = %sel, error = %e, "watch: open failed");
                        fail(KubeError::from_kube(format!("watch {sel}"), e));
                        continue;
                    }
                    Err(_) => {
                        tracing::debug!(selector = %sel, "watch: open got no answer");
                        fail(KubeError::Timeout {
                            what: format!("watch {sel}"),
                            after: open_deadline,
                        });
                        continue;
                    }
                };
            // The server answered: the view is current.
            pulse.beat();
            tx.send_modify(|s| s.current());
            let opened = Instant::now();
            let mut wait = times.silence;
            loop {
                match tokio::time::timeout(wait, stream.next()).await {
                    Ok(Some(Ok(ev))) => {
                        pulse.beat();
                        wait = times.silence;
                        let (obj, gone) = match ev {
                            WatchEvent::Added(o) | WatchEvent::Modified(o) => (Some(o), false),
                            WatchEvent::Deleted(o) => (Some(o), true),
                            WatchEvent::Bookmark(b) => {
                                rv = Some(b.metadata.resource_version);
                                continue;
                            }
                            WatchEvent::Error(e) => {
                                tracing::debug!(selector = %sel, code = e.code, message = %e.message, "watch: error event");
                                if e.code == 410 {
                                    rv = None; // expired: list again
                                    failed = false;
                                }
                                break;
                            }
                        };
                        if let Some(o) = obj {
                            if let Some(v) = o.meta().resource_version.clone() {
                                rv = Some(v);
                            }
                            tx.send_modify(|s| {
                                s.obj = if gone { None } else { Some(o) };
                                s.current();
                            });
                        }
                    }
                    // The server ended the watch (timeoutSeconds): resume at once.
                    Ok(None) => {
                        backoff = WATCH_BACKOFF_MIN;
                        failed = false;
                        break;
                    }
                    Ok(Some(Err(e))) => {
                        // A long stream cut (a proxy's idle timeout, a restarted
                        // server) is reopened at once, stale only if that fails;
                        // one cut soon after opening backs off.
                        tracing::debug!(selector = %sel, error = %e, "watch: stream failed");
                        failed = opened.elapsed() < Duration::from_secs(10);
                        break;
                    }
                    Err(_) => match judge_silence(&times, pulse.age(), opened.elapsed(), asked) {
                        Silence::Wait(w) => wait = w,
                        Silence::Overdue => {
                            tracing::debug!(selector = %sel, "watch: the server did not end the watch at its timeout; reopening");
                            failed = false;
                            break;
                        }
                        Silence::Suspect => {
                            tracing::info!(selector = %sel, silence_s = times.silence.as_secs(), "watch: the API server sent nothing to any watch within the silence limit; reopening to check it answers");
                            failed = false;
                            break;
                        }
                    },
                }
            }
        }
    });
    (rx, task)
}

const WATCH_BACKOFF_MIN: Duration = Duration::from_millis(800);
const WATCH_BACKOFF_MAX: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_watch_waits_while_the_api_shows_life_elsewhere() {
        let t = WatchTimes::LONG;
        let s = Duration::from_secs;
        let asked = s(400);
        // the Lease watch beat 5 s ago: wait until the pulse itself is 90 s old
        assert_eq!(judge_silence(&t, s(5), s(90), asked), Silence::Wait(s(85)));
        assert_eq!(judge_silence(&t, s(90), s(90), asked), Silence::Suspect);
        assert_eq!(judge_silence(&t, s(5), s(489), asked), Silence::Wait(s(85)));
        assert_eq!(judge_silence(&t, s(5), s(490), asked), Silence::Overdue);
        assert_eq!(
            judge_silence(&t, s(90) - Duration::from_millis(1), s(10), asked),
            Silence::Wait(Duration::from_millis(100))
        );
    }

    #[test]
    fn the_daemon_watch_asks_for_five_to_ten_minutes() {
        // The silence limit leaves room for a late bookmark and several
        // missed Lease renewals; each request asks for 300 to 600 s.
        let t = WatchTimes::LONG;
        assert!(t.silence > Duration::from_secs(60) + Duration::from_secs(20));
        for _ in 0..50 {
            assert!((300..600).contains(&t.timeout_seconds()));
        }
        let short = WatchTimes::without_bookmarks(Duration::from_secs(60));
        assert_eq!(short.timeout_seconds(), 50);
        assert_eq!(
            WatchTimes::without_bookmarks(Duration::from_millis(500)).timeout_seconds(),
            1
        );
    }
}
