//! Killing `cdcgan train` at random moments (SIGKILL: no handler runs) and resuming must end
//! with exactly the weights of an uninterrupted run; a second trainer on the same run is
//! refused; divergence and write errors stop the run with one line and a non-zero exit.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use candle_core::Device;
use cdcgan_model::Checkpoint;
use cdcgan_train::{Trainer, latest_state};
use common::{TINY, cdcgan, stderr, train_args, workdir};
use rand::{Rng, SeedableRng};

const EPOCHS: &str = "6";

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cdcgan"))
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

fn kill9(child: &mut Child) {
    let _ = child.kill(); // SIGKILL on Unix
    let _ = child.wait();
}

/// Epoch of the newest complete state checkpoint (0 when none).
fn saved_epoch(run: &Path) -> u32 {
    match latest_state(run).unwrap() {
        None => 0,
        Some(path) => {
            let ckpt = Checkpoint::load(&path, &Device::Cpu)
                .unwrap_or_else(|e| panic!("the latest checkpoint must be complete: {e}"));
            Trainer::from_checkpoint(&ckpt, &Device::Cpu)
                .unwrap()
                .position()
                .epoch
        }
    }
}

/// Highest N with a samples/epoch-N.png: the epochs whose work had been done.
fn finished_epochs(run: &Path) -> u32 {
    (1..=99)
        .take_while(|n| run.join(format!("samples/epoch-{n:03}.png")).exists())
        .last()
        .unwrap_or(0)
}

fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    Checkpoint::load(path, &Device::Cpu)
        .unwrap()
        .tensors()
        .iter()
        .map(|(n, t)| (n.clone(), t.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

#[test]
fn sigkill_at_random_moments_then_resume_matches_an_uninterrupted_run() {
    let (dir, data) = workdir(160);
    let data = data.as_str();
    let mut train = vec!["train", "--data", data, "--epochs", EPOCHS];
    train.extend_from_slice(TINY);

    let mut straight = train.clone();
    straight.extend_from_slice(&["--out", "straight"]);
    let started = std::time::Instant::now();
    let out = cdcgan(dir.path(), &straight);
    assert!(out.status.success(), "{}", stderr(&out));
    // Kills land within the first third of a whole run's time, so that they interrupt it
    // however fast this build and machine run it (an optimised build on a fast machine
    // finishes the tiny run in ~100 ms).
    let span = (started.elapsed().as_millis() as u64 / 3).clamp(20, 400);

    let run = dir.path().join("crashy");
    let mut first = train.clone();
    first.extend_from_slice(&["--out", "crashy"]);
    let resume = ["train", "--resume", "crashy", "--data", data, "--quiet"];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(7),
    );
    let mut kills = 0;
    let mut seen = Vec::new();
    for round in 0..40 {
        let args: &[&str] = if run.join("config.toml").exists() {
            &resume
        } else {
            &first
        };
        let mut child = spawn(dir.path(), args);
        std::thread::sleep(Duration::from_millis(rng.random_range(5..span)));
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", stderr(&out));
            break;
        }
        let done = finished_epochs(&run);
        kill9(&mut child);
        kills += 1;
        // At most one epoch of work lost, and the checkpoint `latest` names is complete.
        let saved = saved_epoch(&run);
        seen.push((done, saved));
        assert!(
            saved + 1 >= done,
            "round {round}: {done} epochs done, only {saved} saved"
        );
    }
    eprintln!("{kills} kills; (epochs done, epochs saved) at each: {seen:?}");
    assert!(kills >= 3, "the runs finished before they could be killed");
    // Whatever is left, finish it.
    let out = cdcgan(dir.path(), &resume);
    assert!(out.status.success(), "{}", stderr(&out));
    let last = format!("checkpoints/gen-epoch-00{EPOCHS}.safetensors");
    assert_eq!(
        tensors(&run.join(&last)),
        tensors(&dir.path().join("straight").join(&last))
    );
    assert_eq!(
        tensors(&latest_state(&run).unwrap().unwrap()),
        tensors(&latest_state(&dir.path().join("straight")).unwrap().unwrap())
    );
    // No temporary files survive.
    for sub in ["", "checkpoints", "samples"] {
        for e in std::fs::read_dir(run.join(sub)).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with('.'), "{name} left behind");
        }
    }
}

#[test]
fn a_second_trainer_is_refused_until_the_first_dies() {
    let (dir, data) = workdir(160);
    let data = data.as_str();
    let args = train_args(data, "run", &["--epochs", "500"]);
    let mut first = spawn(dir.path(), &args);
    let lock = dir.path().join("run/lock");
    let pid = first.id().to_string();
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&lock)
        .map(|s| s.trim() != pid)
        .unwrap_or(true)
        || !dir.path().join("run/config.toml").exists()
    {
        assert!(started.elapsed() < Duration::from_secs(60), "no lock taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    let resume = ["train", "--resume", "run", "--data", data, "--quiet"];
    let out = cdcgan(dir.path(), &resume);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("pid {pid}")) && err.lines().count() == 1,
        "{err}"
    );
    let out = cdcgan(dir.path(), &args);
    assert_eq!(out.status.code(), Some(1), "a new run over a live one");

    // The owner dies without cleaning up: its lock file is taken over.
    kill9(&mut first);
    let mut second = spawn(dir.path(), &resume);
    let pid2 = second.id().to_string();
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&lock)
        .map(|s| s.trim() != pid2)
        .unwrap_or(true)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "stale lock not taken over"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill9(&mut second);
}

#[test]
fn divergence_and_unwritable_files_end_with_one_line() {
    let (dir, data) = workdir(160);
    let data = data.as_str();

    // An absurd learning rate overflows the weights within a step or two.
    let out = cdcgan(dir.path(), &train_args(data, "nan", &["--lr", "1e30"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("not finite") && err.lines().count() == 1,
        "{err}"
    );
    assert!(latest_state(&dir.path().join("nan")).unwrap().is_none());
    assert!(err.contains("lower --lr"), "{err}");

    // The way out after a divergence: continue a run from its checkpoint at a lower rate.
    let out = cdcgan(dir.path(), &train_args(data, "calm", &["--epochs", "1"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let resume = [
        "train", "--resume", "calm", "--data", data, "--epochs", "2", "--lr", "1e-5", "--quiet",
    ];
    let out = cdcgan(dir.path(), &resume);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = std::fs::read_to_string(dir.path().join("calm/config.toml")).unwrap();
    assert!(
        config.contains("lr_g = 0.00001") && config.contains("lr_d = 0.00001"),
        "{config}"
    );

    // A sample grid that cannot be written: named, and the checkpoints stay consistent.
    let args = train_args(data, "blocked", &["--epochs", "2"]);
    std::fs::create_dir_all(dir.path().join("blocked")).unwrap();
    std::fs::write(
        dir.path().join("blocked/samples"),
        b"a file, not a directory",
    )
    .unwrap();
    let out = cdcgan(dir.path(), &args);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("samples") && err.lines().count() == 1, "{err}");
}
