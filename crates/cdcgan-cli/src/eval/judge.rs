//! The judge: the built-in classifier or a file, with its hash; and `cdcgan train-classifier`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use cdcgan_eval::{Classifier, FitConfig, META_RECORD, fit};
use clap::Args;
use sha2::{Digest, Sha256};

use crate::load_mnist;

/// The classifier shipped with the tool (see `docs/results.md`, "The judge").
const PRETRAINED_CLASSIFIER: &[u8] = include_bytes!("../../assets/classifier.safetensors");

/// A loaded judge and what identifies it in a report.
pub struct Judge {
    /// The classifier.
    pub classifier: Classifier,
    /// "built-in" or the file it came from.
    pub name: String,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
}

/// `classifier` if given, else the built-in one.
pub fn load_judge(classifier: Option<&Path>) -> Result<Judge> {
    let dev = Device::Cpu;
    let (bytes, name) = match classifier {
        Some(path) => (
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (PRETRAINED_CLASSIFIER.to_vec(), "built-in".to_owned()),
    };
    let origin = if classifier.is_some() {
        name.clone()
    } else {
        "the built-in classifier".to_owned()
    };
    Ok(Judge {
        classifier: Classifier::from_bytes(&bytes, &origin, &dev)?,
        sha256: hex::encode(Sha256::digest(&bytes)),
        name,
    })
}

/// Flags of `cdcgan train-classifier`; every one left out takes the judge's recipe.
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
    /// Largest random shift (pixels, each axis) for augmentation; 0 = none.
    #[arg(long)]
    pub shift: Option<f64>,
    /// Largest random rotation (degrees) for augmentation; 0 = none.
    #[arg(long)]
    pub rotation: Option<f64>,
    /// Largest relative change of size for augmentation (0.1: 0.9x to 1.1x); 0 = none.
    #[arg(long)]
    pub scale: Option<f64>,
    /// Share of the last conv layer dropped before the feature layer; 0 = none.
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Seed of initialisation, order and augmentation.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Store the weights as f16.
    #[arg(long)]
    pub f16: bool,
}

impl TrainClassifierArgs {
    fn config(&self) -> Result<FitConfig> {
        let mut c = FitConfig::default();
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = self.$field { c.$field = v; })* };
        }
        set!(
            epochs, batch_size, lr, shift, rotation, scale, dropout, seed
        );
        c.validate()?;
        Ok(c)
    }
}

/// Trains the classifier on the MNIST training set and reports test accuracy per epoch.
pub fn train_classifier(args: &TrainClassifierArgs) -> Result<()> {
    let config = args.config()?;
    let mnist = load_mnist(args.data.as_deref())?;
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
