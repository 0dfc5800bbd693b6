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

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::safetensors::Load;
use candle_core::{DType, Device, Tensor};
use safetensors::Dtype;

use cdcgan_nn::file;

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
pub const MAX_HEADER_BYTES: u64 = file::MAX_HEADER_BYTES;
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
        let mut meta = self.metadata.clone();
        meta.insert(META_FORMAT.into(), FORMAT_VERSION.into());
        meta.insert(META_ARCH.into(), ARCH.into());
        let config = serde_json::to_string(&self.config)
            .map_err(|e| Error::Config(format!("cannot serialise: {e}")))?;
        meta.insert(META_MODEL.into(), config);
        // The digest covers the tensors exactly as they are stored (dtype converted).
        Ok(file::serialize(tensors, &meta, Some(META_SHA256))?)
    }

    /// Writes the checkpoint atomically (temporary file, fsync, rename).
    pub fn save(&self, path: impl AsRef<Path>, dtype: DType) -> Result<()> {
        Ok(file::write_atomic(path.as_ref(), &self.to_bytes(dtype)?)?)
    }

    /// Reads a checkpoint file; errors name the file. The header is read and checked first,
    /// so a file larger than its architecture allows is refused before it is read.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let bytes = file::read_bounded(path, |meta| {
            Ok::<_, Error>(max_data(&header_config(meta, &origin)?))
        })?;
        Self::from_bytes(&bytes, &origin, device)
    }

    /// Parses safetensors bytes; `origin` names them in errors. Tensors come back as f32.
    pub fn from_bytes(bytes: &[u8], origin: &str, device: &Device) -> Result<Self> {
        let header_len = file::header_len(bytes, bytes.len() as u64, origin)?;
        let mut metadata = file::metadata(bytes, origin)?;
        let config = header_config(&metadata, origin)?;
        let max = 8 + header_len + max_data(&config);
        if bytes.len() as u64 > max {
            return Err(too_large(&config, bytes.len() as u64, max, origin));
        }
        let st = file::deserialize(bytes, origin)?;
        file::verify_digest(&st, &metadata, META_SHA256, origin)?;
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

/// The model config in a checkpoint's metadata, after its format version and architecture
/// tags are checked: what a file must declare before its tensors are read.
fn header_config(metadata: &BTreeMap<String, String>, origin: &str) -> Result<ModelConfig> {
    let meta_err = |problem: String| Error::Metadata {
        origin: origin.to_owned(),
        problem,
    };
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
    Ok(config)
}

/// The most tensor bytes a checkpoint of `config` can hold.
fn max_data(config: &ModelConfig) -> u64 {
    MAX_COPIES * 4 * config.tensor_values() as u64
}

fn too_large(config: &ModelConfig, len: u64, max: u64, origin: &str) -> Error {
    cdcgan_nn::Error::File {
        origin: origin.to_owned(),
        problem: format!(
            "{len} bytes, but a checkpoint of this model (z {}, widths {}/{}) holds at most {max}",
            config.z_dim, config.gen_width, config.disc_width
        ),
    }
    .into()
}
