//! `cdcgan info` on a good and a broken checkpoint.

use std::process::Command;

use candle_core::{DType, Device};
use cdcgan_model::{Checkpoint, Gan, ModelConfig};

fn cdcgan(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cdcgan"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn info_lists_config_metadata_and_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.safetensors");
    let gan = Gan::new(ModelConfig::tiny(), 0, &Device::Cpu).unwrap();
    let mut ckpt = Checkpoint::new(*gan.config());
    gan.export(&mut ckpt, "");
    ckpt.metadata.insert("cdcgan.epoch".into(), "4".into());
    ckpt.save(&path, DType::F16).unwrap();
    let out = cdcgan(&["info".as_ref(), path.as_os_str()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("dcgan28"), "{text}");
    assert!(text.contains("epoch:") && text.contains(" 4"), "{text}");
    assert!(
        text.contains("gen.fc.weight") && text.contains("[392, 18]"),
        "{text}"
    );
}

#[test]
fn info_on_a_broken_file_is_one_line_and_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.safetensors");
    std::fs::write(&path, b"\x08\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    let out = cdcgan(&["info".as_ref(), path.as_os_str()]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("junk.safetensors"), "{err}");
}
