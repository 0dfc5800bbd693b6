//! Speed of `dcgan28` on this machine, as one JSON line: training steps per batch size for the
//! plain DCGAN (`train_bN_img_s`, the recipe PyTorch's reference implements) and for the
//! default recipe (`train_sngan_bN_img_s`: spectral norm and projection in D), generation,
//! per-layer forward/backward times and peak memory. `cargo xtask bench` runs
//! it (in release) beside the PyTorch reference and prints the comparison.
//!
//! ```text
//! cargo run --release -p cdcgan-train --example bench -- [--stock] [--steps 20]
//!     [--batches 32,64,128] [--recipes dcgan,sngan] [--layers]
//! ```
//! `--stock` uses candle's own convolution ops instead of the fast kernels.

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use cdcgan_model::{Gan, ModelConfig, noise};
use cdcgan_nn::kernels::{self, Activation};
use cdcgan_nn::runtime;
use cdcgan_train::{Preset, Trainer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

// Candle allocates a fresh buffer per op; glibc's malloc hands large ones back to the
// kernel at once, so every step pays page faults. mimalloc keeps them.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// D's activation.
const LEAKY: Activation = Activation::LeakyRelu(0.2);

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    stock: bool,
    steps: usize,
    batches: Vec<usize>,
    layers: bool,
    recipes: Vec<String>,
}

fn parse() -> Res<Args> {
    let mut args = Args {
        stock: false,
        steps: 20,
        batches: vec![32, 64, 128],
        layers: false,
        recipes: vec!["dcgan".into(), "sngan".into()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--stock" => args.stock = true,
            "--layers" => args.layers = true,
            "--steps" => args.steps = it.next().ok_or("--steps needs a value")?.parse()?,
            "--batches" => args.batches = list(it.next(), "--batches")?,
            "--recipes" => args.recipes = list(it.next(), "--recipes")?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(args)
}

/// The comma-separated values given to `flag`.
fn list<T: std::str::FromStr>(value: Option<String>, flag: &str) -> Res<Vec<T>>
where
    T::Err: std::error::Error + 'static,
{
    let value = value.ok_or(format!("{flag} needs a value"))?;
    Ok(value.split(',').map(str::parse).collect::<Result<_, _>>()?)
}

/// Median seconds of `reps` runs of `f` after `warm` unmeasured ones.
fn median_secs(warm: usize, reps: usize, mut f: impl FnMut() -> Res<()>) -> Res<f64> {
    for _ in 0..warm {
        f()?;
    }
    let mut ts = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        ts.push(t.elapsed().as_secs_f64());
    }
    ts.sort_by(f64::total_cmp);
    Ok(ts[ts.len() / 2])
}

/// Peak resident memory of this process in MiB (Linux), or `null`.
fn peak_rss_mib() -> Value {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(Value::Null, |kb| json!((kb / 1024.0).round()))
}

fn batch(rng: &mut ChaCha8Rng, b: usize, dev: &Device) -> Res<(Tensor, Tensor)> {
    let images = noise(rng, b, 784, dev)?.tanh()?.reshape((b, 1, 28, 28))?;
    let labels = Tensor::from_vec((0..b as u32).map(|i| i % 10).collect(), b, dev)?;
    Ok((images, labels))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Forward and backward milliseconds of one layer at batch 128.
fn layer(
    name: &str,
    x_shape: &[usize],
    w_shape: &[usize],
    f: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
    reps: usize,
) -> Res<Value> {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., x_shape, &dev)?)?;
    let w = Var::from_tensor(&(Tensor::randn(0f32, 1., w_shape, &dev)? * 0.02)?)?;
    let fwd = median_secs(1, reps, || {
        f(x.as_tensor(), w.as_tensor())?;
        Ok(())
    })?;
    let y = f(x.as_tensor(), w.as_tensor())?;
    let r = Tensor::randn(0f32, 1., y.dims(), &dev)?;
    let loss = (&y * &r)?.sum_all()?;
    let bwd = median_secs(1, reps, || {
        loss.backward()?;
        Ok(())
    })?;
    Ok(json!({"layer": name, "fwd_ms": round1(fwd * 1e3), "bwd_ms": round1(bwd * 1e3)}))
}

fn main() -> Res<()> {
    // As the `cdcgan` binary does.
    runtime::keep_freed_memory();
    // SAFETY: first thing in `main`: no other thread exists yet.
    unsafe { runtime::size_candle_pool(rayon_threads()) };
    let args = parse()?;
    kernels::set_fast_kernels(!args.stock);
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut out = serde_json::Map::new();
    out.insert(
        "kernels".into(),
        json!(if args.stock { "candle" } else { "cdcgan" }),
    );
    out.insert("threads".into(), json!(rayon_threads()));
    for (preset, key) in [(Preset::Dcgan, "train"), (Preset::Sngan, "train_sngan")] {
        if !args.recipes.iter().any(|r| *r == preset.to_string()) {
            continue;
        }
        for &b in &args.batches {
            let mut trainer = Trainer::new(preset.config(), &dev)?;
            let (images, labels) = batch(&mut rng, b, &dev)?;
            let t = median_secs(2, args.steps, || {
                trainer.step(&images, &labels)?;
                Ok(())
            })?;
            out.insert(format!("{key}_b{b}_img_s"), json!(round1(b as f64 / t)));
        }
    }
    let n = 1000;
    let gan = Gan::new(ModelConfig::dcgan28(), 0, &dev)?;
    let z = noise(&mut rng, n, 100, &dev)?;
    let y = Tensor::from_vec((0..n as u32).map(|i| i % 10).collect(), n, &dev)?;
    let t = median_secs(1, args.steps.clamp(1, 5), || {
        gan.generator.forward_t(&z, &y, false)?;
        Ok(())
    })?;
    out.insert("generate_img_s".into(), json!(round1(n as f64 / t)));
    out.insert("peak_rss_mib".into(), peak_rss_mib());
    if args.layers {
        let reps = args.steps.clamp(1, 10);
        let b = 128;
        let per_class = (Tensor::randn(0f32, 1., (10, 64, 14, 14), &dev)? * 0.1)?;
        let labels = Tensor::from_vec((0..b as u32).map(|i| i % 10).collect(), b, &dev)?;
        let layers = vec![
            layer(
                "G deconv1 256->128 7->14",
                &[b, 256, 7, 7],
                &[256, 128, 4, 4],
                |x, w| kernels::conv_transpose2d(x, w, 2, 1, 0),
                reps,
            )?,
            layer(
                "G deconv2 128->1 14->28",
                &[b, 128, 14, 14],
                &[128, 1, 4, 4],
                |x, w| kernels::conv_transpose2d(x, w, 2, 1, 0),
                reps,
            )?,
            // As the model runs it: the image alone through conv1, then the label planes'
            // response (one map per class) gathered by label, added, and LeakyReLU.
            layer(
                "D conv1 1->64 28->14 + label gather",
                &[b, 1, 28, 28],
                &[64, 1, 4, 4],
                |x, w| {
                    let h = kernels::conv2d(x, w, 2, 1)?;
                    kernels::gather_add_act(&h, &per_class, &labels, LEAKY)
                },
                reps,
            )?,
            layer(
                "D conv2 64->128 14->7",
                &[b, 64, 14, 14],
                &[128, 64, 4, 4],
                |x, w| kernels::conv2d(x, w, 2, 1),
                reps,
            )?,
        ];
        out.insert("layers_b128".into(), Value::Array(layers));
    }
    println!("{}", Value::Object(out));
    Ok(())
}

/// The pools' thread count: `$RAYON_NUM_THREADS`, else the physical cores (candle's rule).
fn rayon_threads() -> usize {
    candle_core::utils::get_num_threads()
}
