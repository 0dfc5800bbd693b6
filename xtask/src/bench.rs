//! `cargo xtask bench`: our kernels, candle's stock ops and the PyTorch reference, measured in
//! one run on this machine, as a table of speeds and ratios.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

/// Batch sizes of the training-step measurements, for both sides.
const BATCHES: &str = "32,64,128";

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Measured steps per configuration (medians are reported).
    pub steps: usize,
    /// Python with torch installed, or `None` to skip the PyTorch column.
    pub python: Option<String>,
    /// `torch_ref.py`.
    pub torch_ref: PathBuf,
    /// `xtask/torch/sngan_ref.py`: PyTorch's version of the default recipe.
    pub sngan_ref: PathBuf,
    /// Also measure candle's stock ops.
    pub stock: bool,
    /// Rounds of (cdcgan, PyTorch), run alternately; each side reports its median over rounds.
    pub rounds: usize,
    /// Thread counts of the scaling measurement (`--threads 1,2,4`); empty: the machine's
    /// cores only, with the per-layer table.
    pub threads: Vec<usize>,
}

/// Runs the release-built bench example with `args` (on `threads` threads, else rayon's
/// default) and parses its JSON line.
fn ours(workspace: &Path, args: &[&str], threads: Option<usize>) -> Result<Value> {
    let exe = workspace.join("target/release/examples/bench");
    let mut cmd = Command::new(&exe);
    if let Some(t) = threads {
        // Both rayon's pool and candle's read it.
        cmd.env("RAYON_NUM_THREADS", t.to_string());
    }
    let out = cmd
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    last_json(&out.stdout)
}

fn last_json(stdout: &[u8]) -> Result<Value> {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("no JSON line in the output")?;
    serde_json::from_str(line).context("bad JSON line")
}

/// The PyTorch side: the reference's `--bench` (the plain DCGAN) with its peak RSS read by
/// the same Python process, then `xtask/torch/sngan_ref.py` (the default recipe) merged in.
fn torch(python: &str, script: &Path, sngan: &Path, steps: usize, threads: usize) -> Result<Value> {
    let mut plain = torch_plain(python, script, steps, threads)?;
    let mut cmd = Command::new(python);
    cmd.arg(sngan)
        .arg(script)
        .args(["--threads", &threads.to_string()])
        .args(["--steps", &steps.to_string(), "--batches", BATCHES]);
    let more = python_json(cmd, python, &sngan.display().to_string())?;
    if let (Some(map), Value::Object(more)) = (plain.as_object_mut(), more) {
        map.extend(
            more.into_iter()
                .filter(|(k, _)| k.starts_with("train_sngan")),
        );
    }
    Ok(plain)
}

/// The PyTorch reference's `--bench`, plus its peak RSS read by the same Python process.
fn torch_plain(python: &str, script: &Path, steps: usize, threads: usize) -> Result<Value> {
    let code = format!(
        r#"
import contextlib, io, json, resource, runpy, sys
sys.argv = [{script:?}, "--bench", "--threads", "{threads}", "--steps", "{steps}",
            "--batches", "{BATCHES}"]
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    runpy.run_path({script:?}, run_name="__main__")
out = json.loads(buf.getvalue().strip().splitlines()[-1])
out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(out))
"#,
        script = script.display().to_string()
    );
    let mut cmd = Command::new(python);
    cmd.args(["-c", &code]);
    let what = format!("PyTorch reference ({python} {})", script.display());
    python_json(cmd, python, &what)
}

/// Runs a Python command and parses its last JSON line; a failure names `what` and the last
/// line of its stderr.
fn python_json(mut cmd: Command, python: &str, what: &str) -> Result<Value> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {python}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("{what} failed: {}", stderr.lines().last().unwrap_or(""));
    }
    last_json(&out.stdout)
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    json!({"cpu": cpu, "cores": cores})
}

/// Measures everything and returns one JSON object.
pub fn run(workspace: &Path, opts: &Options, log: impl Fn(&str)) -> Result<Value> {
    log("building the bench example (release)...");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "cdcgan-train",
            "--example",
            "bench",
        ])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building the bench example failed");
    }
    let steps = opts.steps.to_string();
    let mut out = Map::new();
    let machine = machine();
    let threads = machine["cores"].as_u64().unwrap_or(1) as usize;
    out.insert("machine".into(), machine);
    if !opts.threads.is_empty() {
        out.insert("rounds".into(), json!(opts.rounds.max(1)));
        out.insert("scaling".into(), scaling(workspace, opts, &log)?);
        return Ok(Value::Object(out));
    }
    // Shared VMs drift by tens of percent over minutes: alternating the two sides round by
    // round exposes both to the same drift, and the ratio is the median of same-round ratios.
    let rounds = opts.rounds.max(1);
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        log(&format!(
            "round {round}/{rounds}: measuring cdcgan kernels..."
        ));
        mine.push(ours(
            workspace,
            &["--layers", "--steps", &steps, "--batches", BATCHES],
            None,
        )?);
        if let Some(python) = &opts.python {
            log(&format!(
                "round {round}/{rounds}: measuring the PyTorch reference..."
            ));
            match torch(
                python,
                &opts.torch_ref,
                &opts.sngan_ref,
                opts.steps,
                threads,
            ) {
                Ok(v) => theirs.push(v),
                Err(e) => {
                    log(&format!("PyTorch column skipped: {e:#}"));
                    out.insert("pytorch_error".into(), json!(format!("{e:#}")));
                    break;
                }
            }
        }
    }
    out.insert("rounds".into(), json!(rounds));
    out.insert("cdcgan".into(), median_of(&mine));
    if !theirs.is_empty() {
        out.insert("pytorch".into(), median_of(&theirs));
        out.insert("vs_pytorch".into(), paired_ratios(&mine, &theirs));
    }
    if opts.stock {
        log("measuring candle stock ops (slow)...");
        let few = opts.steps.clamp(1, 5).to_string();
        out.insert(
            "candle".into(),
            ours(
                workspace,
                &["--stock", "--layers", "--steps", &few, "--batches", BATCHES],
                None,
            )?,
        );
    }
    Ok(Value::Object(out))
}

/// For each thread count of `opts.threads`: both sides' training and generation speed in
/// alternating rounds (ours on a rayon pool of that size, PyTorch with `set_num_threads`).
fn scaling(workspace: &Path, opts: &Options, log: &impl Fn(&str)) -> Result<Value> {
    let steps = opts.steps.to_string();
    let mut rows = Vec::new();
    for &t in &opts.threads {
        if t == 0 {
            bail!("--threads: counts start at 1");
        }
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        for round in 1..=opts.rounds.max(1) {
            log(&format!("{t} threads, round {round}: measuring cdcgan..."));
            mine.push(ours(
                workspace,
                &["--steps", &steps, "--batches", BATCHES],
                Some(t),
            )?);
            if let Some(python) = &opts.python {
                log(&format!("{t} threads, round {round}: measuring PyTorch..."));
                theirs.push(torch(
                    python,
                    &opts.torch_ref,
                    &opts.sngan_ref,
                    opts.steps,
                    t,
                )?);
            }
        }
        let mut row = Map::new();
        row.insert("threads".into(), json!(t));
        row.insert("cdcgan".into(), median_of(&mine));
        if !theirs.is_empty() {
            row.insert("pytorch".into(), median_of(&theirs));
            row.insert("vs_pytorch".into(), paired_ratios(&mine, &theirs));
        }
        rows.push(Value::Object(row));
    }
    Ok(Value::Array(rows))
}

/// The scaling rows as a Markdown table: speeds per thread count, the ratio to PyTorch at
/// the same count, and parallel efficiency (speed / (threads x speed on the first row's
/// thread count, scaled by its count)).
pub fn scaling_table(r: &Value) -> String {
    let rows = r["scaling"].as_array().cloned().unwrap_or_default();
    let mut s = format!(
        "machine: {} ({} cores), medians of {} alternating rounds\n\n\
         | threads | train b32 img/s | b64 | b128 | generate img/s | PyTorch b32 | b64 | b128 | generate | vs PyTorch b32 | b64 | b128 | generate | efficiency b32 | b64 | b128 |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        r["machine"]["cpu"].as_str().unwrap_or("?"),
        r["machine"]["cores"],
        r["rounds"].as_u64().unwrap_or(1)
    );
    let keys = ["train_b32_img_s", "train_b64_img_s", "train_b128_img_s"];
    let base = rows.first().cloned().unwrap_or(Value::Null);
    let base_threads = base["threads"].as_f64().unwrap_or(1.0);
    for row in &rows {
        let t = row["threads"].as_f64().unwrap_or(1.0);
        let mut cells = vec![format!("{t}")];
        for key in keys.iter().chain(&["generate_img_s"]) {
            cells.push(cell(num(&row["cdcgan"], key)));
        }
        for key in keys.iter().chain(&["generate_img_s"]) {
            cells.push(cell(num(&row["pytorch"], key)));
        }
        for key in keys.iter().chain(&["generate_img_s"]) {
            cells.push(num(&row["vs_pytorch"], key).map_or("-".into(), |x| format!("{x:.2}x")));
        }
        for key in keys {
            let eff = match (num(&row["cdcgan"], key), num(&base["cdcgan"], key)) {
                (Some(v), Some(b)) if b > 0.0 => {
                    format!("{:.0}%", 100.0 * v * base_threads / (t * b))
                }
                _ => "-".into(),
            };
            cells.push(eff);
        }
        s += &format!("| {} |\n", cells.join(" | "));
    }
    s
}

/// The speed and memory figures compared across implementations.
const METRICS: [(&str, &str); 8] = [
    ("train_b32_img_s", "train step, batch 32 (img/s)"),
    ("train_b64_img_s", "train step, batch 64 (img/s)"),
    ("train_b128_img_s", "train step, batch 128 (img/s)"),
    (
        "train_sngan_b32_img_s",
        "train step, default recipe (SN + projection + EMA), batch 32 (img/s)",
    ),
    (
        "train_sngan_b64_img_s",
        "train step, default recipe, batch 64 (img/s)",
    ),
    (
        "train_sngan_b128_img_s",
        "train step, default recipe, batch 128 (img/s)",
    ),
    ("generate_img_s", "generate, batch 1000 (img/s)"),
    ("peak_rss_mib", "peak RSS (MiB, lower is better)"),
];

fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(xs[n / 2]),
        _ => Some((xs[n / 2 - 1] + xs[n / 2]) / 2.0),
    }
}

/// One result whose numbers are the medians over `runs` (per layer for `layers_b128`).
fn median_of(runs: &[Value]) -> Value {
    let Some(first) = runs.first() else {
        return Value::Null;
    };
    let mut merged = first.clone();
    if let Some(map) = merged.as_object_mut() {
        for (key, value) in map.iter_mut() {
            if value.is_number()
                && let Some(m) = median(runs.iter().filter_map(|r| num(r, key)).collect())
            {
                *value = json!(m);
            }
        }
        if let Some(layers) = map.get_mut("layers_b128").and_then(Value::as_array_mut) {
            for (i, layer) in layers.iter_mut().enumerate() {
                for key in ["fwd_ms", "bwd_ms"] {
                    let xs = runs
                        .iter()
                        .filter_map(|r| num(&r["layers_b128"][i], key))
                        .collect();
                    if let Some(m) = median(xs) {
                        layer[key] = json!(m);
                    }
                }
            }
        }
    }
    merged
}

/// `ours / theirs` per metric: the median of the ratios of runs made in the same round.
fn paired_ratios(ours: &[Value], theirs: &[Value]) -> Value {
    let mut out = Map::new();
    for (key, _) in METRICS {
        let ratios = ours
            .iter()
            .zip(theirs)
            .filter_map(|(o, t)| Some((num(o, key)?, num(t, key)?)))
            .filter(|&(_, t)| t > 0.0)
            .map(|(o, t)| o / t)
            .collect();
        if let Some(r) = median(ratios) {
            out.insert(key.into(), json!(r));
        }
    }
    Value::Object(out)
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn cell(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.1}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

/// The results as a Markdown table (speeds higher is better, memory lower is better).
pub fn table(r: &Value) -> String {
    let (ours, stock, torch) = (&r["cdcgan"], &r["candle"], &r["pytorch"]);
    let mut s = format!(
        "machine: {} ({} cores), medians of {} alternating rounds\n\n| metric | cdcgan | candle stock | PyTorch | cdcgan / PyTorch | cdcgan / stock |\n|---|---:|---:|---:|---:|---:|\n",
        r["machine"]["cpu"].as_str().unwrap_or("?"),
        r["machine"]["cores"],
        r["rounds"].as_u64().unwrap_or(1)
    );
    for (key, name) in METRICS {
        let (o, c, t) = (num(ours, key), num(stock, key), num(torch, key));
        // Same-round ratios when there are rounds; the ratio of medians otherwise.
        let vs_torch = match num(&r["vs_pytorch"], key) {
            Some(x) => format!("{x:.2}x"),
            None => ratio(o, t),
        };
        s += &format!(
            "| {name} | {} | {} | {} | {vs_torch} | {} |\n",
            cell(o),
            cell(c),
            cell(t),
            ratio(o, c)
        );
    }
    if let Some(layers) = ours["layers_b128"].as_array() {
        s += "\n| layer (batch 128) | fwd ms | bwd ms | stock fwd ms | stock bwd ms | speed-up fwd | speed-up bwd |\n|---|---:|---:|---:|---:|---:|---:|\n";
        let stock_layers = stock["layers_b128"].as_array().cloned().unwrap_or_default();
        for l in layers {
            let name = l["layer"].as_str().unwrap_or("?");
            let st = stock_layers.iter().find(|x| x["layer"] == l["layer"]);
            let (f, b) = (num(l, "fwd_ms"), num(l, "bwd_ms"));
            let (sf, sb) = (
                st.and_then(|x| num(x, "fwd_ms")),
                st.and_then(|x| num(x, "bwd_ms")),
            );
            s += &format!(
                "| {name} | {} | {} | {} | {} | {} | {} |\n",
                cell(f),
                cell(b),
                cell(sf),
                cell(sb),
                ratio(sf, f),
                ratio(sb, b)
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_ratios_and_dashes_for_missing_columns() {
        let r = json!({
            "machine": {"cpu": "Test CPU", "cores": 2},
            "cdcgan": {"train_b64_img_s": 300.0, "train_b128_img_s": 330.0,
                       "generate_img_s": 2000.0, "peak_rss_mib": 400.0,
                       "layers_b128": [{"layer": "L", "fwd_ms": 10.0, "bwd_ms": 20.0}]},
            "candle": {"train_b128_img_s": 66.0,
                       "layers_b128": [{"layer": "L", "fwd_ms": 50.0, "bwd_ms": 40.0}]},
            "pytorch": {"train_b128_img_s": 300.0, "generate_img_s": 1000.0}
        });
        let t = table(&r);
        assert!(
            t.contains("| train step, batch 128 (img/s) | 330.0 | 66.0 | 300.0 | 1.10x | 5.00x |"),
            "{t}"
        );
        assert!(
            t.contains("| generate, batch 1000 (img/s) | 2000.0 | - | 1000.0 | 2.00x | - |"),
            "{t}"
        );
        assert!(
            t.contains("| L | 10.0 | 20.0 | 50.0 | 40.0 | 5.00x | 2.00x |"),
            "{t}"
        );
    }

    #[test]
    fn rounds_report_medians_and_same_round_ratios() {
        let run = |b128: f64, fwd: f64| {
            json!({"train_b128_img_s": b128, "kernels": "cdcgan",
                   "layers_b128": [{"layer": "L", "fwd_ms": fwd, "bwd_ms": 1.0}]})
        };
        let ours = [run(200.0, 9.0), run(400.0, 30.0), run(260.0, 10.0)];
        let theirs = [
            json!({"train_b128_img_s": 100.0}),
            json!({"train_b128_img_s": 400.0}),
            json!({"train_b128_img_s": 200.0}),
        ];
        let m = median_of(&ours);
        assert_eq!(m["train_b128_img_s"], 260.0);
        assert_eq!(m["kernels"], "cdcgan");
        assert_eq!(m["layers_b128"][0]["fwd_ms"], 10.0);
        // Same-round ratios 2.0, 1.0, 1.3: median 1.3, not 260 / 200.
        assert_eq!(paired_ratios(&ours, &theirs)["train_b128_img_s"], 1.3);
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn scaling_table_gives_ratios_and_efficiency_per_thread_count() {
        let row = |t: usize, ours: f64, theirs: f64| {
            json!({"threads": t,
                   "cdcgan": {"train_b64_img_s": ours},
                   "pytorch": {"train_b64_img_s": theirs},
                   "vs_pytorch": {"train_b64_img_s": ours / theirs}})
        };
        let r = json!({"machine": {"cpu": "Test CPU", "cores": 8}, "rounds": 1,
                       "scaling": [row(1, 100.0, 80.0), row(2, 190.0, 150.0), row(8, 560.0, 400.0)]});
        let t = scaling_table(&r);
        assert!(t.contains("| 1 | - | 100.0 | - | - | - | 80.0 |"), "{t}");
        assert!(t.contains("| 2 | - | 190.0 |"), "{t}");
        // 190 / (2 x 100) = 95%, 560 / (8 x 100) = 70%; 560 / 400 = 1.40x.
        assert!(t.contains("| - | 95% | - |"), "{t}");
        assert!(t.contains("| - | 1.40x | - | - | - | 70% | - |"), "{t}");
    }

    #[test]
    fn last_json_finds_the_result_line() {
        let v = last_json(b"warming up\n{\"a\": 1}\n").unwrap();
        assert_eq!(v["a"], 1);
        assert!(last_json(b"no json here").is_err());
    }
}
