//! The admin listener, on its own address (loopback by default): `/healthz`, `/readyz`,
//! `/metrics`, `GET /admin/policy[?orders=none]` (the running legal-order table), `GET
//! /admin/policy/explain?host=&path=&country=&sni=[&at=]` (one decision and its reasons) and
//! `POST /admin/policy/reload`, `POST /admin/purge` (the cache), `POST /admin/config/reload`
//! (re-read the config file; see [`crate::protection::reload`]). Anything that is not a read requires the bearer token from
//! `admin.token_file` ([`authorized`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::policy::{Outcome, PolicyRuntime, Trigger, run_reload};
use portcullis_policy::{RequestFacts, Verdict};

#[derive(Debug)]
pub struct AdminState {
    pub metrics: Metrics,
    pub policy: Option<Arc<PolicyRuntime>>,
    /// The shared cache, for `POST /admin/purge`.
    pub cache: Option<Arc<crate::cache::Cache>>,
    /// Re-reads the config file, for `POST /admin/config/reload`.
    pub config: Option<Arc<crate::protection::reload::ConfigReloader>>,
    pub token: Option<String>,
    /// Set when the proxy stops accepting: `/readyz` turns 503 so load balancers move away.
    pub draining: AtomicBool,
}

pub async fn serve(listener: TcpListener, state: Arc<AdminState>, mut stop: watch::Receiver<bool>) {
    // Keep answering through the drain: load balancers must see /readyz turn 503.
    let mut stopping = false;
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    continue;
                }
            },
            r = stop.changed(), if !stopping => {
                let _ = r;
                stopping = true;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&state, req).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn route(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    if !read {
        if !authorized(state.token.as_deref(), req.headers()) {
            let mut r = text(StatusCode::UNAUTHORIZED, "a bearer token is required\n");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        return match (req.method(), req.uri().path(), &state.policy) {
            (&Method::POST, "/admin/policy/reload", Some(policy)) => policy_reload(policy).await,
            (&Method::POST, "/admin/policy/reload", None) => no_policy(),
            (&Method::POST, "/admin/config/reload", _) => config_reload(state.config.clone()).await,
            (&Method::POST, "/admin/purge", _) => match &state.cache {
                Some(cache) => purge(cache, req).await,
                None => text(
                    StatusCode::NOT_FOUND,
                    "no site has the cache enabled (set cache: true on a site)\n",
                ),
            },
            _ => text(StatusCode::NOT_FOUND, "no such admin endpoint\n"),
        };
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if state.draining.load(Ordering::Relaxed) {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else {
                text(StatusCode::OK, "ready\n")
            }
        }
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(state.metrics.render())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/admin/policy" => match &state.policy {
            Some(policy) => {
                // `?orders=none`: the header fields only (serial, sha256, loaded_at, last
                // error...), cheap enough to poll while waiting for a reload to land.
                let with_orders = !form_pairs(req.uri().query().unwrap_or(""))
                    .iter()
                    .any(|(k, v)| k == "orders" && v == "none");
                json(StatusCode::OK, &policy.describe(with_orders))
            }
            None => no_policy(),
        },
        "/admin/policy/explain" => match &state.policy {
            Some(policy) => policy_explain(policy, req.uri().query().unwrap_or("")),
            None => no_policy(),
        },
        _ => text(StatusCode::NOT_FOUND, "no such admin endpoint\n"),
    }
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The largest purge request body read.
const MAX_PURGE_BODY: usize = 64 << 10;

/// `POST /admin/purge` with exactly one of `{"url": "http://host/path?q"}` (every variant of
/// that URL; the scheme is ignored), `{"host": "host"}` or `{"all": true}`; answers
/// `{"purged": N}`.
async fn purge(cache: &crate::cache::Cache, req: Request<Incoming>) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt as _;
    let bad = |msg: String| {
        json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": msg }),
        )
    };
    let body = match http_body_util::Limited::new(req.into_body(), MAX_PURGE_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad(format!("cannot read the request body: {e}")),
    };
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return bad(format!(
                "the body must be JSON: {{\"url\": ...}}, {{\"host\": ...}} or {{\"all\": true}} ({e})"
            ));
        }
    };
    let Some(obj) = value.as_object().filter(|o| o.len() == 1) else {
        return bad("give exactly one of url, host or all".to_owned());
    };
    let purged = match obj.iter().next() {
        Some((k, serde_json::Value::String(url))) if k == "url" => {
            let Ok(uri) = url.parse::<http::Uri>() else {
                return bad(format!("{url:?} is not a URL"));
            };
            let Some(host) = uri.host() else {
                return bad(format!("{url:?} has no host (write http://host/path)"));
            };
            let Ok(host) = portcullis_policy::canonical_host(host) else {
                return bad(format!("{url:?} has an invalid host"));
            };
            let target = uri.path_and_query().map_or("/", |p| p.as_str());
            cache.purge_url(&host, target)
        }
        Some((k, serde_json::Value::String(host))) if k == "host" => {
            let Ok(host) = portcullis_policy::canonical_host(host) else {
                return bad(format!("{host:?} is not a valid host name"));
            };
            cache.purge_host(&host)
        }
        Some((k, serde_json::Value::Bool(true))) if k == "all" => cache.purge_all(),
        _ => {
            return bad(
                "give exactly one of url (a string), host (a string) or all: true".to_owned(),
            );
        }
    };
    tracing::info!(purged, request = %String::from_utf8_lossy(&body), "cache purge");
    json(StatusCode::OK, &serde_json::json!({ "purged": purged }))
}

/// `POST /admin/config/reload`: 200 `{"result": "applied", "restart_needed": [...]}`, or 422
/// `{"result": "invalid", "errors": [...]}` with the running settings unchanged.
async fn config_reload(
    reloader: Option<Arc<crate::protection::reload::ConfigReloader>>,
) -> Response<Full<Bytes>> {
    let Some(reloader) = reloader else {
        return text(
            StatusCode::NOT_FOUND,
            "this proxy's config did not come from a file; nothing to reload\n",
        );
    };
    // Reading and validating files blocks: off the async workers.
    match tokio::task::spawn_blocking(move || reloader.reload()).await {
        Ok(Ok(applied)) => json(
            StatusCode::OK,
            &serde_json::json!({
                "result": "applied",
                "restart_needed": applied.restart_needed,
            }),
        ),
        Ok(Err(errors)) => {
            let list: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
            json(
                StatusCode::UNPROCESSABLE_ENTITY,
                &serde_json::json!({ "result": "invalid", "errors": list }),
            )
        }
        Err(e) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &serde_json::json!({ "result": "error", "error": e.to_string() }),
        ),
    }
}

fn no_policy() -> Response<Full<Bytes>> {
    text(
        StatusCode::NOT_FOUND,
        "no legal-order policy is configured (add a policy: section)\n",
    )
}

/// `POST /admin/policy/reload`: 200 applied or unchanged, 422 invalid file, 409 refused by the
/// serial rule, 500 unreadable; the running table stays on every failure.
async fn policy_reload(policy: &Arc<PolicyRuntime>) -> Response<Full<Bytes>> {
    if let crate::config::PolicySource::Etcd(e) = &policy.config().source {
        // Nothing to re-read: the watch applies every change of the key as it happens.
        let body = serde_json::json!({
            "result": "not_applicable",
            "error": format!("policy.source is etcd: the policy follows {} (publish a new bundle with `portcullis policy publish`)", e.policy_key()),
            "serial": policy.snapshot().table.serial(),
        });
        return json(StatusCode::CONFLICT, &body);
    }
    let outcome = run_reload(policy, Trigger::Admin).await;
    let running = policy.snapshot().table.serial();
    let (status, body) = match &outcome {
        Outcome::Applied {
            serial,
            added,
            removed,
            changed,
        } => (
            StatusCode::OK,
            serde_json::json!({
                "result": "applied", "serial": serial,
                "added": added, "removed": removed, "changed": changed,
            }),
        ),
        Outcome::Unchanged { serial } => (
            StatusCode::OK,
            serde_json::json!({ "result": "unchanged", "serial": serial }),
        ),
        Outcome::Skipped => (
            StatusCode::OK,
            serde_json::json!({ "result": "unchanged", "serial": running }),
        ),
        Outcome::Invalid(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::json!({ "result": "invalid", "error": e, "serial": running }),
        ),
        Outcome::Refused(e) => (
            StatusCode::CONFLICT,
            serde_json::json!({ "result": "refused", "error": e, "serial": running }),
        ),
        Outcome::BundleRefused(r) => (
            StatusCode::CONFLICT,
            serde_json::json!({
                "result": "refused", "reason": r.reason, "key_id": r.key_id,
                "error": r.message, "serial": running,
            }),
        ),
        Outcome::Error(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "result": "error", "error": e, "serial": running }),
        ),
    };
    json(status, &body)
}

/// `GET /admin/policy/explain?host=&path=&country=&sni=[&at=RFC3339]`.
fn policy_explain(policy: &PolicyRuntime, query: &str) -> Response<Full<Bytes>> {
    let mut host = None;
    let (mut path, mut country, mut sni, mut at) = (None, None, None, None);
    for (k, v) in form_pairs(query) {
        match k.as_str() {
            "host" => host = Some(v),
            "path" => path = Some(v),
            "country" => country = Some(v),
            "sni" => sni = Some(v),
            "at" => at = Some(v),
            _ => {}
        }
    }
    let Some(host) = host else {
        return json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": "host= is required" }),
        );
    };
    let country = match country.as_deref().map(str::as_bytes) {
        None | Some(b"") => None,
        Some([a, b]) if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        Some(_) => {
            return json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({ "error": "country= must be two letters (ISO 3166-1 alpha-2)" }),
            );
        }
    };
    let now = match at.as_deref() {
        None => std::time::SystemTime::now(),
        Some(t) => {
            match time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339) {
                Ok(t) => t.into(),
                Err(e) => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        &serde_json::json!({ "error": format!("at= is not RFC 3339: {e}") }),
                    );
                }
            }
        }
    };
    let snapshot = policy.snapshot();
    let path = path.unwrap_or_else(|| "/".to_owned());
    let facts = RequestFacts {
        host: &host,
        path: &path,
        country,
        sni: sni.as_deref().filter(|s| !s.is_empty()),
        now,
    };
    let ex = snapshot.table.explain(&facts);
    let (verdict, order, action) = match ex.decision.verdict {
        Verdict::Allow => ("allow", None, None),
        Verdict::BadHost(_) => ("bad_host", None, None),
        Verdict::Misdirected => ("misdirected", None, None),
        Verdict::Block { order, action } => {
            ("block", Some(order.id.clone()), Some(action.as_str()))
        }
    };
    let considered: Vec<serde_json::Value> = ex
        .considered
        .iter()
        .map(|c| {
            serde_json::json!({
                "order": c.order.id,
                "via": c.via,
                "by_sni": c.by_sni,
                "outcome": format!("{:?}", c.outcome),
            })
        })
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "serial": snapshot.table.serial(),
            "host": ex.host.as_ref().map_err(|e| e.to_string()),
            "path": ex.path,
            "country": country.map(|c| String::from_utf8_lossy(&c).into_owned()),
            "sni": facts.sni,
            "at": crate::policy::rfc3339(now),
            "verdict": verdict,
            "order": order,
            "action": action,
            "matched": ex.decision.matched().map(|o| o.id.clone()).collect::<Vec<_>>(),
            "dry_run": ex.decision.dry_run().map(|o| o.id.clone()).collect::<Vec<_>>(),
            "considered": considered,
        }),
    )
}

/// `application/x-www-form-urlencoded` pairs of a query string, percent-decoded.
fn form_pairs(query: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Whether the request carries `Authorization: Bearer <token>`. Without a configured token,
/// state-changing endpoints are refused outright.
pub fn authorized(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else { return false };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    constant_time_eq(given.trim().as_bytes(), token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token() {
        let mut h = HeaderMap::new();
        assert!(!authorized(Some("s3cret"), &h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(authorized(Some("s3cret"), &h));
        assert!(!authorized(Some("other"), &h));
        assert!(!authorized(None, &h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret"),
        );
        assert!(!authorized(Some("s3cret"), &h));
    }

    #[test]
    fn query_pairs_are_decoded() {
        let p = form_pairs("host=Pirate.Example&path=%2Fa%20b+c&sni=&x");
        assert_eq!(
            p,
            vec![
                ("host".into(), "Pirate.Example".into()),
                ("path".into(), "/a b c".into()),
                ("sni".into(), String::new()),
                ("x".into(), String::new()),
            ]
        );
        assert_eq!(
            form_pairs("path=%zz%2"),
            vec![("path".into(), "%zz%2".into())]
        );
    }
}
