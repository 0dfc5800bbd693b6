//! `cdcgan eval` and `cdcgan train-classifier`: measuring generated digits.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device};
use cdcgan_eval::{
    Cas, Classifier, Evaluator, FitConfig, META_RECORD, Metrics, classification_accuracy_score,
    fit, per_class_subset,
};
use clap::Args;
use mnist_data::{NUM_CLASSES, Split};
use plotters::style::{BLUE, RGBColor};

use crate::generate::{Source, per_class_labels};
use crate::plot::{Panel, Series, render};
use crate::{load_mnist, print_all};

/// The classifier shipped with the tool (see `docs/results.md`).
const PRETRAINED_CLASSIFIER: &[u8] = include_bytes!("../../../assets/classifier.safetensors");

/// `classifier` if given, else the built-in one.
pub fn load_classifier(classifier: Option<&Path>) -> Result<Classifier> {
    let dev = Device::Cpu;
    Ok(match classifier {
        Some(path) => Classifier::load(path, &dev)?,
        None => Classifier::from_bytes(PRETRAINED_CLASSIFIER, "the built-in classifier", &dev)?,
    })
}

/// Flags of `cdcgan train-classifier`.
#[derive(Args, Debug)]
pub struct TrainClassifierArgs {
    /// MNIST directory (else $MNIST_DIR, else data/mnist).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Where to write the classifier.
    #[arg(long, default_value = "classifier.safetensors")]
    pub out: PathBuf,
    /// Passes over the training set.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate (cosine decay).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Largest random shift (pixels) for augmentation; 0 = none.
    #[arg(long)]
    pub shift: Option<usize>,
    /// Seed of initialisation, order and augmentation.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Store the weights as f16.
    #[arg(long)]
    pub f16: bool,
}

impl TrainClassifierArgs {
    fn config(&self) -> FitConfig {
        let mut c = FitConfig::default();
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = self.$field { c.$field = v; })* };
        }
        set!(epochs, batch_size, lr, shift, seed);
        c
    }
}

/// Trains the classifier on the MNIST training set and reports test accuracy per epoch.
pub fn train_classifier(args: &TrainClassifierArgs) -> Result<()> {
    let mnist = load_mnist(args.data.as_deref())?;
    let config = args.config();
    let started = Instant::now();
    let mut test_accuracy = 0.0;
    let mut failed = None;
    let mut net = fit(&mnist.train, &config, &Device::Cpu, |net, e| {
        match net.accuracy(&mnist.test) {
            Ok(acc) => {
                test_accuracy = acc;
                println!(
                    "epoch {:>2}/{}  loss {:.4}  train acc {:.4}  test acc {:.4}  {:.0}s",
                    e.epoch,
                    config.epochs,
                    e.loss,
                    e.train_accuracy,
                    acc,
                    started.elapsed().as_secs_f64()
                );
                true
            }
            Err(err) => {
                failed = Some(err);
                false
            }
        }
    })?;
    if let Some(err) = failed {
        return Err(err.into());
    }
    let dtype = if args.f16 { DType::F16 } else { DType::F32 };
    let record = serde_json::json!({
        "fit": config,
        "test_accuracy": test_accuracy,
        "train_seconds": started.elapsed().as_secs_f64().round(),
        "stored_as": format!("{dtype:?}").to_lowercase(),
    });
    net.record.insert(META_RECORD.into(), record.to_string());
    net.save(&args.out, dtype)?;
    // What the file holds, read back (f16 rounding included).
    let saved = Classifier::load(&args.out, &Device::Cpu)?;
    println!(
        "wrote {} (test accuracy {:.4} as stored)",
        args.out.display(),
        saved.accuracy(&mnist.test)?
    );
    Ok(())
}

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
    #[arg(long, value_name = "FILE", conflicts_with_all = ["real", "dir"])]
    pub checkpoint: Option<PathBuf>,
    /// Evaluate every gen-epoch-NNN checkpoint of a run; writes RUN_DIR/eval.csv and eval.png.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["real", "cas"])]
    pub dir: Option<PathBuf>,
    /// Measure real training digits instead of generated ones (the baseline alone).
    #[arg(long)]
    pub real: bool,
    /// Use a training checkpoint's raw generator instead of its EMA weights.
    #[arg(long)]
    pub raw: bool,
    /// Digits per class to generate (and real digits per class for the baseline), 2 to 5000.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub per_class: usize,
    /// Seed of the noise (and of the choice of real baseline digits).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also compute the Classification Accuracy Score: train a fresh classifier on generated
    /// digits, test it on real ones (several minutes).
    #[arg(long)]
    pub cas: bool,
    /// Generated digits per class for --cas (at most 20,000).
    #[arg(long, value_name = "N", default_value_t = 6000)]
    pub cas_per_class: usize,
    /// MNIST directory (else $MNIST_DIR, else data/mnist); the test set is the reference.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// A classifier file instead of the built-in judge.
    #[arg(long, value_name = "FILE")]
    pub classifier: Option<PathBuf>,
}

/// `cdcgan eval`.
pub fn eval(args: &EvalArgs) -> Result<()> {
    if args.per_class < 2 {
        bail!("--per-class must be at least 2 (a covariance needs two samples)");
    }
    // The real baseline takes as many training digits per class; class 5 has 5421.
    if args.per_class > MAX_PER_CLASS {
        bail!("--per-class is {}, at most {MAX_PER_CLASS}", args.per_class);
    }
    if args.cas && !(1..=MAX_CAS_PER_CLASS).contains(&args.cas_per_class) {
        bail!(
            "--cas-per-class is {}, must be 1 to {MAX_CAS_PER_CLASS} ({} MB of digits)",
            args.cas_per_class,
            MAX_CAS_PER_CLASS * 10 * 784 / 1_000_000
        );
    }
    let epochs = args.dir.as_deref().map(run_epochs).transpose()?;
    let mnist = load_mnist(args.data.as_deref())?;
    let judge = load_classifier(args.classifier.as_deref())?;
    let evaluator = Evaluator::new(judge, &mnist.test)?;
    let real_set = per_class_subset(&mnist.train, args.per_class, args.seed)?;
    let real = evaluator.evaluate(&real_set)?;
    if let (Some(dir), Some(epochs)) = (&args.dir, &epochs) {
        return eval_dir(dir, epochs, args, &evaluator, &real);
    }
    let judge_acc = evaluator.test_accuracy();
    let src = if args.real {
        None
    } else {
        Some(Source::load_with(args.checkpoint.as_deref(), !args.raw)?)
    };
    let (name, generated) = match &src {
        None => ("real (train)", None),
        Some(src) => {
            let set = src.labelled_set(per_class_labels(args.per_class), args.seed)?;
            ("generated", Some(evaluator.evaluate(&set)?))
        }
    };
    let mut columns = Vec::new();
    if let Some(m) = &generated {
        columns.push(("generated", m));
    }
    columns.push(("real (train)", &real));
    let mut out = table(&columns);
    let _ = writeln!(
        out,
        "{} per class; reference: the {} MNIST test digits; judge accuracy on them {}",
        args.per_class,
        mnist.test.len(),
        pct(judge_acc)
    );
    print_all(&out)?;
    let cas = if args.cas {
        let train = match &src {
            Some(src) => src.labelled_set(per_class_labels(args.cas_per_class), args.seed + 1)?,
            None => mnist.train.clone(),
        };
        Some(cas(&train, &mnist.test)?)
    } else {
        None
    };
    if let Some(score) = &cas {
        let mut out = format!(
            "CAS: a classifier trained on {} {name} digits scores {} on the real test set \
             (trained on the real training set: {})\n",
            if generated.is_some() {
                args.cas_per_class * NUM_CLASSES
            } else {
                mnist.train.len()
            },
            pct(score.accuracy),
            pct(judge_acc)
        );
        out.push_str(&class_rows(
            "CAS per class",
            &[
                (format!("CAS % ({name})"), &score.class_accuracy, 100.0, 2),
                // The judge: the same recipe, trained on the real training set.
                (
                    "CAS % (judge)".into(),
                    evaluator.test_class_accuracy(),
                    100.0,
                    2,
                ),
            ],
        ));
        out.push_str(&most_confused(&score.confusion));
        print_all(&out)?;
    }
    let json = serde_json::json!({
        "source": source_name(args),
        "per_class": args.per_class,
        "seed": args.seed,
        "judge_test_accuracy": judge_acc,
        "generated": generated,
        "real": real,
        "cas": cas.as_ref().map(|c| c.accuracy),
        "cas_class": cas.as_ref().map(|c| &c.class_accuracy),
        "cas_confusion": cas.as_ref().map(|c| &c.confusion),
        "cas_real": cas.as_ref().map(|_| judge_acc),
        "cas_real_class": cas.as_ref().map(|_| evaluator.test_class_accuracy()),
    });
    print_all(&format!("{json}\n"))
}

fn source_name(args: &EvalArgs) -> String {
    if args.real {
        return "real-train".into();
    }
    let weights = if args.raw { " (raw)" } else { "" };
    match &args.checkpoint {
        Some(p) => format!("{}{weights}", p.display()),
        None => "built-in".into(),
    }
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)))
}

/// The summary rows, one column per measured set, then per-class rows for each set.
fn table(columns: &[(&str, &Metrics)]) -> String {
    let mut s = format!("{:<22}", "");
    for (name, _) in columns {
        let _ = write!(s, "{name:>16}");
    }
    s.push('\n');
    type Cell<'a> = &'a dyn Fn(&Metrics) -> String;
    let rows: [(&str, Cell); 5] = [
        ("label accuracy", &|m| pct(m.accuracy)),
        ("FID", &|m| format!("{:.3}", m.fid)),
        ("intra-class FID", &|m| format!("{:.3}", m.intra_fid_mean)),
        ("diversity min", &|m| {
            format!("{:.3}", min_max(&m.diversity).0)
        }),
        ("diversity max", &|m| {
            format!("{:.3}", min_max(&m.diversity).1)
        }),
    ];
    for (label, f) in rows {
        let _ = write!(s, "{label:<22}");
        for (_, m) in columns {
            let _ = write!(s, "{:>16}", f(m));
        }
        s.push('\n');
    }
    s.push('\n');
    let mut rows: Vec<ClassRow> = Vec::new();
    for (name, m) in columns {
        rows.push((format!("accuracy % ({name})"), &m.class_accuracy, 100.0, 2));
        rows.push((format!("intra-FID ({name})"), &m.intra_fid, 1.0, 2));
        rows.push((format!("diversity ({name})"), &m.diversity, 1.0, 3));
    }
    s.push_str(&class_rows("per class", &rows));
    s
}

/// A row of per-class values: label, values, scale, decimals.
type ClassRow<'a> = (String, &'a [f64], f64, usize);

/// A header of the classes and one line per row, each value times its scale.
fn class_rows(title: &str, rows: &[ClassRow]) -> String {
    let mut s = format!("{title:<22}");
    for c in 0..NUM_CLASSES {
        let _ = write!(s, "{c:>7}");
    }
    s.push('\n');
    for (label, values, scale, prec) in rows {
        let _ = write!(s, "{label:<22}");
        for v in *values {
            let _ = write!(s, "{:>7.prec$}", v * scale);
        }
        s.push('\n');
    }
    s
}

/// For each class, the class its misread test digits were most often taken for, and their
/// share of the class (in %).
fn most_confused(confusion: &[[usize; NUM_CLASSES]]) -> String {
    let mut names = format!("{:<22}", "CAS misses: taken for");
    let mut shares = Vec::with_capacity(NUM_CLASSES);
    for (c, row) in confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        let worst = (0..NUM_CLASSES)
            .filter(|&p| p != c)
            .max_by_key(|&p| (row[p], std::cmp::Reverse(p)));
        match worst {
            Some(p) if row[p] > 0 => {
                let _ = write!(names, "{p:>7}");
                shares.push(row[p] as f64 / total as f64);
            }
            _ => {
                let _ = write!(names, "{:>7}", "-");
                shares.push(0.0);
            }
        }
    }
    names.push('\n');
    let _ = write!(names, "{:<22}", "  % of the class");
    for v in shares {
        let _ = write!(names, "{:>7.2}", 100.0 * v);
    }
    names.push('\n');
    names
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

/// The `gen-epoch-NNN.safetensors` files of a run directory, by epoch.
fn run_epochs(dir: &Path) -> Result<Vec<(u32, PathBuf)>> {
    let ckpt_dir = dir.join("checkpoints");
    let entries = std::fs::read_dir(&ckpt_dir)
        .with_context(|| format!("cannot list {} (not a run directory?)", ckpt_dir.display()))?;
    let mut epochs: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let n = name
                .strip_prefix("gen-epoch-")?
                .strip_suffix(".safetensors")?;
            Some((n.parse().ok()?, p))
        })
        .collect();
    epochs.sort();
    if epochs.is_empty() {
        bail!(
            "{} holds no gen-epoch-NNN.safetensors files",
            ckpt_dir.display()
        );
    }
    Ok(epochs)
}

/// `cdcgan eval --dir`: every epoch's generator, into eval.csv and eval.png.
fn eval_dir(
    dir: &Path,
    epochs: &[(u32, PathBuf)],
    args: &EvalArgs,
    evaluator: &Evaluator,
    real: &Metrics,
) -> Result<()> {
    let mut csv = String::from(
        "epoch,accuracy,fid,intra_fid_mean,diversity_min,diversity_max,real_accuracy,real_fid,real_intra_fid_mean\n",
    );
    let mut rows = Vec::new();
    println!(
        "{:>5} {:>10} {:>9} {:>10} {:>15}",
        "epoch", "accuracy", "FID", "intra-FID", "diversity"
    );
    for (epoch, path) in epochs {
        let src = Source::load_with(Some(path), !args.raw)?;
        let set = src.labelled_set(per_class_labels(args.per_class), args.seed)?;
        let m = evaluator.evaluate(&set)?;
        let (dmin, dmax) = min_max(&m.diversity);
        println!(
            "{epoch:>5} {:>10} {:>9.3} {:>10.3} {:>7.3}-{:.3}",
            pct(m.accuracy),
            m.fid,
            m.intra_fid_mean,
            dmin,
            dmax
        );
        let _ = writeln!(
            csv,
            "{epoch},{:.6},{:.6},{:.6},{dmin:.6},{dmax:.6},{:.6},{:.6},{:.6}",
            m.accuracy, m.fid, m.intra_fid_mean, real.accuracy, real.fid, real.intra_fid_mean
        );
        rows.push((f64::from(*epoch), m));
    }
    println!(
        "{:>5} {:>10} {:>9.3} {:>10.3}   (real training digits)",
        "real",
        pct(real.accuracy),
        real.fid,
        real.intra_fid_mean
    );
    let csv_path = dir.join("eval.csv");
    mnist_data::write_atomic(&csv_path, csv.as_bytes())
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    let line = |f: &dyn Fn(&Metrics) -> f64| rows.iter().map(|(e, m)| (*e, f(m))).collect();
    let flat = |v: f64| rows.iter().map(|(e, _)| (*e, v)).collect();
    let panel = |title: &str, y: &'static str, f: &dyn Fn(&Metrics) -> f64| Panel {
        title: format!("{title} (blue: generated, grey: real)"),
        x_desc: "epoch",
        y_desc: y,
        series: vec![
            Series {
                color: BLUE,
                points: line(f),
            },
            Series {
                color: RGBColor(150, 150, 150),
                points: flat(f(real)),
            },
        ],
    };
    let png = dir.join("eval.png");
    render(
        &[
            panel("label accuracy", "%", &|m| 100.0 * m.accuracy),
            panel("FID", "FID", &|m| m.fid),
            panel("intra-class FID", "FID", &|m| m.intra_fid_mean),
        ],
        (1500, 450),
        &png,
    )?;
    println!("wrote {} and {}", csv_path.display(), png.display());
    Ok(())
}
