//! G and D under rayon pools larger and smaller than the machine: no panic at any batch size,
//! bit-identical results for one pool size, and results within float tolerance of one thread's
//! for every other.
//!
//! A pool with more threads than a batch has images takes the path that once panicked
//! ("RefCell already borrowed"): the kernels give each image's gemm several threads, a worker
//! waiting inside that gemm steals another image's task, and that task took the thread's
//! scratch buffers a second time. The pools are built with `ThreadPoolBuilder`, so this runs
//! on two cores as on sixty-four.

use candle_core::{Device, Tensor};
use cdcgan_model::{Gan, LabelInput, ModelConfig, Net};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Narrow, but wide enough (16 channels a side) that deconv1 and conv2 take the Winograd
/// kernels, while deconv2 and conv1 take im2col: both scratch users are exercised.
fn config() -> ModelConfig {
    ModelConfig {
        z_dim: 16,
        gen_width: 16,
        disc_width: 16,
        label_input: LabelInput::OneHot,
        ..ModelConfig::dcgan28()
    }
}

/// Everything one pass computes, flattened: G's images, D's logits, and (with `backward`) the
/// gradient of every parameter of both networks.
fn pass(gan: &Gan, b: usize, train: bool, backward: bool) -> Vec<Vec<f32>> {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(b as u64);
    let z = cdcgan_model::noise(&mut rng, b, gan.config().z_dim, &dev).unwrap();
    let labels = Tensor::from_vec((0..b as u32).map(|i| i % 10).collect(), b, &dev).unwrap();
    let images = gan.generator.forward_t(&z, &labels, train).unwrap();
    let logits = gan
        .discriminator
        .forward_t(&images, &labels, train)
        .unwrap();
    let mut out = vec![flat(&images), flat(&logits)];
    if backward {
        let grads = logits.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        for net in [Net::Generator, Net::Discriminator] {
            for (name, var) in gan.params(net) {
                let g = grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("no gradient for {name}"));
                out.push(flat(g));
            }
        }
    }
    out
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// `got` within `tol` of `want`, relative to the largest magnitude of `want` (gradients
/// summed in another order differ by rounding; elements near zero are judged by the scale).
fn assert_close(want: &[Vec<f32>], got: &[Vec<f32>], tol: f32, what: &str) {
    assert_eq!(want.len(), got.len(), "{what}");
    for (k, (w, g)) in want.iter().zip(got).enumerate() {
        assert_eq!(w.len(), g.len(), "{what}, output {k}");
        let scale = w.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        for (a, b) in w.iter().zip(g) {
            assert!(
                (a - b).abs() <= tol * scale,
                "{what}, output {k}: {b} vs {a} (scale {scale})"
            );
        }
    }
}

/// Eval-mode G then D at the batch sizes of the reported crash, hundreds of times under
/// pools larger than those batches.
#[test]
fn eval_forward_at_small_batches_never_panics_and_repeats_exactly() {
    let gan = Gan::new(config(), 1, &Device::Cpu).unwrap();
    let single = pool(1);
    for threads in [3, 8, 16] {
        let pool = pool(threads);
        for b in [1, 2, 3, 4, 6] {
            let want = single.install(|| pass(&gan, b, false, false));
            let first = pool.install(|| pass(&gan, b, false, false));
            assert_close(
                &want,
                &first,
                1e-5,
                &format!("{threads} threads, batch {b}"),
            );
            for _ in 0..60 {
                let again = pool.install(|| pass(&gan, b, false, false));
                assert!(
                    again == first,
                    "{threads} threads, batch {b}: not repeatable"
                );
            }
        }
    }
}

/// Train and eval mode, forward and backward, at every batch size 1..=40, under pools of 1,
/// 3, 8 and 16 threads: each pool repeats its own result bit for bit and agrees with one
/// thread's to float tolerance.
#[test]
fn every_batch_size_under_every_pool_agrees_with_one_thread() {
    let gan = Gan::new(config(), 2, &Device::Cpu).unwrap();
    let pools: Vec<(usize, rayon::ThreadPool)> =
        [1, 3, 8, 16].into_iter().map(|t| (t, pool(t))).collect();
    for train in [false, true] {
        for b in 1..=40 {
            let want = pools[0].1.install(|| pass(&gan, b, train, true));
            for (threads, pool) in &pools[1..] {
                let what = format!("{threads} threads, batch {b}, train {train}");
                let first = pool.install(|| pass(&gan, b, train, true));
                assert_close(&want, &first, 1e-4, &what);
                let again = pool.install(|| pass(&gan, b, train, true));
                assert!(again == first, "{what}: not repeatable");
            }
        }
    }
}

/// The full-size `dcgan28` pair (the shapes users run), a few rounds at the batch sizes
/// below and around the pool sizes.
#[test]
fn dcgan28_under_large_pools() {
    let gan = Gan::new(ModelConfig::dcgan28(), 3, &Device::Cpu).unwrap();
    let want: Vec<_> = [1, 3, 5, 9, 17]
        .into_iter()
        .map(|b| pool(1).install(|| pass(&gan, b, true, true)))
        .collect();
    for threads in [8, 16] {
        let pool = pool(threads);
        for (want, b) in want.iter().zip([1, 3, 5, 9, 17]) {
            let got = pool.install(|| pass(&gan, b, true, true));
            assert_close(
                want,
                &got,
                1e-4,
                &format!("dcgan28, {threads} threads, {b}"),
            );
        }
    }
}
