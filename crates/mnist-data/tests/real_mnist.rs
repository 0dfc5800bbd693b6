//! Checks against the real MNIST files when `../shared/mnist` (or `MNIST_DIR`) is present:
//! our loader must agree with `candle_datasets::vision::mnist` tensor for tensor.

use std::path::PathBuf;

use candle_core::{DType, Device};
use mnist_data::{IdxArray, MNIST_FILES, Mnist};

fn real_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("MNIST_DIR").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/mnist")),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|d| MNIST_FILES.iter().all(|f| f.find_in(d).is_ok()));
    if found.is_none() {
        eprintln!("notice: real MNIST not found (../shared/mnist or MNIST_DIR); skipping");
    }
    found
}

#[test]
fn matches_candle_datasets_on_the_real_files() {
    let Some(dir) = real_dir() else { return };
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
fn truncated_real_file_is_refused_with_its_name() {
    let Some(dir) = real_dir() else { return };
    let path = MNIST_FILES[3].find_in(&dir).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cut = tmp.path().join("t10k-labels-idx1-ubyte.gz");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let msg = IdxArray::read(&cut).unwrap_err().to_string();
    assert!(msg.contains("t10k-labels-idx1-ubyte.gz"), "{msg}");
}
