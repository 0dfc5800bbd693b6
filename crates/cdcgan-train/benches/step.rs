//! One `dcgan28` training step at batch 128 (the plain DCGAN) and at batch 32 (the default
//! recipe: spectral norm and projection in D), and generator inference at batch 1000 (CPU).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use candle_core::{Device, Tensor};
use cdcgan_model::{Gan, ModelConfig, noise};
use cdcgan_train::{Preset, Trainer};
use criterion::{Criterion, Throughput, criterion_group};
use rand::SeedableRng;

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);

    let mut g = c.benchmark_group("dcgan28");
    g.sample_size(10);
    for (preset, b, name) in [
        (Preset::Dcgan, 128, "train-step-b128"),
        (Preset::Sngan, 32, "train-step-sngan-b32"),
    ] {
        let mut trainer = Trainer::new(preset.config(), &dev).expect("valid preset");
        let images = noise(&mut rng, b, 784, &dev)
            .and_then(|t| Ok(t.tanh()?.reshape((b, 1, 28, 28))?))
            .expect("images");
        let labels =
            Tensor::from_vec((0..b as u32).map(|i| i % 10).collect(), b, &dev).expect("labels");
        g.throughput(Throughput::Elements(b as u64));
        g.bench_function(name, |bench| {
            bench.iter(|| trainer.step(&images, &labels).expect("step"))
        });
    }

    let n = 1000;
    let gan = Gan::new(ModelConfig::dcgan28(), 0, &dev).expect("model");
    let z = noise(&mut rng, n, 100, &dev).expect("noise");
    let y = Tensor::from_vec((0..n as u32).map(|i| i % 10).collect(), n, &dev).expect("labels");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("generate-b1000", |bench| {
        bench.iter(|| gan.generator.forward_t(&z, &y, false).expect("forward"))
    });
    g.finish();
}

criterion_group!(benches, bench);

/// `criterion_main!` with candle's element-wise pool sized first, as the `cdcgan` binary and
/// `cargo xtask bench` run it.
fn main() {
    let threads = candle_core::utils::get_num_threads();
    // SAFETY: first thing in `main`: no other thread exists yet.
    unsafe { cdcgan_nn::runtime::size_candle_pool(threads) };
    benches();
    Criterion::default().configure_from_args().final_summary();
}
