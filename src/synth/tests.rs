//! Shape models written for real into a temporary cache and read back with llama.cpp's own
//! GGUF reader (loading and decoding them is in `tests/synth.rs`).

use std::cell::RefCell;

use super::*;

#[derive(Default)]
struct Seen {
    notices: RefCell<Vec<String>>,
    last: RefCell<(u64, u64)>,
}

impl MakeObserver for Seen {
    fn notice(&self, line: &str) {
        self.notices.borrow_mut().push(line.to_string());
    }
    fn writing(&self, _variant: &str, written: u64, expected: u64) {
        *self.last.borrow_mut() = (written, expected);
    }
    fn written(&self) {}
}

fn request(alias: &str, ty: Option<&str>) -> SynthRequest {
    SynthRequest {
        source: ShapeSource::Catalog(alias.into()),
        ty: ty.map(Into::into),
        seed: DEFAULT_SEED,
        memory: None,
    }
}

#[test]
fn the_default_models_twin_enters_cache_and_catalog_as_a_shape_model() {
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());
    let models = home.path().join("models.json");
    let seen = Seen::default();
    let alias = make(
        &Catalog::builtin(),
        &cache,
        &models,
        &request("smollm2-135m", None),
        &seen,
    )
    .unwrap();
    assert_eq!(alias, "smollm2-135m~shape");
    let (written, expected) = *seen.last.borrow();
    assert_eq!(written, expected, "the bar ends full");
    let cached = cache.lookup(&alias).unwrap();
    let info = gguf::read(&cached.path).unwrap();
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.quantization.as_deref(), Some("Q4_1"));
    assert_eq!(info.n_tensors, 272);
    // Within 2 % of the real file's 98,362,432 bytes.
    assert!((cached.size_bytes as f64 / 98_362_432.0 - 1.0).abs() < 0.02);
    let catalog = Catalog::load(&[models]).unwrap();
    let entry = catalog.get(&alias).unwrap();
    assert!(entry.is_shape_model());
    assert!(entry.capabilities.iter().any(|c| c == "shape"));
    let origin = entry.synthetic.as_ref().unwrap();
    assert_eq!(origin.real_alias.as_deref(), Some("smollm2-135m"));
    assert_eq!((origin.quantization.as_str(), origin.seed), ("Q4_1", 42));
    assert!(seen.notices.borrow()[0].contains("random weights"));
}

#[test]
fn the_same_seed_makes_the_same_file() {
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());
    let models = home.path().join("models.json");
    let seen = Seen::default();
    let sha = |ty: &str| {
        let alias = make(
            &Catalog::builtin(),
            &cache,
            &models,
            &request("smollm2-135m", Some(ty)),
            &seen,
        )
        .unwrap();
        cache.lookup(&alias).unwrap().sha256
    };
    let first = sha("q8_0");
    assert_eq!(first, sha("Q8_0"));
    assert_ne!(first, sha("q4_0"));
    assert!(cache.lookup("smollm2-135m~shape@q8_0").is_some());
}

#[test]
fn bad_requests_leave_nothing_behind() {
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());
    let models = home.path().join("models.json");
    let seen = Seen::default();
    let err = |req: &SynthRequest, catalog: &Catalog| {
        make(catalog, &cache, &models, req, &seen)
            .unwrap_err()
            .to_string()
    };
    let builtin = Catalog::builtin();
    assert!(err(&request("no-such-model", None), &builtin).contains("unknown model"));
    assert!(err(&request("smollm2-135m", Some("q9_z")), &builtin)
        .contains("not a quantisation hearth can synthesise"));
    let mut no_shape = Catalog::builtin();
    no_shape.overlay(vec![CatalogEntry {
        alias: "mine".into(),
        ..CatalogEntry::default()
    }]);
    assert!(err(&request("mine", None), &no_shape).contains("has no architecture shape"));
    let mut tight = request("mistral-7b", None);
    tight.memory = Some((1 << 30, 4096));
    let msg = err(&tight, &builtin);
    assert!(
        msg.contains("would need about") && msg.contains("budget"),
        "{msg}"
    );
    let config = home.path().join("config.json");
    std::fs::write(&config, "{\"model_type\": \"llama\",").unwrap();
    let from_config = SynthRequest {
        source: ShapeSource::Config {
            path: config,
            name: "broken".into(),
        },
        ..request("x", None)
    };
    assert!(err(&from_config, &builtin).contains("not a usable config.json"));
    assert!(cache.list().unwrap().is_empty());
    assert!(!models.exists());
}
