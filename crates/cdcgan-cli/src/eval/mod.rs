//! `cdcgan eval` and `cdcgan train-classifier`: measuring digits, generated here or anywhere,
//! against real ones under the same judge.

mod digits;
mod epochs;
mod judge;
mod report;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use candle_core::Device;
use cdcgan_eval::{
    Cas, Evaluator, FitConfig, Metrics, Target, classification_accuracy_score, per_class_subset,
    targets,
};
use cdcgan_model::Sampler;
use clap::Args;
use mnist_data::{NUM_CLASSES, Split};

pub use judge::{TrainClassifierArgs, load_judge, train_classifier};

use crate::generate::{labelled_set, load_sampler, per_class_labels};
use crate::{load_mnist, print_all};
use report::{cas_report, json_report, summary, targets_table};

/// The most digits per class `eval --per-class` compares: the real baseline draws as many
/// training digits of each class, and the rarest (5) has 5421.
const MAX_PER_CLASS: usize = 5000;
/// The most generated digits per class `eval --cas-per-class` trains on (held in memory:
/// 157 MB at this bound).
const MAX_CAS_PER_CLASS: usize = 20_000;

/// Flags of `cdcgan eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A generator or training checkpoint (or a run directory) instead of the built-in generator.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["real", "dir", "images"])]
    pub checkpoint: Option<PathBuf>,
    /// Evaluate every gen-epoch-NNN checkpoint of a run; writes RUN_DIR/eval.csv and eval.png.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["real", "cas", "images", "json"])]
    pub dir: Option<PathBuf>,
    /// Anyone's digits instead of a generator's: an IDX image file (raw or .gz, with --labels)
    /// or a folder of 28x28 PNGs, light on dark, whose class is a sub-folder (7/x.png) or leads
    /// the name (7_0012.png).
    #[arg(long, value_name = "PATH", conflicts_with = "real")]
    pub images: Option<PathBuf>,
    /// The IDX label file of --images.
    #[arg(long, value_name = "FILE", requires = "images")]
    pub labels: Option<PathBuf>,
    /// Measure real training digits instead of generated ones (the baseline alone).
    #[arg(long)]
    pub real: bool,
    /// Use a training checkpoint's raw generator instead of its EMA weights.
    #[arg(long)]
    pub raw: bool,
    /// Digits per class to generate and real training digits per class for the baseline,
    /// 2 to 5000 (default 1000; with --images, the rarest class's count, at most 5000).
    #[arg(long, value_name = "N")]
    pub per_class: Option<usize>,
    /// Seed of the noise (and of the choice of real baseline digits).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also compute the Classification Accuracy Score: train a fresh classifier (the judge's
    /// recipe) on generated digits, test it on real ones (several minutes).
    #[arg(long)]
    pub cas: bool,
    /// Generated digits per class for --cas (at most 20,000; --images trains on all given).
    #[arg(long, value_name = "N", default_value_t = 6000)]
    pub cas_per_class: usize,
    /// MNIST directory (else $MNIST_DIR, else data/mnist); the test set is the reference.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// A classifier file instead of the built-in judge.
    #[arg(long, value_name = "FILE")]
    pub classifier: Option<PathBuf>,
    /// Print one JSON object (judge hash, sizes, every metric, ratio and verdict) instead of
    /// the tables.
    #[arg(long)]
    pub json: bool,
}

/// The digits being judged.
enum Candidate {
    /// Real training digits (`--real`): the baseline alone.
    Real,
    /// A generator's.
    Generator(Box<Sampler>),
    /// Given with `--images`.
    Given(Split),
}

impl Candidate {
    /// Digits per class to compare: `asked`, else 1000, else (given digits) the rarest given
    /// class's count.
    fn per_class(&self, asked: Option<usize>) -> usize {
        match (self, asked) {
            (_, Some(n)) => n,
            (Self::Given(split), None) => rarest_class(split).min(MAX_PER_CLASS),
            (_, None) => 1000,
        }
    }

    /// The set to measure, `per_class` digits of each class where they are drawn here.
    fn set(&self, per_class: usize, seed: u64) -> Result<Option<Split>> {
        Ok(match self {
            Self::Real => None,
            Self::Generator(src) => Some(labelled_set(src, per_class_labels(per_class), seed)?),
            Self::Given(split) => Some(split.clone()),
        })
    }

    /// The digits CAS trains its classifier on: the real training split, `per_class` drawn
    /// digits of each class, or the given ones.
    fn cas_set(&self, real_train: &Split, per_class: usize, seed: u64) -> Result<Split> {
        Ok(match self {
            Self::Real => real_train.clone(),
            Self::Generator(src) => labelled_set(src, per_class_labels(per_class), seed)?,
            Self::Given(split) => split.clone(),
        })
    }
}

/// Digits per class of the rarest class in `split`.
pub fn rarest_class(split: &Split) -> usize {
    (0..NUM_CLASSES as u8)
        .map(|c| split.labels().iter().filter(|&&l| l == c).count())
        .min()
        .unwrap_or(0)
}

/// Refuses sizes out of bounds before anything is loaded.
fn check_sizes(args: &EvalArgs) -> Result<()> {
    if let Some(n) = args.per_class {
        if n < 2 {
            bail!("--per-class must be at least 2 (a covariance needs two samples)");
        }
        // The real baseline takes as many training digits per class; class 5 has 5421.
        if n > MAX_PER_CLASS {
            bail!("--per-class is {n}, at most {MAX_PER_CLASS}");
        }
    }
    if args.cas && !(1..=MAX_CAS_PER_CLASS).contains(&args.cas_per_class) {
        bail!(
            "--cas-per-class is {}, must be 1 to {MAX_CAS_PER_CLASS} ({} MB of digits)",
            args.cas_per_class,
            MAX_CAS_PER_CLASS * 10 * 784 / 1_000_000
        );
    }
    Ok(())
}

/// The digits the flags name: given ones, real ones, or a generator's (`--dir` loads each
/// epoch's generator itself, so it needs none here).
fn candidate(args: &EvalArgs, for_dir: bool) -> Result<Candidate> {
    Ok(match (&args.images, args.real || for_dir) {
        (Some(images), _) => Candidate::Given(digits::load_digits(images, args.labels.as_deref())?),
        (None, true) => Candidate::Real,
        (None, false) => Candidate::Generator(Box::new(load_sampler(
            args.checkpoint.as_deref(),
            !args.raw,
        )?)),
    })
}

/// What one `cdcgan eval` measured.
pub struct Measured {
    pub per_class: usize,
    pub test_len: usize,
    /// "built-in" or the judge's file.
    pub judge_name: String,
    /// SHA-256 of the judge's bytes.
    pub judge_sha256: String,
    pub generated: Option<Metrics>,
    pub real: Metrics,
    pub cas: Option<(usize, Cas)>,
    pub rows: Option<Vec<Target>>,
}

/// `cdcgan eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    check_sizes(args)?;
    let run_epochs = args.dir.as_deref().map(epochs::run_epochs).transpose()?;
    let candidate = candidate(args, run_epochs.is_some())?;
    let per_class = candidate.per_class(args.per_class);
    let mnist = load_mnist(args.data.as_deref())?;
    let judge = load_judge(args.classifier.as_deref())?;
    let evaluator = Evaluator::new(judge.classifier, &mnist.test)?;
    let real = evaluator.evaluate(&per_class_subset(&mnist.train, per_class, args.seed)?)?;
    if let (Some(dir), Some(epochs)) = (&args.dir, &run_epochs) {
        return epochs::eval_dir(dir, epochs, args, per_class, &evaluator, &real);
    }
    let judged = candidate.set(per_class, args.seed)?;
    let generated = judged.as_ref().map(|s| evaluator.evaluate(s)).transpose()?;
    let mut m = Measured {
        per_class,
        test_len: mnist.test.len(),
        judge_name: judge.name,
        judge_sha256: judge.sha256,
        generated,
        real,
        cas: None,
        rows: None,
    };
    if !args.json {
        print_all(&summary(&m, evaluator.test_accuracy()))?;
    }
    if args.cas {
        let train = candidate.cas_set(&mnist.train, args.cas_per_class, args.seed + 1)?;
        m.cas = Some((train.len(), cas(&train, &mnist.test)?));
    }
    let judge_acc = evaluator.test_accuracy();
    m.rows = m.generated.as_ref().map(|g| {
        targets(
            g,
            &m.real,
            m.cas.as_ref().map(|(_, c)| (c.accuracy, judge_acc)),
        )
    });
    if args.json {
        return print_all(&format!("{}\n", json_report(args, &m, &evaluator)));
    }
    if let Some((n, score)) = &m.cas {
        let name = if m.generated.is_some() {
            "generated"
        } else {
            "real (train)"
        };
        let judge_class = evaluator.test_class_accuracy();
        print_all(&cas_report(*n, name, score, judge_acc, judge_class))?;
    }
    if let Some(rows) = &m.rows {
        print_all(&format!("\n{}", targets_table(rows)))?;
    }
    Ok(())
}

pub fn source_name(args: &EvalArgs) -> String {
    if args.real {
        return "real-train".into();
    }
    if let Some(images) = &args.images {
        return images.display().to_string();
    }
    let weights = if args.raw { " (raw)" } else { "" };
    match &args.checkpoint {
        Some(p) => format!("{}{weights}", p.display()),
        None => "built-in".into(),
    }
}

/// Trains a fresh classifier on `train` with the judge's recipe and tests it on `test`.
fn cas(train: &Split, test: &Split) -> Result<Cas> {
    let config = FitConfig::default();
    let started = Instant::now();
    eprintln!(
        "CAS: training a classifier on {} digits ({} epochs)...",
        train.len(),
        config.epochs
    );
    Ok(classification_accuracy_score(
        train,
        test,
        &config,
        &Device::Cpu,
        |_, e| {
            eprintln!(
                "  epoch {}/{}  loss {:.4}  {:.0}s",
                e.epoch,
                config.epochs,
                e.loss,
                started.elapsed().as_secs_f64()
            );
            true
        },
    )?)
}
