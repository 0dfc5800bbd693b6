//! safetensors files read within bounds and written atomically, with a checksum of their
//! tensors: what every weights file of a project needs and `safetensors` leaves to its users.
//!
//! ```
//! use std::collections::BTreeMap;
//! use candle_core::{Device, Tensor};
//! use cdcgan_nn::file;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("w.safetensors");
//! let w = Tensor::ones((2, 3), candle_core::DType::F32, &Device::Cpu)?;
//! let mut meta = BTreeMap::new();
//! meta.insert("author".to_owned(), "me".to_owned());
//! let bytes = file::serialize([("w".to_owned(), w)], &meta, Some("sha256"))?;
//! file::write_atomic(&path, &bytes)?;
//!
//! // The file may hold 8 bytes of length, the header and 4 bytes per value.
//! let bytes = file::read_bounded(&path, |_meta| Ok::<_, cdcgan_nn::Error>(6 * 4))?;
//! let meta = file::metadata(&bytes, "w.safetensors")?;
//! assert_eq!(meta["author"], "me");
//! let st = file::deserialize(&bytes, "w.safetensors")?;
//! file::verify_digest(&st, &meta, "sha256", "w.safetensors")?;
//! assert!(file::read_bounded(&path, |_meta| Ok::<_, cdcgan_nn::Error>(5 * 4)).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::{Read as _, Write as _};
use std::path::Path;

use atomic_write_file::AtomicWriteFile;
use candle_core::Tensor;
use safetensors::SafeTensors;
use safetensors::tensor::View;

use crate::error::{Error, Result};

/// The largest safetensors header accepted (names, shapes and metadata; a few KiB in practice).
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Writes `bytes` to `path` atomically: to a temporary sibling (`.NAME.XXXXXX`), fsynced,
/// renamed over `path`, and the directory fsynced. After a crash `path` holds the old
/// contents or the new, never a part; the temporary file is removed if the write fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = AtomicWriteFile::open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.commit().map_err(io)
}

/// SHA-256 over every tensor in name order: its name, dtype, shape and stored bytes. The same
/// function digests tensors about to be written and the views of a file read back (give it
/// `SafeTensors::tensors()`).
pub fn digest<'a, V: View>(tensors: impl IntoIterator<Item = (impl AsRef<str> + 'a, V)>) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut tensors: Vec<_> = tensors.into_iter().collect();
    tensors.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
    for (name, view) in tensors {
        let name = name.as_ref();
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(format!("{:?}", view.dtype()).as_bytes());
        hasher.update((view.shape().len() as u64).to_le_bytes());
        for d in view.shape() {
            hasher.update((*d as u64).to_le_bytes());
        }
        hasher.update(view.data());
    }
    hex::encode(hasher.finalize())
}

/// The safetensors bytes of `tensors` with `metadata`, and with their [`digest`] under
/// `digest_key` when one is given. The same content always gives the same bytes:
/// `safetensors` writes the metadata map in a `HashMap`'s random order, so the map is
/// rewritten here with its keys sorted (it comes first in the header and keeps its length, so
/// no offset moves).
pub fn serialize(
    tensors: impl IntoIterator<Item = (String, Tensor)>,
    metadata: &BTreeMap<String, String>,
    digest_key: Option<&str>,
) -> Result<Vec<u8>> {
    let tensors: Vec<_> = tensors.into_iter().collect();
    let mut metadata = metadata.clone();
    if let Some(key) = digest_key {
        metadata.insert(key.to_owned(), digest(tensors.iter().map(|(n, t)| (n, t))));
    }
    let metadata = &metadata;
    let hashed: HashMap<String, String> = metadata.clone().into_iter().collect();
    let mut bytes =
        safetensors::serialize(tensors, Some(hashed)).map_err(|e| invalid("<serialise>", e))?;
    const PREFIX: &[u8] = b"{\"__metadata__\":";
    let sorted = serde_json::to_vec(metadata).map_err(|e| Error::File {
        origin: "<serialise>".into(),
        problem: format!("metadata: {e}"),
    })?;
    let start = 8 + PREFIX.len();
    let span = start..start + sorted.len();
    let same = metadata.is_empty()
        || bytes.get(8..start) == Some(PREFIX)
            && bytes
                .get(span.clone())
                .and_then(|old| serde_json::from_slice::<BTreeMap<String, String>>(old).ok())
                .is_some_and(|old| &old == metadata);
    if !same {
        return Err(Error::File {
            origin: "<serialise>".into(),
            problem: "safetensors wrote its metadata in an unexpected layout".into(),
        });
    }
    if !metadata.is_empty() {
        bytes[span].copy_from_slice(&sorted);
    }
    Ok(bytes)
}

/// Checks the [`digest`] stored under `digest_key` in `metadata`, if there is one, against
/// the tensors of `st` (read from `origin`).
pub fn verify_digest(
    st: &SafeTensors<'_>,
    metadata: &BTreeMap<String, String>,
    digest_key: &str,
    origin: &str,
) -> Result<()> {
    let Some(stored) = metadata.get(digest_key) else {
        return Ok(());
    };
    let computed = digest(st.tensors());
    if *stored != computed {
        return Err(Error::Checksum {
            origin: origin.to_owned(),
            stored: stored.clone(),
            computed,
        });
    }
    Ok(())
}

/// The length of the header that opens safetensors `bytes` (of a file of `file_len` bytes),
/// checked against [`MAX_HEADER_BYTES`] and the file's length.
pub fn header_len(bytes: &[u8], file_len: u64, origin: &str) -> Result<u64> {
    let bad = |problem: String| Error::File {
        origin: origin.to_owned(),
        problem,
    };
    let Some(first) = bytes.get(..8) else {
        return Err(bad(format!(
            "{file_len} bytes is too short for a safetensors file"
        )));
    };
    let mut n = [0u8; 8];
    n.copy_from_slice(first);
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER_BYTES {
        return Err(bad(format!(
            "header of {n} bytes (at most {MAX_HEADER_BYTES} accepted)"
        )));
    }
    if 8 + n > file_len {
        return Err(bad(format!(
            "header of {n} bytes does not fit in the {file_len}-byte file (truncated?)"
        )));
    }
    Ok(n)
}

/// The `__metadata__` of safetensors `bytes` (empty when there is none), after their header
/// is parsed and checked; errors name `origin`.
pub fn metadata(bytes: &[u8], origin: &str) -> Result<BTreeMap<String, String>> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| invalid(origin, e))?;
    Ok(header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect())
}

/// Parses safetensors `bytes` into a view of their tensors (nothing is copied); errors name
/// `origin`.
pub fn deserialize<'a>(bytes: &'a [u8], origin: &str) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| invalid(origin, e))
}

fn invalid(origin: &str, source: safetensors::SafeTensorError) -> Error {
    Error::Safetensors {
        origin: origin.to_owned(),
        source,
    }
}

/// The `__metadata__` of a safetensors header (the JSON after the length); empty when the
/// header has none or cannot be read (the full parser reports that).
pub fn header_metadata(header: &[u8]) -> BTreeMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__")]
        metadata: Option<BTreeMap<String, String>>,
    }
    serde_json::from_slice::<Header>(header)
        .ok()
        .and_then(|h| h.metadata)
        .unwrap_or_default()
}

/// Reads a safetensors file no larger than it may be: the header first (at most
/// [`MAX_HEADER_BYTES`]), then `max_data(metadata)` bounds the bytes after it (or refuses the
/// file by what its metadata says), and a larger file is refused before its tensors are read.
/// Errors name the file.
pub fn read_bounded<E: From<Error>>(
    path: &Path,
    max_data: impl FnOnce(&BTreeMap<String, String>) -> std::result::Result<u64, E>,
) -> std::result::Result<Vec<u8>, E> {
    let origin = path.display().to_string();
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut bytes = vec![0u8; 8.min(len) as usize];
    file.read_exact(&mut bytes).map_err(io)?;
    let header = header_len(&bytes, len, &origin)?;
    bytes.resize(8 + header as usize, 0);
    file.read_exact(&mut bytes[8..]).map_err(io)?;
    let max = (8 + header).saturating_add(max_data(&header_metadata(&bytes[8..]))?);
    if len > max {
        return Err(Error::File {
            origin,
            problem: format!(
                "{len} bytes, but a file of what its header declares holds at most {max}"
            ),
        }
        .into());
    }
    bytes.reserve_exact((len as usize).saturating_sub(bytes.len()));
    file.read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn tensors() -> Vec<(String, Tensor)> {
        let dev = Device::Cpu;
        vec![
            ("b".into(), Tensor::ones(3, DType::F32, &dev).unwrap()),
            ("a".into(), Tensor::zeros((2, 2), DType::F16, &dev).unwrap()),
        ]
    }

    #[test]
    fn serialisation_is_deterministic_and_the_digest_reads_back() {
        let mut meta = BTreeMap::new();
        for i in 0..20 {
            meta.insert(format!("key{i}"), format!("value {i}"));
        }
        let first = serialize(tensors(), &meta, Some("sum")).unwrap();
        for _ in 0..5 {
            assert_eq!(serialize(tensors(), &meta, Some("sum")).unwrap(), first);
        }
        let st = deserialize(&first, "t").unwrap();
        let (n, _) = SafeTensors::read_metadata(&first).unwrap();
        let read = header_metadata(&first[8..8 + n]);
        assert_eq!(metadata(&first, "t").unwrap(), read);
        assert_eq!(read["sum"], digest(st.tensors()));
        verify_digest(&st, &read, "sum", "t").unwrap();
        let mut wrong = read.clone();
        wrong.insert("sum".into(), "0".repeat(64));
        let err = verify_digest(&st, &wrong, "sum", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        assert!(serialize(tensors(), &BTreeMap::new(), None).is_ok());
    }

    #[test]
    fn bytes_that_are_not_safetensors_are_refused_naming_their_origin() {
        let good = serialize(tensors(), &BTreeMap::new(), None).unwrap();
        for bad in [&b""[..], b"garbage!garbage!", &good[..good.len() - 1]] {
            let err = deserialize(bad, "w.safetensors")
                .err()
                .map(|e| e.to_string());
            let err = err.unwrap_or_default();
            assert!(
                err.starts_with("w.safetensors: not a valid safetensors file"),
                "{err}"
            );
        }
        let err = metadata(b"garbage!", "w.safetensors")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("w.safetensors: "), "{err}");
        assert!(metadata(&good, "w").unwrap().is_empty());
    }

    #[test]
    fn oversized_headers_and_files_are_refused_before_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let bytes = serialize(tensors(), &BTreeMap::new(), None).unwrap();
        write_atomic(&path, &bytes).unwrap();
        let data = 3 * 4 + 4 * 2;
        assert_eq!(
            read_bounded(&path, |_| Ok::<_, Error>(data)).unwrap(),
            bytes
        );
        let err = read_bounded(&path, |_| Ok::<_, Error>(data - 1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t.safetensors") && err.contains("at most"),
            "{err}"
        );

        let mut huge = (MAX_HEADER_BYTES + 1).to_le_bytes().to_vec();
        huge.extend([b' '; 16]);
        write_atomic(&path, &huge).unwrap();
        let err = read_bounded(&path, |_| Ok::<_, Error>(u64::MAX))
            .unwrap_err()
            .to_string();
        assert!(err.contains("header of"), "{err}");
        write_atomic(&path, &[1, 2, 3]).unwrap();
        let err = read_bounded(&path, |_| Ok::<_, Error>(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("too short"), "{err}");
        // No temporary file is left beside the written one.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
