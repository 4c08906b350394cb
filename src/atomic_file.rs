//! Files replaced whole: a reader sees the old content or the new, never half of either, and
//! two writers of the same file at once each write a whole version (the last rename wins).
//! `tempfile` makes the uniquely named temporary file beside the target and renames it into
//! place; a fixed temporary name would let concurrent writers trample each other's bytes.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes`: written to a fresh temporary file in the same directory,
/// flushed to disk, then renamed over `path`. The directory must exist.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_each_leave_a_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models.json");
        let versions: Vec<Vec<u8>> = (0..4u8)
            .map(|i| vec![b'a' + i; 256 * 1024 + usize::from(i)])
            .collect();
        std::thread::scope(|s| {
            for v in &versions {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..20 {
                        write(path, v).unwrap();
                    }
                });
            }
        });
        let got = std::fs::read(&path).unwrap();
        assert!(versions.contains(&got), "a mixture of writes");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
