//! The cache's unit tests: layout, adding, adopting, verifying and removing entries.

use super::*;

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn payload(len: usize) -> Vec<u8> {
    // A cheap deterministic generator; content only has to be non-trivial.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn tmp_dir_entries(cache: &Cache) -> Vec<String> {
    fs::read_dir(cache.tmp_dir())
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn add_file_places_file_and_sidecar() {
    let home = tempfile::tempdir().unwrap();
    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("tiny.gguf");
    let data = payload(3 * CHUNK + 123);
    fs::write(&src, &data).unwrap();
    let cache = Cache::new(home.path());

    let model = cache
        .add_file("tiny", &src, Some(&sha_hex(&data).to_uppercase()))
        .unwrap();

    assert_eq!(model.path, cache.location().join("tiny").join("tiny.gguf"));
    assert_eq!(fs::read(&model.path).unwrap(), data);
    assert_eq!(model.sha256, sha_hex(&data));
    assert!(model.verified);
    assert!(model.source.starts_with("local:"));
    assert_eq!(cache.lookup("tiny"), Some(model.clone()));
    assert_eq!(cache.list().unwrap(), vec![model]);
    let entry: serde_json::Value =
        serde_json::from_slice(&fs::read(cache.location().join("tiny/entry.json")).unwrap())
            .unwrap();
    assert_eq!(entry["file_name"], "tiny.gguf");
    assert_eq!(entry["size_bytes"], data.len() as u64);
    assert!(entry["added_at"].as_u64().unwrap() > 0);
    assert!(tmp_dir_entries(&cache).is_empty());
}

#[test]
fn add_file_rejects_sha_mismatch_and_leaves_nothing() {
    let home = tempfile::tempdir().unwrap();
    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("tiny.gguf");
    fs::write(&src, payload(10_000)).unwrap();
    let cache = Cache::new(home.path());
    let wrong = "0".repeat(64);

    let err = cache.add_file("tiny", &src, Some(&wrong)).unwrap_err();

    match &err {
        CacheError::ShaMismatch {
            expected, actual, ..
        } => {
            assert_eq!(*expected, wrong);
            assert_eq!(*actual, sha_hex(&payload(10_000)));
        }
        other => panic!("expected ShaMismatch, got {other:?}"),
    }
    assert!(err.to_string().contains(&wrong));
    assert!(!cache.location().join("tiny").exists());
    assert!(tmp_dir_entries(&cache).is_empty());
    assert_eq!(cache.lookup("tiny"), None);
}

#[test]
fn add_file_without_sha_is_unverified_and_replaces_previous_file() {
    let home = tempfile::tempdir().unwrap();
    let src_dir = tempfile::tempdir().unwrap();
    let a = src_dir.path().join("a.gguf");
    let b = src_dir.path().join("b.gguf");
    fs::write(&a, b"first").unwrap();
    fs::write(&b, b"second").unwrap();
    let cache = Cache::new(home.path());

    cache.add_file("m", &a, None).unwrap();
    let model = cache.add_file("m", &b, None).unwrap();

    assert!(!model.verified);
    assert!(!cache.location().join("m/a.gguf").exists());
    assert_eq!(
        cache.lookup("m").unwrap().path,
        cache.location().join("m/b.gguf")
    );
}

#[test]
fn verify_detects_a_flipped_byte_and_a_missing_file() {
    let home = tempfile::tempdir().unwrap();
    let src_dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());
    let mut models = Vec::new();
    for name in ["good", "flipped", "gone"] {
        let src = src_dir.path().join(format!("{name}.gguf"));
        fs::write(&src, payload(2 * CHUNK + 7)).unwrap();
        models.push(cache.add_file(name, &src, None).unwrap());
    }
    let flipped = &models[1].path;
    let mut bytes = fs::read(flipped).unwrap();
    bytes[CHUNK + 3] ^= 0x01;
    fs::write(flipped, &bytes).unwrap();
    fs::remove_file(&models[2].path).unwrap();

    let report = cache.verify().unwrap();

    let outcomes: Vec<(&str, &VerifyOutcome)> =
        report.iter().map(|(m, o)| (m.alias.as_str(), o)).collect();
    assert_eq!(
        outcomes,
        vec![
            (
                "flipped",
                &VerifyOutcome::Mismatch {
                    actual: sha_hex(&bytes)
                }
            ),
            ("gone", &VerifyOutcome::Missing),
            ("good", &VerifyOutcome::Ok),
        ]
    );
    // A missing file is not offered for loading either.
    assert_eq!(cache.lookup("gone"), None);
}

#[test]
fn remove_deletes_the_alias_and_reports_whether_it_existed() {
    let home = tempfile::tempdir().unwrap();
    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("x.gguf");
    fs::write(&src, b"x").unwrap();
    let cache = Cache::new(home.path());
    cache.add_file("x", &src, None).unwrap();

    assert!(cache.remove("x").unwrap());
    assert!(!cache.remove("x").unwrap());
    assert_eq!(cache.lookup("x"), None);
    assert!(cache.list().unwrap().is_empty());
}

#[test]
fn aliases_that_escape_the_cache_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let cache = Cache::new(home.path());
    for bad in ["", "../evil", "a/b", ".tmp", ".locks"] {
        assert!(
            matches!(
                cache.add_file(bad, Path::new("/dev/null"), None),
                Err(CacheError::InvalidAlias { .. })
            ),
            "{bad:?} should be refused"
        );
    }
}

#[test]
fn list_of_a_fresh_home_is_empty() {
    let home = tempfile::tempdir().unwrap();
    assert!(Cache::new(home.path()).list().unwrap().is_empty());
}
