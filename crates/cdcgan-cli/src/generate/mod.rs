//! `sample`, `number`, `interpolate` and `export`: everything that runs a trained generator.

use std::path::Path;

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device};
use cdcgan_model::{Checkpoint, Sampler};
use mnist_data::{NUM_CLASSES, Split};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

mod interpolate;
mod number;
mod sample;

pub use interpolate::{InterpolateOpts, interpolate};
pub use number::{NumberOpts, number, parse_number};
pub use sample::{SampleOpts, sample};

/// The generator shipped with the tool, stored as f16. Which run and epoch it is, and how to
/// train it again: `docs/results.md`, "The shipped generator".
const PRETRAINED: &[u8] = include_bytes!("../../assets/generator.safetensors");

/// The generator of `checkpoint` if given (its EMA weights when `prefer_ema` and present),
/// else the shipped one, ready to draw digits.
pub fn load_sampler(checkpoint: Option<&Path>, prefer_ema: bool) -> Result<Sampler> {
    let ckpt = match checkpoint {
        Some(path) => load_checkpoint(path)?,
        None => Checkpoint::from_bytes(PRETRAINED, "the built-in generator", &Device::Cpu)?,
    };
    Ok(Sampler::from_checkpoint(&ckpt, prefer_ema)?)
}

/// One digit per label, as 8-bit images (what a PNG or IDX file holds), noise from `seed`.
pub fn labelled_set(sampler: &Sampler, labels: Vec<u8>, seed: u64) -> Result<Split> {
    let pixels = sampler.pixels(&labels, seed)?;
    Ok(Split::new(pixels, labels)?)
}

/// Refuses to start when `path` could not be written: its directory is missing or is not a
/// directory. Checked before any digit is generated.
pub fn check_output(path: &Path, what: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "{}: cannot write the {what} there: {} is not an existing directory",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        bail!(
            "{}: cannot write the {what} there: it is a directory",
            path.display()
        );
    }
    Ok(())
}

/// Loads a checkpoint given as a file, a run directory (its newest state), or a run's
/// `checkpoints/latest` pointer.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint> {
    let dev = Device::Cpu;
    let file = if path.is_dir() {
        // A run directory, or its checkpoints/ directory.
        let run = if path.join("checkpoints").is_dir() {
            path
        } else if path.file_name().is_some_and(|n| n == "checkpoints") {
            path.parent().unwrap_or(path)
        } else {
            bail!(
                "{}: a directory, but not a training run (no checkpoints/ in it); give a \
                 .safetensors file or a run directory",
                path.display()
            )
        };
        cdcgan_train::latest_state(run)?
            .with_context(|| format!("{}: no checkpoint in this run yet", path.display()))?
    } else if path.file_name().is_some_and(|n| n == "latest") {
        let run = path
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."));
        cdcgan_train::latest_state(run)?
            .with_context(|| format!("{}: names no checkpoint", path.display()))?
    } else {
        path.to_owned()
    };
    Ok(Checkpoint::load(&file, &dev)?)
}

/// `per_class` labels of each class, class by class: 0, 0, …, 1, 1, …, 9.
pub fn per_class_labels(per_class: usize) -> Vec<u8> {
    (0..NUM_CLASSES as u8)
        .flat_map(|c| std::iter::repeat_n(c, per_class))
        .collect()
}

pub(crate) fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `cdcgan export`: the generator (EMA weights unless `raw`) of any checkpoint as a small standalone file.
pub fn export(checkpoint: &Path, out: &Path, f16: bool, raw: bool) -> Result<()> {
    let ckpt = load_checkpoint(checkpoint)?;
    let generator_ckpt = cdcgan_model::generator_checkpoint(&ckpt, !raw)?;
    let dtype = if f16 { DType::F16 } else { DType::F32 };
    generator_ckpt.save(out, dtype)?;
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({} tensors, {:?}, {size} bytes)",
        out.display(),
        generator_ckpt.tensors().len(),
        dtype
    );
    Ok(())
}
