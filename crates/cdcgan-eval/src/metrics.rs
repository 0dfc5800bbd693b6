//! The evaluation: label accuracy, FID, intra-class FID and diversity of a labelled set of
//! digits, measured against the real test set in the classifier's feature space.

use candle_core::Device;
use mnist_data::{IMAGE_PIXELS, NUM_CLASSES, Split};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::classifier::{
    Classifier, FEATURES, Scores, accuracy, class_accuracy, confusion, diagonal_shares,
};
use crate::error::{Error, Result};
use crate::fit::{FitConfig, fit};
use crate::frechet::{Gaussian, frechet_distance, mean_pairwise_distance};

/// At most this many images per class enter the pairwise-distance mean (it is quadratic).
pub const DIVERSITY_SAMPLES: usize = 1000;

/// The numbers for one set of labelled digits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Images measured.
    pub count: usize,
    /// The classifier's top-1 agreement with the labels (0..1).
    pub accuracy: f64,
    /// The same, per class.
    pub class_accuracy: Vec<f64>,
    /// Fréchet distance of the whole set to the real test set.
    pub fid: f64,
    /// Fréchet distance of each class to the same class of the test set.
    pub intra_fid: Vec<f64>,
    /// Mean of `intra_fid`.
    pub intra_fid_mean: f64,
    /// Per class: mean pairwise feature distance within the set over the same for the test
    /// set (1 = as varied as real digits, near 0 = mode collapse).
    pub diversity: Vec<f64>,
}

/// The test set's statistics, computed once, and the classifier that measures.
#[derive(Debug)]
pub struct Evaluator {
    classifier: Classifier,
    test_accuracy: f64,
    test_class_accuracy: Vec<f64>,
    all: Gaussian,
    per_class: Vec<Gaussian>,
    spread: Vec<f64>,
}

impl Evaluator {
    /// Scores the real `test` set once; every later [`Evaluator::evaluate`] compares with it.
    pub fn new(classifier: Classifier, test: &Split) -> Result<Self> {
        let scores = classifier.score(test)?;
        let test_accuracy = accuracy(&scores.predictions, test.labels());
        let test_class_accuracy = class_accuracy(&scores.predictions, test.labels());
        let by_class = split_by_class(&scores, test.labels());
        let per_class = by_class
            .iter()
            .map(|f| Gaussian::fit(f, FEATURES))
            .collect::<Result<Vec<_>>>()?;
        let spread = by_class.iter().map(|f| diversity_spread(f)).collect();
        Ok(Self {
            all: Gaussian::fit(&scores.features, FEATURES)?,
            classifier,
            test_accuracy,
            test_class_accuracy,
            per_class,
            spread,
        })
    }

    /// The classifier's accuracy on the real test set.
    pub fn test_accuracy(&self) -> f64 {
        self.test_accuracy
    }

    /// The same, per class (the fraction of each class's test digits it names right).
    pub fn test_class_accuracy(&self) -> &[f64] {
        &self.test_class_accuracy
    }

    /// The classifier.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// Measures `set`, whose labels are the classes the images are meant to show. Every
    /// class needs at least two images.
    pub fn evaluate(&self, set: &Split) -> Result<Metrics> {
        let scores = self.classifier.score(set)?;
        let by_class = split_by_class(&scores, set.labels());
        let mut intra_fid = Vec::with_capacity(NUM_CLASSES);
        let mut diversity = Vec::with_capacity(NUM_CLASSES);
        for (c, features) in by_class.iter().enumerate() {
            let n = features.len() / FEATURES;
            if n < 2 {
                return Err(Error::Input(format!(
                    "class {c} has {n} image(s); every class needs at least 2"
                )));
            }
            intra_fid.push(frechet_distance(
                &Gaussian::fit(features, FEATURES)?,
                &self.per_class[c],
            ));
            diversity.push(diversity_spread(features) / self.spread[c]);
        }
        Ok(Metrics {
            count: set.len(),
            accuracy: accuracy(&scores.predictions, set.labels()),
            class_accuracy: class_accuracy(&scores.predictions, set.labels()),
            fid: frechet_distance(&Gaussian::fit(&scores.features, FEATURES)?, &self.all),
            intra_fid_mean: intra_fid.iter().sum::<f64>() / NUM_CLASSES as f64,
            intra_fid,
            diversity,
        })
    }
}

/// A Classification Accuracy Score: how well a classifier trained on one set (e.g. generated
/// digits) names the real test digits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cas {
    /// Top-1 accuracy on the test set (0..1).
    pub accuracy: f64,
    /// The same per class: the fraction of each class's test digits named right, which shows
    /// the classes whose real variety the training set did not cover.
    pub class_accuracy: Vec<f64>,
    /// `confusion[l][p]`: test digits of class `l` named `p`, which shows what they were
    /// taken for.
    pub confusion: Vec<[usize; NUM_CLASSES]>,
}

/// Classification Accuracy Score: trains a fresh classifier on `train` (e.g. generated
/// digits) with `config` and measures it on the real `test` set.
pub fn classification_accuracy_score(
    train: &Split,
    test: &Split,
    config: &FitConfig,
    device: &Device,
    on_epoch: impl FnMut(&Classifier, crate::FitEpoch) -> bool,
) -> Result<Cas> {
    let scores = fit(train, config, device, on_epoch)?.score(test)?;
    let confusion = confusion(&scores.predictions, test.labels());
    Ok(Cas {
        accuracy: accuracy(&scores.predictions, test.labels()),
        class_accuracy: diagonal_shares(&confusion),
        confusion: confusion.to_vec(),
    })
}

/// `per_class` images of each class drawn from `split` (seeded), grouped by class 0..9.
pub fn per_class_subset(split: &Split, per_class: usize, seed: u64) -> Result<Split> {
    let mut order: Vec<usize> = (0..split.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    // No more than the split holds, whatever was asked for.
    let n = per_class.saturating_mul(NUM_CLASSES).min(split.len());
    let mut pixels = Vec::with_capacity(n * IMAGE_PIXELS);
    let mut labels = Vec::with_capacity(n);
    for c in 0..NUM_CLASSES as u8 {
        let picked: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| split.labels()[i] == c)
            .take(per_class)
            .collect();
        if picked.len() < per_class {
            return Err(Error::Input(format!(
                "asked for {per_class} real digits per class, class {c} has {}",
                picked.len()
            )));
        }
        for i in picked {
            pixels.extend_from_slice(split.image(i));
            labels.push(c);
        }
    }
    Split::new(pixels, labels).map_err(|e| Error::Input(e.to_string()))
}

/// Features grouped by label: `out[c]` holds the feature rows of class `c`.
fn split_by_class(scores: &Scores, labels: &[u8]) -> Vec<Vec<f32>> {
    let mut out = vec![Vec::new(); NUM_CLASSES];
    for (row, &l) in scores.features.chunks_exact(FEATURES).zip(labels) {
        if let Some(v) = out.get_mut(usize::from(l)) {
            v.extend_from_slice(row);
        }
    }
    out
}

fn diversity_spread(features: &[f32]) -> f64 {
    let n = (features.len() / FEATURES).min(DIVERSITY_SAMPLES);
    mean_pairwise_distance(&features[..n * FEATURES], FEATURES)
}
