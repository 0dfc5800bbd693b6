//! Measure generated MNIST digits the way the GAN literature does, with a judge trained here.
//!
//! ```no_run
//! use candle_core::Device;
//! use cdcgan_eval::{Classifier, Evaluator, per_class_subset};
//!
//! let mnist = mnist_data::Mnist::load("data/mnist")?;
//! let judge = Classifier::load("assets/classifier.safetensors", &Device::Cpu)?;
//! let eval = Evaluator::new(judge, &mnist.test)?;
//! // Real training digits as the "generated" set give the baseline every score is read against.
//! let real = per_class_subset(&mnist.train, 1000, 0)?;
//! let m = eval.evaluate(&real)?;
//! println!("accuracy {:.4}  FID {:.3}  intra-FID {:.3}", m.accuracy, m.fid, m.intra_fid_mean);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`Classifier`]: a small CNN (>= 99.3% on the MNIST test set once trained by [`fit`]);
//!   its 128-d penultimate layer is the feature space.
//! - [`Evaluator`]: label accuracy, FID, intra-class FID and a diversity ratio against the
//!   real test set; [`classification_accuracy_score`] trains on generated digits, tests on real.
//! - [`targets`]: each metric read against real digits under the same judge, met or not.
//! - [`frechet`]: Gaussian fits and the Fréchet distance in f64 with a symmetric matrix root.

mod classifier;
mod error;
mod fit;
pub mod frechet;
mod metrics;
mod targets;

pub use classifier::{
    CLASSIFIER_ARCH, Classifier, FEATURES, META_RECORD, Scores, accuracy, class_accuracy, confusion,
};
pub use error::{Error, Result};
pub use fit::{FitConfig, FitEpoch, fit};
pub use metrics::{
    Cas, DIVERSITY_SAMPLES, Evaluator, Metrics, classification_accuracy_score, per_class_subset,
};
pub use targets::{ACCURACY_MARGIN, Comparison, DIVERSITY_BAND, FID_RATIO, Target, targets};
