//! Checks against the real MNIST files, in `../shared/mnist` beside the workspace or
//! `$MNIST_DIR`. They are ignored by default (`cargo test -- --ignored` runs them); the
//! comparison with `candle_datasets::vision::mnist`, tensor for tensor, also needs the
//! `candle-datasets-check` feature:
//!
//! ```text
//! cargo test -p mnist-data --features candle-datasets-check --test real_mnist -- --ignored
//! ```

use std::path::PathBuf;

use mnist_data::{IdxArray, MNIST_FILES, Mnist};

/// The real MNIST directory; a test asked to run without it fails, saying where it looked.
fn real_dir() -> PathBuf {
    let candidates = [
        std::env::var_os("MNIST_DIR").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/mnist")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|d| MNIST_FILES.iter().all(|f| f.find_in(d).is_ok()))
        .expect("real MNIST not found in $MNIST_DIR or ../shared/mnist")
}

#[cfg(feature = "candle-datasets-check")]
#[test]
#[ignore = "needs MNIST"]
fn matches_candle_datasets_on_the_real_files() {
    use candle_core::{DType, Device};
    let dir = real_dir();
    let ours = Mnist::load(&dir).unwrap();
    assert_eq!(ours.train.len(), 60_000);
    assert_eq!(ours.test.len(), 10_000);

    // candle-datasets reads only raw files with canonical names: decompress into a temp dir.
    let raw = tempfile::tempdir().unwrap();
    for f in MNIST_FILES {
        let a = IdxArray::read(f.find_in(&dir).unwrap()).unwrap();
        a.write(raw.path().join(f.name), mnist_data::Compression::None)
            .unwrap();
    }
    let theirs = candle_datasets::vision::mnist::load_dir(raw.path()).unwrap();

    let dev = Device::Cpu;
    for (split, images, labels) in [
        (&ours.train, &theirs.train_images, &theirs.train_labels),
        (&ours.test, &theirs.test_images, &theirs.test_labels),
    ] {
        let our_images = (split
            .images_tensor(&dev)
            .unwrap()
            .flatten_from(1)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            / 255.)
            .unwrap();
        assert_eq!(our_images.dims(), images.dims());
        let diff = (our_images - images)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0);
        assert_eq!(
            split.labels_tensor(&dev).unwrap().to_vec1::<u8>().unwrap(),
            labels.to_vec1::<u8>().unwrap()
        );
    }
}

#[test]
#[ignore = "needs MNIST"]
fn the_real_files_load_and_a_truncated_one_is_refused_with_its_name() {
    let dir = real_dir();
    let mnist = Mnist::load(&dir).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
    let path = MNIST_FILES[3].find_in(&dir).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cut = tmp.path().join("t10k-labels-idx1-ubyte.gz");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let msg = IdxArray::read(&cut).unwrap_err().to_string();
    assert!(msg.contains("t10k-labels-idx1-ubyte.gz"), "{msg}");
}
