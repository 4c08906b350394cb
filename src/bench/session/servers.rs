//! hearth's own servers for a session's local models, one per offload setting and
//! speculation mode in use, on loopback ports chosen by the OS.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::SessionError;
use crate::bench::Target;
use crate::cache::Cache;
use crate::catalog::Catalog;
use crate::engine::devices::{self, GpuLayers, Offload};
use crate::engine::speculative::Speculative;
use crate::loader::LoadOptions;
use crate::server::{self, Limits, Registry, ServerOptions};
use crate::store::record::ModelStatus;

/// hearth's own servers for the run: one per (offload, speculation) pair in use.
pub(super) struct Servers<'a> {
    catalog: &'a Catalog,
    cache: &'a Cache,
    load: &'a LoadOptions,
    device: Option<usize>,
    runtime: &'a tokio::runtime::Runtime,
    running: Vec<((GpuLayers, Speculative), server::RunningServer)>,
}

impl<'a> Servers<'a> {
    /// No server yet: each starts on first use, on `runtime`.
    pub(super) fn new(
        catalog: &'a Catalog,
        cache: &'a Cache,
        load: &'a LoadOptions,
        device: Option<usize>,
        runtime: &'a tokio::runtime::Runtime,
    ) -> Self {
        Self {
            catalog,
            cache,
            load,
            device,
            runtime,
            running: Vec::new(),
        }
    }

    /// Stops every server (their models unload).
    pub(super) fn shutdown(self) {
        for (_, running) in self.running {
            let _ = self.runtime.block_on(running.shutdown());
        }
    }

    /// The base URL of the server for `key`, started when none runs yet.
    pub(super) fn url(&mut self, key: (GpuLayers, Speculative)) -> Result<String, SessionError> {
        if let Some((_, running)) = self.running.iter().find(|(k, _)| *k == key) {
            return Ok(format!("http://{}/v1", running.addr));
        }
        let registry = Arc::new(Registry::new(
            self.catalog.clone(),
            self.cache.clone(),
            LoadOptions {
                offload: Offload {
                    gpu_layers: key.0,
                    device: self.device,
                },
                speculative: key.1,
                ..self.load.clone()
            },
            Duration::from_secs(24 * 3600),
        ));
        let options = ServerOptions {
            port: 0,
            // The bench's own load decides how many connections it opens.
            limits: Limits {
                max_connections: usize::MAX,
                ..Limits::default()
            },
            ..ServerOptions::default()
        };
        let running = self.runtime.block_on(server::start(options, registry))?;
        let url = format!("http://{}/v1", running.addr);
        self.running.push((key, running));
        Ok(url)
    }

    /// A running server's URL (the first), or one started for `key` when none runs.
    pub(super) fn any_url(
        &mut self,
        key: (GpuLayers, Speculative),
    ) -> Result<String, SessionError> {
        match self.running.first() {
            Some((_, running)) => Ok(format!("http://{}/v1", running.addr)),
            None => self.url(key),
        }
    }

    /// Every local target once per offload setting and speculation mode that can run here,
    /// labelled when there are several; settings that cannot (no GPU backend, no GPU) are
    /// recorded as skipped with the reason, never run on the CPU under a GPU label. Settings
    /// come in the order given, each over every model (`--gpu-layers all,0` measures every
    /// model on the GPU before the slow CPU rows, so a run cut short keeps the GPU figures).
    pub(super) fn serve(
        &mut self,
        targets: Vec<Target>,
        settings: &[GpuLayers],
        spec_modes: &[Speculative],
    ) -> Result<Vec<Target>, SessionError> {
        // Asked once per setting (it enumerates the devices), not once per model.
        let problems: HashMap<GpuLayers, Option<String>> = settings
            .iter()
            .map(|&s| (s, devices::offload_problem(s, self.device)))
            .collect();
        let mut expanded = Vec::new();
        for (pass, &setting) in settings.iter().enumerate() {
            for (target, &spec) in targets
                .iter()
                .flat_map(|t| spec_modes.iter().map(move |m| (t, m)))
            {
                if !target.managed {
                    // Endpoints and failed entries are measured once, in their place.
                    if pass == 0 && spec == spec_modes[0] {
                        expanded.push(target.clone());
                    }
                    continue;
                }
                let mut t = target.clone();
                let mut labels = Vec::new();
                if settings.len() > 1 {
                    labels.push(format!("gpu={setting}"));
                }
                if spec_modes.len() > 1 {
                    labels.push(format!("spec={spec}"));
                }
                if !labels.is_empty() {
                    t.model.model = format!("{} [{}]", t.model.model, labels.join(" "));
                }
                if let Some(why) = &problems[&setting] {
                    t.model.status = ModelStatus::Skipped;
                    t.model.error = Some(format!("--gpu-layers {setting}: {why}"));
                    t.managed = false;
                    expanded.push(t);
                    continue;
                }
                let url = self.url((setting, spec))?;
                t.endpoint.base_url = url.clone();
                t.model.endpoint = url;
                expanded.push(t);
            }
        }
        Ok(expanded)
    }
}
