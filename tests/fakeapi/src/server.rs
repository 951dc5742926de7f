//! HTTP routing and the REST semantics on top of the store.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame, Incoming};
use serde_json::{Value, json};

use crate::patch::{JsonPatchError, json_patch, merge_patch, strategic_merge_patch};
use crate::select::{FieldSelector, LabelSelector};
use crate::store::{EventType, Kind, State, Target, not_found};
use crate::util::{ApiError, http_date, parse_query};
use crate::{Inner, Mode, RequestRecord};

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// What a request addresses.
#[derive(Debug, Clone, Default)]
struct Route {
    kind: Option<Kind>,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    /// The resource segment of the path, even when unknown.
    resource: String,
}

fn parse_route(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, "v1", rest @ ..] => (*group, rest),
        _ => return Route::default(),
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return Route::default(),
    };
    let mut route = Route {
        kind: None,
        namespace: ns,
        name,
        subresource: sub,
        resource: plural.to_string(),
    };
    let Some(kind) = Kind::from_path(group, plural) else {
        return route;
    };
    let scope_ok = if kind.namespaced() {
        route.namespace.is_some() || route.name.is_none()
    } else {
        route.namespace.is_none()
    };
    let sub_ok = match route.subresource.as_deref() {
        None => true,
        Some("status") => kind.has_status(),
        Some("eviction") => kind == Kind::Pod,
        Some("scale") => kind.has_scale(),
        Some(_) => false,
    };
    if scope_ok && sub_ok && route.name.as_deref() != Some("") {
        route.kind = Some(kind);
    }
    route
}

fn verb_of(method: &Method, route: &Route, watch: bool) -> &'static str {
    match *method {
        Method::GET if route.name.is_some() => "get",
        Method::GET if watch => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if route.name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

enum Reply {
    Json(u16, Value),
    Watch(Box<WatchSpec>),
}

type Handled = Result<Reply, ApiError>;

struct Ctx<'a> {
    method: &'a Method,
    route: &'a Route,
    query: Vec<(String, String)>,
    headers: &'a HeaderMap,
    body: &'a [u8],
    warnings: Vec<String>,
}

impl Ctx<'_> {
    fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn json_body(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(self.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request was in an unknown format: {e}"
            ))
        })
    }

    fn accept_as(&self, what: &str) -> bool {
        self.headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',').any(|a| {
                    a.contains(&format!("as={what};")) || a.ends_with(&format!("as={what}"))
                })
            })
    }
}

fn to_meta(obj: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

fn strip_type(mut obj: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    obj
}

fn scale_of(obj: &Value) -> Value {
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": replicas},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

fn hex_encode(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn dispatch(state: &mut State, ctx: &mut Ctx<'_>) -> Handled {
    let route = ctx.route;
    let Some(kind) = route.kind else {
        return Err(ApiError::path_not_found());
    };
    let ns = route.namespace.clone().unwrap_or_default();
    let sub = route.subresource.as_deref();
    match (ctx.method.clone(), route.name.clone(), sub) {
        (Method::GET, None, _) => {
            if matches!(ctx.q("watch"), Some("true" | "1")) {
                watch_spec(state, ctx, kind).map(|w| Reply::Watch(Box::new(w)))
            } else {
                list(state, ctx, kind)
            }
        }
        (Method::GET, Some(name), None | Some("status")) => {
            let obj = state
                .get(kind, &ns, &name)
                .ok_or_else(|| not_found(kind, &name))?;
            if ctx.accept_as("PartialObjectMetadata") {
                return Ok(Reply::Json(200, to_meta(obj)));
            }
            Ok(Reply::Json(200, obj.clone()))
        }
        (Method::GET, Some(name), Some("scale")) => {
            let obj = state
                .get(kind, &ns, &name)
                .ok_or_else(|| not_found(kind, &name))?;
            Ok(Reply::Json(200, scale_of(obj)))
        }
        (Method::POST, None, None) => {
            let mut body = ctx.json_body()?;
            if kind == Kind::CertificateSigningRequest {
                crate::csr::prepare_create(&mut body, ctx.headers)?;
            }
            state
                .create(kind, &ns, body, true)
                .map(|o| Reply::Json(201, o))
        }
        (Method::POST, Some(name), Some("eviction")) => evict(state, ctx, &ns, &name),
        (Method::PUT, Some(name), Some("scale")) => {
            let body = ctx.json_body()?;
            scale_update(state, kind, &ns, &name, body)
        }
        (Method::PUT, Some(name), target @ (None | Some("status"))) => {
            let body = ctx.json_body()?;
            let target = if target.is_some() {
                Target::Status
            } else {
                Target::Main
            };
            state
                .write(kind, &ns, &name, body, target)
                .map(|o| Reply::Json(200, o))
        }
        (Method::PATCH, Some(name), target @ (None | Some("status") | Some("scale"))) => {
            patch(state, ctx, kind, &ns, &name, target)
        }
        (Method::DELETE, Some(name), None) => {
            let opts = if ctx.body.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                ctx.json_body()?
            };
            let grace = match ctx.q("gracePeriodSeconds") {
                Some(g) => Some(g.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}"))
                })?),
                None => opts.get("gracePeriodSeconds").and_then(Value::as_i64),
            };
            state
                .delete(kind, &ns, &name, grace, opts.get("preconditions"))
                .map(|o| Reply::Json(200, o))
        }
        (m, _, _) => Err(ApiError::method_not_allowed(
            m.as_str(),
            &format!(
                "{}{}",
                kind.qualified(),
                sub.map(|s| format!("/{s}")).unwrap_or_default()
            ),
        )),
    }
}

fn list(state: &State, ctx: &Ctx<'_>, kind: Kind) -> Handled {
    let labels = LabelSelector::parse(ctx.q("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(kind, ctx.q("fieldSelector").unwrap_or(""))?;
    let limit: usize = match ctx.q("limit") {
        Some(l) if !l.is_empty() => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
            .max(0) as usize,
        _ => 0,
    };
    let after = match ctx.q("continue") {
        Some(c) if !c.is_empty() => {
            Some(hex_decode(c).ok_or_else(|| ApiError::bad_request("continue key is not valid"))?)
        }
        _ => None,
    };
    let meta_only = ctx.accept_as("PartialObjectMetadataList");
    let mut items = Vec::new();
    let mut next = None;
    let ns = ctx.route.namespace.as_deref();
    for obj in state.iter_kind(kind, ns) {
        let key = format!(
            "{}/{}",
            obj.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(""),
            obj.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        );
        if after.as_ref().is_some_and(|a| key.as_str() <= a.as_str()) {
            continue;
        }
        if !labels.matches(obj) || !fields.matches(obj) {
            continue;
        }
        if limit > 0 && items.len() == limit {
            next = Some(hex_encode(&last_key(&items)));
            break;
        }
        items.push(if meta_only {
            to_meta(obj)
        } else {
            strip_type(obj.clone())
        });
    }
    let mut meta = json!({"resourceVersion": state.rv.to_string()});
    if let Some(n) = next {
        meta["continue"] = Value::String(n);
    }
    let (api_version, list_kind) = if meta_only {
        (
            "meta.k8s.io/v1".to_string(),
            "PartialObjectMetadataList".to_string(),
        )
    } else {
        (kind.api_version(), format!("{}List", kind.kind()))
    };
    Ok(Reply::Json(
        200,
        json!({"kind": list_kind, "apiVersion": api_version, "metadata": meta, "items": items}),
    ))
}

fn last_key(items: &[Value]) -> String {
    items
        .last()
        .map(|o| {
            format!(
                "{}/{}",
                o.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                o.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            )
        })
        .unwrap_or_default()
}

fn evict(state: &mut State, ctx: &mut Ctx<'_>, ns: &str, name: &str) -> Handled {
    let body = ctx.json_body()?;
    let Some(obj) = body.as_object() else {
        return Err(ApiError::bad_request(
            "the body of the request must be an Eviction object",
        ));
    };
    for k in obj.keys() {
        if !matches!(
            k.as_str(),
            "apiVersion" | "kind" | "metadata" | "deleteOptions"
        ) {
            // The real apiserver (fieldValidation=Warn by default) drops unknown
            // fields and says so in a Warning header.
            ctx.warnings.push(format!("unknown field \"{k}\""));
        }
    }
    if let Some(n) = body.pointer("/metadata/name").and_then(Value::as_str)
        && n != name
    {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let grace = body
        .pointer("/deleteOptions/gracePeriodSeconds")
        .and_then(Value::as_i64);
    state.evict(ns, name, grace)?;
    Ok(Reply::Json(
        201,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

fn scale_update(state: &mut State, kind: Kind, ns: &str, name: &str, scale: Value) -> Handled {
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::new(
                422,
                "Invalid",
                format!("Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: must be greater than or equal to 0"),
            )
        })?;
    let mut obj = state
        .get(kind, ns, name)
        .cloned()
        .ok_or_else(|| not_found(kind, name))?;
    obj["metadata"]["resourceVersion"] = scale
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    if !obj["spec"].is_object() {
        obj["spec"] = json!({});
    }
    obj["spec"]["replicas"] = json!(replicas);
    let fin = state.write(kind, ns, name, obj, Target::Main)?;
    Ok(Reply::Json(200, scale_of(&fin)))
}

fn patch(
    state: &mut State,
    ctx: &Ctx<'_>,
    kind: Kind,
    ns: &str,
    name: &str,
    sub: Option<&str>,
) -> Handled {
    let ctype = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = ctx.json_body()?;
    let existing = state.get(kind, ns, name).cloned();
    if ctype == "application/apply-patch+yaml" {
        if ctx.q("fieldManager").is_none_or(str::is_empty) {
            return Err(ApiError::new(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        if !body.is_object() {
            return Err(ApiError::bad_request("apply patches must be objects"));
        }
        if existing.is_none() && sub.is_none() {
            let mut obj = body;
            if !obj["metadata"].is_object() {
                obj["metadata"] = json!({});
            }
            obj["metadata"]["name"] = Value::String(name.to_string());
            return state
                .create(kind, ns, obj, true)
                .map(|o| Reply::Json(201, o));
        }
    }
    let old = existing.ok_or_else(|| not_found(kind, name))?;
    let mut doc = if sub == Some("scale") {
        scale_of(&old)
    } else {
        old.clone()
    };
    match ctype.as_str() {
        "application/merge-patch+json" => {
            if !body.is_object() {
                return Err(ApiError::bad_request("a merge patch must be an object"));
            }
            merge_patch(&mut doc, &body)
        }
        // Server-side apply is approximated by a strategic merge (keyed lists
        // merge, maps merge); field ownership is not tracked.
        "application/strategic-merge-patch+json" | "application/apply-patch+yaml" => {
            if !body.is_object() {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be an object",
                ));
            }
            strategic_merge_patch(&mut doc, &body)
        }
        "application/json-patch+json" => match json_patch(&mut doc, &body) {
            Ok(()) => {}
            Err(JsonPatchError::Malformed(m)) => return Err(ApiError::bad_request(m)),
            Err(JsonPatchError::Failed(m)) => {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {m}"),
                ));
            }
        },
        _ => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ctype:?})"
                ),
            ));
        }
    }
    match sub {
        Some("scale") => scale_update(state, kind, ns, name, doc),
        Some(_) => state
            .write(kind, ns, name, doc, Target::Status)
            .map(|o| Reply::Json(200, o)),
        None => state
            .write(kind, ns, name, doc, Target::Main)
            .map(|o| Reply::Json(200, o)),
    }
}

// ----- watch --------------------------------------------------------------

pub(crate) struct WatchSpec {
    kind: Kind,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    cursor: u64,
    /// The resourceVersion the watch started from: a timed bookmark is sent
    /// only once its resource has changed after it.
    start_rv: u64,
    deadline: Instant,
    bookmarks: bool,
    /// When the next timed BOOKMARK is due (only when `bookmarks`).
    next_bookmark: Instant,
    bookmark_every: Duration,
    meta_only: bool,
    pending: Vec<Value>,
    done: bool,
}

fn watch_spec(state: &State, ctx: &Ctx<'_>, kind: Kind) -> Result<WatchSpec, ApiError> {
    let labels = LabelSelector::parse(ctx.q("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(kind, ctx.q("fieldSelector").unwrap_or(""))?;
    let timeout = match ctx.q("timeoutSeconds") {
        Some(t) if !t.is_empty() => t
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?
            .min(86_400),
        _ => 1800,
    };
    let bookmarks = ctx.q("allowWatchBookmarks") == Some("true");
    let initial_events = ctx.q("sendInitialEvents") == Some("true");
    let mut spec = WatchSpec {
        kind,
        ns: ctx.route.namespace.clone(),
        labels,
        fields,
        cursor: state.rv,
        start_rv: state.rv,
        deadline: Instant::now() + Duration::from_secs(timeout),
        bookmarks,
        next_bookmark: Instant::now(),
        bookmark_every: state.settings.bookmark_every,
        meta_only: ctx.accept_as("PartialObjectMetadata"),
        pending: Vec::new(),
        done: false,
    };
    let rv = ctx.q("resourceVersion").unwrap_or("");
    if rv.is_empty() || rv == "0" || initial_events {
        let current: Vec<Value> = state
            .iter_kind(kind, spec.ns.as_deref())
            .filter(|o| spec.labels.matches(o) && spec.fields.matches(o))
            .cloned()
            .collect();
        for o in current {
            let o = spec.render(o);
            spec.pending.push(json!({"type": "ADDED", "object": o}));
        }
        if initial_events && bookmarks {
            let mut b = spec.bookmark(state.rv);
            b["object"]["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            spec.pending.push(b);
        }
    } else {
        let n: u64 = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?;
        if n < state.floor {
            spec.pending
                .push(json!({"type": "ERROR", "object": ApiError::new(
                410,
                "Expired",
                format!("too old resource version: {n} ({})", state.floor),
            ).to_status()}));
            spec.done = true;
        } else {
            spec.cursor = n;
            spec.start_rv = n;
        }
    }
    spec.next_bookmark = spec.next_bookmark_after(Instant::now());
    Ok(spec)
}

/// The real API server's period of timed bookmarks (`defaultBookmarkFrequency
/// = time.Minute`, k8s.io/apiserver pkg/storage/cacher/cacher.go).
pub(crate) const BOOKMARK_FREQUENCY: Duration = Duration::from_secs(60);

impl WatchSpec {
    /// As `cacheWatcher.nextBookmarkTime` (cache_watcher.go): one period from
    /// now, or 2 s before the watch's deadline if that comes first.
    fn next_bookmark_after(&self, now: Instant) -> Instant {
        let heartbeat = now + self.bookmark_every;
        let pretimeout = self
            .deadline
            .checked_sub(Duration::from_secs(2))
            .unwrap_or(now);
        heartbeat.min(pretimeout).max(now)
    }

    fn render(&self, obj: Value) -> Value {
        if self.meta_only { to_meta(&obj) } else { obj }
    }

    fn bookmark(&self, rv: u64) -> Value {
        let (api_version, kind) = if self.meta_only {
            ("meta.k8s.io/v1".to_string(), "PartialObjectMetadata")
        } else {
            (self.kind.api_version(), self.kind.kind())
        };
        json!({"type": "BOOKMARK", "object": {
            "kind": kind, "apiVersion": api_version,
            "metadata": {"resourceVersion": rv.to_string()},
        }})
    }

    fn matches(&self, obj: &Value) -> bool {
        let ns_ok = self.ns.as_deref().is_none_or(|ns| {
            obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns)
        });
        ns_ok && self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// Moves the cursor over the history, queueing what this watch sees.
    fn collect(&mut self, state: &State) {
        let start = state.history.partition_point(|e| e.rv <= self.cursor);
        for ev in state.history.range(start..) {
            if ev.kind != self.kind {
                continue;
            }
            let now = self.matches(&ev.object);
            let before = ev.prev.as_ref().is_some_and(|p| self.matches(p));
            let typ = match ev.typ {
                EventType::Added if now => "ADDED",
                EventType::Modified if now && before => "MODIFIED",
                EventType::Modified if now => "ADDED",
                EventType::Modified if before => "DELETED",
                EventType::Deleted if now => "DELETED",
                _ => continue,
            };
            let obj = self.render(ev.object.clone());
            self.pending.push(json!({"type": typ, "object": obj}));
        }
        self.cursor = state.rv;
    }
}

fn watch_body(inner: Arc<Inner>, spec: WatchSpec) -> Body {
    let rx = inner.changes.clone();
    let stream =
        futures::stream::unfold((inner, spec, rx), |(inner, mut spec, mut rx)| async move {
            loop {
                if !spec.pending.is_empty() {
                    let ev = spec.pending.remove(0);
                    let mut line = serde_json::to_vec(&ev).unwrap_or_default();
                    line.push(b'\n');
                    return Some((Bytes::from(line), (inner, spec, rx)));
                }
                if spec.done {
                    return None;
                }
                {
                    let state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
                    if state.settings.mode != Mode::Hang {
                        rx.borrow_and_update();
                        spec.collect(&state);
                    }
                }
                if !spec.pending.is_empty() {
                    continue;
                }
                // Timed bookmarks, as the real cacher sends them (checked on
                // kube-apiserver v1.28.7, docs/benchmarks.md): about once a
                // period and 2 s before the deadline, carrying the latest
                // resourceVersion of the watched resource, and only once that
                // resource has changed since the watch started (the cacher
                // "never sends a bookmark event if we did not see an event",
                // and a watcher drops one not newer than its start): a quiet
                // Node watch in a quiet cluster gets none at all. At the
                // deadline the stream just ends. A hung server sends none.
                let bookmark_due = spec.bookmarks && spec.next_bookmark < spec.deadline;
                tokio::select! {
                    _ = tokio::time::sleep_until(spec.next_bookmark.into()), if bookmark_due => {
                        let now = Instant::now();
                        spec.next_bookmark = spec.next_bookmark_after(now);
                        if spec.next_bookmark <= now {
                            // Past the pre-timeout point: no more timed bookmarks.
                            spec.next_bookmark = spec.deadline;
                        }
                        let seen = {
                            let state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
                            (state.settings.mode != Mode::Hang).then(|| state.kind_rv(spec.kind))
                        };
                        if let Some(rv) = seen.filter(|rv| *rv > spec.start_rv) {
                            let b = spec.bookmark(rv);
                            spec.pending.push(b);
                        }
                    }
                    _ = tokio::time::sleep_until(spec.deadline.into()) => {
                        spec.done = true;
                    }
                    r = rx.changed() => {
                        if r.is_err() {
                            spec.done = true;
                        }
                    }
                }
            }
        });
    BodyExt::boxed(StreamBody::new(
        stream.map(|b| Ok::<_, Infallible>(Frame::data(b))),
    ))
}

// ----- entry point ----------------------------------------------------------

fn json_response(code: u16, value: &Value, date: &str, extra: &[String]) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    if let Ok(d) = HeaderValue::from_str(date) {
        h.insert(header::DATE, d);
    }
    for w in extra {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "\\\""))) {
            h.append(header::WARNING, v);
        }
    }
    resp
}

fn error_response(e: &ApiError, date: &str) -> Response<Body> {
    let mut resp = json_response(e.code, &e.to_status(), date, &[]);
    if let Some(s) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

pub(crate) async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let route = parse_route(parts.uri.path());
    let query_str = parts.uri.query().map(str::to_string);
    let query = parse_query(query_str.as_deref());
    let watch = query
        .iter()
        .any(|(k, v)| k == "watch" && matches!(v.as_str(), "true" | "1"));
    let mut record = RequestRecord {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: query_str,
        verb: verb_of(&parts.method, &route, watch).to_string(),
        resource: route.resource.clone(),
        subresource: route.subresource.clone(),
        namespace: route.namespace.clone(),
        name: route.name.clone(),
        status: 0,
        at: jiff::Timestamp::now(),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let (mode, latency) = {
        let s = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        (s.settings.mode, s.settings.latency)
    };
    match mode {
        Mode::Hang | Mode::Down => {
            // Never answer (Down: the connection is about to be cut).
            inner
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .log
                .push(record);
            return futures::future::pending().await;
        }
        Mode::Up | Mode::Error500 => {}
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    let date = http_date(state.now());
    let mut ctx = Ctx {
        method: &parts.method,
        route: &route,
        query,
        headers: &parts.headers,
        body: &body,
        warnings: Vec::new(),
    };
    let result = if mode == Mode::Error500 {
        Err(ApiError::internal("the fake apiserver is in Error500 mode"))
    } else {
        dispatch(&mut state, &mut ctx)
    };
    let response = match result {
        Ok(Reply::Json(code, v)) => {
            record.status = code;
            json_response(code, &v, &date, &ctx.warnings)
        }
        Ok(Reply::Watch(spec)) => {
            record.status = 200;
            state.log.push(record);
            drop(state);
            let mut resp = Response::new(watch_body(inner.clone(), *spec));
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, private"),
            );
            if let Ok(d) = HeaderValue::from_str(&date) {
                h.insert(header::DATE, d);
            }
            return resp;
        }
        Err(e) => {
            record.status = e.code;
            error_response(&e, &date)
        }
    };
    state.log.push(record);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = parse_route("/api/v1/namespaces/ns/pods/p/eviction");
        assert_eq!(r.kind, Some(Kind::Pod));
        assert_eq!(r.namespace.as_deref(), Some("ns"));
        assert_eq!(r.name.as_deref(), Some("p"));
        assert_eq!(r.subresource.as_deref(), Some("eviction"));
        assert_eq!(parse_route("/api/v1/pods").kind, Some(Kind::Pod));
        assert_eq!(
            parse_route("/api/v1/nodes/n1/status").kind,
            Some(Kind::Node)
        );
        assert_eq!(parse_route("/api/v1/nodes/n1/eviction").kind, None);
        assert_eq!(
            parse_route("/api/v1/pods/p").kind,
            None,
            "namespaced object without namespace"
        );
        assert_eq!(parse_route("/api/v1/namespaces/x/nodes").kind, None);
        assert_eq!(parse_route("/api/v1/namespaces/x").kind, None);
        assert_eq!(
            parse_route("/apis/coordination.k8s.io/v1/namespaces/ns/leases/l").kind,
            Some(Kind::Lease)
        );
        assert_eq!(
            parse_route("/apis/events.k8s.io/v1/namespaces/default/events").kind,
            Some(Kind::Event)
        );
        assert_eq!(
            parse_route("/api/v1/namespaces/default/events").kind,
            Some(Kind::CoreEvent)
        );
        assert_eq!(
            parse_route("/apis/apps/v1/namespaces/a/deployments/d/scale").kind,
            Some(Kind::Deployment)
        );
        assert_eq!(
            parse_route("/apis/apps/v1/namespaces/a/daemonsets/d/scale").kind,
            None
        );
        assert_eq!(parse_route("/healthz").kind, None);
        assert_eq!(
            parse_route("/apis/policy/v1/poddisruptionbudgets").kind,
            Some(Kind::PodDisruptionBudget)
        );
    }

    #[test]
    fn continue_tokens_roundtrip() {
        assert_eq!(
            hex_decode(&hex_encode("ns/name")).as_deref(),
            Some("ns/name")
        );
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_decode("abc"), None);
    }
}
