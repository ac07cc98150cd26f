//! The baseline file: JSON, read once at start and written atomically (a
//! temporary file in the same directory, synced, then renamed over the old
//! one), so a crash leaves either the old or the new file, never half.

use super::model::{Baselines, FORMAT_VERSION};
use super::BaselineError;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Reads the baselines at `path`; a missing file is an empty set.
pub fn load(path: &Path) -> Result<Baselines, BaselineError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Baselines {
                version: FORMAT_VERSION,
                ..Baselines::default()
            })
        }
        Err(source) => {
            return Err(BaselineError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let b: Baselines = serde_json::from_slice(&text).map_err(|e| BaselineError::Format {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if b.version != FORMAT_VERSION {
        return Err(BaselineError::Format {
            path: path.to_owned(),
            message: format!(
                "format version {} (this pgwarden reads {FORMAT_VERSION})",
                b.version
            ),
        });
    }
    Ok(b)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".tmp");
    PathBuf::from(p)
}

/// Writes `bytes` to `path` atomically (mode 0600: the file says who
/// reads what from where).
pub fn save(path: &Path, bytes: &[u8]) -> Result<(), BaselineError> {
    let tmp = temp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is synced.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        BaselineError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

/// The file's bytes for `b`.
pub fn encode(b: &Baselines) -> Vec<u8> {
    // Maps with string keys and plain numbers cannot fail to serialize.
    serde_json::to_vec_pretty(b).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::model::UserBaseline;

    #[test]
    fn a_saved_baseline_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baselines.json");
        assert!(load(&path).unwrap().users.is_empty());
        let mut b = Baselines {
            version: FORMAT_VERSION,
            ..Baselines::default()
        };
        let mut u = UserBaseline::new(1_700_000_000);
        u.learn_login("10.1.2.3", 1_700_000_000);
        u.learn_statement(
            &vec![("hr.departments".into(), vec!["name".into()])],
            12,
            1_700_000_100,
        );
        u.learned_at = Some(1_700_100_000);
        b.users.insert("hr_analyst".into(), u);
        save(&path, &encode(&b)).unwrap();
        assert_eq!(load(&path).unwrap(), b);
        assert!(!temp_path(&path).exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Saving again replaces the file whole.
        b.users.clear();
        save(&path, &encode(&b)).unwrap();
        assert!(load(&path).unwrap().users.is_empty());
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baselines.json");
        std::fs::write(&path, b"{\"version\": 1, \"users\": {\"x\": [").unwrap();
        assert!(matches!(load(&path), Err(BaselineError::Format { .. })));
        std::fs::write(&path, b"{\"version\": 99, \"users\": {}}").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("format version 99"), "{e}");
    }
}
