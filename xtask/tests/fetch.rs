//! `fetch-mnist` against a local folder and against HTTP mirrors served on loopback.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use mnist_data::{Compression, IdxArray, MnistFile};
use sha2::{Digest, Sha256};
use xtask::fetch::{Outcome, Source, fetch};

/// Two small IDX files standing in for MNIST, with their real hashes.
fn fixtures(dir: &Path) -> Vec<MnistFile> {
    let names: [(&'static str, &'static str); 2] = [
        ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
        ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
    ];
    names
        .iter()
        .enumerate()
        .map(|(i, &(name, alt_name))| {
            let a = IdxArray::new(vec![5 + i], (0..5 + i as u8).collect()).unwrap();
            let raw = a.to_bytes(Compression::None).unwrap();
            a.write(dir.join(format!("{name}.gz")), Compression::Gzip)
                .unwrap();
            let sha256: &'static str =
                Box::leak(hex::encode(Sha256::digest(&raw)).into_boxed_str());
            MnistFile {
                name,
                alt_name,
                sha256,
            }
        })
        .collect()
}

#[test]
fn from_a_folder_is_verified_idempotent_and_repairs_bad_copies() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let files = fixtures(src.path());
    let source = Source::Dir(src.path().to_owned());

    let out = fetch(&files, dst.path(), &source, |_| {}).unwrap();
    assert!(out.iter().all(|o| matches!(o, Outcome::Fetched(_))));
    let mut log = Vec::new();
    let out = fetch(&files, dst.path(), &source, |m| log.push(m.to_owned())).unwrap();
    assert_eq!(out, vec![Outcome::Present, Outcome::Present]);
    assert!(log[0].contains("already present"), "{log:?}");

    // A truncated destination file is noticed and replaced.
    let dest = dst.path().join("train-labels-idx1-ubyte.gz");
    let bytes = std::fs::read(&dest).unwrap();
    std::fs::write(&dest, &bytes[..bytes.len() - 3]).unwrap();
    let out = fetch(&files, dst.path(), &source, |_| {}).unwrap();
    assert!(matches!(out[0], Outcome::Fetched(_)));
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
}

#[test]
fn a_corrupt_source_is_refused_with_names_and_hashes() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let files = fixtures(src.path());
    IdxArray::new(vec![2], vec![9, 9])
        .unwrap()
        .write(
            src.path().join("t10k-labels-idx1-ubyte.gz"),
            Compression::Gzip,
        )
        .unwrap();
    let err = fetch(
        &files,
        dst.path(),
        &Source::Dir(src.path().to_owned()),
        |_| {},
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("t10k-labels-idx1-ubyte"), "{msg}");
    assert!(
        msg.contains(files[1].sha256) && msg.contains("got"),
        "{msg}"
    );
    assert!(!dst.path().join("t10k-labels-idx1-ubyte.gz").exists());
}

/// Serves `GET /good/<file>` from `dir`, `/bad/*` with 404 and `/wrong/*` with garbage.
fn serve(dir: &Path) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut s) = stream else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let req = String::from_utf8_lossy(&req);
            let path = req.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let (status, body) = match path.split('/').collect::<Vec<_>>()[..] {
                ["", "good", name] => match std::fs::read(dir.join(name)) {
                    Ok(b) => ("200 OK", b),
                    Err(_) => ("404 Not Found", Vec::new()),
                },
                ["", "wrong", _] => ("200 OK", vec![0x1f, 0x8b, 0, 1, 2, 3]),
                _ => ("404 Not Found", Vec::new()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s
                .write_all(head.as_bytes())
                .and_then(|()| s.write_all(&body));
        }
    });
    format!("http://{addr}")
}

#[test]
fn mirrors_are_tried_in_order_until_one_verifies() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let files = fixtures(src.path());
    let base = serve(src.path());
    let mirrors = vec![
        "http://127.0.0.1:1/".to_owned(), // nothing listens there
        format!("{base}/bad/"),
        format!("{base}/wrong/"),
        format!("{base}/good/"),
    ];
    let out = fetch(&files, dst.path(), &Source::Mirrors(mirrors), |_| {}).unwrap();
    assert_eq!(
        out[0],
        Outcome::Fetched(format!("{base}/good/train-labels-idx1-ubyte.gz"))
    );
    for f in &files {
        xtask::fetch::verify_file(&dst.path().join(format!("{}.gz", f.name)), f.sha256).unwrap();
    }
}

#[test]
fn when_every_mirror_fails_the_error_lists_them() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let files = fixtures(src.path());
    let base = serve(src.path());
    let mirrors = vec![format!("{base}/bad"), format!("{base}/wrong")];
    let msg = format!(
        "{:#}",
        fetch(&files, dst.path(), &Source::Mirrors(mirrors), |_| {}).unwrap_err()
    );
    assert!(msg.contains("every source failed"), "{msg}");
    assert!(
        msg.contains("/bad/train-labels-idx1-ubyte.gz: HTTP status 404"),
        "{msg}"
    );
    assert!(msg.contains("/wrong/train-labels-idx1-ubyte.gz"), "{msg}");
    assert!(
        !msg.contains("--from"),
        "a reachable server is not offline: {msg}"
    );

    let offline = Source::Mirrors(vec!["http://127.0.0.1:1/".to_owned()]);
    let msg = format!(
        "{:#}",
        fetch(&files, dst.path(), &offline, |_| {}).unwrap_err()
    );
    assert!(msg.contains("--from"), "{msg}");
}
