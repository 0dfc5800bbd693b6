//! The evaluator end to end on synthetic digits (one bar pattern per class), and the Fréchet
//! distance against closed forms.

use candle_core::{DType, Device};
use cdcgan_eval::frechet::{Gaussian, frechet_distance};
use cdcgan_eval::{
    Classifier, Evaluator, FitConfig, accuracy, class_accuracy, classification_accuracy_score,
    confusion, fit, per_class_subset,
};
use mnist_data::{IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES, Split};
use proptest::prelude::*;

/// `n` images cycling through the classes: class c is a bar (vertical for 0..5, horizontal
/// for 5..10) at its own place, with a per-image offset and noise so classes have spread.
fn patterns(n: usize, seed: u32) -> Split {
    let mut images = Vec::with_capacity(n * IMAGE_PIXELS);
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        state >> 24
    };
    for i in 0..n {
        let c = i % NUM_CLASSES;
        let band = 2 + 5 * (c % 5) + (next() % 2) as usize;
        for y in 0..IMAGE_SIDE {
            for x in 0..IMAGE_SIDE {
                let coord = if c < 5 { x } else { y };
                let on = (band..band + 3).contains(&coord);
                let noise = (next() % 40) as u8;
                images.push(if on { 255 - noise } else { noise });
            }
        }
    }
    let labels = (0..n).map(|i| (i % NUM_CLASSES) as u8).collect();
    Split::new(images, labels).unwrap()
}

/// A recipe that learns the bars in a second.
fn quick_config() -> FitConfig {
    FitConfig {
        epochs: 2,
        batch_size: 50,
        lr: 2e-3,
        shift: 1.0,
        rotation: 0.0,
        scale: 0.0,
        dropout: 0.0,
        seed: 3,
    }
}

fn quick_fit(train: &Split) -> Classifier {
    fit(train, &quick_config(), &Device::Cpu, |_, _| true).unwrap()
}

#[test]
fn the_evaluator_reads_labels_spread_and_distance() {
    let train = patterns(600, 1);
    let test = patterns(400, 2);
    let net = quick_fit(&train);
    assert!(
        net.accuracy(&test).unwrap() > 0.95,
        "the classifier did not learn the bars"
    );

    // Accuracy against shuffled labels is chance.
    let scores = net.score(&test).unwrap();
    let mut shuffled = test.labels().to_vec();
    shuffled.rotate_left(3); // neighbours cycle through the classes, so every label is wrong
    assert!(accuracy(&scores.predictions, &shuffled) < 0.05);
    let mut scrambled: Vec<u8> = (0..test.len()).map(|i| ((i * 7919) % 10) as u8).collect();
    scrambled.sort_by_key(|&l| (l as usize * 31) % 7);
    let a = accuracy(&scores.predictions, &scrambled);
    assert!((0.03..0.25).contains(&a), "shuffled-label accuracy {a}");

    let eval = Evaluator::new(net, &test).unwrap();
    let per_class = eval.test_class_accuracy();
    let mean = per_class.iter().sum::<f64>() / NUM_CLASSES as f64;
    assert!((mean - eval.test_accuracy()).abs() < 1e-12, "{per_class:?}");
    // The test set measured against itself: perfect on every count.
    let same = eval.evaluate(&test).unwrap();
    // 40 images per class give rank-deficient covariances; the square roots of their
    // round-off eigenvalues (~1e-15) leave ~1e-6 per dimension.
    assert!(same.fid < 1e-4, "{}", same.fid);
    assert!(
        same.intra_fid.iter().all(|&f| f < 1e-3),
        "{:?}",
        same.intra_fid
    );
    assert!(same.diversity.iter().all(|&d| (d - 1.0).abs() < 1e-9));
    assert!(same.accuracy > 0.95);

    // Other draws of the same distribution: close, and about as varied.
    let fresh = eval.evaluate(&patterns(400, 9)).unwrap();
    assert!(fresh.diversity.iter().all(|&d| (0.8..1.25).contains(&d)));

    // Mode collapse: each class one repeated image.
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for i in 0..200 {
        let c = i % NUM_CLASSES;
        pixels.extend_from_slice(test.image(c));
        labels.push(c as u8);
    }
    let collapsed = eval.evaluate(&Split::new(pixels, labels).unwrap()).unwrap();
    assert!(collapsed.diversity.iter().all(|&d| d < 1e-6));
    assert!(collapsed.intra_fid_mean > fresh.intra_fid_mean);

    // A class with fewer than two images cannot be measured.
    let err = eval.evaluate(&patterns(19, 1)).unwrap_err().to_string();
    assert!(err.contains("class 9"), "{err}");
}

#[test]
fn the_judges_recipe_learns_through_its_augmentation_and_dropout_reproducibly() {
    let (train, test) = (patterns(400, 1), patterns(200, 2));
    // The default rotation, scale, shift and dropout, on a short run.
    let config = FitConfig {
        epochs: 2,
        batch_size: 50,
        seed: 3,
        ..FitConfig::default()
    };
    let run = || fit(&train, &config, &Device::Cpu, |_, _| true).unwrap();
    let net = run();
    let acc = net.accuracy(&test).unwrap();
    assert!(acc > 0.9, "test accuracy {acc}");
    let weights = |n: &Classifier| n.to_bytes(DType::F32).unwrap();
    assert_eq!(
        weights(&run()),
        weights(&net),
        "the same seed, the same judge"
    );
    let other = fit(
        &train,
        &FitConfig { seed: 4, ..config },
        &Device::Cpu,
        |_, _| true,
    )
    .unwrap();
    assert_ne!(weights(&other), weights(&net));
}

#[test]
fn class_accuracy_is_the_recall_of_each_class() {
    let labels = [0, 0, 1, 1, 1, 1, 3, 9, 9, 200];
    let preds = [0, 1, 1, 1, 1, 2, 3, 0, 9, 200];
    let per = class_accuracy(&preds, &labels);
    // Class 2 and 4-8 have no items; label 200 is no class and is left out.
    let want = [0.5, 0.75, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5];
    assert_eq!(per, want);
    let m = confusion(&preds, &labels);
    assert_eq!(
        (m[0][0], m[0][1], m[1][1], m[1][2], m[3][3]),
        (1, 1, 3, 1, 1)
    );
    assert_eq!((m[9][0], m[9][9]), (1, 1));
    assert_eq!(
        m.iter().flatten().sum::<usize>(),
        9,
        "label 200 is no class"
    );
}

#[test]
fn cas_trains_on_one_set_and_reads_each_class_of_another() {
    let config = quick_config();
    let test = patterns(400, 2);
    let good =
        classification_accuracy_score(&patterns(600, 1), &test, &config, &Device::Cpu, |_, _| true)
            .unwrap();
    assert!(good.accuracy > 0.95, "{good:?}");
    // Balanced classes: the overall accuracy is the mean of the per-class ones.
    let mean = good.class_accuracy.iter().sum::<f64>() / NUM_CLASSES as f64;
    assert!((mean - good.accuracy).abs() < 1e-12, "{good:?}");

    // A training set whose class 3 shows class 4's bar teaches nothing of class 3.
    let train = patterns(600, 1);
    let mut pixels = train.pixels().to_vec();
    for i in (3..train.len()).step_by(NUM_CLASSES) {
        let four = train.image(i + 1).to_vec();
        pixels[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS].copy_from_slice(&four);
    }
    let missing = Split::new(pixels, train.labels().to_vec()).unwrap();
    let cas =
        classification_accuracy_score(&missing, &test, &config, &Device::Cpu, |_, _| true).unwrap();
    assert!(cas.class_accuracy[3] < 0.5, "{cas:?}");
    // Every test digit is in its class's row, and the 3s were taken for something else.
    for (c, row) in cas.confusion.iter().enumerate() {
        let n = test
            .labels()
            .iter()
            .filter(|&&l| usize::from(l) == c)
            .count();
        assert_eq!(row.iter().sum::<usize>(), n, "{cas:?}");
    }
    assert_eq!(cas.confusion[3][3] as f64 / 40.0, cas.class_accuracy[3]);
    let others = (0..NUM_CLASSES).filter(|&c| c != 3 && c != 4);
    assert!(
        others.map(|c| cas.class_accuracy[c]).all(|a| a > 0.9),
        "{cas:?}"
    );
}

#[test]
fn per_class_subset_picks_n_of_each_class() {
    let split = patterns(100, 4);
    let sub = per_class_subset(&split, 3, 0).unwrap();
    assert_eq!(sub.len(), 30);
    for c in 0..NUM_CLASSES as u8 {
        assert_eq!(sub.labels().iter().filter(|&&l| l == c).count(), 3);
    }
    assert_eq!(
        per_class_subset(&split, 3, 0).unwrap().pixels(),
        sub.pixels()
    );
    let err = per_class_subset(&split, 11, 0).unwrap_err().to_string();
    assert!(err.contains("class 0 has 10"), "{err}");
}

#[test]
fn classifier_files_round_trip_and_bad_ones_are_named() {
    let dev = Device::Cpu;
    let mut net = Classifier::new(5, &dev).unwrap();
    net.record
        .insert("cdcgan.classifier".into(), "{\"x\":1}".into());
    let bytes = net.to_bytes(DType::F32).unwrap();
    let back = Classifier::from_bytes(&bytes, "mem", &dev).unwrap();
    assert_eq!(back.record, net.record);
    let test = patterns(20, 3);
    assert_eq!(
        back.score(&test).unwrap().features,
        net.score(&test).unwrap().features
    );

    let err = Classifier::from_bytes(&bytes[..bytes.len() - 10], "cut.safetensors", &dev)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cut.safetensors:"), "{err}");

    let generator = cdcgan_model::Gan::new(cdcgan_model::ModelConfig::tiny(), 0, &dev).unwrap();
    let mut ckpt = cdcgan_model::Checkpoint::new(*generator.config());
    generator.export(&mut ckpt, "");
    let err = Classifier::from_bytes(&ckpt.to_bytes(DType::F32).unwrap(), "gan.st", &dev)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gan.st") && err.contains("not a classifier"),
        "{err}"
    );
}

#[test]
fn a_corrupted_or_oversized_classifier_file_is_refused_before_it_is_used() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("judge.safetensors");
    Classifier::new(5, &dev)
        .unwrap()
        .save(&path, DType::F32)
        .unwrap();
    assert!(Classifier::load(&path, &dev).is_ok());
    // One flipped bit in the last tensor value is caught by the checksum.
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = Classifier::load(&path, &dev).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    // Grown to 1 GiB (sparse: no disk is used, and nothing may read it).
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let err = Classifier::load(&path, &dev).unwrap_err().to_string();
    assert!(
        err.contains("judge.safetensors")
            && err
                .contains("1073741824 bytes, but a file of what its header declares holds at most"),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary bytes never panic the loader.
    #[test]
    fn classifier_loader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Classifier::from_bytes(&bytes, "fuzz", &Device::Cpu);
    }

    /// FID(A, A + d) = |d|², FID(A, k·A) = (1 − k)² tr Σ for a centred A, and FID is symmetric.
    #[test]
    fn frechet_distance_matches_closed_forms(
        values in proptest::collection::vec(-3.0f32..3.0, 40..120),
        shift in proptest::collection::vec(-2.0f32..2.0, 4),
        k in 0.2f32..3.0,
    ) {
        let dim = 4;
        let n = values.len() / dim;
        let rows = &values[..n * dim];
        let a = Gaussian::fit(rows, dim).unwrap();
        prop_assert!(frechet_distance(&a, &a) < 1e-6);

        let moved: Vec<f32> = rows.iter().enumerate().map(|(i, v)| v + shift[i % dim]).collect();
        let b = Gaussian::fit(&moved, dim).unwrap();
        let d2: f64 = shift.iter().map(|s| f64::from(*s).powi(2)).sum();
        let fid = frechet_distance(&a, &b);
        prop_assert!((fid - d2).abs() < 1e-4 * (1.0 + d2), "{fid} vs {d2}");
        prop_assert!((frechet_distance(&b, &a) - fid).abs() < 1e-6);

        let centred: Vec<f32> = rows
            .iter()
            .enumerate()
            .map(|(i, v)| v - a.mean[i % dim] as f32)
            .collect();
        let c = Gaussian::fit(&centred, dim).unwrap();
        let scaled: Vec<f32> = centred.iter().map(|v| v * k).collect();
        let s = Gaussian::fit(&scaled, dim).unwrap();
        let want = (1.0 - f64::from(k)).powi(2) * c.cov.trace();
        let got = frechet_distance(&c, &s);
        prop_assert!((got - want).abs() < 1e-4 * (1.0 + want), "{got} vs {want}");
    }
}
