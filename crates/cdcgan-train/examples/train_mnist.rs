//! Trains `dcgan28` on MNIST and writes a run directory.
//!
//! ```sh
//! cargo run --release -p cdcgan-train --example train_mnist -- [DATA_DIR] [RUN_DIR] [EPOCHS]
//! ```
//!
//! DATA_DIR defaults to `$MNIST_DIR`, then `data/mnist`; RUN_DIR to `runs/example`; EPOCHS to 1.
//! An existing RUN_DIR is resumed.

use std::path::PathBuf;

use candle_core::Device;
use cdcgan_train::{EpochReport, Observer, Run, RunConfig, StepReport};

struct Print;

impl Observer for Print {
    fn on_step(&mut self, r: &StepReport) {
        if r.batch.is_multiple_of(50) {
            eprintln!(
                "epoch {}/{} batch {}/{}  d_loss {:.3}  g_loss {:.3}  {:.0} img/s",
                r.epoch,
                r.epochs,
                r.batch,
                r.batches,
                r.stats.d_loss,
                r.stats.g_loss,
                r.images_per_sec
            );
        }
    }
    fn on_epoch(&mut self, r: &EpochReport) {
        eprintln!(
            "epoch {} done in {:.0}s: d_loss {:.3} g_loss {:.3}; grid {}",
            r.epoch,
            r.seconds,
            r.mean.d_loss,
            r.mean.g_loss,
            r.grid.display()
        );
    }
}

// Large per-op buffers: mimalloc reuses them instead of faulting fresh pages every step.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    // The MNIST directory: the first argument, else $MNIST_DIR, else data/mnist.
    let data = args
        .next()
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("MNIST_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data/mnist"));
    let out = PathBuf::from(args.next().unwrap_or_else(|| "runs/example".into()));
    let epochs: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let mnist = mnist_data::Mnist::load(&data)?;
    let device = Device::Cpu;
    let mut run = if cdcgan_train::latest_state(&out)?.is_some() {
        Run::resume(&out, &device)?
    } else {
        let mut config = RunConfig::default();
        config.train.epochs = epochs;
        Run::create(&out, config, &device)?
    };
    run.train(&mnist.train, &mut Print)?;
    Ok(())
}
