//! A learning test in seconds: on data where each class is its own pattern, a tiny model's
//! samples must come to resemble their own class's pattern. Ignoring the label, a generator
//! could at best match one class in ten, so this fails if conditioning is broken.

mod common;

use candle_core::{Device, Tensor};
use cdcgan_model::{ModelConfig, noise};
use cdcgan_train::{Run, RunConfig};
use common::{pattern, patterns};
use mnist_data::{NUM_CLASSES, pixel_to_signed};
use rand::SeedableRng;

#[test]
fn samples_resemble_their_own_class() {
    let data = patterns(400);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = RunConfig {
        model: ModelConfig {
            z_dim: 8,
            gen_width: 8,
            disc_width: 8,
            ..ModelConfig::tiny()
        },
        ..common::tiny(5, 20)
    };
    cfg.train.lr_g = 2e-3;
    cfg.train.lr_d = 2e-3;
    let mut run = Run::create(dir.path(), cfg, &Device::Cpu).unwrap();
    run.train(&data, &mut ()).unwrap();

    let per_class = 10;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let z = noise(&mut rng, NUM_CLASSES * per_class, 8, &Device::Cpu).unwrap();
    let labels: Vec<u32> = (0..NUM_CLASSES * per_class)
        .map(|i| (i / per_class) as u32)
        .collect();
    let y = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
    let images = run
        .trainer()
        .sampling_generator()
        .forward_t(&z, &y, false)
        .unwrap();
    let images: Vec<Vec<f32>> = images.flatten_from(1).unwrap().to_vec2().unwrap();
    let refs: Vec<Vec<f32>> = (0..NUM_CLASSES)
        .map(|c| pattern(c).into_iter().map(pixel_to_signed).collect())
        .collect();
    let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>();
    let correct = images
        .iter()
        .zip(&labels)
        .filter(|(img, l)| {
            let nearest = (0..NUM_CLASSES)
                .min_by(|&a, &b| dist(img, &refs[a]).total_cmp(&dist(img, &refs[b])))
                .unwrap();
            nearest == **l as usize
        })
        .count();
    let acc = correct as f64 / images.len() as f64;
    eprintln!("nearest-pattern accuracy: {acc:.2}");
    assert!(
        acc >= 0.8,
        "samples match their class pattern only {acc:.2} of the time"
    );
}
