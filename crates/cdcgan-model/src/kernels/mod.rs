//! Fast CPU kernels for the layers of `dcgan28`, as candle custom ops with backward passes.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use cdcgan_model::kernels;
//!
//! let x = Tensor::randn(0f32, 1., (2, 3, 8, 8), &Device::Cpu)?;
//! let w = Tensor::randn(0f32, 1., (5, 3, 4, 4), &Device::Cpu)?;
//! let y = kernels::conv2d(&x, &w, 2, 1)?; // stride 2, padding 1
//! assert_eq!(y.dims(), &[2, 5, 4, 4]);
//! let stock = x.conv2d(&w, 1, 2, 1, 1)?;
//! let diff = (y - stock)?.abs()?.max_all()?.to_scalar::<f32>()?;
//! assert!(diff < 1e-4);
//! # Ok::<(), candle_core::Error>(())
//! ```
//!
//! Three convolution kernels cover a convolution and its transpose, forward and backward:
//!
//! | kernel        | computes                          | used for                                  |
//! |---------------|-----------------------------------|-------------------------------------------|
//! | `Conv`        | `y = W ⋆ x`                       | conv forward, transposed-conv input grad  |
//! | `ConvData`    | `x = Wᵀ ⋆ y` (col2im, no zeros)   | conv input grad, transposed-conv forward  |
//! | `ConvWeight`  | `dW = dy ⋆ x` summed over images  | the weight gradient of both               |
//!
//! Each works on a chunk of images at once (columns of several images side by side) so the
//! gemm is large enough to run near peak, and splits the batch across rayon's threads.
//! Scratch buffers are thread-local and reused between calls. Convolutions with a 4x4
//! kernel, stride 2, padding 1 and at least 16 channels a side (`dcgan28`'s deconv1 and conv2)
//! take Winograd F(4x4, 2x2) instead of im2col in all three kernels: about half the
//! multiply-adds.
//!
//! [`batch_norm`] normalises with batch or running statistics and applies the following
//! activation in the same pass; its backward is two passes over the batch.
//!
//! Any other device or dtype falls back to candle's own ops, so GPU builds keep working;
//! [`set_fast_kernels`] switches the fast path off for comparisons.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{CpuStorage, DType, Layout, Tensor};

mod act;
mod conv;
mod norm;

pub use act::{Activation, gather_add_act};
pub use conv::{conv_transpose2d, conv2d};
pub use norm::{batch_norm, channel_stats};

type CResult<T> = candle_core::Result<T>;

static FAST: AtomicBool = AtomicBool::new(true);

/// Turns the fast CPU kernels on (the default) or off for the whole process; off means
/// candle's stock ops everywhere, which is what benchmarks compare against.
pub fn set_fast_kernels(on: bool) {
    FAST.store(on, Ordering::Relaxed);
}

/// Whether the fast CPU kernels are on.
pub fn fast_kernels() -> bool {
    FAST.load(Ordering::Relaxed)
}

pub(crate) fn fast_path(x: &Tensor, w: &Tensor) -> bool {
    fast_kernels() && x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32
}

/// Splits `n` images into one contiguous range per worker; returns (images per task, gemm threads).
pub(crate) fn split(n: usize) -> (usize, usize) {
    let threads = rayon::current_num_threads().max(1);
    let tasks = threads.min(n).max(1);
    let gemm_threads = if tasks < threads { threads } else { 1 };
    (n.div_ceil(tasks).max(1), gemm_threads)
}

/// The f32 values a contiguous layout covers, for a custom op's `cpu_fwd`; `what` names the
/// operand in the error otherwise.
pub fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> CResult<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((start, end))) => Ok(&v[start..end]),
        (CpuStorage::F32(_), None) => candle_core::bail!("{what}: expects a contiguous tensor"),
        _ => candle_core::bail!("{what}: expects f32 data"),
    }
}

/// [`contiguous_f32`] for the storage an in-place op writes.
pub fn contiguous_f32_mut<'a>(
    s: &'a mut CpuStorage,
    l: &Layout,
    what: &str,
) -> CResult<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((start, end))) => Ok(&mut v[start..end]),
        (CpuStorage::F32(_), None) => candle_core::bail!("{what}: expects a contiguous tensor"),
        _ => candle_core::bail!("{what}: expects f32 data"),
    }
}

pub(crate) fn dims4(l: &Layout, what: &str) -> CResult<(usize, usize, usize, usize)> {
    l.shape().dims4().map_err(|_| {
        candle_core::Error::Msg(format!("{what}: expects a 4-d tensor, got {:?}", l.dims()))
    })
}
