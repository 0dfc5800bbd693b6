//! The judge: a small CNN that tells MNIST digits apart, whose penultimate layer also serves as
//! the feature space for FID and diversity.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use cdcgan_eval::Classifier;
//!
//! let net = Classifier::new(0, &Device::Cpu)?;
//! let x = Tensor::zeros((2, 1, 28, 28), candle_core::DType::F32, &Device::Cpu)?;
//! let (logits, features) = net.forward_t(&x, false)?;
//! assert_eq!(logits.dims(), &[2, 10]);
//! assert_eq!(features.dims(), &[2, cdcgan_eval::FEATURES]);
//! # Ok::<(), cdcgan_eval::Error>(())
//! ```
//!
//! Layers (`cls.*` tensors): conv 3x3 1->32, conv 4x4/2 32->64, conv 4x4/2 64->128 (each
//! BatchNorm + ReLU), linear 6272->128 + ReLU (the features), linear 128->10.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{Linear, VarBuilder, VarMap};
use cdcgan_model::meta::SHA256 as META_SHA256;
use cdcgan_model::normal_vec;
use cdcgan_nn::file;
use cdcgan_nn::kernels::Activation;
use cdcgan_nn::layers::{self, BatchNorm, Conv2d, ConvConfig};
use mnist_data::{IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES, Split, pixel_to_signed};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::Dtype;

use crate::error::{Error, Result};

/// Size of the feature vector (the penultimate layer).
pub const FEATURES: usize = 128;
/// The `cdcgan.arch` metadata of a classifier file.
pub const CLASSIFIER_ARCH: &str = "mnist-cnn-1";
/// Metadata key holding the training record (JSON) of a classifier file.
pub const META_RECORD: &str = cdcgan_model::meta::CLASSIFIER;
use cdcgan_model::meta::ARCH as META_ARCH;

/// Width of the layer dropout acts on (the last conv layer's outputs, flattened).
pub(crate) const DROPOUT_WIDTH: usize = 128 * (IMAGE_SIDE / 4) * (IMAGE_SIDE / 4);

/// Images per forward pass when scoring a whole set.
const CHUNK: usize = 500;

const HALVE: ConvConfig = ConvConfig {
    stride: 2,
    padding: 1,
};
const SAME3: ConvConfig = ConvConfig {
    stride: 1,
    padding: 1,
};

/// The MNIST classifier; its architecture and training are in the [crate docs](crate).
pub struct Classifier {
    vars: VarMap,
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    fc1: Linear,
    fc2: Linear,
    /// Free-form facts about how it was trained (stored in the file's metadata).
    pub record: BTreeMap<String, String>,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// Per-image results of [`Classifier::score`].
#[derive(Debug, Clone)]
pub struct Scores {
    /// Predicted class of each image.
    pub predictions: Vec<u8>,
    /// Features, [`FEATURES`] values per image, in order.
    pub features: Vec<f32>,
}

impl Classifier {
    /// A fresh classifier, He-initialised from `seed`.
    pub fn new(seed: u64, device: &Device) -> Result<Self> {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, device).pp("cls");
        let bn = |c, name| layers::batch_norm(c, 1e-5, 0.1, vb.pp(name));
        let side = IMAGE_SIDE / 4;
        let net = Self {
            conv1: layers::conv2d_no_bias(1, 32, 3, SAME3, vb.pp("conv1"))?,
            bn1: bn(32, "bn1")?,
            conv2: layers::conv2d_no_bias(32, 64, 4, HALVE, vb.pp("conv2"))?,
            bn2: bn(64, "bn2")?,
            conv3: layers::conv2d_no_bias(64, 128, 4, HALVE, vb.pp("conv3"))?,
            bn3: bn(128, "bn3")?,
            fc1: candle_nn::linear(128 * side * side, FEATURES, vb.pp("fc1"))?,
            fc2: candle_nn::linear(FEATURES, NUM_CLASSES, vb.pp("fc2"))?,
            vars,
            record: BTreeMap::new(),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for (name, var) in net.all_vars() {
            let is_layer_weight = name.ends_with(".weight") && !name.contains(".bn");
            if is_layer_weight {
                let fan_in = var.elem_count() / var.dims()[0];
                let std = (2.0 / fan_in as f32).sqrt();
                let w = normal_vec(&mut rng, var.elem_count(), 0.0, std);
                var.set(&Tensor::from_vec(w, var.shape(), device)?)?;
            } else if name.starts_with("cls.fc") && name.ends_with(".bias") {
                var.set(&var.zeros_like()?)?;
            }
        }
        Ok(net)
    }

    /// Logits `[b, 10]` and features `[b, FEATURES]` for images `[b, 1, 28, 28]` in `[-1, 1]`.
    /// `train` uses batch statistics in BatchNorm and updates the running ones.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        self.forward_masked(x, train, None)
    }

    /// [`Classifier::forward_t`] in training mode with inverted dropout before the feature
    /// layer: `keep` `[b, 6272]` multiplies the flattened last conv layer (0 drops a value).
    pub fn forward_train(&self, x: &Tensor, keep: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        self.forward_masked(x, true, keep)
    }

    fn forward_masked(
        &self,
        x: &Tensor,
        train: bool,
        keep: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let relu = Activation::Relu;
        let x = self.bn1.forward_act(&self.conv1.forward(x)?, train, relu)?;
        let x = self
            .bn2
            .forward_act(&self.conv2.forward(&x)?, train, relu)?;
        let x = self
            .bn3
            .forward_act(&self.conv3.forward(&x)?, train, relu)?;
        let mut x = x.flatten_from(1)?;
        if let Some(keep) = keep {
            x = x.mul(keep)?;
        }
        let features = self.fc1.forward(&x)?.relu()?;
        let logits = self.fc2.forward(&features)?;
        Ok((logits, features))
    }

    /// Runs every image of `set` (eval mode) and returns predictions and features.
    pub fn score(&self, set: &Split) -> Result<Scores> {
        let device = self.device();
        let mut predictions = Vec::with_capacity(set.len());
        let mut features = Vec::with_capacity(set.len() * FEATURES);
        for chunk in set.pixels().chunks(CHUNK * IMAGE_PIXELS) {
            let n = chunk.len() / IMAGE_PIXELS;
            let x: Vec<f32> = chunk.iter().map(|&p| pixel_to_signed(p)).collect();
            let x = Tensor::from_vec(x, (n, 1, IMAGE_SIDE, IMAGE_SIDE), &device)?;
            let (logits, f) = self.forward_t(&x, false)?;
            let argmax = logits.argmax(1)?.to_vec1::<u32>()?;
            predictions.extend(argmax.into_iter().map(|c| c as u8));
            features.extend(f.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(Scores {
            predictions,
            features,
        })
    }

    /// Top-1 accuracy on `set` (0..1).
    pub fn accuracy(&self, set: &Split) -> Result<f64> {
        let scores = self.score(set)?;
        Ok(accuracy(&scores.predictions, set.labels()))
    }

    /// The trainable parameters (running statistics excluded), sorted by name.
    pub fn params(&self) -> Vec<(String, Var)> {
        self.all_vars()
            .into_iter()
            .filter(|(n, _)| !cdcgan_model::is_buffer(n))
            .collect()
    }

    /// Every tensor (parameters and running statistics), sorted by name.
    pub fn all_vars(&self) -> Vec<(String, Var)> {
        cdcgan_model::sorted_vars(&self.vars)
    }

    fn device(&self) -> Device {
        self.fc2.weight().device().clone()
    }

    /// Serialises to safetensors bytes, floats stored as `dtype` (f32, f16 or bf16), with a
    /// checksum of the tensors as stored; the same classifier always gives the same bytes.
    pub fn to_bytes(&self, dtype: DType) -> Result<Vec<u8>> {
        let tensors = self
            .all_vars()
            .into_iter()
            .map(|(n, v)| Ok((n, v.as_tensor().to_dtype(dtype)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut meta = self.record.clone();
        meta.insert(META_ARCH.into(), CLASSIFIER_ARCH.into());
        Ok(file::serialize(tensors, &meta, Some(META_SHA256))?)
    }

    /// Writes the classifier atomically.
    pub fn save(&self, path: impl AsRef<Path>, dtype: DType) -> Result<()> {
        Ok(file::write_atomic(path.as_ref(), &self.to_bytes(dtype)?)?)
    }

    /// Reads a classifier file; errors name it. The header is read first: a file that is not
    /// a classifier, or is larger than any classifier can be (every value in f32), is refused
    /// before its tensors are read.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let net = Self::new(0, device)?;
        let values: usize = net.all_vars().iter().map(|(_, v)| v.elem_count()).sum();
        let bytes = file::read_bounded(path, |meta| {
            check_arch(meta.get(META_ARCH).cloned(), &origin)?;
            Ok::<_, Error>(4 * values as u64)
        })?;
        net.read_bytes(&bytes, &origin)
    }

    /// Parses safetensors bytes written by [`Classifier::to_bytes`]; checks the architecture
    /// tag and every tensor's name and shape before using any of them.
    pub fn from_bytes(bytes: &[u8], origin: &str, device: &Device) -> Result<Self> {
        Self::new(0, device)?.read_bytes(bytes, origin)
    }

    /// [`Classifier::from_bytes`] into this network's variables.
    fn read_bytes(mut self, bytes: &[u8], origin: &str) -> Result<Self> {
        let bad = |problem: String| Error::BadFile {
            origin: origin.to_owned(),
            problem,
        };
        let mut record = file::metadata(bytes, origin)?;
        check_arch(record.remove(META_ARCH), origin)?;
        let st = file::deserialize(bytes, origin)?;
        // Files written before checksums have none; one that has it must match.
        file::verify_digest(&st, &record, META_SHA256, origin)?;
        record.remove(META_SHA256);
        let vars = self.all_vars();
        for name in st.names() {
            if !vars.iter().any(|(n, _)| n == name) {
                return Err(bad(format!("unexpected tensor `{name}`")));
            }
        }
        let mut values = Vec::with_capacity(vars.len());
        for (name, var) in &vars {
            let view = st
                .tensor(name)
                .map_err(|_| bad(format!("missing tensor `{name}`")))?;
            if view.shape() != var.dims() {
                return Err(bad(format!(
                    "tensor `{name}` has shape {:?}, expected {:?}",
                    view.shape(),
                    var.dims()
                )));
            }
            if !matches!(view.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16) {
                return Err(bad(format!(
                    "tensor `{name}` has unsupported dtype {:?}",
                    view.dtype()
                )));
            }
            values.push(candle_core::safetensors::Load::load(&view, var.device())?);
        }
        for ((_, var), t) in vars.iter().zip(values) {
            var.set(&t.to_dtype(DType::F32)?)?;
        }
        self.record = record;
        Ok(self)
    }
}

/// Refuses a file whose architecture tag is not the classifier's.
fn check_arch(arch: Option<String>, origin: &str) -> Result<()> {
    let problem = match arch {
        Some(a) if a == CLASSIFIER_ARCH => return Ok(()),
        Some(other) => {
            format!("architecture `{other}`, expected `{CLASSIFIER_ARCH}` (not a classifier file?)")
        }
        None => format!("no `{META_ARCH}` entry: not a classifier file"),
    };
    Err(Error::BadFile {
        origin: origin.to_owned(),
        problem,
    })
}

/// The confusion matrix: `m[l][p]` counts the items labelled `l` that were predicted `p`
/// (labels and predictions outside 0..10 are left out).
pub fn confusion(predictions: &[u8], labels: &[u8]) -> [[usize; NUM_CLASSES]; NUM_CLASSES] {
    let mut m = [[0usize; NUM_CLASSES]; NUM_CLASSES];
    for (&p, &l) in predictions.iter().zip(labels) {
        if let Some(cell) = m
            .get_mut(usize::from(l))
            .and_then(|row| row.get_mut(usize::from(p)))
        {
            *cell += 1;
        }
    }
    m
}

/// Per class `c` in 0..10: the fraction of the items labelled `c` that were predicted `c` (0
/// for a class with no items).
pub fn class_accuracy(predictions: &[u8], labels: &[u8]) -> Vec<f64> {
    diagonal_shares(&confusion(predictions, labels))
}

/// Per class `c`: `m[c][c]` over the sum of row `c` (0 for an empty row), i.e.
/// [`class_accuracy`] read off a [`confusion`] matrix.
pub(crate) fn diagonal_shares(m: &[[usize; NUM_CLASSES]]) -> Vec<f64> {
    m.iter()
        .enumerate()
        .map(|(c, row)| {
            let n: usize = row.iter().sum();
            if n == 0 {
                0.0
            } else {
                row[c] as f64 / n as f64
            }
        })
        .collect()
}

/// Fraction of `predictions` equal to `labels` (0 for empty input).
pub fn accuracy(predictions: &[u8], labels: &[u8]) -> f64 {
    let n = predictions.len().min(labels.len());
    if n == 0 {
        return 0.0;
    }
    let hits = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    hits as f64 / n as f64
}
