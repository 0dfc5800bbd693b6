//! Quality while training (`--eval-every`): the built-in judge measures the sampling generator
//! on a fixed draw of digits, beside real training digits of the same count.

use anyhow::Result;
use candle_core::{Device, Tensor};
use cdcgan_eval::{Evaluator, per_class_subset};
use cdcgan_model::{Generator, noise};
use cdcgan_train::Quality;
use mnist_data::{NUM_CLASSES, Split, signed_to_pixel};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Digits per class judged each time (1000 in all: a few seconds on two cores).
pub const PER_CLASS: usize = 100;

/// The judge and its real baseline, set up once per run.
pub struct LiveJudge {
    evaluator: Evaluator,
    per_class: usize,
    real_fid: f64,
}

impl LiveJudge {
    /// The built-in judge against `test`, with the FID of `per_class` real digits of each
    /// class of `train` (fewer if a class has fewer; at least 2) as the floor.
    pub fn new(train: &Split, test: &Split) -> Result<Self> {
        let per_class = PER_CLASS.min(crate::eval::rarest_class(train)).max(2);
        let judge = crate::eval::load_judge(None)?;
        let evaluator = Evaluator::new(judge.classifier, test)?;
        let real = evaluator.evaluate(&per_class_subset(train, per_class, 0)?)?;
        Ok(Self {
            evaluator,
            per_class,
            real_fid: real.fid,
        })
    }

    /// The quality of `generator`'s digits for a fixed noise draw (the same every call).
    pub fn measure(&self, generator: &Generator) -> Result<Quality> {
        let n = self.per_class * NUM_CLASSES;
        let labels: Vec<u8> = (0..n).map(|i| (i / self.per_class) as u8).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let z = noise(&mut rng, n, generator.config().z_dim, &Device::Cpu)?;
        let y = Tensor::from_vec(
            labels.iter().map(|&l| u32::from(l)).collect::<Vec<_>>(),
            n,
            &Device::Cpu,
        )?;
        let images = generator.forward_t(&z, &y, false)?;
        let pixels: Vec<f32> = images.flatten_all()?.to_vec1()?;
        let set = Split::new(pixels.into_iter().map(signed_to_pixel).collect(), labels)?;
        let m = self.evaluator.evaluate(&set)?;
        let (narrowest, diversity_min) = m
            .diversity
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, f64::NAN));
        Ok(Quality {
            accuracy: m.accuracy,
            fid: m.fid,
            real_fid: self.real_fid,
            diversity_min,
            narrowest_class: narrowest as u8,
        })
    }
}
