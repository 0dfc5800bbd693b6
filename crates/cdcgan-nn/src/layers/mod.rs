//! Convolution, BatchNorm and spectral-norm layers on the fast kernels of [`crate::kernels`],
//! shaped like candle-nn's: a plain struct, a builder taking a `VarBuilder`, `impl Module`.
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use cdcgan_nn::layers::{conv2d, conv_transpose2d, ConvConfig};
//!
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let cfg = ConvConfig { stride: 2, padding: 1 };
//! let down = conv2d(1, 8, 4, cfg, vb.pp("down"))?;
//! let up = conv_transpose2d(8, 1, 4, cfg, vb.pp("up"))?;
//! let x = Tensor::zeros((3, 1, 28, 28), DType::F32, &Device::Cpu)?;
//! let h = down.forward(&x)?;
//! assert_eq!(h.dims(), &[3, 8, 14, 14]);
//! assert_eq!(up.forward(&h)?.dims(), &[3, 1, 28, 28]);
//! # Ok::<(), candle_core::Error>(())
//! ```
//!
//! Weights use PyTorch's layouts and names (`weight`, `bias`): `[out, in, k, k]` for a
//! convolution, `[in, out, k, k]` for a transposed one.

//!
//! - [`conv`]: [`Conv2d`], [`ConvTranspose2d`] and their builders.
//! - [`norm`]: [`BatchNorm`] and the class-conditional [`ClassBatchNorm`], each with its
//!   activation fused in.
//! - [`spectral`]: [`SpectralNorm`], the spectral normaliser of a weight.

pub mod conv;
pub mod norm;
pub mod spectral;

pub use conv::{
    Conv2d, ConvConfig, ConvTranspose2d, bias_act, conv_transpose2d, conv_transpose2d_no_bias,
    conv2d, conv2d_no_bias,
};
pub use norm::{BatchNorm, ClassBatchNorm, batch_norm, class_batch_norm};
pub use spectral::{SpectralNorm, spectral_norm};
