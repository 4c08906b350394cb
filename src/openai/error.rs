//! The error body every endpoint answers with on failure: `{"error": {"message", "type",
//! "param", "code"}}`, as OpenAI's clients read it; and the looser shapes other servers send.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lenient::lenient;

/// `{"error": …}`: written by hearth's server (and its mock) on every failure, read from
/// upstreams and benchmarked servers to say what went wrong in their own words.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong; `None` when the body has no (or a `null`) `error`.
    #[serde(default)]
    pub error: Option<ErrorField>,
}

impl From<ErrorDetail> for ErrorBody {
    fn from(detail: ErrorDetail) -> Self {
        Self {
            error: Some(ErrorField::Detail(detail)),
        }
    }
}

impl ErrorBody {
    /// The `error` of a reply's text, when it is JSON and has one (for non-2xx answers).
    pub fn read(text: &str) -> Option<ErrorField> {
        serde_json::from_str::<Self>(text).ok()?.error
    }
}

/// OpenAI's error object. `param` and `code` are written as `null` when unset, as OpenAI does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Human-readable message (required: without it the error is read as [`ErrorField::Other`]).
    pub message: String,
    /// `invalid_request_error`, `server_error`, … (any string from other servers).
    #[serde(rename = "type", default, deserialize_with = "lenient")]
    pub kind: String,
    /// The offending request parameter.
    #[serde(default, deserialize_with = "lenient")]
    pub param: Option<String>,
    /// Machine-readable code (llama-server sends a number there; it reads as `None`).
    #[serde(default, deserialize_with = "lenient")]
    pub code: Option<String>,
}

/// An `error` value as servers send it: OpenAI's object, a bare string (some servers), or
/// anything else, kept to be quoted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ErrorField {
    /// `{"message": "…", …}`.
    Detail(ErrorDetail),
    /// `"…"`.
    Text(String),
    /// Any other JSON.
    Other(Value),
}

impl ErrorField {
    /// The `message` of an OpenAI-shaped error; `None` for other shapes.
    pub fn message(&self) -> Option<&str> {
        match self {
            ErrorField::Detail(d) => Some(&d.message),
            _ => None,
        }
    }

    /// The best text to show: the message, the bare string, or the JSON itself.
    pub fn text(&self) -> String {
        match self {
            ErrorField::Detail(d) => d.message.clone(),
            ErrorField::Text(s) => s.clone(),
            ErrorField::Other(v) => v.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unset_param_and_code_are_written_as_null() {
        let body = ErrorBody::from(ErrorDetail {
            message: "m".into(),
            kind: "server_error".into(),
            param: None,
            code: None,
        });
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"error": {"message": "m", "type": "server_error", "param": null, "code": null}})
        );
    }

    #[test]
    fn errors_of_every_shape_are_read() {
        let llama = r#"{"error":{"code":500,"message":"boom","type":"server_error"}}"#;
        assert_eq!(ErrorBody::read(llama).unwrap().message(), Some("boom"));
        let bare = ErrorBody::read(r#"{"error":"oops"}"#).unwrap();
        assert_eq!((bare.message(), bare.text().as_str()), (None, "oops"));
        let odd = ErrorBody::read(r#"{"error":{"detail":1}}"#).unwrap();
        assert_eq!(odd.text(), r#"{"detail":1}"#);
        assert_eq!(ErrorBody::read(r#"{"error":null}"#), None);
        assert_eq!(ErrorBody::read("<html>"), None);
    }
}
