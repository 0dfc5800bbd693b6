//! What a run is trained on, kept in `RUN_DIR/data.toml`: the identity of the training split
//! (size and SHA-256, so a resume on other data is refused) and where it was read from (so a
//! resume from any directory finds it again).

use std::fs;
use std::path::{Path, PathBuf};

use mnist_data::Split;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Where a run's training data was read from, as its front end chose to record it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSource {
    /// The MNIST directory (absolute, so that it is found from anywhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// At most this many training examples were used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// The contents of `data.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DataRecord {
    /// [`data_identity`] of the split the run is trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Where it came from.
    #[serde(default)]
    pub source: DataSource,
}

const FILE: &str = "data.toml";
/// Where runs before `data.toml` kept the identity and the source.
const OLD_IDENTITY: &str = "data.txt";
const OLD_SOURCE: &str = "data-source.toml";

impl DataRecord {
    /// The record of the run in `dir` (empty when nothing is recorded yet); a run made before
    /// `data.toml` is read from its `data.txt` and `data-source.toml`.
    pub fn read(dir: &Path) -> Result<Self> {
        if let Some(text) = read_if_present(&dir.join(FILE))? {
            return toml::from_str(&text).map_err(|e| Error::Config(format!("{FILE}: {e}")));
        }
        let identity = read_if_present(&dir.join(OLD_IDENTITY))?.map(|s| s.trim().to_owned());
        let source = match read_if_present(&dir.join(OLD_SOURCE))? {
            Some(text) => {
                toml::from_str(&text).map_err(|e| Error::Config(format!("{OLD_SOURCE}: {e}")))?
            }
            None => DataSource::default(),
        };
        Ok(Self { identity, source })
    }

    /// Writes the record atomically, then removes the files it replaces.
    pub fn write(&self, dir: &Path) -> Result<()> {
        // Every field is a string, a path or a number: serialisation cannot fail.
        let text = toml::to_string(self).unwrap_or_default();
        cdcgan_nn::file::write_atomic(&dir.join(FILE), text.as_bytes())?;
        for old in [OLD_IDENTITY, OLD_SOURCE] {
            match fs::remove_file(dir.join(old)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Io {
                        path: dir.join(old),
                        source: e,
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn read_if_present(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// What identifies a training split: its size and the SHA-256 of its labels and pixels (the
/// first 16 hex digits), e.g. `60000 examples, sha256 2f0c5e17a4b3d9e8`.
pub fn data_identity(split: &Split) -> String {
    let digest = Sha256::new()
        .chain_update(split.labels())
        .chain_update(split.pixels())
        .finalize();
    format!(
        "{} examples, sha256 {}",
        split.len(),
        &hex::encode(digest)[..16]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_replaces_the_files_of_older_runs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(DataRecord::read(dir.path()).unwrap(), DataRecord::default());
        fs::write(dir.path().join(OLD_IDENTITY), "40 examples, sha256 0123\n").unwrap();
        fs::write(dir.path().join(OLD_SOURCE), "dir = \"/data\"\nlimit = 40\n").unwrap();
        let old = DataRecord::read(dir.path()).unwrap();
        let want = DataRecord {
            identity: Some("40 examples, sha256 0123".into()),
            source: DataSource {
                dir: Some("/data".into()),
                limit: Some(40),
            },
        };
        assert_eq!(old, want);
        old.write(dir.path()).unwrap();
        assert!(!dir.path().join(OLD_IDENTITY).exists());
        assert!(!dir.path().join(OLD_SOURCE).exists());
        assert_eq!(DataRecord::read(dir.path()).unwrap(), want);
        fs::write(dir.path().join(FILE), "identity = 3\n").unwrap();
        let err = DataRecord::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("data.toml"), "{err}");
    }
}
