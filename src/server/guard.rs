//! The local server against the browser: every web page the user opens can send requests to a
//! server on 127.0.0.1, so the Host, the Origin and the Content-Type of a request are untrusted
//! input. Three checks, in this order, before anything else runs (threat model: SECURITY.md):
//!
//! 1. **Host** (DNS rebinding). A page on `evil.example` whose name is rebound to 127.0.0.1 is
//!    same-origin with the server in the browser's eyes, but its requests still carry
//!    `Host: evil.example`. Bound to loopback, hearth answers only loopback names (`localhost`,
//!    `127.0.0.0/8`, `[::1]`, any port) and the names in `allowed_hosts`; Ollama closed
//!    CVE-2024-28224 the same way. Bound elsewhere, the check applies when `allowed_hosts` is set
//!    (the API key, which such a bind requires, is what a browser cannot send).
//! 2. **Origin** (cross-site requests). A request that carries an `Origin` is from a browser
//!    page; unless that origin is allowed it gets a 403 on every endpoint, reads included, and no
//!    CORS headers. Allowed: loopback origins (`http(s)://localhost:*`, `127.0.0.1`, `[::1]`),
//!    the server's own origin, and `cors_origins`. For those, [`cors`] answers preflights and
//!    echoes the exact origin (never `*`, never with credentials), with `Vary: Origin`.
//! 3. **JSON bodies** (blind "simple" requests). A page may POST `text/plain` or a form to any
//!    address without a preflight; hearth's POST bodies must say `application/json` (which a
//!    page can only send after a preflight that step 2 refuses), or the answer is 415.
//!
//! The decisions are pure functions of [`BrowserPolicy`], unit-tested below; the middleware only
//! applies them.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::ApiError;

/// How long a browser may cache a preflight's answer (Chromium caps it at 2 hours).
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Which Host names and browser Origins the server answers.
#[derive(Clone, Debug)]
pub struct BrowserPolicy {
    /// Whether the Host header is checked at all (bound to loopback, or names were listed).
    check_host: bool,
    /// Extra names (lowercase; `name` for any port, `name:port` for one; `*` for any name).
    allowed_hosts: Vec<String>,
    /// Extra origins (lowercase `scheme://host[:port]`; `:*` for any port; `*` for any origin).
    cors_origins: Vec<String>,
}

impl BrowserPolicy {
    /// The policy of a server bound to `bound`, with the user's extra hosts and origins.
    pub fn new(bound: IpAddr, allowed_hosts: &[String], cors_origins: &[String]) -> Self {
        let clean = |list: &[String]| -> Vec<String> {
            list.iter()
                .map(|s| s.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let allowed_hosts = clean(allowed_hosts);
        Self {
            check_host: bound.is_loopback() || !allowed_hosts.is_empty(),
            allowed_hosts,
            cors_origins: clean(cors_origins),
        }
    }

    /// Whether a request with this `Host` (none: not a browser, which always sends one) is
    /// answered.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        if !self.check_host {
            return true;
        }
        let Some((name, port)) = split_authority(host) else {
            return false;
        };
        is_loopback_name(&name)
            || self.allowed_hosts.iter().any(|entry| {
                entry == "*"
                    || *entry == name
                    || port.is_some_and(|p| *entry == format!("{name}:{p}"))
            })
    }

    /// Whether a browser page of `origin` may use the server, reached under `host` (the
    /// request's Host, already allowed by [`Self::host_allowed`]).
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false; // `null` (files, sandboxed frames) and anything malformed
        };
        if !matches!(scheme, "http" | "https") || authority.contains(['/', '@']) {
            return false;
        }
        let Some((name, port)) = split_authority(authority) else {
            return false;
        };
        if is_loopback_name(&name) {
            return true;
        }
        // The server's own origin: a page it served (its web UI) under the name it was reached by.
        if host.is_some_and(|h| h.eq_ignore_ascii_case(authority)) {
            return true;
        }
        self.cors_origins.iter().any(|entry| {
            entry == "*"
                || *entry == origin
                || entry.strip_suffix(":*").is_some_and(|any_port| {
                    port.is_some() && any_port == format!("{scheme}://{name}")
                })
        })
    }
}

/// `host[:port]` split into a lowercase host (IPv6 without brackets) and its port; `None` when
/// it is not an authority at all.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.to_ascii_lowercase();
    let (name, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (ip.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) => (name.to_string(), Some(port)),
            None => (authority.clone(), None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    valid.then_some((name, port))
}

/// `localhost`, `127.0.0.0/8` or `::1`: names that a page elsewhere cannot rebind.
fn is_loopback_name(name: &str) -> bool {
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The name a request was sent to: its `Host` header, else (HTTP/2) the URI's authority.
fn request_host<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    match headers.get(header::HOST) {
        Some(value) => Some(value.to_str().unwrap_or("\u{fffd}")),
        None => uri.authority().map(|a| a.as_str()),
    }
}

/// Middleware: the Host and Origin checks (1 and 2 above), outermost, so a refused request
/// reaches nothing else and carries no CORS headers.
pub(super) async fn screen(
    State(policy): State<Arc<BrowserPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request_host(request.headers(), request.uri());
    if !policy.host_allowed(host) {
        let host = host.unwrap_or_default().to_string();
        tracing::warn!(%host, path = %request.uri().path(), "refused a foreign Host header");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            format!(
                "requests for host `{host}` are refused (protection against DNS rebinding); \
                 to serve this name, add it with --allowed-hosts or \
                 `hearth config set allowed_hosts NAME`"
            ),
        )
        .into_response();
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("\u{fffd}");
        if !policy.origin_allowed(origin, host) {
            let origin = origin.to_string();
            tracing::warn!(%origin, path = %request.uri().path(), "refused a cross-origin request");
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                format!(
                    "requests from web pages of `{origin}` are refused; to allow that origin, \
                     add it with --cors-origins or `hearth config set cors_origins ORIGIN`"
                ),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Middleware: a POST body must be JSON (check 3 above).
pub(super) async fn require_json(request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let headers = request.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let content_type = headers.get(header::CONTENT_TYPE).map(|v| v.to_str());
    let refusal = match content_type {
        None if has_body => Some("none".to_string()),
        None => None,
        Some(Ok(v)) if is_json(v) => None,
        Some(Ok(v)) => Some(format!("`{v}`")),
        Some(Err(_)) => Some("an unreadable one".to_string()),
    };
    match refusal {
        None => next.run(request).await,
        Some(given) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "request bodies must be JSON: send `Content-Type: application/json` \
                 (this request had {given})"
            ),
        )
        .into_response(),
    }
}

/// `application/json`, with any parameters (`; charset=utf-8`).
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// CORS for the origins [`screen`] let through: the exact origin echoed, `Vary: Origin`,
/// preflights answered with the methods, the two request headers clients send, and a max-age.
/// Credentials are never allowed (the API key travels in `Authorization`, which a page must
/// set itself). Private Network Access preflights (Chromium, a public page calling localhost)
/// are answered for the same origins. The origin is checked again here (cheaply) so that the
/// CORS headers never depend on the order of the layers.
pub(super) fn cors(policy: Arc<BrowserPolicy>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, parts| {
            let host = request_host(&parts.headers, &parts.uri);
            origin
                .to_str()
                .is_ok_and(|o| policy.origin_allowed(o, host))
        }))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([HeaderName::from_static("x-hearth-route")])
        .allow_private_network(true)
        .max_age(PREFLIGHT_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback(hosts: &[&str], origins: &[&str]) -> BrowserPolicy {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        BrowserPolicy::new([127, 0, 0, 1].into(), &owned(hosts), &owned(origins))
    }

    #[test]
    fn loopback_names_are_answered_on_any_port_and_others_are_not() {
        let p = loopback(&[], &[]);
        for ok in [
            "localhost",
            "LOCALHOST:5273",
            "127.0.0.1",
            "127.0.0.1:5273",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:5273",
        ] {
            assert!(p.host_allowed(Some(ok)), "{ok}");
        }
        for bad in [
            "evil.example.com",
            "evil.example.com:5273",
            "localhost.evil.example",
            "127.0.0.1.nip.io:5273",
            "192.168.1.5:5273",
            "[::2]:5273",
            "",
            "localhost:99999",
            "user@localhost",
        ] {
            assert!(!p.host_allowed(Some(bad)), "{bad}");
        }
        // No Host at all is not a browser.
        assert!(p.host_allowed(None));
    }

    #[test]
    fn listed_hosts_are_answered_by_name_or_by_name_and_port() {
        let p = loopback(&["Hearth.LAN", "box:8080"], &[]);
        assert!(p.host_allowed(Some("hearth.lan:5273")));
        assert!(p.host_allowed(Some("box:8080")));
        assert!(!p.host_allowed(Some("box:5273")));
        assert!(!p.host_allowed(Some("other.lan")));
        assert!(loopback(&["*"], &[]).host_allowed(Some("anything.example")));
    }

    #[test]
    fn bound_beyond_loopback_the_host_is_checked_only_when_names_are_listed() {
        let any: IpAddr = [0, 0, 0, 0].into();
        let open = BrowserPolicy::new(any, &[], &[]);
        assert!(open.host_allowed(Some("192.168.1.5:5273")));
        let listed = BrowserPolicy::new(any, &["hearth.lan".into()], &[]);
        assert!(listed.host_allowed(Some("hearth.lan:5273")));
        assert!(listed.host_allowed(Some("localhost:5273")));
        assert!(!listed.host_allowed(Some("192.168.1.5:5273")));
    }

    #[test]
    fn loopback_and_own_origins_are_allowed_and_foreign_ones_are_not() {
        let p = loopback(&[], &[]);
        let host = Some("127.0.0.1:5273");
        for ok in [
            "http://localhost:3000",
            "https://localhost",
            "http://127.0.0.1:5173",
            "http://[::1]:8080",
            "HTTP://LOCALHOST:3000",
        ] {
            assert!(p.origin_allowed(ok, host), "{ok}");
        }
        for bad in [
            "null",
            "https://evil.example.com",
            "http://evil.example.com:5273",
            "file://",
            "ftp://localhost",
            "http://localhost.evil.example",
            "http://user@localhost:3000",
            "http://localhost:3000/path",
            "",
        ] {
            assert!(!p.origin_allowed(bad, host), "{bad}");
        }
        // Reached as hearth.lan (an allowed host), a page of that origin is the server's own.
        assert!(p.origin_allowed("http://hearth.lan:5273", Some("hearth.lan:5273")));
        assert!(!p.origin_allowed("http://hearth.lan:5273", Some("hearth.lan:80")));
    }

    #[test]
    fn listed_origins_match_exactly_or_by_any_port() {
        let p = loopback(&[], &["https://app.example.com/", "http://dev.box:*"]);
        let host = Some("localhost:5273");
        assert!(p.origin_allowed("https://app.example.com", host));
        assert!(!p.origin_allowed("http://app.example.com", host));
        assert!(!p.origin_allowed("https://app.example.com:8443", host));
        assert!(p.origin_allowed("http://dev.box:3000", host));
        assert!(!p.origin_allowed("http://dev.box", host));
        assert!(!p.origin_allowed("https://dev.box:3000", host));
        assert!(loopback(&[], &["*"]).origin_allowed("https://any.example", host));
        assert!(!loopback(&[], &["*"]).origin_allowed("null", host));
    }

    #[test]
    fn json_content_types_with_parameters_are_json() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("multipart/form-data; boundary=x"));
        assert!(!is_json("application/jsonp"));
    }
}
