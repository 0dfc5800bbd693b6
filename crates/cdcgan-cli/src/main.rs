//! `cdcgan`: the command-line tool of the cdcgan workspace.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use candle_core::Device;
use cdcgan_model::{ARCH, Checkpoint};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "A conditional DCGAN for MNIST digits")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the architecture, config, position and tensors of a checkpoint.
    ///
    /// Example: cdcgan info runs/first/checkpoints/gen-epoch-001.safetensors
    Info {
        /// A checkpoint file (.safetensors).
        checkpoint: PathBuf,
    },
}

fn info(path: &PathBuf) -> Result<()> {
    let ckpt = Checkpoint::load(path, &Device::Cpu)?;
    let c = ckpt.config();
    println!("file:         {}", path.display());
    println!("architecture: {ARCH}");
    println!(
        "model:        z_dim {}, gen_width {}, disc_width {}, label input {:?}",
        c.z_dim, c.gen_width, c.disc_width, c.label_input
    );
    for (k, v) in &ckpt.metadata {
        println!(
            "{:<13} {v}",
            format!("{}:", k.trim_start_matches("cdcgan."))
        );
    }
    let total: usize = ckpt.tensors().values().map(|t| t.elem_count()).sum();
    println!("tensors:      {} ({total} values)", ckpt.tensors().len());
    for (name, t) in ckpt.tensors() {
        println!("  {name:<34} {:?}", t.dims());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Info { checkpoint } => info(checkpoint),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
