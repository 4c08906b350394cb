//! Shared pieces of the benchmark tests against the scripted mock server.

use hearth::bench::client::Endpoint;
use hearth::bench::{Progress, Target};
use hearth::store::record::{ModelRecord, ModelStatus};

/// A progress sink that shows nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn model_started(&self, _: &str, _: u64) {}
    fn stage(&self, _: &str, _: &str) {}
    fn request_done(&self, _: &str, _: bool) {}
    fn model_finished(&self, _: &str, _: ModelStatus, _: Option<&str>) {}
}

/// `model` at the OpenAI-compatible server `base_url`, measured as an external endpoint.
pub fn endpoint_target(base_url: &str, model: &str) -> Target {
    Target {
        model: ModelRecord {
            model: model.into(),
            backend: "endpoint".into(),
            endpoint: base_url.to_string(),
            license: None,
            tags: vec![],
            quantization: None,
            disk_bytes: None,
            load_ms: None,
            status: ModelStatus::Running,
            error: None,
        },
        endpoint: Endpoint {
            base_url: base_url.to_string(),
            model: model.into(),
            api_key: None,
        },
        probe: None,
        managed: false,
    }
}
