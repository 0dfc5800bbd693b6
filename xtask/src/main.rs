//! `cargo xtask`: developer chores for the cdcgan workspace.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::fetch::{self, Source};

#[derive(Parser)]
#[command(about = "Developer chores for the cdcgan workspace")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Download the four MNIST files and verify their SHA-256.
    ///
    /// Example: cargo xtask fetch-mnist --from ../shared/mnist
    FetchMnist {
        /// Where to write the files.
        #[arg(long, default_value = mnist_data::DEFAULT_DIR)]
        dir: PathBuf,
        /// Copy from this local folder instead of downloading (raw or .gz files).
        #[arg(long, conflicts_with = "mirror")]
        from: Option<PathBuf>,
        /// Base URL to download from instead of the default mirrors (repeatable, tried in order).
        #[arg(long)]
        mirror: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::FetchMnist { dir, from, mirror } => {
            let source = match from {
                Some(d) => Source::Dir(d),
                None if mirror.is_empty() => {
                    Source::Mirrors(fetch::MIRRORS.iter().map(|s| s.to_string()).collect())
                }
                None => Source::Mirrors(mirror),
            };
            fetch::fetch(&mnist_data::MNIST_FILES, &dir, &source, |m| {
                eprintln!("{m}")
            })
            .map(|_| eprintln!("MNIST is ready in {}", dir.display()))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
