//! Failures in the upstream's own words: a non-2xx answer quotes its error message (or the
//! start of its body), a connection failure names the base URL and its innermost cause.

use crate::engine::EngineError;
use crate::error_chain::error_chain;
use crate::openai::ErrorBody;

/// Most characters of an upstream's non-JSON error body quoted in an error message.
const QUOTE_LIMIT: usize = 300;

/// The message for a non-2xx answer: the upstream's own words when it sent an OpenAI-shaped
/// error, otherwise the start of its body.
pub(super) fn status_error(url: &str, status: &str, body: &str) -> String {
    let detail = ErrorBody::read(body)
        .map(|e| e.text())
        .or_else(|| (!body.trim().is_empty()).then(|| quote(body.trim())));
    match detail {
        Some(detail) => format!("{url} returned HTTP {status}: {detail}"),
        None => format!("{url} returned HTTP {status}"),
    }
}

/// The message when the request could not be sent at all.
pub(super) fn send_error(base_url: &str, url: &str, error: &reqwest::Error) -> EngineError {
    EngineError::Upstream(if error.is_connect() || error.is_timeout() {
        // The innermost cause ("Connection refused (os error 111)") is the useful part.
        format!(
            "cannot connect to the upstream at {base_url}: {}; is the server running?",
            root_cause(error)
        )
    } else {
        format!("request to {url} failed: {}", error_chain(error))
    })
}

/// The innermost error in a chain.
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut inner = error;
    while let Some(cause) = inner.source() {
        inner = cause;
    }
    inner.to_string()
}

/// At most [`QUOTE_LIMIT`] characters of `text`, marked when cut.
pub(super) fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors_quote_the_upstream() {
        let body = r#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error"}}"#;
        let m = status_error("http://h/v1/chat/completions", "404 Not Found", body);
        assert_eq!(
            m,
            "http://h/v1/chat/completions returned HTTP 404 Not Found: The model `x` does not exist"
        );
        let m = status_error("u", "502 Bad Gateway", "<html>bad gateway</html>");
        assert!(m.ends_with("<html>bad gateway</html>"), "{m}");
        assert_eq!(status_error("u", "500", " "), "u returned HTTP 500");
        let long = "x".repeat(QUOTE_LIMIT * 2);
        assert!(status_error("u", "500", &long).chars().count() < QUOTE_LIMIT + 40);
    }
}
