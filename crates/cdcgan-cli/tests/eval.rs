//! `cdcgan eval` and `cdcgan train-classifier` end to end on tiny data.

mod common;

use common::{cdcgan, stderr, train_args, workdir};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The JSON line `eval` prints last.
fn json_line(o: &std::process::Output) -> serde_json::Value {
    let text = stdout(o);
    let line = text.lines().last().expect("some output");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
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
        ],
    );
    let j = json_line(&out);
    assert_eq!(j["source"], "built-in");
    assert_eq!(j["generated"]["count"], 40);
    assert_eq!(j["real"]["count"], 40);
    assert_eq!(j["generated"]["intra_fid"].as_array().unwrap().len(), 10);
    assert!(j["generated"]["fid"].as_f64().unwrap() >= 0.0);
    // The same seed gives the same numbers.
    let again = cdcgan(dir.path(), &["eval", "--data", data, "--per-class", "4"]);
    assert_eq!(json_line(&again), j);

    // CAS, overall and per class, beside the judge's own per-class accuracy.
    let out = cdcgan(
        dir.path(),
        &[
            "eval",
            "--data",
            data,
            "--per-class",
            "4",
            "--cas",
            "--cas-per-class",
            "3",
        ],
    );
    assert_rows(
        &out,
        &[
            "CAS per class",
            "CAS % (generated)",
            "CAS % (judge)",
            "CAS misses: taken for",
        ],
    );
    let j = json_line(&out);
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
        &["eval", "--data", data, "--per-class", "4", "--real"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let j = json_line(&out);
    assert!(j["generated"].is_null());
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
