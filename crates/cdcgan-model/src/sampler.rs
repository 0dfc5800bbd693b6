//! Drawing digits from a trained generator: seeded noise, labels in, images or pixels out,
//! a bounded number at a time.

use crate::config::{IMAGE_SIDE, NUM_CLASSES};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::{Checkpoint, Generator, generator_from_checkpoint, noise};

/// A generator ready to draw digits, the one way the CLI and the web page both draw them:
/// noise from a [`ChaCha8Rng`] stream, so a seed gives the same digits everywhere.
///
/// ```
/// use candle_core::Device;
/// use cdcgan_model::{Checkpoint, Gan, ModelConfig, Sampler};
///
/// let gan = Gan::new(ModelConfig::tiny(), 0, &Device::Cpu)?;
/// let mut ckpt = Checkpoint::new(*gan.config());
/// gan.export(&mut ckpt, "");
/// let sampler = Sampler::from_checkpoint(&ckpt, true)?;
/// let pixels = sampler.pixels(&[2, 0, 2, 6], 7)?; // four 28x28 grey images, in order
/// assert_eq!(pixels.len(), 4 * 28 * 28);
/// assert_eq!(pixels, sampler.pixels(&[2, 0, 2, 6], 7)?);
/// # Ok::<(), cdcgan_model::Error>(())
/// ```
#[derive(Debug)]
pub struct Sampler {
    generator: Generator,
    z_dim: usize,
}

impl Sampler {
    /// Images generated per forward pass: every request runs this many at a time, so its peak
    /// memory does not grow with the count (a chunk of `dcgan28`'s activations is about
    /// 200 MB).
    pub const CHUNK: usize = 1000;

    /// The generator of any checkpoint (a training state or a generator file), its EMA
    /// weights when `prefer_ema` and present.
    pub fn from_checkpoint(ckpt: &Checkpoint, prefer_ema: bool) -> Result<Self> {
        Ok(Self {
            generator: generator_from_checkpoint(ckpt, prefer_ema, &Device::Cpu)?,
            z_dim: ckpt.config().z_dim,
        })
    }

    /// The size of a noise vector.
    pub fn z_dim(&self) -> usize {
        self.z_dim
    }

    /// Noise `[n, z_dim]` from `rng`.
    pub fn noise(&self, rng: &mut ChaCha8Rng, n: usize) -> Result<Tensor> {
        noise(rng, n, self.z_dim, &Device::Cpu)
    }

    /// Images `[n, 1, 28, 28]` in `[-1, 1]` for noise `[n, z_dim]` and class labels 0-9,
    /// [`Sampler::CHUNK`] at a time.
    pub fn generate(&self, z: &Tensor, labels: &[u8]) -> Result<Tensor> {
        if let Some(bad) = labels.iter().find(|&&l| usize::from(l) >= NUM_CLASSES) {
            return Err(Error::Request(format!("label {bad} is not a digit 0-9")));
        }
        if z.dim(0)? != labels.len() {
            return Err(Error::Request(format!(
                "{} noise vectors for {} labels",
                z.dim(0)?,
                labels.len()
            )));
        }
        let mut parts = Vec::new();
        for (i, chunk) in labels.chunks(Self::CHUNK).enumerate() {
            let y: Vec<u32> = chunk.iter().map(|&l| u32::from(l)).collect();
            let y = Tensor::from_vec(y, chunk.len(), &Device::Cpu)?;
            let z = z.narrow(0, i * Self::CHUNK, chunk.len())?;
            parts.push(self.generator.forward_t(&z, &y, false)?);
        }
        if parts.is_empty() {
            let shape = (0, 1, IMAGE_SIDE, IMAGE_SIDE);
            return Ok(Tensor::zeros(shape, candle_core::DType::F32, &Device::Cpu)?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// Generates `n` digits, digit `i` of class `label(i)`, [`Sampler::CHUNK`] at a time,
    /// noise drawn in order from `rng` (the same noise as one draw of `n`);
    /// `each(first, images)` gets digits `first..` as `[k, 1, 28, 28]` in `[-1, 1]`.
    pub fn generate_each<E: From<Error>>(
        &self,
        n: usize,
        label: impl Fn(usize) -> u8,
        rng: &mut ChaCha8Rng,
        mut each: impl FnMut(usize, Tensor) -> Result<(), E>,
    ) -> Result<(), E> {
        for first in (0..n).step_by(Self::CHUNK) {
            let k = Self::CHUNK.min(n - first);
            let z = self.noise(rng, k)?;
            let labels: Vec<u8> = (first..first + k).map(&label).collect();
            each(first, self.generate(&z, &labels)?)?;
        }
        Ok(())
    }

    /// One digit per label as 8-bit pixels (white on black, 28x28 row-major, one image after
    /// another), noise from `seed`.
    pub fn pixels(&self, labels: &[u8], seed: u64) -> Result<Vec<u8>> {
        let mut pixels = Vec::with_capacity(labels.len() * IMAGE_SIDE * IMAGE_SIDE);
        self.generate_each(
            labels.len(),
            |i| labels[i],
            &mut ChaCha8Rng::seed_from_u64(seed),
            |_, images| {
                pixels.extend(to_pixels(&images)?);
                Ok::<(), Error>(())
            },
        )?;
        Ok(pixels)
    }
}

/// Images `[k, 1, 28, 28]` in `[-1, 1]` as 8-bit pixels (`-1` black, `1` white; values
/// outside the range are clamped, and NaN is black).
pub fn to_pixels(images: &Tensor) -> Result<Vec<u8>> {
    let values: Vec<f32> = images.flatten_all()?.to_vec1()?;
    Ok(values
        .into_iter()
        // `as u8` saturates, and takes NaN to 0.
        .map(|v| ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Gan, ModelConfig};

    fn tiny() -> Sampler {
        let gan = Gan::new(ModelConfig::tiny(), 0, &Device::Cpu).unwrap();
        let mut ckpt = Checkpoint::new(*gan.config());
        gan.export(&mut ckpt, "");
        Sampler::from_checkpoint(&ckpt, true).unwrap()
    }

    #[test]
    fn chunked_drawing_matches_one_pass_and_seeds_repeat() {
        let sampler = tiny();
        let n = Sampler::CHUNK + 3;
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let pixels = sampler.pixels(&labels, 5).unwrap();
        assert_eq!(pixels.len(), n * IMAGE_SIDE * IMAGE_SIDE);
        // The same noise drawn at once, through the generator in one pass.
        let z = sampler.noise(&mut ChaCha8Rng::seed_from_u64(5), n).unwrap();
        let y = Tensor::from_vec(
            labels.iter().map(|&l| u32::from(l)).collect(),
            n,
            &Device::Cpu,
        );
        let once = sampler.generator.forward_t(&z, &y.unwrap(), false).unwrap();
        assert_eq!(pixels, to_pixels(&once).unwrap());
        assert_ne!(pixels, sampler.pixels(&labels, 6).unwrap());
        assert!(sampler.pixels(&[], 5).unwrap().is_empty());
    }

    #[test]
    fn bad_requests_are_errors() {
        let sampler = tiny();
        let err = sampler.pixels(&[3, 10], 0).unwrap_err().to_string();
        assert!(err.contains("label 10"), "{err}");
        let z = sampler.noise(&mut ChaCha8Rng::seed_from_u64(0), 2).unwrap();
        let err = sampler.generate(&z, &[1]).unwrap_err().to_string();
        assert!(err.contains("2 noise vectors for 1 labels"), "{err}");
    }
}
