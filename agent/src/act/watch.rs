//! A background watch of one named object: its latest state and whether the
//! stream is alive.
//!
//! The API server sends a BOOKMARK to every watcher that asked for them
//! (`allowWatchBookmarks`, kube's `WatchParams` default) about once a minute,
//! and one more 2 s before the watch's `timeoutSeconds` ends it
//! (`cacheWatcher.nextBookmarkTime`, `defaultBookmarkFrequency = time.Minute`
//! in k8s.io/apiserver `pkg/storage/cacher/cacher.go` and
//! `cache_watcher.go`). So a stream that sends nothing at all, not even a
//! bookmark, for well over a minute is dead, whatever `timeoutSeconds` asked
//! for: the watch can ask for a long server-side timeout (kube-rs's own
//! watcher asks for 290 s) and still see a hung server within [`WatchTimes::silence`].

use std::fmt;
use std::time::Duration;

use super::kube::jitter;

/// How long the server keeps one watch open, and how long a silent stream is
/// trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchTimes {
    /// A stream silent (no event, no bookmark) for this long is a hung server:
    /// the view is marked stale and the watch reopened. Also the deadline of
    /// the LIST and of opening the watch.
    pub silence: Duration,
    /// `timeoutSeconds` asked of the server: each watch request lasts this
    /// long, then is resumed from the last `resourceVersion`.
    pub server_timeout: Duration,
}

impl WatchTimes {
    /// The daemon's watches: 290 s server-side (kube-rs's watcher default), so
    /// one request per watch per ~5 minutes; dead after 90 s of silence, that
    /// is 1.5 bookmark periods of the real API server.
    pub const BOOKMARKED: WatchTimes = WatchTimes {
        silence: Duration::from_secs(90),
        server_timeout: Duration::from_secs(290),
    };

    /// For a server that may send no bookmark between events (no periodic
    /// bookmarks): the server ends each watch at 5/6 of `silence`, so a quiet
    /// but healthy stream is never taken for a dead one.
    pub fn without_bookmarks(silence: Duration) -> WatchTimes {
        WatchTimes {
            silence,
            server_timeout: silence * 5 / 6,
        }
    }

    fn timeout_seconds(&self) -> u32 {
        self.server_timeout.as_secs().clamp(1, 3600) as u32
    }
}

impl From<Duration> for WatchTimes {
    /// A bare silence limit: [`WatchTimes::without_bookmarks`].
    fn from(silence: Duration) -> WatchTimes {
        WatchTimes::without_bookmarks(silence)
    }
}

/// The latest state of one watched object.
#[derive(Debug, Clone)]
pub struct Watched<K> {
    /// `None` until first seen, or after deletion.
    pub obj: Option<K>,
    /// The watch is failing or silent; `obj` is the last one seen.
    pub stale: bool,
}

impl<K> Default for Watched<K> {
    fn default() -> Self {
        Watched {
            obj: None,
            stale: false,
        }
    }
}

/// Watches the one object `name` of `api` (a `metadata.name` field selector:
/// the server sends nothing about other objects) in the background.
///
/// One LIST at start (and after a 410 Expired), then WATCH requests resumed
/// from the last `resourceVersion` (bookmarks keep it current), each ended by
/// the server after `times.server_timeout`: a quiet object costs one watch
/// request per `server_timeout` and no LIST. A stream silent for
/// `times.silence` means a hung API server (kube has no read timeout): the
/// view is marked `stale` and the watch reopened. While the server cannot be
/// reached the last object is kept, `stale` is set, and attempts back off
/// from 0.8 s doubling to 30 s, jittered (no hot loop, no herd when it comes
/// back).
pub fn watch_one<K>(
    api: kube::Api<K>,
    name: &str,
    times: impl Into<WatchTimes>,
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
    let times = times.into();
    let silence = times.silence;
    let server_timeout = times.timeout_seconds();
    let task = tokio::spawn(async move {
        let mut rv: Option<String> = None;
        let mut backoff = WATCH_BACKOFF_MIN;
        let mut failed = false;
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
                    match tokio::time::timeout(silence, api.list(&lp)).await {
                        Ok(Ok(list)) => {
                            let v = list.metadata.resource_version.clone().unwrap_or_default();
                            let obj = list.items.into_iter().next();
                            tx.send_modify(|s| {
                                s.obj = obj;
                                s.stale = false;
                            });
                            rv = Some(v.clone());
                            v
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(selector = %sel, error = %e, "watch: list failed");
                            continue;
                        }
                        Err(_) => {
                            tracing::debug!(selector = %sel, "watch: list got no answer");
                            continue;
                        }
                    }
                }
            };
            // `WatchParams::default()` asks for bookmarks (allowWatchBookmarks=true).
            let wp = WatchParams::default().fields(&sel).timeout(server_timeout);
            let mut stream = match tokio::time::timeout(silence, api.watch(&wp, &version)).await {
                Ok(Ok(s)) => s.boxed(),
                Ok(Err(e)) => {
                    tracing::debug!(selector = %sel, error = %e, "watch: open failed");
                    continue;
                }
                Err(_) => {
                    tracing::debug!(selector = %sel, "watch: open got no answer");
                    continue;
                }
            };
            // The server answered: the view is current.
            tx.send_modify(|s| s.stale = false);
            loop {
                match tokio::time::timeout(silence, stream.next()).await {
                    Ok(Some(Ok(ev))) => {
                        let (obj, gone) = match ev {
                            WatchEvent::Added(o) | WatchEvent::Modified(o) => (Some(o), false),
                            WatchEvent::Deleted(o) => (Some(o), true),
                            WatchEvent::Bookmark(b) => {
                                rv = Some(b.metadata.resource_version);
                                // A bookmark is a sign of life: the view is current.
                                tx.send_if_modified(|s| std::mem::replace(&mut s.stale, false));
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
                                s.stale = false;
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
                        tracing::debug!(selector = %sel, error = %e, "watch: stream failed");
                        break;
                    }
                    Err(_) => {
                        tracing::warn!(selector = %sel, silence_s = silence.as_secs(), "watch: no event or bookmark within the silence limit; the API server is taken as hung, reopening");
                        break;
                    }
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
    fn the_daemon_watch_outlives_a_bookmark_period() {
        // A healthy real server sends a bookmark every minute: the silence
        // limit must leave room for one late bookmark, and the server-side
        // timeout is kube-rs's 290 s.
        let t = WatchTimes::BOOKMARKED;
        assert!(t.silence > Duration::from_secs(60) + Duration::from_secs(20));
        assert_eq!(t.timeout_seconds(), 290);
        let short = WatchTimes::without_bookmarks(Duration::from_secs(60));
        assert_eq!(short.timeout_seconds(), 50);
        assert_eq!(
            WatchTimes::without_bookmarks(Duration::from_millis(500)).timeout_seconds(),
            1
        );
    }
}
