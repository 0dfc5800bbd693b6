//! `cargo xtask`: developer chores for the cdcgan workspace.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::fetch::{self, Source};
use xtask::{bench, web};

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
        #[arg(long, default_value = "data/mnist")]
        dir: PathBuf,
        /// Copy from this local folder instead of downloading (raw or .gz files).
        #[arg(long, conflicts_with = "mirror")]
        from: Option<PathBuf>,
        /// Base URL to download from instead of the default mirrors (repeatable, tried in order).
        #[arg(long)]
        mirror: Vec<String>,
    },
    /// Training and generation speed of our kernels, candle's stock ops and PyTorch, in one run.
    ///
    /// Example: cargo xtask bench --python ~/venvs/torch/bin/python
    Bench {
        /// Measured steps per configuration (medians are reported).
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Rounds of (cdcgan, PyTorch) run alternately; medians over rounds are reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Python with torch, numpy installed (else $TORCH_PYTHON, else python3).
        #[arg(long)]
        python: Option<String>,
        /// The PyTorch reference script (default: ../shared/bench/torch_ref.py beside the
        /// workspace).
        #[arg(long)]
        torch_ref: Option<PathBuf>,
        /// Skip the PyTorch column.
        #[arg(long)]
        no_torch: bool,
        /// Skip candle's stock ops (they are slow).
        #[arg(long)]
        no_stock: bool,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Measure scaling instead: training and generation at each of these thread counts,
        /// beside PyTorch at the same count (e.g. 1,2,4,8; counts above the machine's cores
        /// oversubscribe it).
        #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
        threads: Vec<usize>,
    },
    /// Build the browser page (WASM generator) into target/web/; --serve shows it.
    ///
    /// Example: cargo xtask web --serve
    Web {
        /// Serve target/web/ on 127.0.0.1 after building (Ctrl-C stops).
        #[arg(long)]
        serve: bool,
        /// Port for --serve.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Test the page in headless Chromium and save a screenshot.
        #[arg(long, conflicts_with = "serve")]
        e2e: bool,
        /// Where --e2e saves its screenshot.
        #[arg(long, default_value = "target/web-e2e/web.png")]
        screenshot: PathBuf,
    },
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
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
        Task::Bench {
            steps,
            rounds,
            python,
            torch_ref,
            no_torch,
            no_stock,
            json,
            threads,
        } => {
            let python = (!no_torch).then(|| {
                python
                    .or_else(|| std::env::var("TORCH_PYTHON").ok())
                    .unwrap_or_else(|| "python3".into())
            });
            let workspace = workspace();
            let torch_ref =
                torch_ref.unwrap_or_else(|| workspace.join("../shared/bench/torch_ref.py"));
            let opts = bench::Options {
                steps,
                python,
                torch_ref,
                sngan_ref: workspace.join("xtask/torch/sngan_ref.py"),
                stock: !no_stock && threads.is_empty(),
                rounds,
                threads,
            };
            bench::run(&workspace, &opts, |m| eprintln!("{m}")).map(|r| {
                if json {
                    println!("{r}");
                } else if r.get("scaling").is_some() {
                    println!("{}", bench::scaling_table(&r));
                } else {
                    println!("{}", bench::table(&r));
                }
            })
        }
        Task::Web {
            serve,
            port,
            e2e,
            screenshot,
        } => {
            let log = |m: &str| eprintln!("{m}");
            if e2e {
                web::e2e(&workspace(), &screenshot, &log)
            } else {
                web::build(&workspace(), &log).and_then(|dir| {
                    if serve {
                        let addr = web::serve(&dir, &format!("127.0.0.1:{port}"))?;
                        eprintln!("serving {} at http://{addr}/ (Ctrl-C stops)", dir.display());
                        loop {
                            std::thread::park();
                        }
                    }
                    Ok(())
                })
            }
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
