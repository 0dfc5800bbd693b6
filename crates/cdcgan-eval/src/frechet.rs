//! Gaussian statistics of feature sets and the Fréchet distance between them, in f64.
//!
//! ```
//! use cdcgan_eval::frechet::{Gaussian, frechet_distance};
//!
//! let a = Gaussian::fit(&[0.0, 0.0, 1.0, 2.0, 2.0, 1.0], 2)?; // three 2-d points
//! let shifted: Vec<f32> = [0.0f32, 0.0, 1.0, 2.0, 2.0, 1.0].iter().map(|v| v + 3.0).collect();
//! let b = Gaussian::fit(&shifted, 2)?;
//! // Same covariance, means 3 apart on both axes: FID = 3² + 3².
//! assert!((frechet_distance(&a, &b) - 18.0).abs() < 1e-9);
//! # Ok::<(), cdcgan_eval::Error>(())
//! ```

use nalgebra::{DMatrix, DVector};

use crate::error::{Error, Result};

/// Mean and covariance (unbiased, like `numpy.cov`) of a set of feature vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    /// The mean vector.
    pub mean: DVector<f64>,
    /// The covariance matrix.
    pub cov: DMatrix<f64>,
    /// How many vectors it was fitted to.
    pub count: usize,
}

impl Gaussian {
    /// Fits `rows` (consecutive vectors of `dim` values); needs at least two vectors.
    pub fn fit(rows: &[f32], dim: usize) -> Result<Self> {
        if dim == 0 || !rows.len().is_multiple_of(dim) {
            return Err(Error::Input(format!(
                "{} feature values do not split into vectors of {dim}",
                rows.len()
            )));
        }
        let n = rows.len() / dim;
        if n < 2 {
            return Err(Error::Input(format!(
                "a covariance needs at least 2 samples, got {n}"
            )));
        }
        let x = DMatrix::from_row_iterator(n, dim, rows.iter().map(|&v| f64::from(v)));
        let mean = x.row_mean().transpose();
        let mut centered = x;
        for mut row in centered.row_iter_mut() {
            row -= mean.transpose();
        }
        let cov = (centered.transpose() * &centered) / (n - 1) as f64;
        Ok(Self {
            mean,
            cov,
            count: n,
        })
    }
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix, by cyclic Jacobi rotations.
///
/// Jacobi is slower than QR but exact to round-off on the matrices met here: covariances of
/// ReLU features have many all-zero rows (dead units), on which nalgebra 0.34's
/// `SymmetricEigen` returns NaN eigenvalues.
pub fn symmetric_eigen(m: &DMatrix<f64>) -> (DVector<f64>, DMatrix<f64>) {
    let n = m.nrows();
    let mut a = (m + m.transpose()) * 0.5;
    let mut v = DMatrix::<f64>::identity(n, n);
    let total = a.norm_squared();
    for _sweep in 0..100 {
        let mut off = 0.0;
        for p in 0..n {
            for q in p + 1..n {
                off += a[(p, q)] * a[(p, q)];
            }
        }
        if off <= 1e-30 * total || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[(p, q)];
                if apq.abs() < f64::MIN_POSITIVE {
                    continue;
                }
                // Rotate so that a[p][q] becomes 0: t = tan(angle), the smaller root of
                // t² + 2θt − 1 = 0.
                let theta = (a[(q, q)] - a[(p, p)]) / (2.0 * apq);
                let t = if theta.abs() > 1e150 {
                    0.5 / theta
                } else {
                    theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt())
                };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[(k, p)], a[(k, q)]);
                    a[(k, p)] = c * akp - s * akq;
                    a[(k, q)] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[(p, k)], a[(q, k)]);
                    a[(p, k)] = c * apk - s * aqk;
                    a[(q, k)] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[(k, p)], v[(k, q)]);
                    v[(k, p)] = c * vkp - s * vkq;
                    v[(k, q)] = s * vkp + c * vkq;
                }
            }
        }
    }
    (a.diagonal(), v)
}

/// The principal square root of a symmetric positive semi-definite matrix, by eigen
/// decomposition (round-off negative eigenvalues are taken as 0).
pub fn sqrtm_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let (values, vectors) = symmetric_eigen(m);
    let roots = values.map(|l| l.max(0.0).sqrt());
    &vectors * DMatrix::from_diagonal(&roots) * vectors.transpose()
}

/// `|μa − μb|² + tr(Σa) + tr(Σb) − 2 tr((Σa Σb)^½)`.
///
/// `tr((Σa Σb)^½)` is computed as `tr((Σa^½ Σb Σa^½)^½)`, which has the same eigenvalues
/// and is symmetric, so no complex round-off appears (as it can with a general `sqrtm`).
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> f64 {
    let diff = &a.mean - &b.mean;
    let root_a = sqrtm_psd(&a.cov);
    let inner = &root_a * &b.cov * &root_a;
    let tr_sqrt: f64 = symmetric_eigen(&inner)
        .0
        .iter()
        .map(|l| l.max(0.0).sqrt())
        .sum();
    let d = diff.norm_squared() + a.cov.trace() + b.cov.trace() - 2.0 * tr_sqrt;
    // Exact zero can come out as -1e-13.
    d.max(0.0)
}

/// Mean Euclidean distance over all pairs of vectors in `rows` (vectors of `dim` values).
/// Returns 0 for fewer than two vectors.
pub fn mean_pairwise_distance(rows: &[f32], dim: usize) -> f64 {
    let n = rows.len().checked_div(dim).unwrap_or(0);
    if n < 2 {
        return 0.0;
    }
    let vecs: Vec<&[f32]> = rows.chunks_exact(dim).collect();
    let mut total = 0.0f64;
    for (i, a) in vecs.iter().enumerate() {
        for b in &vecs[i + 1..] {
            let d2: f32 = a.iter().zip(*b).map(|(x, y)| (x - y) * (x - y)).sum();
            total += f64::from(d2).sqrt();
        }
    }
    total / (n * (n - 1) / 2) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_root_of_a_known_matrix() {
        // [[2, 1], [1, 2]]² = [[5, 4], [4, 5]].
        let m = DMatrix::from_row_slice(2, 2, &[5.0, 4.0, 4.0, 5.0]);
        let r = sqrtm_psd(&m);
        let want = DMatrix::from_row_slice(2, 2, &[2.0, 1.0, 1.0, 2.0]);
        assert!((r - want).abs().max() < 1e-12);
    }

    #[test]
    fn square_root_squares_back_on_a_random_covariance() {
        let rows: Vec<f32> = (0..400).map(|i| ((i * 37 % 101) as f32).sin()).collect();
        let g = Gaussian::fit(&rows, 8).unwrap();
        let r = sqrtm_psd(&g.cov);
        assert!((&r * &r - &g.cov).abs().max() < 1e-10);
    }

    #[test]
    fn eigen_handles_zero_rows_and_reconstructs() {
        // A covariance with dead (all-zero) units, like ReLU features.
        let mut rows = Vec::new();
        for i in 0..50 {
            for d in 0..12 {
                rows.push(if d % 3 == 0 {
                    0.0
                } else {
                    ((i * 7 + d * 13) as f32).cos()
                });
            }
        }
        let g = Gaussian::fit(&rows, 12).unwrap();
        let (values, vectors) = symmetric_eigen(&g.cov);
        assert!(values.iter().all(|l| l.is_finite()));
        let back = &vectors * DMatrix::from_diagonal(&values) * vectors.transpose();
        assert!((back - &g.cov).abs().max() < 1e-12);
        assert!(
            (&vectors.transpose() * &vectors - DMatrix::identity(12, 12))
                .abs()
                .max()
                < 1e-12
        );
        assert!(frechet_distance(&g, &g) < 1e-9);
    }

    #[test]
    fn covariance_matches_hand_computation() {
        let g = Gaussian::fit(&[1.0, 2.0, 3.0, 6.0], 2).unwrap();
        assert_eq!(g.mean.as_slice(), &[2.0, 4.0]);
        // Deviations (-1,-2), (1,2): cov = [[2,4],[4,8]] / (2-1).
        assert_eq!(g.cov.as_slice(), &[2.0, 4.0, 4.0, 8.0]);
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(Gaussian::fit(&[1.0, 2.0, 3.0], 2).is_err());
        assert!(Gaussian::fit(&[1.0, 2.0], 2).is_err());
        assert!(Gaussian::fit(&[], 0).is_err());
    }

    #[test]
    fn pairwise_distance_of_three_points() {
        // (0,0), (3,4), (0,4): distances 5, 3, 4.
        let d = mean_pairwise_distance(&[0.0, 0.0, 3.0, 4.0, 0.0, 4.0], 2);
        assert!((d - 4.0).abs() < 1e-9);
        assert_eq!(mean_pairwise_distance(&[1.0, 2.0], 2), 0.0);
    }
}
