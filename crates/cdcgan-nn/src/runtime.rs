//! Process set-up for fast CPU training with candle, done once at the start of `main`.
//!
//! ```
//! // SAFETY: first thing in `main`, before any other thread starts.
//! let threads = candle_core::utils::get_num_threads();
//! unsafe { cdcgan_nn::runtime::size_candle_pool(threads) };
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

/// Sizes candle's element-wise thread pool for `threads` kernel threads (rayon's pool), unless
/// the environment already sets `CANDLE_NUM_THREADS` or `CANDLE_BARRIER_POOL_SPIN_LIMIT`.
///
/// candle runs its element-wise ops on a pool of its own: the calling thread plus
/// `threads - 1` workers, each spinning after an op before it sleeps, on the same cores as the
/// kernels' pool.
/// - On one or two threads the pool is the calling thread alone (`CANDLE_NUM_THREADS=1`):
///   its one worker, woken for every element-wise op and spinning beside the kernels' two
///   workers, cost more than it saved. Default-recipe steps at batch 32 ran 1.23x faster on
///   the 2-core Intel Xeon (docs/benchmarks.md).
/// - On more threads the workers stay, with their spin shortened from 25,000 rounds to 1,000
///   (`CANDLE_BARRIER_POOL_SPIN_LIMIT`): the long spin was 14% of a batch-64 step on a 2-core
///   AMD EPYC.
///
/// Returns the variable set and its value, or `None` when the environment already chose.
///
/// # Safety
/// It sets an environment variable, so no other thread may be running (reading or writing
/// the environment); call it at the start of `main`, before candle's pool starts.
pub unsafe fn size_candle_pool(threads: usize) -> Option<(&'static str, &'static str)> {
    let set = candle_pool_setting(threads, |var| std::env::var_os(var).is_some())?;
    // SAFETY: the caller guarantees no other thread is running.
    unsafe { std::env::set_var(set.0, set.1) };
    Some(set)
}

/// The variable [`size_candle_pool`] sets for `threads`, or `None` if `is_set` says the
/// environment already has one of the two.
fn candle_pool_setting(
    threads: usize,
    is_set: impl Fn(&str) -> bool,
) -> Option<(&'static str, &'static str)> {
    const THREADS: &str = "CANDLE_NUM_THREADS";
    const SPIN: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if is_set(THREADS) || is_set(SPIN) {
        None
    } else if threads <= 2 {
        Some((THREADS, "1"))
    } else {
        Some((SPIN, "1000"))
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

#[cfg(test)]
mod tests {
    use super::candle_pool_setting;

    #[test]
    fn two_threads_get_no_candle_worker_more_get_a_short_spin_the_environment_wins() {
        let unset = |_: &str| false;
        for threads in [1, 2] {
            assert_eq!(
                candle_pool_setting(threads, unset),
                Some(("CANDLE_NUM_THREADS", "1"))
            );
        }
        for threads in [3, 8, 64] {
            assert_eq!(
                candle_pool_setting(threads, unset),
                Some(("CANDLE_BARRIER_POOL_SPIN_LIMIT", "1000"))
            );
        }
        for var in ["CANDLE_NUM_THREADS", "CANDLE_BARRIER_POOL_SPIN_LIMIT"] {
            assert_eq!(candle_pool_setting(2, |v: &str| v == var), None);
            assert_eq!(candle_pool_setting(8, |v: &str| v == var), None);
        }
    }
}
