//! The cdcgan generator for the browser: load the weights, ask for digits, get pixels.
//!
//! ```
//! let weights = std::fs::read("../../assets/generator.safetensors").unwrap();
//! let g = cdcgan_web::DigitGenerator::new(&weights).unwrap();
//! let pixels = g.generate(&[2, 0, 2, 6], 0).unwrap(); // four 28x28 grey images, in order
//! assert_eq!(pixels.len(), 4 * 28 * 28);
//! ```

use candle_core::{Device, Tensor};
use cdcgan_model::{Checkpoint, Generator, generator_from_checkpoint, noise};
use mnist_data::{NUM_CLASSES, signed_to_pixel};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use wasm_bindgen::prelude::*;

/// A loaded generator.
#[wasm_bindgen]
pub struct DigitGenerator {
    generator: Generator,
    z_dim: usize,
}

#[wasm_bindgen]
impl DigitGenerator {
    /// Loads a generator (or training) checkpoint from its safetensors bytes.
    #[wasm_bindgen(constructor)]
    pub fn new(weights: &[u8]) -> Result<DigitGenerator, Error> {
        let ckpt = Checkpoint::from_bytes(weights, "generator.safetensors", &Device::Cpu)?;
        Ok(Self {
            generator: generator_from_checkpoint(&ckpt, true, &Device::Cpu)?,
            z_dim: ckpt.config().z_dim,
        })
    }

    /// One 28x28 image per label (0-9), white on black, row-major bytes one after another.
    /// Noise comes from `seed` exactly as `cdcgan number --seed` draws it, so the same seed
    /// writes the same digits here and on the command line.
    pub fn generate(&self, labels: &[u8], seed: u64) -> Result<Vec<u8>, Error> {
        if let Some(bad) = labels.iter().find(|&&l| usize::from(l) >= NUM_CLASSES) {
            return Err(Error(format!("label {bad} is not a digit 0-9")));
        }
        if labels.is_empty() {
            return Ok(Vec::new());
        }
        let dev = Device::Cpu;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let z = noise(&mut rng, labels.len(), self.z_dim, &dev)?;
        let y: Vec<u32> = labels.iter().map(|&l| u32::from(l)).collect();
        let y = Tensor::from_vec(y, labels.len(), &dev)?;
        let images = self.generator.forward_t(&z, &y, false)?;
        let values: Vec<f32> = images.flatten_all()?.to_vec1()?;
        Ok(values.into_iter().map(signed_to_pixel).collect())
    }
}

/// A failure, shown to JavaScript as an exception with this message.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<cdcgan_model::Error> for Error {
    fn from(e: cdcgan_model::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<Error> for JsValue {
    fn from(e: Error) -> Self {
        JsError::new(&e.0).into()
    }
}
