//! The web UI: plain HTML, CSS and ES modules compiled into the binary and served at `/`, so
//! the page works offline, needs no build step and is the same version as the server.
//!
//! The page is a client of the documented API only (`/v1`, `/api`, `/metrics`): it holds no
//! secret, so its files are served without the API key (the page then asks for the key and
//! sends it as every client does). Every asset carries a strict Content-Security-Policy: no
//! script but these files, no connection but this origin, no framing by other sites; model
//! text reaches the page as text nodes only (see `md.js`).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file: its name under `/ui/`, media type and contents.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $media:expr) => {
        Asset {
            name: $name,
            media_type: $media,
            body: include_str!($name),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the page loads.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("md.js", JS),
    asset!("chat.js", JS),
    asset!("models.js", JS),
    asset!("runs.js", JS),
    asset!("bench.js", JS),
    asset!("live.js", JS),
];

/// The page's policy: its own scripts and styles (inline styles too: a stored report shown in
/// a sandboxed frame carries its stylesheet inline), connections to this origin only, frames
/// only for those reports, and no site may frame the page (clickjacking).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; frame-src 'self' about:; \
                   form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Whether `path` is one of the page's (served without the API key).
pub(super) fn is_ui_path(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// `GET /`: the page.
pub(super) async fn index() -> Response {
    serve("index.html")
}

/// `GET /ui/{name}`: a script or stylesheet of the page.
pub(super) async fn file(Path(name): Path<String>) -> Response {
    serve(&name)
}

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such file in the web UI").into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.media_type),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change with the binary only; revalidating keeps a new version from mixing
    // with an old one's modules.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        let names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        for asset in ASSETS {
            for line in asset.body.lines() {
                let Some(rest) = line.split(" from \"./").nth(1).or_else(|| {
                    line.trim()
                        .strip_prefix("<script type=\"module\" src=\"/ui/")
                }) else {
                    continue;
                };
                let name = rest.split('"').next().unwrap();
                assert!(names.contains(&name), "{} loads {name}", asset.name);
            }
        }
    }

    #[test]
    fn the_page_stays_small_and_loads_nothing_from_elsewhere() {
        let total: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        assert!(total < 300 * 1024, "{total} bytes");
        for asset in ASSETS {
            assert!(!asset.body.contains("https://"), "{} links out", asset.name);
            assert!(
                !asset.body.contains("innerHTML"),
                "{} writes HTML",
                asset.name
            );
        }
    }
}
