//! What each name in a session is measured as (a model at an external endpoint, a catalog
//! upstream, a local model hearth serves, or a failure kept in the report), the judge's
//! endpoint, and the variants made before measuring.

use super::{Library, SessionError, SessionObserver, SessionSettings};
use crate::bench::client::Endpoint;
use crate::bench::resources::ProcessProbe;
use crate::bench::Target;
use crate::cache::{BarProgress, Cache};
use crate::catalog::{Catalog, CatalogEntry, Upstream};
use crate::eval::judge::JudgeEndpoint;
use crate::loader::{self, ModelError};
use crate::store::record::{ModelRecord, ModelStatus};
use crate::synth;
use crate::variants::{self, VariantError};

use std::time::Duration;

/// `http://host:port`, `http://host:port/`, `…/v1` → `…/v1`.
pub fn v1_url(url: &str) -> String {
    let base = url.trim_end_matches('/');
    if base.ends_with("/v1") {
        base.to_string()
    } else {
        format!("{base}/v1")
    }
}

/// The model record known before measuring, from the catalog when the name is in it.
fn model_record(
    name: &str,
    backend: &str,
    endpoint: &str,
    entry: Option<&CatalogEntry>,
) -> ModelRecord {
    ModelRecord {
        model: name.to_string(),
        backend: backend.to_string(),
        endpoint: endpoint.to_string(),
        license: entry.and_then(|e| e.license.clone()),
        tags: entry.map(|e| e.capabilities.clone()).unwrap_or_default(),
        quantization: entry.and_then(|e| e.quantization.clone()),
        disk_bytes: None,
        load_ms: None,
        status: ModelStatus::Running,
        error: None,
    }
}

/// What `name` is measured as: a model at the external endpoint, a catalog upstream, or a
/// local model (downloaded now, before anything is timed) that hearth will serve.
pub(super) fn target(
    name: &str,
    settings: &SessionSettings,
    catalog: &Catalog,
    cache: &Cache,
    rt: &tokio::runtime::Runtime,
) -> Target {
    let entry = catalog.get(name).ok();
    if let Some(external) = &settings.endpoint {
        let url = v1_url(&external.url);
        return Target {
            model: model_record(name, "endpoint", &url, entry),
            endpoint: Endpoint {
                base_url: url,
                model: name.to_string(),
                api_key: external.api_key.clone(),
            },
            probe: external.pid.map(ProcessProbe::new),
            managed: false,
        };
    }
    let Some(entry) = entry else {
        let error = catalog.get(name).err().map(|e| e.to_string());
        return failed_target(name, error);
    };
    if let Some(upstream) = &entry.upstream {
        let endpoint = match upstream_endpoint(upstream) {
            Ok(endpoint) => endpoint,
            Err(e) => return failed_target(name, Some(format!("{name}: {e}"))),
        };
        let pid = upstream
            .pid
            .or_else(|| upstream.process.as_deref().and_then(process_by_name))
            .or(settings.server_pid);
        return Target {
            model: model_record(name, "upstream", &endpoint.base_url, Some(entry)),
            endpoint,
            probe: pid.map(ProcessProbe::new),
            managed: false,
        };
    }
    let path = match loader::local_path(cache, entry) {
        Some(p) => Ok(p),
        None => rt
            .block_on(loader::ensure_local(cache, entry, &BarProgress::new()))
            .map_err(|e| e.to_string()),
    };
    match path {
        Ok(path) => {
            let mut model = model_record(name, "hearth", "", Some(entry));
            model.disk_bytes = std::fs::metadata(&path).ok().map(|m| m.len());
            Target {
                model,
                endpoint: served_by_hearth(name),
                probe: Some(ProcessProbe::this_process()),
                managed: true,
            }
        }
        Err(error) => failed_target(name, Some(error)),
    }
}

/// The id of the one running process called `name`; None (with a note in the log) when none
/// or several are.
fn process_by_name(name: &str) -> Option<u32> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
    let mut system = System::new();
    system.refresh_processes_specifics(ProcessesToUpdate::All, true, ProcessRefreshKind::nothing());
    let pids: Vec<u32> = system
        .processes_by_exact_name(std::ffi::OsStr::new(name))
        .map(|p| p.pid().as_u32())
        .collect();
    match pids.as_slice() {
        [pid] => Some(*pid),
        [] => {
            tracing::warn!("no running process is called {name}: its resources are not measured");
            None
        }
        _ => {
            tracing::warn!(
                "{} processes are called {name}: name the server with `pid` instead",
                pids.len()
            );
            None
        }
    }
}

/// A model that cannot be measured at all (unknown alias, failed download): it stays in the
/// run and in every report with its error.
fn failed_target(name: &str, error: Option<String>) -> Target {
    let mut model = model_record(name, "hearth", "", None);
    model.status = ModelStatus::Failed;
    model.error = Some(error.unwrap_or_else(|| "unknown model".into()));
    Target {
        model,
        endpoint: served_by_hearth(name),
        probe: None,
        managed: false,
    }
}

/// Where a catalog upstream entry is asked: its server, its model name there, and the key
/// from the environment variable it names (an error when that is unset).
fn upstream_endpoint(upstream: &Upstream) -> Result<Endpoint, String> {
    Ok(Endpoint {
        base_url: v1_url(&upstream.base_url),
        model: upstream.model.clone(),
        api_key: upstream.api_key()?,
    })
}

/// A model hearth serves for the run; its base URL is filled in once its server runs.
fn served_by_hearth(name: &str) -> Endpoint {
    Endpoint {
        base_url: String::new(),
        model: name.to_string(),
        api_key: None,
    }
}

/// The judge: an external endpoint, a catalog upstream, or a local model served by hearth
/// (its base URL is filled in once a server runs).
pub(super) fn judge_endpoint(
    settings: &SessionSettings,
    catalog: &Catalog,
    cache: &Cache,
    rt: &tokio::runtime::Runtime,
) -> Result<Option<JudgeEndpoint>, SessionError> {
    let Some(choice) = &settings.judge else {
        return Ok(None);
    };
    let timeout = Duration::from_secs_f64(settings.options.timeout_secs);
    if let Some(url) = &choice.endpoint {
        return Ok(Some(JudgeEndpoint {
            base_url: v1_url(url),
            model: choice.model.clone(),
            api_key: choice.api_key.clone(),
            constrain: false,
            timeout,
        }));
    }
    let alias = &choice.model;
    let judge_error = |reason: String| SessionError::Judge {
        alias: alias.clone(),
        reason,
    };
    let entry = catalog.get(alias).map_err(|e| judge_error(e.to_string()))?;
    if let Some(upstream) = &entry.upstream {
        let at = upstream_endpoint(upstream).map_err(judge_error)?;
        return Ok(Some(JudgeEndpoint {
            base_url: at.base_url,
            model: at.model,
            api_key: at.api_key,
            constrain: false,
            timeout,
        }));
    }
    if loader::local_path(cache, entry).is_none() {
        rt.block_on(loader::ensure_local(cache, entry, &BarProgress::new()))
            .map_err(|e: ModelError| judge_error(e.to_string()))?;
    }
    // Served by hearth; hearth constrains the verdict to its schema.
    Ok(Some(JudgeEndpoint {
        base_url: String::new(),
        model: alias.clone(),
        api_key: None,
        constrain: true,
        timeout,
    }))
}

/// `names` with, after each local model, its variants of the session's types
/// (`alias@q4_0`), made when not cached yet. Upstream models, variants themselves and shape
/// models (random weights: nothing to compare a quantisation of) get none.
pub(super) fn with_variants(
    settings: &SessionSettings,
    library: &Library<'_>,
    catalog: &Catalog,
    names: &[String],
    observer: &dyn SessionObserver,
) -> Result<Vec<String>, SessionError> {
    let mut out = Vec::new();
    for name in names {
        out.push(name.clone());
        let local = catalog
            .get(name)
            .is_ok_and(|e| e.upstream.is_none() && e.lineage.is_none() && !e.is_shape_model());
        if !local {
            continue;
        }
        for ty in &settings.variants {
            let parsed = crate::engine::quantize::parse_type(ty).map_err(VariantError::from)?;
            let (variant, _) = ensure_variant(settings, library, catalog, name, parsed, observer)?;
            if !out.contains(&variant) && !names.contains(&variant) {
                out.push(variant);
            }
        }
    }
    Ok(out)
}

/// The variant of `base` in `ty`, made (`hearth model quantize`) when it is not cached yet;
/// returns its alias and whether it was made now.
fn ensure_variant(
    settings: &SessionSettings,
    library: &Library<'_>,
    catalog: &Catalog,
    base: &str,
    ty: crate::engine::quantize::QuantType,
    observer: &dyn SessionObserver,
) -> Result<(String, bool), VariantError> {
    let variant = variants::variant_alias(base, &ty);
    let cached = catalog
        .get(&variant)
        .is_ok_and(|e| loader::local_path(library.cache, e).is_some());
    if cached {
        return Ok((variant, false));
    }
    observer.notice(&format!("making {variant} (hearth model quantize)"));
    let made = variants::make(
        catalog,
        library.cache,
        library.user_models_file,
        base,
        ty,
        settings.load.threads,
        observer,
    )?;
    Ok((made, true))
}

/// Makes the variants `names` asks for by name (`smollm2-135m@q4_0`, as a models.json lists
/// them) that are not made yet, as `--variants` would; returns whether any was made. One that
/// cannot be made is reported as a failed model with its reason when the run reaches it.
pub(super) fn make_named_variants(
    settings: &SessionSettings,
    library: &Library<'_>,
    catalog: &Catalog,
    names: &[String],
    observer: &dyn SessionObserver,
) -> bool {
    let mut made = false;
    for name in names {
        if crate::catalog::is_shape_alias(name) {
            continue;
        }
        let Some((base, ty)) = name.rsplit_once('@') else {
            continue;
        };
        let Ok(parsed) = crate::engine::quantize::parse_type(ty) else {
            continue;
        };
        let base_is_local = catalog
            .get(base)
            .is_ok_and(|e| e.upstream.is_none() && !e.is_shape_model());
        if !base_is_local {
            continue;
        }
        match ensure_variant(settings, library, catalog, base, parsed, observer) {
            Ok((_, now)) => made |= now,
            Err(e) => observer.notice(&format!("cannot make {name}: {e}")),
        }
    }
    made
}

/// Makes the shape models `names` asks for by name (`qwen2.5-1.5b~shape`,
/// `mistral-7b~shape@q8_0`) that are not made yet; returns whether any was made. One that
/// cannot be made stays unknown and is reported as a failed model, like any unknown name.
pub(super) fn make_named_shapes(
    settings: &SessionSettings,
    library: &Library<'_>,
    catalog: &Catalog,
    names: &[String],
    observer: &dyn SessionObserver,
) -> bool {
    let mut made = false;
    for name in names {
        let Some(real) = crate::catalog::real_alias_of(name) else {
            continue;
        };
        if catalog.get(name).is_ok() || catalog.get(real).is_err() {
            continue;
        }
        let ty = name
            .split_once(crate::catalog::SHAPE_SUFFIX)
            .and_then(|(_, rest)| rest.strip_prefix('@'))
            .map(str::to_string);
        match make_shape(settings, library, catalog, name, real, ty, observer) {
            Ok(_) => made = true,
            Err(e) => observer.notice(&format!("cannot make {name}: {e}")),
        }
    }
    made
}

/// `names` with, after each catalog model that has a shape, its shape twin (`alias~shape`,
/// random weights in the model's own type), made when not cached yet: its speed and memory on
/// this machine without downloading it. A twin that cannot be made (too big for this machine's
/// memory or disk) is left out with a note, and the run goes on.
pub(super) fn with_shapes(
    settings: &SessionSettings,
    library: &Library<'_>,
    catalog: &Catalog,
    names: &[String],
    observer: &dyn SessionObserver,
) -> Vec<String> {
    let mut out = Vec::new();
    for name in names {
        out.push(name.clone());
        let Ok(entry) = catalog.get(name) else {
            continue;
        };
        if entry.upstream.is_some() || entry.lineage.is_some() || entry.is_shape_model() {
            continue;
        }
        if entry.shape.is_none() {
            continue;
        }
        // The model's own type when synth writes it, else Q4_K_M (what `model synth` does).
        let Some(mix) = entry
            .quantization
            .as_deref()
            .and_then(synth::mixture)
            .or_else(|| synth::mixture("Q4_K_M"))
        else {
            continue;
        };
        let twin = synth::shape_alias(&entry.alias, mix, entry.quantization.as_deref());
        let cached = catalog
            .get(&twin)
            .is_ok_and(|e| loader::local_path(library.cache, e).is_some());
        let twin = if cached {
            Ok(twin)
        } else {
            let ty = Some(mix.name.to_string());
            make_shape(
                settings,
                library,
                catalog,
                &twin,
                &entry.alias,
                ty,
                observer,
            )
        };
        match twin {
            Ok(twin) if !out.contains(&twin) && !names.contains(&twin) => out.push(twin),
            Ok(_) => {}
            Err(e) => observer.notice(&format!("leaving out the shape twin of {name}: {e}")),
        }
    }
    out
}

/// Makes `alias` (a shape model of the catalog's `real`, in `ty` or its own type) for the run,
/// checked against the memory the run's server will load it with.
fn make_shape(
    settings: &SessionSettings,
    library: &Library<'_>,
    catalog: &Catalog,
    alias: &str,
    real: &str,
    ty: Option<String>,
    observer: &dyn SessionObserver,
) -> Result<String, synth::SynthError> {
    observer.notice(&format!(
        "making {alias} for the comparison (hearth model synth: random weights, speed only)"
    ));
    let request = synth::SynthRequest {
        source: synth::ShapeSource::Catalog(real.to_string()),
        ty,
        seed: synth::DEFAULT_SEED,
        memory: Some((settings.load.memory_budget, u64::from(settings.load.n_ctx))),
    };
    synth::make(
        catalog,
        library.cache,
        library.user_models_file,
        &request,
        observer,
    )
}
