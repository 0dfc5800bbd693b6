//! The text reports of `cdcgan eval`: the metrics beside real digits, per class, the
//! targets, and CAS.

use std::fmt::Write as _;

use cdcgan_eval::{Cas, Comparison, Evaluator, Metrics, Target};

use super::{EvalArgs, Measured, source_name};
use mnist_data::NUM_CLASSES;

pub fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)))
}

/// The summary rows, one column per measured set, then per-class rows for each set.
pub fn table(columns: &[(&str, &Metrics)]) -> String {
    let mut s = format!("{:<22}", "");
    for (name, _) in columns {
        let _ = write!(s, "{name:>16}");
    }
    s.push('\n');
    type Cell<'a> = &'a dyn Fn(&Metrics) -> String;
    let rows: [(&str, Cell); 5] = [
        ("label accuracy", &|m| pct(m.accuracy)),
        ("FID", &|m| format!("{:.3}", m.fid)),
        ("intra-class FID", &|m| format!("{:.3}", m.intra_fid_mean)),
        ("diversity min", &|m| {
            format!("{:.3}", min_max(&m.diversity).0)
        }),
        ("diversity max", &|m| {
            format!("{:.3}", min_max(&m.diversity).1)
        }),
    ];
    for (label, f) in rows {
        let _ = write!(s, "{label:<22}");
        for (_, m) in columns {
            let _ = write!(s, "{:>16}", f(m));
        }
        s.push('\n');
    }
    s.push('\n');
    let mut rows: Vec<ClassRow> = Vec::new();
    for (name, m) in columns {
        rows.push((format!("accuracy % ({name})"), &m.class_accuracy, 100.0, 2));
        rows.push((format!("intra-FID ({name})"), &m.intra_fid, 1.0, 2));
        rows.push((format!("diversity ({name})"), &m.diversity, 1.0, 3));
    }
    s.push_str(&class_rows("per class", &rows));
    s
}

/// A row of per-class values: label, values, scale, decimals.
pub type ClassRow<'a> = (String, &'a [f64], f64, usize);

/// A header of the classes and one line per row, each value times its scale.
pub fn class_rows(title: &str, rows: &[ClassRow]) -> String {
    let mut s = format!("{title:<22}");
    for c in 0..NUM_CLASSES {
        let _ = write!(s, "{c:>7}");
    }
    s.push('\n');
    for (label, values, scale, prec) in rows {
        let _ = write!(s, "{label:<22}");
        for v in *values {
            let _ = write!(s, "{:>7.prec$}", v * scale);
        }
        s.push('\n');
    }
    s
}

/// For each class, the class its misread test digits were most often taken for, and their
/// share of the class (in %).
pub fn most_confused(confusion: &[[usize; NUM_CLASSES]]) -> String {
    let mut names = format!("{:<22}", "CAS misses: taken for");
    let mut shares = Vec::with_capacity(NUM_CLASSES);
    for (c, row) in confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        let worst = (0..NUM_CLASSES)
            .filter(|&p| p != c)
            .max_by_key(|&p| (row[p], std::cmp::Reverse(p)));
        match worst {
            Some(p) if row[p] > 0 => {
                let _ = write!(names, "{p:>7}");
                shares.push(row[p] as f64 / total as f64);
            }
            _ => {
                let _ = write!(names, "{:>7}", "-");
                shares.push(0.0);
            }
        }
    }
    names.push('\n');
    let _ = write!(names, "{:<22}", "  % of the class");
    for v in shares {
        let _ = write!(names, "{:>7.2}", 100.0 * v);
    }
    names.push('\n');
    names
}

/// The targets as a table: each metric, generated and real, the ratio or difference, its
/// bound and whether it is met; then a count of those met.
pub fn targets_table(rows: &[Target]) -> String {
    let mut s = format!(
        "{:<18}{:>11}{:>11}{:>12}{:>16}  {}\n",
        "target", "generated", "real", "measured", "bound", "met"
    );
    for t in rows {
        let (g, r, value, bound) = match t.comparison {
            Comparison::Difference => (
                pct(t.generated),
                pct(t.real),
                format!("{:+.2} pt", 100.0 * t.value),
                format!(">= {:+.1} pt", 100.0 * t.min.unwrap_or(f64::NAN)),
            ),
            Comparison::Ratio => {
                let bound = match (t.min, t.max) {
                    (Some(lo), Some(hi)) => format!("{lo:.2}..{hi:.2}x"),
                    (None, Some(hi)) => format!("<= {hi:.2}x"),
                    (Some(lo), None) => format!(">= {lo:.2}x"),
                    (None, None) => String::new(),
                };
                (
                    format!("{:.3}", t.generated),
                    format!("{:.3}", t.real),
                    format!("{:.3}x", t.value),
                    bound,
                )
            }
        };
        let met = if t.met { "met" } else { "not met" };
        let _ = writeln!(
            s,
            "{:<18}{g:>11}{r:>11}{value:>12}{bound:>16}  {met}",
            t.metric
        );
    }
    let met = rows.iter().filter(|t| t.met).count();
    let _ = writeln!(s, "{met} of {} targets met", rows.len());
    s
}

/// The metrics table: the judged digits (if any) beside real ones, and what they were read
/// against.
pub fn summary(m: &Measured, judge_acc: f64) -> String {
    let mut columns = Vec::new();
    if let Some(g) = &m.generated {
        columns.push(("generated", g));
    }
    columns.push(("real (train)", &m.real));
    let mut out = table(&columns);
    out.push_str(&format!(
        "{} per class; reference: the {} MNIST test digits; judge ({}) accuracy on them {}\n",
        m.per_class,
        m.test_len,
        m.judge_name,
        pct(judge_acc)
    ));
    out
}

/// Everything measured as one JSON object.
pub fn json_report(args: &EvalArgs, m: &Measured, evaluator: &Evaluator) -> serde_json::Value {
    let judge_acc = evaluator.test_accuracy();
    let cas = m.cas.as_ref();
    serde_json::json!({
        "source": source_name(args),
        "judge": m.judge_name,
        "judge_sha256": m.judge_sha256,
        "judge_test_accuracy": judge_acc,
        "per_class": m.per_class,
        "seed": args.seed,
        "generated": m.generated,
        "real": m.real,
        "targets": m.rows,
        "targets_met": m.rows.as_ref().map(|r| r.iter().all(|t| t.met)),
        "cas_digits": cas.map(|(n, _)| n),
        "cas": cas.map(|(_, c)| c.accuracy),
        "cas_class": cas.map(|(_, c)| &c.class_accuracy),
        "cas_confusion": cas.map(|(_, c)| &c.confusion),
        "cas_real": cas.map(|_| judge_acc),
        "cas_real_class": cas.map(|_| evaluator.test_class_accuracy()),
    })
}

/// CAS overall and per class beside the judge's own (the same recipe on real digits).
pub fn cas_report(
    n: usize,
    name: &str,
    score: &Cas,
    judge_acc: f64,
    judge_class: &[f64],
) -> String {
    let mut out = format!(
        "\nCAS: a classifier trained on {n} {name} digits scores {} on the real test set \
         (trained on the real training set: {})\n",
        pct(score.accuracy),
        pct(judge_acc)
    );
    out.push_str(&class_rows(
        "CAS per class",
        &[
            (format!("CAS % ({name})"), &score.class_accuracy, 100.0, 2),
            ("CAS % (judge)".into(), judge_class, 100.0, 2),
        ],
    ));
    out.push_str(&most_confused(&score.confusion));
    out
}
