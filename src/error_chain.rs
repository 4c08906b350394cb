//! An error with its causes on one line, for messages that must say *why* (reqwest keeps the
//! useful part, "Connection refused", three sources deep). Used by every HTTP client in
//! hearth: hub downloads, the upstream backend, the benchmark client.

/// `error` and its sources, outermost first, joined with `: `; a cause whose text is already
/// in the message (many errors repeat their source) is left out.
///
/// To leave out the outermost message (when the caller already names what failed, e.g. the
/// URL), pass `error.source().unwrap_or(error)`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |inner, text| {
                Some(Layer {
                    text,
                    source: inner.map(Box::new),
                })
            })
            .unwrap()
    }

    #[test]
    fn causes_follow_outermost_first_without_repeats() {
        let e = layers(&[
            "error sending request",
            "client error (Connect)",
            "client error (Connect)",
            "Connection refused",
        ]);
        assert_eq!(
            error_chain(&e),
            "error sending request: client error (Connect): Connection refused"
        );
        let inner = layers(&["only"]);
        assert_eq!(error_chain(&inner), "only");
    }
}
