//! Process set-up for fast CPU training with candle, done once at the start of `main`.
//!
//! ```
//! // SAFETY: first thing in `main`, before any other thread starts.
//! unsafe { cdcgan_nn::runtime::shorten_candle_spin() };
//! ```
//!
//! With the `mimalloc` feature, [`keep_freed_memory`] also tunes mimalloc, which a binary
//! sets up as its global allocator:
//!
//! ```text
//! #[global_allocator]
//! static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
//!
//! fn main() {
//!     cdcgan_nn::runtime::keep_freed_memory();
//! }
//! ```
//!
//! Candle allocates a fresh buffer per op; glibc's malloc hands large ones back to the kernel
//! at once, so every training step pays page faults that mimalloc, kept from purging, avoids.

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

/// Tells mimalloc (the process's global allocator) never to hand freed memory back to the OS.
/// Candle frees and allocates the same large buffers every step; each page handed back costs
/// a fault and a clearing when it returns (about 4% of a training step at batch 64). Keeping
/// them costs 10-70 MiB of RSS. Without mimalloc as the global allocator it changes nothing.
#[cfg(feature = "mimalloc")]
pub fn keep_freed_memory() {
    // `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (v2 and v3); -1 never purges.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets one option; mimalloc reads its options at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
