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
//! activation in the same pass; its backward is two passes over the batch. [`add_bias`]
//! adds a per-channel bias and sums its gradient per channel in one pass.
//!
//! Any other device or dtype falls back to candle's own ops, so GPU builds keep working;
//! [`set_fast_kernels`] switches the fast path off for comparisons.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{CpuStorage, DType, Layout, Tensor};
use rayon::prelude::*;

mod act;
mod bias;
mod conv;
mod norm;

pub use act::{Activation, gather_add_act};
pub use bias::add_bias;
pub use conv::{conv_transpose2d, conv2d};
pub use norm::{batch_norm, channel_stats};

type CResult<T> = candle_core::Result<T>;

static FAST: AtomicBool = AtomicBool::new(true);

/// Turns the fast CPU kernels on (the default) or off for the whole process; off means
/// candle's stock ops everywhere, which is what benchmarks compare against.
pub fn set_fast_kernels(on: bool) {
    FAST.store(on, Ordering::Relaxed);
}

/// Shortens the spin of candle's element-wise thread pool to 1,000 rounds, unless the
/// environment already sets `CANDLE_BARRIER_POOL_SPIN_LIMIT`. After each op, its worker
/// spins 25,000 times (about 0.4 ms on a 2-core AMD EPYC) before sleeping, on the cores
/// that rayon's pool needs for the kernels here: 14% of a batch-64 training step of
/// `dcgan28`. 1,000 rounds still catch back-to-back ops; training steps ran 1.06-1.18x
/// faster at batches 32-128. The `cdcgan` binary calls it first thing.
///
/// # Safety
/// It sets an environment variable, so no other thread may be running (reading or
/// writing the environment); call it at the start of `main`, before candle's pool starts.
pub unsafe fn shorten_candle_spin() {
    const VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(VAR).is_none() {
        // SAFETY: the caller guarantees no other thread is running.
        unsafe { std::env::set_var(VAR, "1000") };
    }
}

/// Whether the fast CPU kernels are on.
pub fn fast_kernels() -> bool {
    FAST.load(Ordering::Relaxed)
}

pub(crate) fn fast_path(x: &Tensor, w: &Tensor) -> bool {
    fast_kernels() && x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32
}

/// `len` values made in parallel, `chunk` at a time: chunk `k` (from element `k·chunk`) takes
/// the values of `values(k)`, then `tail` follows. Each element is written once, where
/// `vec![0.0; len]` and a pass of writes would write it twice (a whole pass over memory for
/// an element-wise kernel).
///
/// # Panics
/// If `values(k)` yields fewer values than chunk `k` holds (a bug in the caller).
pub(crate) fn par_fill<I: Iterator<Item = f32>>(
    len: usize,
    chunk: usize,
    values: impl Fn(usize) -> I + Sync,
    tail: &[f32],
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len + tail.len());
    if len > 0 {
        out.spare_capacity_mut()[..len]
            .par_chunks_mut(chunk.max(1))
            .enumerate()
            .for_each(|(k, slots): (usize, &mut [MaybeUninit<f32>])| {
                let written = slots
                    .iter_mut()
                    .zip(values(k))
                    .map(|(slot, v)| *slot = MaybeUninit::new(v))
                    .count();
                assert_eq!(written, slots.len(), "par_fill: chunk {k} left unwritten");
            });
    }
    // SAFETY: every chunk of the first `len` elements was written in full (asserted above; a
    // failed assertion panics before this line), and the capacity holds `len`.
    unsafe { out.set_len(len) };
    out.extend_from_slice(tail);
    out
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

#[cfg(test)]
mod tests {
    use super::par_fill;

    #[test]
    fn par_fill_writes_every_chunk_then_the_tail() {
        // 10 elements in chunks of 4: the last chunk is short.
        let v = par_fill(
            10,
            4,
            |k| (0..4).map(move |i| (k * 4 + i) as f32),
            &[-1.0, -2.0],
        );
        let want: Vec<f32> = (0..10).map(|i| i as f32).chain([-1.0, -2.0]).collect();
        assert_eq!(v, want);
        assert_eq!(par_fill(0, 4, |_| std::iter::empty(), &[3.0]), vec![3.0]);
    }

    #[test]
    #[should_panic(expected = "left unwritten")]
    fn par_fill_refuses_a_chunk_left_short() {
        par_fill(
            8,
            4,
            |k| (0..if k == 1 { 3 } else { 4 }).map(|i| i as f32),
            &[],
        );
    }
}
