//! `cargo xtask web`: build the browser page into `target/web/`, serve it, test it in Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The page's files, beside the crate.
const WWW: &str = "crates/cdcgan-web/www";
/// The wasm target.
const TARGET: &str = "wasm32-unknown-unknown";

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The wasm-bindgen version in Cargo.lock (the CLI must match it exactly).
fn bindgen_version(workspace: &Path) -> Result<String> {
    let lock =
        std::fs::read_to_string(workspace.join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \""))
        {
            return Ok(v.trim_end_matches('"').to_owned());
        }
    }
    bail!("Cargo.lock has no wasm-bindgen entry")
}

/// Installs the wasm target and the matching wasm-bindgen CLI when missing.
fn ensure_tools(workspace: &Path, log: &dyn Fn(&str)) -> Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]));
    if !installed.is_some_and(|t| t.lines().any(|l| l.trim() == TARGET)) {
        log(&format!("installing the {TARGET} target"));
        run(Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    let want = bindgen_version(workspace)?;
    let have = output(Command::new("wasm-bindgen").arg("--version"));
    let matches = have
        .as_deref()
        .is_some_and(|v| v.split_whitespace().nth(1) == Some(want.as_str()));
    if !matches {
        log(&format!(
            "installing wasm-bindgen-cli {want} (matches Cargo.lock)"
        ));
        run(Command::new("cargo").args([
            "install",
            "wasm-bindgen-cli",
            "--locked",
            "--version",
            &want,
        ]))?;
    }
    Ok(())
}

/// Builds the page into `target/web/` and returns that directory.
pub fn build(workspace: &Path, log: &dyn Fn(&str)) -> Result<PathBuf> {
    ensure_tools(workspace, log)?;
    log("building cdcgan-web for wasm32");
    run(Command::new("cargo").current_dir(workspace).args([
        "build",
        "--release",
        "-p",
        "cdcgan-web",
        "--target",
        TARGET,
    ]))?;
    let out = workspace.join("target/web");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let wasm = workspace.join(format!("target/{TARGET}/release/cdcgan_web.wasm"));
    run(Command::new("wasm-bindgen")
        .args(["--target", "web", "--no-typescript", "--out-dir"])
        .arg(out.join("pkg"))
        .arg(&wasm))?;
    let www = workspace.join(WWW);
    for entry in std::fs::read_dir(&www).with_context(|| format!("listing {}", www.display()))? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, out.join(name))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    let weights = workspace.join("assets/generator.safetensors");
    std::fs::copy(&weights, out.join("generator.safetensors"))
        .with_context(|| format!("copying {}", weights.display()))?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    log(&format!(
        "built {}: wasm {} KiB, generator {} KiB",
        out.display(),
        size(&out.join("pkg/cdcgan_web_bg.wasm")) / 1024,
        size(&out.join("generator.safetensors")) / 1024
    ));
    Ok(out)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// Serves `dir` on `addr` (e.g. `127.0.0.1:8080`, port 0 for any) from a background thread;
/// returns the bound address.
pub fn serve(dir: &Path, addr: &str) -> Result<std::net::SocketAddr> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .context("the server has no IP address")?;
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let path = request.url().split(['?', '#']).next().unwrap_or("/");
            let rel = path.trim_start_matches('/');
            let rel = if rel.is_empty() { "index.html" } else { rel };
            let file = (!rel.split('/').any(|part| part == ".." || part.is_empty()))
                .then(|| dir.join(rel))
                .filter(|p| p.is_file())
                .and_then(|p| std::fs::File::open(&p).ok().map(|f| (p, f)));
            let _ = match file {
                Some((p, f)) => {
                    let header = tiny_http::Header::from_bytes("Content-Type", content_type(&p))
                        .expect("static header");
                    request.respond(tiny_http::Response::from_file(f).with_header(header))
                }
                None => request
                    .respond(tiny_http::Response::from_string("not found").with_status_code(404)),
            };
        }
    });
    Ok(bound)
}

/// Builds, serves on a free port, and runs `e2e.mjs` in headless Chromium; the screenshot
/// goes to `screenshot`.
pub fn e2e(workspace: &Path, screenshot: &Path, log: &dyn Fn(&str)) -> Result<()> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).is_file() {
        bail!(
            "no Chromium at {chromium}: install it (Debian: apt-get install chromium) or set $CHROMIUM"
        );
    }
    let dir = build(workspace, log)?;
    let runner = workspace.join("target/web-e2e");
    std::fs::create_dir_all(&runner)?;
    if !runner.join("node_modules/playwright-core").is_dir() {
        log("installing playwright-core from npm (drives the system Chromium)");
        run(Command::new("npm").current_dir(&runner).args([
            "install",
            "--no-audit",
            "--no-fund",
            "--silent",
            "playwright-core@1",
        ]))?;
    }
    std::fs::copy(
        workspace.join("crates/cdcgan-web/e2e/e2e.mjs"),
        runner.join("e2e.mjs"),
    )?;
    let addr = serve(&dir, "127.0.0.1:0")?;
    let url = format!("http://{addr}/");
    log(&format!("testing {url} in {chromium}"));
    let screenshot = std::path::absolute(screenshot)?;
    run(Command::new("node")
        .current_dir(&runner)
        .env("CHROMIUM", &chromium)
        .arg("e2e.mjs")
        .arg(&url)
        .arg(&screenshot))?;
    log(&format!(
        "browser test passed; screenshot {}",
        screenshot.display()
    ));
    Ok(())
}
