//! The `cdcgan` binary end to end: sampling from the built-in generator, numbers, datasets,
//! and training a tiny model on tiny data with Ctrl-C and `--resume`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cdcgan, stderr, train_args, workdir};
use mnist_data::Split;

#[test]
fn sample_writes_a_class_per_row_grid() {
    let dir = tempfile::tempdir().unwrap();
    let out = cdcgan(dir.path(), &["sample", "--per-class", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let img = image::open(dir.path().join("samples.png"))
        .unwrap()
        .to_luma8();
    // 2-pixel padding around 28-pixel cells: 4 columns, 10 rows.
    assert_eq!((img.width(), img.height()), (2 + 4 * 30, 2 + 10 * 30));
    // Black padding, and some white digit strokes in every row.
    assert!(img.rows().take(2).flatten().all(|p| p.0[0] == 0));
    for row in 0..10 {
        let y0 = 2 + row * 30;
        let bright = (y0..y0 + 28)
            .flat_map(|y| (0..img.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] > 128)
            .count();
        assert!(bright > 20, "row {row} is blank");
    }
    // The same seed gives the same picture; another seed another one.
    let again = cdcgan(
        dir.path(),
        &["sample", "--per-class", "4", "--out", "b.png"],
    );
    assert!(again.status.success());
    let other = cdcgan(
        dir.path(),
        &[
            "sample",
            "--per-class",
            "4",
            "--seed",
            "9",
            "--out",
            "c.png",
        ],
    );
    assert!(other.status.success());
    let read = |f: &str| std::fs::read(dir.path().join(f)).unwrap();
    assert_eq!(read("samples.png"), read("b.png"));
    assert_ne!(read("samples.png"), read("c.png"));
}

#[test]
fn number_draws_each_digit_and_rejects_non_digits() {
    let dir = tempfile::tempdir().unwrap();
    let out = cdcgan(
        dir.path(),
        &[
            "number", "2026", "--scale", "2", "--invert", "--out", "y.png",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let img = image::open(dir.path().join("y.png")).unwrap().to_luma8();
    assert_eq!((img.width(), img.height()), (4 * 28 * 2, 28 * 2));
    // Inverted: mostly white background.
    let white = img.pixels().filter(|p| p.0[0] > 200).count();
    assert!(white > img.pixels().count() / 2);
    for bad in ["12a", "-5", ""] {
        let out = cdcgan(dir.path(), &["number", bad]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.starts_with("error:") && err.lines().count() == 1,
            "{err}"
        );
    }
}

#[test]
fn idx_export_is_a_readable_labelled_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let out = cdcgan(
        dir.path(),
        &[
            "sample",
            "--format",
            "idx",
            "--count-per-class",
            "3",
            "--out",
            "syn",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let split = Split::read(
        dir.path().join("syn-images-idx3-ubyte"),
        dir.path().join("syn-labels-idx1-ubyte"),
    )
    .unwrap();
    assert_eq!(split.len(), 30);
    assert_eq!(split.labels()[..4], [0, 0, 0, 1]);
}

#[test]
fn bad_input_gives_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.safetensors"), b"not a checkpoint").unwrap();
    let cases: &[&[&str]] = &[
        &["sample", "--checkpoint", "junk.safetensors"],
        &["sample", "--checkpoint", "missing.safetensors"],
        &["sample", "--digit", "10"],
        &["train", "--data", "nowhere", "--out", "r"],
        &["train", "--epochs", "1", "--batch-size", "1", "--out", "r2"],
    ];
    for args in cases {
        let out = cdcgan(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("error:") && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    let out = cdcgan(dir.path(), &["train", "--data", "nowhere", "--out", "r3"]);
    assert!(stderr(&out).contains("cargo xtask fetch-mnist"));
    let out = cdcgan(dir.path(), &["sample", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_file_and_flags_combine_in_print_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[train]\nepochs = 7\nseed = 3\n[model]\nz_dim = 16\nprojection = true\n",
    )
    .unwrap();
    let out = cdcgan(
        dir.path(),
        &[
            "train",
            "--config",
            "c.toml",
            "--seed",
            "5",
            "--class-norm",
            "--projection",
            "false",
            "--print-config",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let cfg = cdcgan_train::RunConfig::from_toml(&text).unwrap();
    assert_eq!(
        (cfg.train.epochs, cfg.train.seed, cfg.model.z_dim),
        (7, 5, 16)
    );
    assert_eq!((cfg.model.projection, cfg.model.class_norm), (false, true));
    std::fs::write(dir.path().join("bad.toml"), "[train]\nepochz = 1\n").unwrap();
    let out = cdcgan(
        dir.path(),
        &["train", "--config", "bad.toml", "--print-config"],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bad.toml"));
}

#[test]
fn the_recipes_are_config_files_and_phases_parse() {
    let configs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let dir = tempfile::tempdir().unwrap();
    let effective = |name: &str| {
        let recipe = configs.join(name);
        let out = cdcgan(
            dir.path(),
            &[
                "train",
                "--config",
                recipe.to_str().unwrap(),
                "--print-config",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        cdcgan_train::RunConfig::from_toml(&String::from_utf8(out.stdout).unwrap()).unwrap()
    };
    let shipped = effective("shipped.toml");
    // The default recipe is the shipped one, and the plain DCGAN is one flag or file away.
    let print = |args: &[&str]| {
        let out = cdcgan(dir.path(), args);
        assert!(out.status.success(), "{}", stderr(&out));
        cdcgan_train::RunConfig::from_toml(&String::from_utf8(out.stdout).unwrap()).unwrap()
    };
    assert_eq!(print(&["train", "--print-config"]), shipped);
    let plain = print(&["train", "--preset", "dcgan", "--print-config"]);
    assert_eq!(effective("dcgan.toml"), plain);
    assert_eq!(plain, cdcgan_train::Preset::Dcgan.config());
    assert!(!plain.model.spectral_norm && plain.phases.is_empty());
    let out = cdcgan(dir.path(), &["train", "--preset", "wgan", "--print-config"]);
    assert!(
        stderr(&out).contains("unknown preset `wgan`"),
        "{}",
        stderr(&out)
    );
    let m = shipped.model;
    assert!(m.projection && m.spectral_norm && !m.spectral_norm_proj);
    assert_eq!((shipped.train.epochs, shipped.train.r1), (16, 0.5));
    let phases: Vec<_> = shipped
        .phases
        .iter()
        .map(|p| (p.from_epoch, p.set.lr, p.set.r1))
        .collect();
    assert_eq!(phases, [(10, Some(5e-5), None), (14, None, Some(0.0))]);

    let cfg = effective("batchnorm-projection.toml");
    assert!(cfg.model.projection && !cfg.model.spectral_norm);
    assert_eq!(cfg.train.epochs, 19);
    let phases: Vec<_> = cfg
        .phases
        .iter()
        .map(|p| (p.from_epoch, p.set.lr, p.set.mode_seeking))
        .collect();
    assert_eq!(
        phases,
        [
            (13, Some(5e-5), None),
            (15, Some(2e-5), None),
            (16, Some(5e-5), Some(0.5))
        ]
    );
}

#[test]
fn a_phase_is_announced_and_epoch_lines_reach_a_log_file() {
    let (dir, data) = workdir(48);
    std::fs::write(
        dir.path().join("p.toml"),
        "[[phase]]\nfrom_epoch = 2\nlr = 1e-4\nmode_seeking = 0.5\n",
    )
    .unwrap();
    // Not --quiet; stderr is a pipe here, as it is for `cdcgan train ... 2> log`.
    let mut args = train_args(&data, "run", &["--config", "p.toml", "--epochs", "2"]);
    args.retain(|a| *a != "--quiet");
    let out = cdcgan(dir.path(), &args);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    for line in [
        "epoch 1/2: d_loss",
        "epoch 2: phase: lr_g 0.0001, lr_d 0.0001",
        "mode_seeking 0.5,",
        "epoch 2/2: d_loss",
    ] {
        assert!(log.contains(line), "{line} missing from {log}");
    }
    let config = std::fs::read_to_string(dir.path().join("run/config.toml")).unwrap();
    assert!(config.contains("[[phase]]\nfrom_epoch = 2"), "{config}");
}

#[test]
fn train_writes_every_file_and_ctrl_c_then_resume_finishes() {
    let (dir, data) = workdir(160);
    let data = data.as_str();

    // A complete short run.
    let out = cdcgan(dir.path(), &train_args(data, "run", &["--epochs", "2"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let run = dir.path().join("run");
    for f in [
        "config.toml",
        "metrics.csv",
        "samples/epoch-001.png",
        "samples/epoch-002.png",
        "checkpoints/latest",
        "checkpoints/gen-epoch-002.safetensors",
        "checkpoints/best.safetensors",
        "progress.gif",
        "losses.png",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // Each epoch was judged (the default, --eval-every 1): its last metrics row has the
    // quality, and the plot shows FID beside the losses.
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let judged = metrics.lines().skip(1).filter(|l| !l.ends_with(",,"));
    assert_eq!(judged.count(), 2, "{metrics}");
    let plot = image::open(run.join("losses.png")).unwrap();
    assert_eq!(plot.width(), 1400);
    // --json carries the quality; --eval-every 0 measures nothing.
    let out = cdcgan(
        dir.path(),
        &train_args(data, "run-json", &["--epochs", "1", "--json"]),
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fid = line["quality"]["fid"].as_f64().unwrap();
    assert!(fid.is_finite() && fid >= 0.0, "{line}");
    assert_eq!(line["best_epoch"], 1);
    // Where the epoch's time went: the steps take the most of it.
    let time = &line["time"];
    let part = |k: &str| time[k].as_f64().unwrap_or_else(|| panic!("{k}: {line}"));
    assert!(part("steps") > 0.0 && part("judge") > 0.0, "{line}");
    for k in ["data", "logging", "grid", "checkpoints"] {
        assert!(part(k) >= 0.0, "{k}: {line}");
    }
    let out = cdcgan(
        dir.path(),
        &train_args(data, "run-off", &["--epochs", "1", "--eval-every", "0"]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut args = train_args(data, "run-profile", &["--epochs", "1", "--profile"]);
    args.retain(|a| *a != "--quiet");
    let out = cdcgan(dir.path(), &args);
    let err = stderr(&out);
    assert!(
        err.contains("time: steps") && err.contains("judge"),
        "{err}"
    );
    assert!(
        !dir.path()
            .join("run-off/checkpoints/best.safetensors")
            .exists()
    );
    // Samples from the run's generator.
    let out = cdcgan(
        dir.path(),
        &[
            "sample",
            "--checkpoint",
            "run/checkpoints/gen-epoch-002.safetensors",
            "--per-class",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // A run directory or its `latest` pointer stand for the newest state.
    for ckpt in ["run", "run/checkpoints/latest"] {
        let out = cdcgan(
            dir.path(),
            &["export", ckpt, "--raw", "--out", "g.safetensors"],
        );
        assert!(out.status.success(), "{ckpt}: {}", stderr(&out));
    }

    // Interrupted with SIGINT, then resumed to the end. Started on a relative --data and a
    // --limit, which the resume below, from another directory, does not repeat.
    let args = train_args("data", "run2", &["--epochs", "400", "--limit", "150"]);
    let child = Command::new(env!("CARGO_BIN_EXE_cdcgan"))
        .current_dir(dir.path())
        .args(&args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let grid = dir.path().join("run2/samples/epoch-001.png");
    let start = Instant::now();
    while !grid.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no epoch finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("--resume"), "{}", stderr(&out));
    assert!(!dir.path().join("run2/progress.gif").exists());

    // Other data than the run's is refused before any training...
    let out = cdcgan(
        dir.path(),
        &[
            "train", "--resume", "run2", "--limit", "100", "--epochs", "3",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("trained on other data (150 examples"),
        "{}",
        stderr(&out)
    );
    // ...and the run's own is found again from anywhere. Resumed, and shortened so the test
    // ends: it finishes with every epoch's grid.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let out = cdcgan(
        &elsewhere,
        &["train", "--resume", "../run2", "--epochs", "3", "--quiet"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let run2 = dir.path().join("run2");
    let record = std::fs::read_to_string(run2.join("data.toml")).unwrap();
    assert!(
        record.contains("identity = \"150 examples, sha256 ") && record.contains("limit = 150"),
        "{record}"
    );
    assert!(run2.join("progress.gif").is_file() && run2.join("losses.png").is_file());
    assert!(run2.join("samples/epoch-001.png").is_file());
    let config = std::fs::read_to_string(run2.join("config.toml")).unwrap();
    assert!(config.contains("epochs = 3"), "{config}");
    // The schedule and the loss knobs may change on resume (here: one more epoch with
    // mode seeking and a lower rate), and the change is recorded...
    let out = cdcgan(
        dir.path(),
        &[
            "train",
            "--resume",
            "run2",
            "--data",
            data,
            "--epochs",
            "4",
            "--lr",
            "1e-4",
            "--mode-seeking",
            "0.5",
            "--quiet",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(run2.join("samples/epoch-004.png").is_file());
    let config = std::fs::read_to_string(run2.join("config.toml")).unwrap();
    for line in [
        "epochs = 4",
        "lr_g = 0.0001",
        "lr_d = 0.0001",
        "mode_seeking = 0.5",
    ] {
        assert!(config.contains(line), "{line} missing from {config}");
    }
    // ...but not what fixes the saved state or the data order: the usage error names it.
    for flag in [
        ["--seed", "4"],
        ["--gen-width", "64"],
        ["--projection", "false"],
        ["--spectral-norm", "true"],
        ["--spectral-norm-proj", "false"],
    ] {
        let mut args = vec!["train", "--resume", "run2", "--data", data, "--lr", "1e-4"];
        args.extend(flag);
        let out = cdcgan(dir.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{flag:?}");
        // A model flag is named alone; the training settings a run keeps for life are listed
        // together.
        let err = stderr(&out);
        assert!(
            err.contains("'--resume <RUN_DIR>' cannot be used with")
                && err.contains(&format!("{} ", flag[0])),
            "{err}"
        );
    }
    // A complete run has nothing to train: said, and its files are left alone.
    let out = cdcgan(dir.path(), &["train", "--resume", "run2", "--epochs", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has completed 4 epochs: nothing to train; `--epochs 5`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(run2.join("config.toml")).unwrap(),
        config
    );
}
