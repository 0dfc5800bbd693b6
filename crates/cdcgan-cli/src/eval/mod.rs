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
    Cas, Evaluator, FitConfig, classification_accuracy_score, per_class_subset, targets,
};
use clap::Args;
use mnist_data::{NUM_CLASSES, Split};

pub use judge::{TrainClassifierArgs, load_judge, train_classifier};

use crate::generate::{Source, per_class_labels};
use crate::{load_mnist, print_all};
use report::{class_rows, most_confused, pct, table, targets_table};

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
    Generator(Box<Source>),
    /// Given with `--images`.
    Given(Split),
}

impl Candidate {
    /// The set to measure, `per_class` digits of each class where they are drawn here.
    fn set(&self, per_class: usize, seed: u64) -> Result<Option<Split>> {
        Ok(match self {
            Self::Real => None,
            Self::Generator(src) => Some(src.labelled_set(per_class_labels(per_class), seed)?),
            Self::Given(split) => Some(split.clone()),
        })
    }
}

/// Digits per class of the rarest class in `split`.
fn rarest_class(split: &Split) -> usize {
    (0..NUM_CLASSES as u8)
        .map(|c| split.labels().iter().filter(|&&l| l == c).count())
        .min()
        .unwrap_or(0)
}

/// `cdcgan eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
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
    let run_epochs = args.dir.as_deref().map(epochs::run_epochs).transpose()?;
    let candidate = match (&args.images, args.real) {
        (Some(images), _) => Candidate::Given(digits::load_digits(images, args.labels.as_deref())?),
        (None, true) => Candidate::Real,
        // `--dir` loads each epoch's generator itself.
        (None, false) if run_epochs.is_some() => Candidate::Real,
        (None, false) => Candidate::Generator(Box::new(Source::load_with(
            args.checkpoint.as_deref(),
            !args.raw,
        )?)),
    };
    let per_class = match (&candidate, args.per_class) {
        (_, Some(n)) => n,
        (Candidate::Given(split), None) => rarest_class(split).min(MAX_PER_CLASS),
        (_, None) => 1000,
    };
    let mnist = load_mnist(args.data.as_deref())?;
    let judge = load_judge(args.classifier.as_deref())?;
    let evaluator = Evaluator::new(judge.classifier, &mnist.test)?;
    let real = evaluator.evaluate(&per_class_subset(&mnist.train, per_class, args.seed)?)?;
    if let (Some(dir), Some(epochs)) = (&args.dir, &run_epochs) {
        return epochs::eval_dir(dir, epochs, args, per_class, &evaluator, &real);
    }
    let judged = candidate.set(per_class, args.seed)?;
    let generated = judged.as_ref().map(|s| evaluator.evaluate(s)).transpose()?;
    let judge_acc = evaluator.test_accuracy();
    let name = if generated.is_some() {
        "generated"
    } else {
        "real (train)"
    };
    if !args.json {
        let mut columns = Vec::new();
        if let Some(m) = &generated {
            columns.push((name, m));
        }
        columns.push(("real (train)", &real));
        let mut out = table(&columns);
        out.push_str(&format!(
            "{per_class} per class; reference: the {} MNIST test digits; judge ({}) accuracy on \
             them {}\n",
            mnist.test.len(),
            judge.name,
            pct(judge_acc)
        ));
        print_all(&out)?;
    }
    let cas = if args.cas {
        let train = match &candidate {
            Candidate::Real => mnist.train.clone(),
            Candidate::Generator(src) => {
                src.labelled_set(per_class_labels(args.cas_per_class), args.seed + 1)?
            }
            Candidate::Given(split) => split.clone(),
        };
        Some((train.len(), cas(&train, &mnist.test)?))
    } else {
        None
    };
    let rows = generated
        .as_ref()
        .map(|g| targets(g, &real, cas.as_ref().map(|(_, c)| (c.accuracy, judge_acc))));
    if args.json {
        let json = serde_json::json!({
            "source": source_name(args),
            "judge": judge.name,
            "judge_sha256": judge.sha256,
            "judge_test_accuracy": judge_acc,
            "per_class": per_class,
            "seed": args.seed,
            "generated": generated,
            "real": real,
            "targets": rows,
            "targets_met": rows.as_ref().map(|r| r.iter().all(|t| t.met)),
            "cas_digits": cas.as_ref().map(|(n, _)| n),
            "cas": cas.as_ref().map(|(_, c)| c.accuracy),
            "cas_class": cas.as_ref().map(|(_, c)| &c.class_accuracy),
            "cas_confusion": cas.as_ref().map(|(_, c)| &c.confusion),
            "cas_real": cas.as_ref().map(|_| judge_acc),
            "cas_real_class": cas.as_ref().map(|_| evaluator.test_class_accuracy()),
        });
        return print_all(&format!("{json}\n"));
    }
    if let Some((n, score)) = &cas {
        print_all(&cas_report(
            *n,
            name,
            score,
            judge_acc,
            evaluator.test_class_accuracy(),
        ))?;
    }
    if let Some(rows) = &rows {
        print_all(&format!("\n{}", targets_table(rows)))?;
    }
    Ok(())
}

/// CAS overall and per class beside the judge's own (the same recipe on real digits).
fn cas_report(n: usize, name: &str, score: &Cas, judge_acc: f64, judge_class: &[f64]) -> String {
    let mut out = format!(
        "\nCAS: a classifier trained on {n} {name} digits scores {} on the real test set \
         (trained on the real training set: {})\n",
        pct(score.accuracy),
        pct(judge_acc)
    );
    out.push_str(&class_rows(
        "CAS per class",
        &[
            (format!("CAS % ({name})"), &score.class_accuracy, 100.0, 2),
            ("CAS % (judge)".into(), judge_class, 100.0, 2),
        ],
    ));
    out.push_str(&most_confused(&score.confusion));
    out
}

fn source_name(args: &EvalArgs) -> String {
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
