//! The quality targets: each metric of a generated set read against the same metric of real
//! digits under the same judge, class by class where it applies.
//!
//! ```
//! use cdcgan_eval::{Metrics, targets};
//!
//! let real = Metrics {
//!     count: 20,
//!     accuracy: 0.996,
//!     class_accuracy: vec![0.996; 10],
//!     fid: 2.0,
//!     intra_fid: vec![5.0; 10],
//!     intra_fid_mean: 5.0,
//!     diversity: vec![1.0; 10],
//! };
//! let generated = Metrics { fid: 2.9, accuracy: 0.990, ..real.clone() };
//! let rows = targets(&generated, &real, None);
//! assert!(rows.iter().find(|t| t.metric == "FID").unwrap().met); // 1.45x real
//! assert!(!rows.iter().find(|t| t.metric == "label accuracy").unwrap().met); // 0.6 points under
//! ```

use mnist_data::NUM_CLASSES;
use serde::Serialize;

use crate::metrics::Metrics;

/// Label accuracy and CAS may fall at most this far (as a fraction, 0.003 = 0.3 points) under
/// real digits' own.
pub const ACCURACY_MARGIN: f64 = 0.003;
/// FID and intra-class FID may be at most this many times real digits' own.
pub const FID_RATIO: f64 = 1.5;
/// Every class's diversity over real digits' diversity of that class must lie in this band.
pub const DIVERSITY_BAND: (f64, f64) = (0.95, 1.05);

/// How a [`Target`] compares the generated value with the real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Comparison {
    /// `generated - real`, for accuracies (0..1).
    Difference,
    /// `generated / real`.
    Ratio,
}

/// One row of the targets: a metric, its generated and real values and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    /// What is measured: "label accuracy", "FID", "intra-class FID", "diversity 6", "CAS".
    pub metric: String,
    /// The generated set's value.
    pub generated: f64,
    /// Real digits' value under the same judge.
    pub real: f64,
    /// How the two are compared.
    pub comparison: Comparison,
    /// `generated - real` or `generated / real`.
    pub value: f64,
    /// The least `value` allowed, if any.
    pub min: Option<f64>,
    /// The most `value` allowed, if any.
    pub max: Option<f64>,
    /// Whether `value` lies within the bounds.
    pub met: bool,
}

impl Target {
    fn new(metric: String, generated: f64, real: f64, comparison: Comparison) -> Self {
        let value = match comparison {
            Comparison::Difference => generated - real,
            Comparison::Ratio => generated / real,
        };
        Self {
            metric,
            generated,
            real,
            comparison,
            value,
            min: None,
            max: None,
            met: false,
        }
    }

    fn within(mut self, min: Option<f64>, max: Option<f64>) -> Self {
        // A NaN value meets nothing.
        self.met = min.is_none_or(|m| self.value >= m) && max.is_none_or(|m| self.value <= m);
        (self.min, self.max) = (min, max);
        self
    }
}

/// The targets of `generated` against `real` (both measured by the same
/// [`Evaluator`](crate::Evaluator)), and of CAS when given as `(generated, real)`: label
/// accuracy, FID, mean intra-class FID, each class's diversity, then CAS.
pub fn targets(generated: &Metrics, real: &Metrics, cas: Option<(f64, f64)>) -> Vec<Target> {
    use Comparison::{Difference, Ratio};
    let mut rows = vec![
        Target::new(
            "label accuracy".into(),
            generated.accuracy,
            real.accuracy,
            Difference,
        )
        .within(Some(-ACCURACY_MARGIN), None),
        Target::new("FID".into(), generated.fid, real.fid, Ratio).within(None, Some(FID_RATIO)),
        Target::new(
            "intra-class FID".into(),
            generated.intra_fid_mean,
            real.intra_fid_mean,
            Ratio,
        )
        .within(None, Some(FID_RATIO)),
    ];
    let (lo, hi) = DIVERSITY_BAND;
    for c in 0..NUM_CLASSES {
        let (g, r) = (generated.diversity[c], real.diversity[c]);
        rows.push(Target::new(format!("diversity {c}"), g, r, Ratio).within(Some(lo), Some(hi)));
    }
    if let Some((g, r)) = cas {
        rows.push(Target::new("CAS".into(), g, r, Difference).within(Some(-ACCURACY_MARGIN), None));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(accuracy: f64, fid: f64, intra: f64, diversity: f64) -> Metrics {
        Metrics {
            count: 20,
            accuracy,
            class_accuracy: vec![accuracy; NUM_CLASSES],
            fid,
            intra_fid: vec![intra; NUM_CLASSES],
            intra_fid_mean: intra,
            diversity: vec![diversity; NUM_CLASSES],
        }
    }

    fn find<'a>(rows: &'a [Target], metric: &str) -> &'a Target {
        rows.iter().find(|t| t.metric == metric).unwrap()
    }

    #[test]
    fn each_row_is_read_against_real_digits() {
        let real = metrics(0.995, 2.0, 5.0, 0.98);
        let mut generated = metrics(0.9921, 3.0, 7.6, 0.98 * 1.04);
        generated.diversity[6] = 0.98 * 0.94;
        let rows = targets(&generated, &real, Some((0.990, 0.994)));
        assert_eq!(rows.len(), 3 + NUM_CLASSES + 1);
        let acc = find(&rows, "label accuracy");
        assert!((acc.value + 0.0029).abs() < 1e-9 && acc.met, "{acc:?}");
        let fid = find(&rows, "FID");
        assert!((fid.value - 1.5).abs() < 1e-12 && fid.met, "{fid:?}");
        let intra = find(&rows, "intra-class FID");
        assert!((intra.value - 1.52).abs() < 1e-12 && !intra.met);
        assert!(find(&rows, "diversity 5").met);
        assert!(!find(&rows, "diversity 6").met);
        let cas = find(&rows, "CAS");
        assert!((cas.value + 0.004).abs() < 1e-12 && !cas.met);
        assert_eq!(cas.comparison, Comparison::Difference);
    }

    #[test]
    fn real_digits_meet_every_target_against_themselves_and_nan_meets_none() {
        let real = metrics(0.99, 2.0, 5.0, 1.01);
        assert!(
            targets(&real, &real, Some((0.99, 0.99)))
                .iter()
                .all(|t| t.met)
        );
        let broken = metrics(f64::NAN, f64::NAN, f64::NAN, f64::NAN);
        assert!(targets(&broken, &real, None).iter().all(|t| !t.met));
    }
}
