//! Checkpoints: safetensors files with the model config and free-form metadata.
//!
//! Tensor names and layouts follow PyTorch (`gen.fc.weight` `[out, in]`, `gen.deconv1.weight`
//! `[in, out, kh, kw]`, …), so a PyTorch module with the same attribute names loads a generator
//! with `load_state_dict`. See `docs/checkpoint-format.md` for the full list.
//!
//! ```
//! use candle_core::{DType, Device};
//! use cdcgan_model::{Checkpoint, Gan, ModelConfig};
//!
//! let gan = Gan::new(ModelConfig::tiny(), 1, &Device::Cpu)?;
//! let mut ckpt = Checkpoint::new(*gan.config());
//! gan.export(&mut ckpt, "");
//! ckpt.metadata.insert("cdcgan.epoch".into(), "3".into());
//! let bytes = ckpt.to_bytes(DType::F32)?;
//!
//! let back = Checkpoint::from_bytes(&bytes, "<memory>", &Device::Cpu)?;
//! assert_eq!(back.metadata["cdcgan.epoch"], "3");
//! let restored = Gan::new(*back.config(), 2, &Device::Cpu)?;
//! restored.import(&back, "")?;
//! # Ok::<(), cdcgan_model::Error>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::safetensors::Load;
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::View;
use safetensors::{Dtype, SafeTensors};

use crate::config::{ARCH, ModelConfig};
use crate::error::{Error, Result};

/// Metadata key: the checkpoint format version.
pub const META_FORMAT: &str = crate::meta::FORMAT;
/// Metadata key: the architecture name ([`ARCH`]).
pub const META_ARCH: &str = crate::meta::ARCH;
/// Metadata key: the [`ModelConfig`] as JSON.
pub const META_MODEL: &str = crate::meta::MODEL;
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: &str = "1";
/// Metadata key: SHA-256 of the tensors (names, dtypes, shapes and data, by name), written
/// by [`Checkpoint::to_bytes`] and verified on load when present.
pub const META_SHA256: &str = crate::meta::SHA256;
/// The largest safetensors header accepted (names, shapes and metadata; ~10 KiB in practice).
pub const MAX_HEADER_BYTES: u64 = 1 << 20;
/// A checkpoint holds at most this many copies of the networks' values (weights, EMA
/// weights, two Adam moments, with room to spare).
const MAX_COPIES: u64 = 6;

/// Named tensors, the model config, and string metadata.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    origin: String,
    config: ModelConfig,
    tensors: BTreeMap<String, Tensor>,
    /// Free-form metadata (keys prefixed `cdcgan.` are reserved for this project).
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// An empty checkpoint for a model of `config`.
    pub fn new(config: ModelConfig) -> Self {
        Self {
            origin: "<memory>".into(),
            config,
            tensors: BTreeMap::new(),
            metadata: BTreeMap::new(),
        }
    }

    /// Where it was read from (a path, or a label such as `<embedded generator>`), for errors.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The model configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Adds or replaces a tensor.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// All tensors, by name.
    pub fn tensors(&self) -> &BTreeMap<String, Tensor> {
        &self.tensors
    }

    /// Whether any tensor name starts with `prefix`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.tensors
            .range(prefix.to_owned()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(prefix))
    }

    /// Serialises to safetensors bytes, storing floating tensors as `dtype` (f32, f16 or bf16).
    pub fn to_bytes(&self, dtype: DType) -> Result<Vec<u8>> {
        let tensors = self
            .tensors
            .iter()
            .map(|(k, t)| {
                let t = if t.dtype().is_float() {
                    t.to_dtype(dtype)?
                } else {
                    t.clone()
                };
                Ok((k.clone(), t))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut meta: HashMap<String, String> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        meta.insert(META_FORMAT.into(), FORMAT_VERSION.into());
        meta.insert(META_ARCH.into(), ARCH.into());
        let config = serde_json::to_string(&self.config)
            .map_err(|e| Error::Config(format!("cannot serialise: {e}")))?;
        meta.insert(META_MODEL.into(), config);
        // The digest covers the tensors exactly as they are stored (dtype converted).
        let digest = content_digest(tensors.iter().map(|(name, t)| (name.as_str(), t)));
        meta.insert(META_SHA256.into(), digest);
        let bytes = safetensors::serialize(tensors, Some(meta.clone())).map_err(|source| {
            Error::Safetensors {
                origin: "<serialise>".into(),
                source,
            }
        })?;
        sort_metadata(bytes, &meta.into_iter().collect())
    }

    /// Writes the checkpoint atomically (temporary file, fsync, rename).
    pub fn save(&self, path: impl AsRef<Path>, dtype: DType) -> Result<()> {
        let bytes = self.to_bytes(dtype)?;
        Ok(mnist_data::write_atomic(path.as_ref(), &bytes)?)
    }

    /// Reads a checkpoint file; errors name the file. The header is read and checked first,
    /// so a file larger than its architecture allows is refused before it is read.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        use std::io::Read as _;
        let path = path.as_ref();
        let origin = path.display().to_string();
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut head = vec![0u8; 8.min(len) as usize];
        file.read_exact(&mut head).map_err(io)?;
        let header_len = header_len(&head, len, &origin)?;
        head.resize(8 + header_len as usize, 0);
        file.read_exact(&mut head[8..]).map_err(io)?;
        check_size(&head[8..], len, &origin)?;
        let mut bytes = head;
        bytes.reserve_exact((len as usize).saturating_sub(bytes.len()));
        file.read_to_end(&mut bytes).map_err(io)?;
        Self::from_bytes(&bytes, &origin, device)
    }

    /// Parses safetensors bytes; `origin` names them in errors. Tensors come back as f32.
    pub fn from_bytes(bytes: &[u8], origin: &str, device: &Device) -> Result<Self> {
        let st_err = |source| Error::Safetensors {
            origin: origin.to_owned(),
            source,
        };
        let meta_err = |problem: String| Error::Metadata {
            origin: origin.to_owned(),
            problem,
        };
        let header_len = header_len(bytes, bytes.len() as u64, origin)?;
        check_size(
            &bytes[8..8 + header_len as usize],
            bytes.len() as u64,
            origin,
        )?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(st_err)?;
        let st = SafeTensors::deserialize(bytes).map_err(st_err)?;
        let mut metadata: BTreeMap<String, String> = header
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        match metadata.get(META_FORMAT).map(String::as_str) {
            Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(meta_err(format!(
                    "format version {v}, this build reads {FORMAT_VERSION}"
                )));
            }
            None => {
                return Err(meta_err(format!(
                    "no `{META_FORMAT}` entry: not a cdcgan checkpoint"
                )));
            }
        }
        match metadata.get(META_ARCH).map(String::as_str) {
            Some(ARCH) => {}
            Some(other) => {
                return Err(meta_err(format!(
                    "architecture `{other}`; this build knows only `{ARCH}`"
                )));
            }
            None => {
                return Err(meta_err(format!(
                    "no `{META_ARCH}` entry: the architecture is not recorded"
                )));
            }
        }
        let config: ModelConfig = metadata
            .get(META_MODEL)
            .ok_or_else(|| meta_err(format!("no `{META_MODEL}` entry")))
            .and_then(|s| {
                serde_json::from_str(s).map_err(|e| meta_err(format!("model config: {e}")))
            })?;
        config.validate().map_err(|e| meta_err(e.to_string()))?;
        if let Some(stored) = metadata.get(META_SHA256) {
            let computed = content_digest(st.tensors().iter().map(|(n, v)| (n.as_str(), v)));
            if *stored != computed {
                return Err(Error::Checksum {
                    origin: origin.to_owned(),
                    stored: stored.clone(),
                    computed,
                });
            }
        }
        for key in [META_FORMAT, META_ARCH, META_MODEL, META_SHA256] {
            metadata.remove(key);
        }
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            if !matches!(
                view.dtype(),
                Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::U32 | Dtype::I64
            ) {
                return Err(Error::Dtype {
                    origin: origin.to_owned(),
                    name,
                    dtype: format!("{:?}", view.dtype()),
                });
            }
            let t = view.load(device)?;
            let t = if t.dtype().is_float() {
                t.to_dtype(DType::F32)?
            } else {
                t
            };
            tensors.insert(name, t);
        }
        Ok(Self {
            origin: origin.to_owned(),
            config,
            tensors,
            metadata,
        })
    }
}

/// SHA-256 over every tensor in name order: name, dtype, shape and stored bytes. The same
/// function digests candle tensors about to be written and the views of a file read back.
fn content_digest<'a, V: View>(tensors: impl IntoIterator<Item = (&'a str, V)>) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut tensors: Vec<_> = tensors.into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(b.0));
    for (name, view) in tensors {
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

/// The header length that opens a safetensors file of `file_len` bytes, checked against
/// [`MAX_HEADER_BYTES`] and the file size.
fn header_len(head: &[u8], file_len: u64, origin: &str) -> Result<u64> {
    let too_large = |problem: String| Error::TooLarge {
        origin: origin.to_owned(),
        problem,
    };
    let Some(first) = head.get(..8) else {
        return Err(too_large(format!(
            "{file_len} bytes is too short for a safetensors file"
        )));
    };
    let mut n = [0u8; 8];
    n.copy_from_slice(first);
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER_BYTES {
        return Err(too_large(format!(
            "header of {n} bytes (at most {MAX_HEADER_BYTES} accepted)"
        )));
    }
    if 8 + n > file_len {
        return Err(too_large(format!(
            "header of {n} bytes does not fit in the {file_len}-byte file (truncated?)"
        )));
    }
    Ok(n)
}

/// Rewrites the `__metadata__` object of safetensors `bytes` with its keys sorted, so that one
/// checkpoint always serialises to the same bytes: safetensors writes the map it is given
/// (a `HashMap`) in the map's random order. The object comes first in the header and holds
/// the same entries whichever the order, so it keeps its length and no offset moves.
fn sort_metadata(mut bytes: Vec<u8>, meta: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    const PREFIX: &[u8] = b"{\"__metadata__\":";
    let sorted = serde_json::to_vec(meta)
        .map_err(|e| Error::Config(format!("cannot serialise the metadata: {e}")))?;
    let start = 8 + PREFIX.len();
    let span = start..start + sorted.len();
    let same = bytes.get(8..start) == Some(PREFIX)
        && bytes
            .get(span.clone())
            .and_then(|old| serde_json::from_slice::<BTreeMap<String, String>>(old).ok())
            .is_some_and(|old| &old == meta);
    if !same {
        return Err(Error::Config(
            "safetensors wrote its metadata in an unexpected layout".into(),
        ));
    }
    bytes[span].copy_from_slice(&sorted);
    Ok(bytes)
}

/// Refuses a file larger than any checkpoint of the architecture its header declares.
/// Headers that cannot be read are left to the full parser to report.
fn check_size(header: &[u8], file_len: u64, origin: &str) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__")]
        metadata: Option<HashMap<String, String>>,
    }
    let Some(config) = serde_json::from_slice::<Header>(header)
        .ok()
        .and_then(|h| h.metadata)
        .and_then(|m| serde_json::from_str::<ModelConfig>(m.get(META_MODEL)?).ok())
        .filter(|c| c.validate().is_ok())
    else {
        return Ok(());
    };
    let max = 8 + header.len() as u64 + MAX_COPIES * 4 * config.tensor_values() as u64;
    if file_len > max {
        return Err(Error::TooLarge {
            origin: origin.to_owned(),
            problem: format!(
                "{file_len} bytes, but a checkpoint of this model (z {}, widths {}/{}) holds at most {max}",
                config.z_dim, config.gen_width, config.disc_width
            ),
        });
    }
    Ok(())
}
