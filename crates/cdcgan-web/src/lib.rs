//! The cdcgan generator for the browser: load the weights, ask for digits, get pixels.
//!
//! ```
//! let weights = std::fs::read("../../assets/generator.safetensors").unwrap();
//! let g = cdcgan_web::DigitGenerator::new(&weights).unwrap();
//! let pixels = g.generate(&[2, 0, 2, 6], 0).unwrap(); // four 28x28 grey images, in order
//! assert_eq!(pixels.len(), 4 * 28 * 28);
//! ```

use candle_core::Device;
use cdcgan_model::{Checkpoint, Sampler};
use wasm_bindgen::prelude::*;

/// A loaded generator.
#[wasm_bindgen]
pub struct DigitGenerator {
    sampler: Sampler,
}

#[wasm_bindgen]
impl DigitGenerator {
    /// Loads a generator (or training) checkpoint from its safetensors bytes.
    #[wasm_bindgen(constructor)]
    pub fn new(weights: &[u8]) -> Result<DigitGenerator, Error> {
        let ckpt = Checkpoint::from_bytes(weights, "generator.safetensors", &Device::Cpu)?;
        Ok(Self {
            sampler: Sampler::from_checkpoint(&ckpt, true)?,
        })
    }

    /// One 28x28 image per label (0-9), white on black, row-major bytes one after another.
    /// Noise comes from `seed` exactly as `cdcgan number --seed` draws it, so the same seed
    /// writes the same digits here and on the command line.
    pub fn generate(&self, labels: &[u8], seed: u64) -> Result<Vec<u8>, Error> {
        Ok(self.sampler.pixels(labels, seed)?)
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

impl From<Error> for JsValue {
    fn from(e: Error) -> Self {
        JsError::new(&e.0).into()
    }
}
