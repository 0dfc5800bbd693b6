//! Hostile sizes and paths: every request is refused up front with one line, or finished with
//! bounded memory (peak RSS of the child process, from `wait4`); failed starts leave nothing
//! behind; exports are byte-reproducible; error messages read as prose.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TINY, cdcgan, stderr, train_args, workdir};

/// What a finished child left: exit code, stderr, peak RSS in MiB, wall time.
struct Ran {
    code: Option<i32>,
    err: String,
    peak_mib: u64,
    took: Duration,
}

/// Runs `cdcgan ARGS` in `dir` and measures its peak resident memory. The child is reaped by
/// `wait4` (which also reports its rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn measured(dir: &Path, args: &[&str]) -> Ran {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cdcgan"))
        .current_dir(dir)
        .args(args)
        .env_remove("MNIST_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 reaps our own child and fills both out-params.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 failed");
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Ran {
        code,
        err,
        peak_mib: (usage.ru_maxrss as u64) / 1024, // kilobytes on Linux
        took: started.elapsed(),
    }
}

/// The request is refused with exit 1, one line naming `want`, fast and small.
fn refused(dir: &Path, args: &[&str], want: &str) {
    let r = measured(dir, args);
    assert_eq!(r.code, Some(1), "{args:?}: {}", r.err);
    assert!(
        r.err.starts_with("error:") && r.err.lines().count() == 1 && r.err.contains(want),
        "{args:?}: {}",
        r.err
    );
    assert!(r.peak_mib < 200, "{args:?}: peak {} MiB", r.peak_mib);
    assert!(r.took < Duration::from_secs(20), "{args:?}: {:?}", r.took);
}

#[test]
fn oversized_requests_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: &[(&[&str], &str)] = &[
        (
            &["sample", "--per-class", "100000000"],
            "larger than the limit",
        ),
        (
            &["sample", "--digit", "3", "--count", "18446744073709551615"],
            "larger than the limit",
        ),
        (&["sample", "--scale", "100000"], "larger than the limit"),
        (
            &["number", "12", "--scale", "100000"],
            "larger than the limit",
        ),
        (
            &[
                "sample",
                "--format",
                "idx",
                "--count-per-class",
                "1000000000",
            ],
            "at most 4294967295",
        ),
        (
            &["train", "--grid-per-class", "100000", "--out", "g"],
            "grid_per_class",
        ),
        (&["eval", "--per-class", "100000000"], "at most 5000"),
        (
            &["eval", "--cas", "--cas-per-class", "100000000"],
            "1 to 20000",
        ),
        (
            &["train", "--batch-size", "1000000", "--out", "b"],
            "more than the 8 GiB budget",
        ),
        (
            &["sample", "--format", "idx", "--out", "/nonexistent/x"],
            "/nonexistent",
        ),
        (
            &["sample", "--out", "no/such/dir/s.png"],
            "not an existing directory",
        ),
    ];
    for (args, want) in cases {
        refused(d, args, want);
    }
    // Nothing was written by any of them.
    assert_eq!(std::fs::read_dir(d).unwrap().count(), 0);
    // A zero scale or an absurd walk is a usage error (exit 2), not a silent 1.
    for args in [
        &["sample", "--scale", "0"][..],
        &["number", "7", "--scale", "0"],
        &["interpolate", "--steps", "100000"],
        &["sample", "--threads", "0"],
    ] {
        let out = cdcgan(d, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn interpolate_checks_both_outputs_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = cdcgan(
        dir.path(),
        &["interpolate", "--steps", "3", "--gif", "missing/walk.gif"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("missing/walk.gif"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("interpolation.png").exists());
}

/// Peak memory of `sample` does not grow with the digit count: ten times the digits, as IDX
/// and as PNG, within a few MiB of the same peak.
#[test]
fn sampling_memory_is_independent_of_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        let r = measured(d, args);
        assert_eq!(r.code, Some(0), "{args:?}: {}", r.err);
        r.peak_mib
    };
    // Two chunks of 1000 digits (the allocator reaches its steady state in the second), then
    // ten.
    let idx_small = run(&[
        "sample",
        "--format",
        "idx",
        "--count-per-class",
        "200",
        "--out",
        "a",
    ]);
    let idx_large = run(&[
        "sample",
        "--format",
        "idx",
        "--count-per-class",
        "1000",
        "--out",
        "b",
    ]);
    assert!(
        idx_large <= idx_small + 16,
        "IDX: {idx_small} MiB for 2000 digits, {idx_large} MiB for 10000"
    );
    let bytes = std::fs::metadata(d.join("b-images-idx3-ubyte"))
        .unwrap()
        .len();
    assert_eq!(bytes, 16 + 10_000 * 784);
    let png_small = run(&["sample", "--per-class", "200", "--out", "a.png"]);
    let png_large = run(&["sample", "--per-class", "1000", "--out", "b.png"]);
    // The grid itself (10,000 digits, 9 MB of pixels) and its encoding grow; the floats do not.
    // Measured growth: under 48 MiB on an idle machine, 114 MiB once under CI's parallel tests;
    // before streaming it was about 270 KB a digit (13.4 GB at 50,000), 2.6 GB here.
    assert!(
        png_large <= png_small + 160,
        "PNG: {png_small} MiB for 2000 digits, {png_large} MiB for 10000"
    );
}

#[test]
fn a_failed_start_leaves_nothing_that_blocks_the_next() {
    let (dir, data) = workdir(40);
    let d = dir.path();
    for (data, extra, want) in [
        (
            data.as_str(),
            &["--epochs", "0"][..],
            "epochs must be at least 1",
        ),
        (
            &data,
            &["--epochs", "1", "--limit", "10"],
            "smaller than one batch",
        ),
        ("nowhere", &["--epochs", "1"], "nowhere"),
    ] {
        let mut args = vec!["train", "--data", data, "--out", "r"];
        args.extend_from_slice(TINY);
        args.extend_from_slice(extra);
        let out = cdcgan(d, &args);
        assert_eq!(out.status.code(), Some(1), "{extra:?}");
        assert!(stderr(&out).contains(want), "{extra:?}: {}", stderr(&out));
        assert!(!d.join("r").exists(), "{extra:?} left a run directory");
    }
    let out = cdcgan(d, &train_args(&data, "r", &["--epochs", "1"]));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn resume_and_checkpoint_paths_say_what_they_are() {
    let (dir, data) = workdir(40);
    let d = dir.path();
    let out = cdcgan(d, &["train", "--resume", "nowhere"]);
    assert!(
        stderr(&out).contains("nowhere: no such directory"),
        "{}",
        stderr(&out)
    );
    std::fs::create_dir(d.join("plain")).unwrap();
    let out = cdcgan(d, &["sample", "--checkpoint", "plain"]);
    let err = stderr(&out);
    assert!(
        err.contains("not a training run") && !err.contains("in this run"),
        "{err}"
    );
    // `info` on a run whose `latest` pointer is gone still finds its newest state.
    let out = cdcgan(d, &train_args(&data, "r", &["--epochs", "2"]));
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(d.join("r/checkpoints/latest")).unwrap();
    let out = cdcgan(d, &["info", "r"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The newest state damaged: resume says so and continues from the older one.
    let newest = d.join("r/checkpoints/state-00000004.safetensors");
    let mut bytes = std::fs::read(&newest).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&newest, bytes).unwrap();
    let out = cdcgan(d, &["train", "--resume", "r", "--epochs", "3"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("skipped") && err.contains("checksum"), "{err}");
    assert!(err.contains("older state: epoch 1"), "{err}");
}

#[test]
fn config_errors_keep_their_diagram_and_checkpoint_errors_read_as_prose() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bad.toml"), "[train]\nepochs = \"many\"\n").unwrap();
    let out = cdcgan(d, &["train", "--config", "bad.toml", "--print-config"]);
    let err = stderr(&out);
    assert!(err.starts_with("error: in bad.toml"), "{err}");
    assert!(
        err.lines().count() > 1 && err.lines().any(|l| l.trim_end().ends_with('^')),
        "{err}"
    );
    // A checkpoint of another architecture: named plainly, no `Some("...")`.
    let mut ckpt = cdcgan_model::Checkpoint::new(cdcgan_model::ModelConfig::tiny());
    let t = candle_core::Tensor::zeros(2, candle_core::DType::F32, &candle_core::Device::Cpu);
    ckpt.insert("gen.x", t.unwrap());
    let mut bytes = ckpt.to_bytes(candle_core::DType::F32).unwrap();
    // Same length, so the header stays valid.
    let at = bytes
        .windows(9)
        .position(|w| w == b"\"dcgan28\"")
        .expect("the architecture is recorded");
    bytes[at..at + 9].copy_from_slice(b"\"resnet9\"");
    std::fs::write(d.join("other.safetensors"), bytes).unwrap();
    let out = cdcgan(d, &["info", "other.safetensors"]);
    let err = stderr(&out);
    assert!(err.contains("architecture `resnet9`"), "{err}");
    assert!(!err.contains("Some("), "{err}");
}

#[test]
fn exports_are_byte_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/generator.safetensors");
    let shipped = shipped.to_str().unwrap();
    let mut files = Vec::new();
    for name in ["a.safetensors", "b.safetensors", "c.safetensors"] {
        let out = cdcgan(dir.path(), &["export", shipped, "--out", name]);
        assert!(out.status.success(), "{}", stderr(&out));
        files.push(std::fs::read(dir.path().join(name)).unwrap());
    }
    assert!(files[0] == files[1] && files[1] == files[2]);
}
