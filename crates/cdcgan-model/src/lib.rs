//! A conditional DCGAN for 28x28 digits on candle: G(z, y) draws digit y, D(x, y) judges it.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use cdcgan_model::{Gan, ModelConfig, noise};
//! use rand::SeedableRng;
//!
//! let device = Device::Cpu;
//! let gan = Gan::new(ModelConfig::dcgan28(), 0, &device)?;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
//! let z = noise(&mut rng, 4, gan.config().z_dim, &device)?;
//! let y = Tensor::new(&[2u32, 0, 2, 6], &device)?;
//! let digits = gan.generator.forward_t(&z, &y, false)?; // [4, 1, 28, 28] in [-1, 1]
//! # assert_eq!(digits.dims(), &[4, 1, 28, 28]);
//! # Ok::<(), cdcgan_model::Error>(())
//! ```
//!
//! - [`ModelConfig`]: the `dcgan28` knobs (z size, widths, label input) and a tiny variant.
//! - [`Generator`], [`Discriminator`]: the networks; [`Gan`]: both with their parameters.
//! - The layers and kernels under them are [`cdcgan_nn`]'s (fast CPU convolutions with
//!   backward passes).
//! - [`Sampler`]: a trained generator ready to draw seeded digits as tensors or pixels.
//! - [`Checkpoint`]: safetensors with the config in the metadata, PyTorch-compatible names.

mod checkpoint;
mod config;
mod error;
mod gan;
pub mod meta;
mod networks;
mod sampler;

pub use checkpoint::{
    Checkpoint, FORMAT_VERSION, MAX_HEADER_BYTES, META_ARCH, META_FORMAT, META_MODEL, META_SHA256,
};
#[cfg(feature = "clap")]
pub use config::ModelFlags;
pub use config::{ARCH, IMAGE_SIDE, LabelInput, ModelConfig, NUM_CLASSES};
pub use error::{Error, Result};
pub use gan::{
    DISC, GEN, Gan, Net, generator_checkpoint, generator_from_checkpoint, is_buffer, noise,
    normal_vec, sorted_vars,
};
pub use networks::{Discriminator, Generator, one_hot};
pub use sampler::{Sampler, to_pixels};
