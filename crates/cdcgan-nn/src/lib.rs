//! Fast CPU layers for [candle](https://github.com/huggingface/candle): convolutions,
//! transposed convolutions, BatchNorm, spectral normalisation and Adam, each a candle op with
//! its backward pass, written for small-image networks (GANs, classifiers) trained on a few
//! cores. On the 28x28 DCGAN of `cdcgan` a training step runs 1.1-1.6x PyTorch's speed on
//! two cores, where candle's own ops run several times slower.
//!
//! A small CNN trained with its layers and Adam:
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use cdcgan_nn::kernels::Activation;
//! use cdcgan_nn::layers::{ConvConfig, conv2d};
//! use cdcgan_nn::{Adam, AdamConfig};
//!
//! // Tell 8x8 images lit in their top half from ones lit in their bottom half.
//! let dev = Device::Cpu;
//! let (on, off) = (Tensor::ones((1, 1, 4, 8), DType::F32, &dev)?, Tensor::zeros((1, 1, 4, 8), DType::F32, &dev)?);
//! let x = Tensor::cat(&[Tensor::cat(&[&on, &off], 2)?, Tensor::cat(&[&off, &on], 2)?], 0)?;
//! let y = Tensor::new(&[0u32, 1], &dev)?;
//!
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
//! let conv = conv2d(1, 4, 4, ConvConfig { stride: 2, padding: 1 }, vb.pp("conv"))?;
//! let fc = candle_nn::linear(4 * 4 * 4, 2, vb.pp("fc"))?;
//! let mut vars: Vec<_> = varmap.data().lock().unwrap().clone().into_iter().collect();
//! vars.sort_by(|a, b| a.0.cmp(&b.0));
//! let mut adam = Adam::new(vars, AdamConfig { lr: 1e-2, ..AdamConfig::default() })?;
//!
//! let loss = |x: &Tensor| -> candle_core::Result<Tensor> {
//!     let h = conv.forward_act(x, Activation::LeakyRelu(0.2))?.flatten_from(1)?;
//!     candle_nn::loss::cross_entropy(&fc.forward(&h)?, &y)
//! };
//! for _ in 0..100 {
//!     adam.step(&loss(&x)?.backward()?)?;
//! }
//! assert!(loss(&x)?.to_scalar::<f32>()? < 0.05);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`kernels`]: the ops themselves (convolutions by Winograd F(4x4, 2x2) or im2col + gemm,
//!   BatchNorm and bias fused with their activation, spectral normalisation), with candle's
//!   stock ops as the fallback on other devices and dtypes.
//! - [`layers`]: modules over them shaped like candle-nn's, built from a `VarBuilder`.
//! - [`Adam`]: PyTorch's update rule in in-place passes, its state as named tensors;
//!   [`moving_average`] for EMA weights.
//! - [`file`](mod@file): safetensors files read within bounds, written atomically and deterministically,
//!   with a checksum of their tensors.
//! - [`runtime`]: process set-up for candle on a few cores (thread-pool spin, allocator).

pub mod adam;
mod error;
pub mod file;
pub mod kernels;
pub mod layers;
pub mod runtime;

pub use adam::{Adam, AdamConfig, moving_average};
pub use error::{Error, Result};
