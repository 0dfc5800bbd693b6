//! `cdcgan`: train a conditional DCGAN on MNIST and generate handwritten digits on request.

mod eval;
mod generate;
mod plot;
mod train;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use cdcgan_model::ARCH;
use clap::{Parser, Subcommand};

use cdcgan_nn::runtime;
use cdcgan_train::Outcome;
use generate::{InterpolateOpts, NumberOpts, SampleOpts, load_sampler};

// candle allocates a fresh buffer per op; mimalloc reuses them instead of faulting in new
// pages every step (about 1.5x faster training than the system allocator here).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "A conditional DCGAN for MNIST: train it, then draw any digit or number",
    after_help = "Examples:\n  cdcgan sample --per-class 4\n  cdcgan number 2026 --out year.png\n  cdcgan train --epochs 20 --out runs/first"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Worker threads for every command (default: $RAYON_NUM_THREADS, else the physical
    /// cores). Results are bit-identical for one thread count; see README "Threads".
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
}

/// Sizes the thread pools: `threads`, else `$RAYON_NUM_THREADS`, else the physical cores
/// (candle's rule). The count is also written to `RAYON_NUM_THREADS`, which candle's own pool
/// reads, and candle's element-wise pool is sized for it (`runtime::size_candle_pool`).
///
/// # Safety
/// It sets an environment variable: no other thread may be running.
unsafe fn set_threads(threads: Option<u16>) -> Result<usize> {
    let n = threads.map_or_else(candle_core::utils::get_num_threads, usize::from);
    // SAFETY: the caller guarantees no other thread is running.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    // SAFETY: as above.
    unsafe { runtime::size_candle_pool(n) };
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| anyhow::anyhow!("cannot start {n} worker threads: {e}"))?;
    Ok(n)
}

#[derive(Subcommand)]
enum Command {
    /// Train on MNIST, writing samples, metrics and checkpoints to a run directory.
    ///
    /// Example: cdcgan train --epochs 20 --out runs/first
    ///
    /// Resume:  cdcgan train --resume runs/first
    Train(Box<train::TrainArgs>),
    /// Draw a grid of digits (row r = class r), or export a labelled IDX dataset.
    ///
    /// Example: cdcgan sample --per-class 8 --scale 2 --out grid.png
    ///
    /// One class: cdcgan sample --digit 7 --count 16
    ///
    /// Dataset:   cdcgan sample --format idx --count-per-class 6000 --out synthetic
    Sample(SampleOpts),
    /// Write a number as handwritten digits, side by side.
    ///
    /// Example: cdcgan number 241256 --invert --out number.png
    Number(NumberOpts),
    /// A latent walk: rows are the ten classes, columns move between two styles.
    ///
    /// Example: cdcgan interpolate --steps 10 --gif walk.gif
    Interpolate(InterpolateOpts),
    /// Measure generated digits: label accuracy, FID, intra-class FID, diversity (and CAS),
    /// each beside the same number for real digits.
    ///
    /// Example: cdcgan eval --data data/mnist
    ///
    /// A run:   cdcgan eval --dir runs/first
    Eval(eval::EvalArgs),
    /// Train the MNIST classifier that `eval` uses as its judge.
    ///
    /// Example: cdcgan train-classifier --out classifier.safetensors
    TrainClassifier(eval::TrainClassifierArgs),
    /// Print the architecture, config, position and tensors of a checkpoint.
    ///
    /// Example: cdcgan info runs/first/checkpoints/gen-epoch-001.safetensors
    Info {
        /// A checkpoint file (.safetensors).
        checkpoint: PathBuf,
    },
    /// Save the generator of a checkpoint or run (EMA weights when present) as a small file.
    ///
    /// Example: cdcgan export runs/first --f16 --out generator.safetensors
    Export {
        /// A training or generator checkpoint.
        checkpoint: PathBuf,
        /// Output file.
        #[arg(long, default_value = "generator.safetensors")]
        out: PathBuf,
        /// Store the weights as f16 (half the size).
        #[arg(long)]
        f16: bool,
        /// Take a training state's raw generator instead of its EMA weights.
        #[arg(long)]
        raw: bool,
    },
}

/// The directory `cargo xtask fetch-mnist` fills by default, and where MNIST is looked for
/// when neither `--data` nor `MNIST_DIR` says otherwise.
pub const DEFAULT_MNIST_DIR: &str = "data/mnist";

/// Where to look for MNIST: `explicit` (a `--data` flag), else `$MNIST_DIR`, else
/// [`DEFAULT_MNIST_DIR`].
pub fn mnist_dir(explicit: Option<&std::path::Path>) -> PathBuf {
    explicit
        .map(std::path::Path::to_owned)
        .or_else(|| std::env::var_os("MNIST_DIR").map(Into::into))
        .unwrap_or_else(|| DEFAULT_MNIST_DIR.into())
}

/// Loads MNIST from [`mnist_dir`]. mnist-data's errors name the missing or bad file and the
/// directory; a missing file also gets the way to fetch it.
pub fn load_mnist(data: Option<&std::path::Path>) -> Result<mnist_data::Mnist> {
    mnist_data::Mnist::load(mnist_dir(data)).map_err(|e| match e {
        mnist_data::Error::Missing { .. } => anyhow::anyhow!(
            "{e}; get the data with `cargo xtask fetch-mnist` or point --data / MNIST_DIR at it"
        ),
        e => e.into(),
    })
}

fn info(path: &std::path::Path) -> Result<()> {
    use std::fmt::Write as _;
    let ckpt = generate::load_checkpoint(path)?;
    let c = ckpt.config();
    let spectral_norm = match (c.spectral_norm, c.projection && !c.spectral_norm_proj) {
        (false, _) => "false",
        (true, false) => "true",
        (true, true) => "true (projection table left free)",
    };
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(s, "file:         {}", path.display());
    let _ = writeln!(s, "architecture: {ARCH}");
    let _ = writeln!(
        s,
        "model:        z_dim {}, gen_width {}, disc_width {}, label input {:?}, projection {}, \
         class norm {}, minibatch std {}, spectral norm {}",
        c.z_dim,
        c.gen_width,
        c.disc_width,
        c.label_input,
        c.projection,
        c.class_norm,
        c.minibatch_std,
        spectral_norm
    );
    for (k, v) in &ckpt.metadata {
        let key = format!("{}:", k.trim_start_matches(cdcgan_model::meta::PREFIX));
        let _ = writeln!(s, "{key:<13} {v}");
    }
    let total: usize = ckpt.tensors().values().map(|t| t.elem_count()).sum();
    let _ = writeln!(s, "tensors:      {} ({total} values)", ckpt.tensors().len());
    for (name, t) in ckpt.tensors() {
        let _ = writeln!(s, "  {name:<34} {:?}", t.dims());
    }
    print_all(&s)
}

/// Prints `s`; a closed pipe (`cdcgan info F | head`) is not an error.
fn print_all(s: &str) -> Result<()> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(s.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Train(args) => {
            return Ok(match train::train(&args)? {
                Outcome::Finished => ExitCode::SUCCESS,
                Outcome::Interrupted(_) => ExitCode::from(130),
            });
        }
        Command::Sample(opts) => {
            generate::sample(&load_sampler(opts.checkpoint.as_deref(), true)?, &opts)?;
        }
        Command::Number(opts) => {
            // Check the number before loading anything.
            generate::parse_number(&opts.number)?;
            generate::number(&load_sampler(opts.checkpoint.as_deref(), true)?, &opts)?;
        }
        Command::Interpolate(opts) => {
            generate::interpolate(&load_sampler(opts.checkpoint.as_deref(), true)?, &opts)?;
        }
        Command::Eval(args) => eval::eval(&args)?,
        Command::TrainClassifier(args) => eval::train_classifier(&args)?,
        Command::Info { checkpoint } => info(&checkpoint)?,
        Command::Export {
            checkpoint,
            out,
            f16,
            raw,
        } => generate::export(&checkpoint, &out, f16, raw)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The error and its causes on one line, skipping causes already spelled out by the message
/// above them (library errors often include their source). A cause that is a diagram over
/// several lines (TOML's caret under the bad value) keeps its lines.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out.trim_end().to_owned()
}

fn main() -> ExitCode {
    runtime::keep_freed_memory();
    let cli = Cli::parse();
    // SAFETY: still no other thread: parsing the arguments starts none.
    if let Err(e) = unsafe { set_threads(cli.threads) } {
        eprintln!("error: {}", message(&e));
        return ExitCode::FAILURE;
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_mnist_dir_wins() {
        let dir = std::path::Path::new("/x");
        assert_eq!(mnist_dir(Some(dir)), PathBuf::from("/x"));
    }
}
