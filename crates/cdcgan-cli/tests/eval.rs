//! `cdcgan eval` and `cdcgan train-classifier` end to end on tiny data.

mod common;

use common::{cdcgan, stderr, train_args, workdir};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The one JSON object `eval --json` prints, and nothing else.
fn json_line(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    let text = stdout(o);
    assert_eq!(text.lines().count(), 1, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// `args` with `--json` added.
fn json<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.push("--json");
    v
}

/// The command succeeded and its report has each of `rows`.
fn assert_rows(out: &std::process::Output, rows: &[&str]) {
    assert!(out.status.success(), "{}", stderr(out));
    let text = stdout(out);
    for row in rows {
        assert!(text.contains(row), "{row} missing:\n{text}");
    }
}

#[test]
fn eval_prints_scores_beside_the_real_baseline() {
    let (dir, data) = workdir(100);
    let data = data.as_str();

    let out = cdcgan(dir.path(), &["eval", "--data", data, "--per-class", "4"]);
    assert_rows(
        &out,
        &[
            "label accuracy",
            "FID",
            "intra-class FID",
            "diversity min",
            "real (train)",
            "target",
            "diversity 6",
            "13 targets met",
        ],
    );
    assert!(
        !stdout(&out).contains('{'),
        "the table alone: {}",
        stdout(&out)
    );
    let args = ["eval", "--data", data, "--per-class", "4"];
    let j = json_line(&cdcgan(dir.path(), &json(&args)));
    assert_eq!(j["source"], "built-in");
    assert_eq!(j["judge"], "built-in");
    assert_eq!(j["judge_sha256"].as_str().map(str::len), Some(64));
    let targets = j["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 13);
    assert_eq!(targets[1]["metric"], "FID");
    let ratio = targets[1]["generated"].as_f64().unwrap() / targets[1]["real"].as_f64().unwrap();
    assert!((targets[1]["value"].as_f64().unwrap() - ratio).abs() <= 1e-9 * ratio.abs());
    let all_met = targets.iter().all(|t| t["met"] == true);
    assert_eq!(j["targets_met"], all_met);
    assert_eq!(j["generated"]["count"], 40);
    assert_eq!(j["real"]["count"], 40);
    assert_eq!(j["generated"]["intra_fid"].as_array().unwrap().len(), 10);
    assert!(j["generated"]["fid"].as_f64().unwrap() >= 0.0);
    // The same seed gives the same numbers.
    assert_eq!(json_line(&cdcgan(dir.path(), &json(&args))), j);

    // CAS, overall and per class, beside the judge's own per-class accuracy.
    let args = [
        "eval",
        "--data",
        data,
        "--per-class",
        "4",
        "--cas",
        "--cas-per-class",
        "3",
    ];
    let out = cdcgan(dir.path(), &args);
    assert_rows(
        &out,
        &[
            "CAS per class",
            "CAS % (generated)",
            "CAS % (judge)",
            "CAS misses: taken for",
            "14 targets met",
        ],
    );
    let j = json_line(&cdcgan(dir.path(), &json(&args)));
    assert_eq!(j["cas_digits"], 30);
    assert_eq!(j["targets"][13]["metric"], "CAS");
    let cas = j["cas"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&cas), "{cas}");
    for key in ["cas_class", "cas_real_class"] {
        assert_eq!(j[key].as_array().map(Vec::len), Some(10), "{key}: {j}");
    }
    assert_eq!(j["cas_real"], j["judge_test_accuracy"]);
    let rows = j["cas_confusion"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|r| r.as_array().map(Vec::len) == Some(10)));

    let out = cdcgan(
        dir.path(),
        &[
            "eval",
            "--data",
            data,
            "--per-class",
            "4",
            "--real",
            "--json",
        ],
    );
    let j = json_line(&out);
    assert!(j["generated"].is_null() && j["targets"].is_null());
    assert_eq!(j["source"], "real-train");

    // Bad requests: one line each, exit 1.
    for (args, want) in [
        (
            vec!["eval", "--data", data, "--per-class", "1"],
            "at least 2",
        ),
        (
            vec!["eval", "--data", data, "--per-class", "11"],
            "class 0 has 10",
        ),
        (vec!["eval", "--data", "nowhere"], "fetch-mnist"),
        (
            vec!["eval", "--data", data, "--classifier", "Cargo.toml"],
            "Cargo.toml",
        ),
    ] {
        let out = cdcgan(dir.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains(want) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}

#[test]
fn eval_dir_scores_every_epoch_and_a_trained_classifier_can_judge() {
    let (dir, data) = workdir(160);
    let data = data.as_str();
    let out = cdcgan(dir.path(), &train_args(data, "run", &["--epochs", "2"]));
    assert!(out.status.success(), "{}", stderr(&out));

    let out = cdcgan(
        dir.path(),
        &[
            "train-classifier",
            "--data",
            data,
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--out",
            "judge.safetensors",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("test acc"), "{}", stdout(&out));

    let out = cdcgan(
        dir.path(),
        &[
            "eval",
            "--data",
            data,
            "--per-class",
            "3",
            "--dir",
            "run",
            "--classifier",
            "judge.safetensors",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = std::fs::read_to_string(dir.path().join("run/eval.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[0].starts_with("epoch,accuracy,fid"));
    assert!(rows[1].starts_with("1,") && rows[2].starts_with("2,"));
    let png = image::open(dir.path().join("run/eval.png")).unwrap();
    assert_eq!((png.width(), png.height()), (1500, 450));

    // --dir on something that is not a run.
    let out = cdcgan(dir.path(), &["eval", "--data", data, "--dir", "data"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a run directory"),
        "{}",
        stderr(&out)
    );
}

/// Adds seeded noise to the digits in an IDX pair, rewrites it and returns it.
fn speckle(images: &str, labels: &str, compression: mnist_data::Compression) -> mnist_data::Split {
    let bars = mnist_data::Split::read(images, labels).unwrap();
    let mut state = 7u32;
    let pixels = bars.pixels().iter().map(|&p| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        p.saturating_add((state >> 26) as u8 * 3)
    });
    let split = mnist_data::Split::new(pixels.collect(), bars.labels().to_vec()).unwrap();
    split.write(images, labels, compression).unwrap();
    split
}

/// Writes `split`'s digits as PNGs under `dir`: even ones as `DIR/C/i.png`, odd ones as
/// `DIR/C_i.png`.
fn write_pngs(split: &mnist_data::Split, dir: &std::path::Path) {
    for i in 0..split.len() {
        let c = split.labels()[i];
        let img = image::GrayImage::from_raw(28, 28, split.image(i).to_vec()).unwrap();
        let path = if i % 2 == 0 {
            let sub = dir.join(c.to_string());
            std::fs::create_dir_all(&sub).unwrap();
            sub.join(format!("{i}.png"))
        } else {
            std::fs::create_dir_all(dir).unwrap();
            dir.join(format!("{c}_{i}.png"))
        };
        img.save(path).unwrap();
    }
}

#[test]
fn eval_judges_anyones_digits_from_idx_files_or_png_folders() {
    let (dir, data) = workdir(100);
    let data = data.as_str();
    let images = format!("{data}/train-images-idx3-ubyte.gz");
    let labels = format!("{data}/train-labels-idx1-ubyte.gz");
    // Speckle the digits so that every class has spread (diversity is a ratio of spreads).
    let test = (
        format!("{data}/t10k-images-idx3-ubyte"),
        format!("{data}/t10k-labels-idx1-ubyte"),
    );
    speckle(&test.0, &test.1, mnist_data::Compression::None);
    let split = speckle(&images, &labels, mnist_data::Compression::Gzip);
    // The training digits themselves: the baseline draws the same 10 per class, so every
    // ratio is 1 and every target is met.
    let idx = json_line(&cdcgan(
        dir.path(),
        &json(&[
            "eval", "--data", data, "--images", &images, "--labels", &labels,
        ]),
    ));
    assert_eq!(idx["per_class"], 10);
    assert_eq!(idx["generated"]["count"], 100);
    assert_eq!(idx["targets_met"], true, "{idx}");
    for t in idx["targets"].as_array().unwrap() {
        let v = t["value"].as_f64().unwrap();
        // Summed in another order than the baseline's copy: equal to float rounding.
        assert!(v.abs() < 1e-9 || (v - 1.0).abs() < 1e-4, "{t}");
    }

    // The same digits as PNGs, in class folders and with the class leading the name.
    let pngs = dir.path().join("pngs");
    write_pngs(&split, &pngs);
    let png = json_line(&cdcgan(
        dir.path(),
        &json(&["eval", "--data", data, "--images", "pngs"]),
    ));
    // Read in another order (folders first): equal up to float rounding.
    let (p, i) = (&png["generated"], &idx["generated"]);
    assert_eq!(
        (&p["count"], &p["class_accuracy"]),
        (&i["count"], &i["class_accuracy"])
    );
    for key in ["fid", "intra_fid_mean"] {
        let (a, b) = (p[key].as_f64().unwrap(), i[key].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-6 * b, "{key}: {a} vs {b}");
    }
    assert_eq!(png["source"], "pngs");

    // Bad input: one line naming the file and the problem.
    std::fs::write(pngs.join("notes.txt"), "ignored").unwrap();
    image::GrayImage::new(28, 28)
        .save(pngs.join("img.png"))
        .unwrap();
    image::GrayImage::new(28, 27)
        .save(dir.path().join("7_small.png"))
        .unwrap();
    std::fs::create_dir_all(dir.path().join("small")).unwrap();
    std::fs::rename(
        dir.path().join("7_small.png"),
        dir.path().join("small/7_small.png"),
    )
    .unwrap();
    write_pngs(&split.take(15), &dir.path().join("few"));
    // A header claiming a billion digits is refused before anything is read.
    let mut huge = vec![0, 0, 8, 3];
    for d in [1_000_000_000u32, 28, 28] {
        huge.extend(d.to_be_bytes());
    }
    std::fs::write(dir.path().join("huge-images"), huge).unwrap();
    for (args, want) in [
        (vec!["--images", "pngs"], "img.png: no class in its name"),
        (vec!["--images", "small"], "7_small.png: 28x27 pixels"),
        (vec!["--images", "few"], "class 5 has fewer than 2"),
        (vec!["--images", &images], "give its labels with --labels"),
        (vec!["--images", "nowhere", "--labels", &labels], "nowhere"),
        (
            vec!["--images", "huge-images", "--labels", &labels],
            "holds 1000000000 digits, at most 150000",
        ),
    ] {
        let mut full = vec!["eval", "--data", data];
        full.extend(args.iter().copied());
        let out = cdcgan(dir.path(), &full);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains(want) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}
