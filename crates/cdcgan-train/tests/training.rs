//! The training loop: run directory, exact resume, determinism, options.

mod common;

use candle_core::Device;
use cdcgan_model::Checkpoint;
use cdcgan_train::{
    EpochReport, Error, ModeSeekingSpace, Observer, Outcome, Phase, Run, StepReport, StepStats,
    TrainConfig, Tuning, epoch_generator_path, epoch_generators, latest_state,
};
use common::{contents, patterns, tiny};

/// Stops after a given number of steps.
struct StopAt(u64);

impl Observer for StopAt {
    fn on_step(&mut self, r: &StepReport) {
        self.0 = self.0.saturating_sub(1);
        let _ = r;
    }
    fn should_stop(&mut self) -> bool {
        self.0 == 0
    }
}

/// Keeps every epoch's (epoch, step, mean statistics); stops after `stop` steps if given.
#[derive(Default)]
struct Epochs {
    seen: Vec<(u32, u64, StepStats)>,
    stop: Option<u64>,
}

impl Observer for Epochs {
    fn on_step(&mut self, _: &StepReport) {
        self.stop = self.stop.map(|s| s.saturating_sub(1));
    }
    fn on_epoch(&mut self, r: &EpochReport) {
        self.seen.push((r.epoch, r.step, r.mean));
    }
    fn should_stop(&mut self) -> bool {
        self.stop == Some(0)
    }
}

fn final_state(dir: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    let path = latest_state(dir).unwrap().unwrap();
    contents(&Checkpoint::load(path, &Device::Cpu).unwrap())
}

/// The final state of a fresh run of `cfg` on `data`.
fn trained(cfg: cdcgan_train::RunConfig, data: &mnist_data::Split) -> Vec<(String, Vec<f32>)> {
    let dir = tempfile::tempdir().unwrap();
    Run::create(dir.path(), cfg, &Device::Cpu)
        .unwrap()
        .train(data, &mut ())
        .unwrap();
    final_state(dir.path())
}

/// The final state of a run of `cfg` on `data` stopped after `stop` steps, then resumed to
/// its end.
fn stopped_and_resumed(
    cfg: cdcgan_train::RunConfig,
    data: &mnist_data::Split,
    stop: u64,
) -> Vec<(String, Vec<f32>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Run::create(dir.path(), cfg, &Device::Cpu).unwrap();
    run.train(data, &mut StopAt(stop)).unwrap();
    drop(run);
    Run::resume(dir.path(), &Device::Cpu)
        .unwrap()
        .train(data, &mut ())
        .unwrap();
    final_state(dir.path())
}

#[test]
fn a_run_writes_checkpoints_metrics_and_grids() {
    let dir = tempfile::tempdir().unwrap();
    let data = patterns(40);
    let mut run = Run::create(dir.path(), tiny(2, 8), &Device::Cpu).unwrap();
    assert_eq!(run.train(&data, &mut ()).unwrap(), Outcome::Finished);
    let p = dir.path();
    for f in [
        "config.toml",
        "samples/epoch-001.png",
        "samples/epoch-002.png",
        "checkpoints/latest",
        "checkpoints/gen-epoch-002.safetensors",
    ] {
        assert!(p.join(f).is_file(), "{f} missing");
    }
    let generators: Vec<_> = (1..=2).map(|e| (e, epoch_generator_path(p, e))).collect();
    assert_eq!(epoch_generators(p).unwrap(), generators);
    let metrics = std::fs::read_to_string(p.join("metrics.csv")).unwrap();
    let rows: Vec<&str> = metrics.lines().collect();
    assert_eq!(
        rows[0],
        "epoch,step,d_loss,g_loss,d_real,d_fake,images_per_sec,accuracy,fid,diversity_min"
    );
    assert_eq!(rows.len(), 1 + 6, "{metrics}"); // 5 steps per epoch, a row every 2 and at epoch end
    assert!(rows.last().unwrap().starts_with("2,10,"), "{metrics}");
    let grid = image::open(p.join("samples/epoch-002.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (2 + 2 * 30, 2 + 10 * 30));
    // A new run refuses to overwrite this one.
    drop(run);
    assert!(matches!(
        Run::create(p, tiny(1, 8), &Device::Cpu),
        Err(Error::RunExists(_))
    ));
}

#[test]
fn resuming_gives_bit_identical_weights() {
    let data = patterns(40);
    let straight = tempfile::tempdir().unwrap();
    let mut want_epochs = Epochs::default();
    Run::create(straight.path(), tiny(2, 8), &Device::Cpu)
        .unwrap()
        .train(&data, &mut want_epochs)
        .unwrap();
    let want = final_state(straight.path());

    // Stopped at the epoch boundary (after step 5) and mid-epoch (after steps 6 and 7, with
    // a metrics row every 2 steps: inside a row's interval and at its end).
    for stop in [5, 6, 7] {
        let dir = tempfile::tempdir().unwrap();
        let mut run = Run::create(dir.path(), tiny(2, 8), &Device::Cpu).unwrap();
        let mut epochs = Epochs {
            stop: Some(stop),
            ..Epochs::default()
        };
        let out = run.train(&data, &mut epochs).unwrap();
        assert!(
            matches!(out, Outcome::Interrupted(_)),
            "stop at {stop}: {out:?}"
        );
        drop(run);
        let mut run = Run::resume(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(run.trainer().position().step, stop);
        epochs.stop = None;
        assert_eq!(run.train(&data, &mut epochs).unwrap(), Outcome::Finished);
        assert_eq!(final_state(dir.path()), want, "stop at {stop}");
        // The interrupted epoch's summary covers all its steps, as the unbroken run's does.
        assert_eq!(epochs.seen, want_epochs.seen, "stop at {stop}");
        let metrics = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
        let straight_metrics =
            std::fs::read_to_string(straight.path().join("metrics.csv")).unwrap();
        // Every column but the speed.
        let rows = |m: &str| -> Vec<String> {
            m.lines()
                .map(|l| l.split(',').take(6).collect::<Vec<_>>().join(","))
                .collect()
        };
        assert_eq!(rows(&metrics), rows(&straight_metrics), "stop at {stop}");
    }
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let data = patterns(30);
    let run_with = |seed| {
        let mut cfg = tiny(1, 10);
        cfg.train.seed = seed;
        trained(cfg, &data)
    };
    let a = run_with(1);
    assert_eq!(a, run_with(1));
    assert_ne!(a, run_with(2));
}

/// What the README promises: the same seed on the same thread count trains bit for bit the
/// same weights; on another thread count, the same weights up to float rounding (gradients
/// are summed over other splits of the batch).
#[test]
fn a_run_repeats_exactly_per_thread_count_and_closely_across_them() {
    let data = patterns(40);
    // Wide enough (16 channels) that D's conv2 and G's deconv1 take the Winograd kernels.
    let mut cfg = tiny(1, 8);
    cfg.model.gen_width = 16;
    cfg.model.disc_width = 16;
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| trained(cfg.clone(), &data))
    };
    let one = on(1);
    for threads in [3, 8] {
        let a = on(threads);
        assert_eq!(a, on(threads), "{threads} threads: not repeatable");
        for ((name, x), (_, y)) in one.iter().zip(&a) {
            let scale = x.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let worst = x
                .iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            assert!(
                worst <= 1e-3 * scale,
                "{threads} threads, {name}: off by {worst}"
            );
        }
    }
}

#[test]
fn weight_clipping_bounds_every_discriminator_parameter() {
    let data = patterns(30);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny(1, 10);
    cfg.train.clip = 0.01;
    cfg.train.d_steps = 2;
    cfg.train.label_smoothing = 0.1;
    let mut run = Run::create(dir.path(), cfg, &Device::Cpu).unwrap();
    run.train(&data, &mut ()).unwrap();
    let d = run.trainer().gan().params(cdcgan_model::Net::Discriminator);
    for (name, var) in d {
        let v = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|x| x.abs() <= 0.01), "{name}");
    }
}

#[test]
fn mode_seeking_in_either_space_changes_the_weights_and_resumes_exactly() {
    let data = patterns(30);
    let mut cfg = tiny(2, 7); // odd batches: three pairs and one unpaired fake
    cfg.train.mode_seeking = 1.0;
    let want = trained(cfg.clone(), &data);
    assert!(want.iter().all(|(_, v)| v.iter().all(|x| x.is_finite())));

    assert_eq!(stopped_and_resumed(cfg.clone(), &data, 6), want);

    let mut in_features = cfg.clone();
    in_features.train.mode_seeking_space = ModeSeekingSpace::DiscFeatures;
    let other = trained(in_features, &data);
    assert!(other.iter().all(|(_, v)| v.iter().all(|x| x.is_finite())));
    assert_ne!(other, want);

    cfg.train.mode_seeking = 0.0;
    assert_ne!(trained(cfg, &data), want);
}

#[test]
fn spectral_norm_trains_keeps_its_vectors_and_resumes_exactly() {
    let data = patterns(30);
    let mut cfg = tiny(2, 6);
    cfg.model.spectral_norm = true;
    cfg.model.projection = true;
    let want = trained(cfg.clone(), &data);
    assert!(want.iter().all(|(_, v)| v.iter().all(|x| x.is_finite())));
    // The power-iteration vectors travel in the state, as unit vectors.
    let u = &want.iter().find(|(n, _)| n == "disc.conv2.sn_u").unwrap().1;
    let norm = u.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");

    // Stopped mid-epoch: the resumed run must pick up the same vectors.
    assert_eq!(stopped_and_resumed(cfg, &data, 7), want);
}

#[test]
fn r1_changes_the_weights_resumes_exactly_and_needs_a_per_example_discriminator() {
    let data = patterns(30);
    let mut cfg = tiny(2, 6);
    cfg.model.spectral_norm = true;
    cfg.model.projection = true;
    let plain = trained(cfg.clone(), &data);
    cfg.train.r1 = 1.0;
    cfg.train.r1_every = 2;
    let want = trained(cfg.clone(), &data);
    assert!(want.iter().all(|(_, v)| v.iter().all(|x| x.is_finite())));
    assert_ne!(want, plain);
    // Stopped after an odd number of D updates: the lazy interval counts on across the resume.
    assert_eq!(stopped_and_resumed(cfg.clone(), &data, 3), want);
    // Each epoch reports the mean penalty of the steps that applied it.
    let dir = tempfile::tempdir().unwrap();
    let mut epochs = Epochs::default();
    Run::create(dir.path(), cfg.clone(), &Device::Cpu)
        .unwrap()
        .train(&data, &mut epochs)
        .unwrap();
    assert_eq!(epochs.seen.len(), 2);
    for (_, _, mean) in &epochs.seen {
        assert!(
            mean.r1.is_some_and(|p| p > 0.0 && p.is_finite()),
            "{mean:?}"
        );
    }

    // With BatchNorm in D a logit depends on the whole batch: refused, also from a phase.
    cfg.model.spectral_norm = false;
    let dir = tempfile::tempdir().unwrap();
    let err = Run::create(dir.path(), cfg.clone(), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("r1 needs"), "{err}");
    cfg.train.r1 = 0.0;
    cfg.phases = vec![Phase {
        from_epoch: 2,
        set: Tuning {
            r1: Some(0.5),
            ..Tuning::default()
        },
    }];
    let err = Run::create(dir.path(), cfg, &Device::Cpu).unwrap_err();
    assert!(
        err.to_string().contains("phase from epoch 2: r1 needs"),
        "{err}"
    );
}

#[test]
fn resume_falls_back_to_the_older_state_when_the_newest_is_damaged() {
    let data = patterns(40);
    let dir = tempfile::tempdir().unwrap();
    Run::create(dir.path(), tiny(2, 8), &Device::Cpu)
        .unwrap()
        .train(&data, &mut ())
        .unwrap();
    let ck = dir.path().join("checkpoints");
    let (older, newest) = (
        ck.join("state-00000005.safetensors"),
        ck.join("state-00000010.safetensors"),
    );
    // Without its `latest` pointer, the run's newest state is still found.
    std::fs::remove_file(ck.join("latest")).unwrap();
    assert_eq!(latest_state(dir.path()).unwrap(), Some(newest.clone()));
    let flip_last_byte = |path: &std::path::Path| {
        let mut bytes = std::fs::read(path).unwrap();
        *bytes.last_mut().unwrap() ^= 0x40;
        std::fs::write(path, bytes).unwrap();
    };
    flip_last_byte(&newest);
    let run = Run::resume(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(run.trainer().position().step, 5);
    let skipped = run.skipped_states();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, newest);
    assert!(skipped[0].1.contains("checksum"), "{}", skipped[0].1);
    drop(run);
    // With every state damaged, resuming is refused rather than started over.
    flip_last_byte(&older);
    let err = Run::resume(dir.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no older state loads"), "{err}");
    // A directory that does not exist is named as such.
    let err = Run::resume(dir.path().join("nowhere"), &Device::Cpu).unwrap_err();
    assert!(err.to_string().ends_with("no such directory"), "{err}");
}

#[test]
fn errors_for_nothing_to_resume_and_too_little_data() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Run::resume(dir.path(), &Device::Cpu),
        Err(Error::NothingToResume(_))
    ));
    let mut run = Run::create(dir.path(), tiny(1, 64), &Device::Cpu).unwrap();
    let err = run.train(&patterns(10), &mut ()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLittleData {
                len: 10,
                batch_size: 64
            }
        ),
        "{err}"
    );
}

#[test]
fn a_second_process_is_refused_and_the_lock_dies_with_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let run = Run::create(dir.path(), tiny(1, 8), &Device::Cpu).unwrap();
    let pid = std::fs::read_to_string(dir.path().join("lock")).unwrap();
    assert_eq!(pid.trim(), std::process::id().to_string());
    // The OS lock is per open file, so a second open in this process is refused like
    // another process would be.
    let err = Run::resume(dir.path(), &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("pid {}", pid.trim())),
        "{err}"
    );
    assert!(matches!(
        Run::create(dir.path(), tiny(1, 8), &Device::Cpu),
        Err(Error::Locked { .. })
    ));
    drop(run);
    // The lock file stays, but nobody holds it: taken over. No checkpoint yet, so the run
    // starts over from its config.toml.
    let run = Run::resume(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(run.trainer().position().step, 0);
}

#[test]
fn a_run_is_bound_to_its_data_and_refuses_to_resume_on_other_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = patterns(40);
    let mut run = Run::create(dir.path(), tiny(2, 8), &Device::Cpu).unwrap();
    run.train(&data, &mut StopAt(3)).unwrap();
    drop(run);
    let recorded = std::fs::read_to_string(dir.path().join("data.toml")).unwrap();
    let identity = cdcgan_train::data_identity(&data);
    assert!(identity.starts_with("40 examples, sha256 "), "{identity}");
    assert!(
        recorded.contains(&format!("identity = \"{identity}\"")),
        "{recorded}"
    );

    let mut run = Run::resume(dir.path(), &Device::Cpu).unwrap();
    // Fewer examples, or as many with one label changed: both are other data.
    let mut labels = data.labels().to_vec();
    labels[7] = (labels[7] + 1) % 10;
    let relabelled = mnist_data::Split::new(data.pixels().to_vec(), labels).unwrap();
    for other in [data.take(32), relabelled] {
        let err = run.train(&other, &mut ()).unwrap_err();
        assert!(matches!(err, Error::DataChanged { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("40 examples") && msg.contains("trained on"),
            "{msg}"
        );
        assert_eq!(run.trainer().position().step, 3, "nothing was trained");
    }
    assert_eq!(run.train(&data, &mut ()).unwrap(), Outcome::Finished);
}

#[test]
fn resume_starts_over_before_the_first_checkpoint_and_clears_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    drop(Run::create(dir.path(), tiny(1, 8), &Device::Cpu).unwrap());
    let tmp = dir
        .path()
        .join("checkpoints/.state-00000005.safetensors.Xy3k9Q");
    let old_tmp = dir
        .path()
        .join("checkpoints/.state-00000005.safetensors.4242.tmp");
    let other = dir.path().join("checkpoints/.keep");
    for f in [&tmp, &old_tmp, &other] {
        std::fs::write(f, b"half a checkpoint").unwrap();
    }
    let mut run = Run::resume(dir.path(), &Device::Cpu).unwrap();
    assert!(!tmp.exists() && !old_tmp.exists());
    assert!(other.exists(), "a file that is not a temporary one is kept");
    run.train(&patterns(40), &mut ()).unwrap();
    assert!(latest_state(dir.path()).unwrap().is_some());
}

#[test]
fn a_non_finite_parameter_stops_training_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = patterns(40);
    let mut run = Run::create(dir.path(), tiny(1, 8), &Device::Cpu).unwrap();
    run.train(&data, &mut ()).unwrap();
    let good = latest_state(dir.path()).unwrap().unwrap();
    let before = final_state(dir.path());

    // Poison one generator weight, as an exploding update would.
    let gan = run.trainer().gan();
    let (_, var) = &gan.params(cdcgan_model::Net::Generator)[0];
    let mut values = var
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    values[0] = f32::NAN;
    var.set(&candle_core::Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
        .unwrap();
    let mut train = run.trainer().config().train;
    let wider = TrainConfig {
        batch_size: train.batch_size + 1,
        seed: train.seed + 1,
        ..train
    };
    let err = run.retune(wider).unwrap_err().to_string();
    assert!(err.contains("keeps its batch_size, seed for life"), "{err}");
    train.epochs = 2;
    run.retune(train).unwrap();
    let err = run.train(&data, &mut ()).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("not finite") && text.contains("step 5"),
        "{text}"
    );
    // Nothing was written over the good state.
    assert_eq!(latest_state(dir.path()).unwrap().unwrap(), good);
    assert_eq!(final_state(dir.path()), before);
}

/// Records the phases entered.
#[derive(Default)]
struct Phases(Vec<(u32, TrainConfig)>);

impl Observer for Phases {
    fn on_phase(&mut self, epoch: u32, train: &TrainConfig) {
        self.0.push((epoch, *train));
    }
}

#[test]
fn a_phase_is_the_same_as_resuming_with_the_new_settings_and_resumes_exactly() {
    let data = patterns(40);
    // Epoch 1 as configured; from epoch 2 a lower rate and mode seeking (5 steps per epoch).
    let mut by_hand = tiny(1, 8);
    let dir = tempfile::tempdir().unwrap();
    Run::create(dir.path(), by_hand.clone(), &Device::Cpu)
        .unwrap()
        .train(&data, &mut ())
        .unwrap();
    let mut run = Run::resume(dir.path(), &Device::Cpu).unwrap();
    by_hand.train.epochs = 3;
    by_hand.train.lr_g = 5e-5;
    by_hand.train.lr_d = 5e-5;
    by_hand.train.mode_seeking = 0.5;
    run.retune(by_hand.train).unwrap();
    run.train(&data, &mut ()).unwrap();
    let want = final_state(dir.path());

    let mut phased = tiny(3, 8);
    phased.phases = vec![Phase {
        from_epoch: 2,
        set: Tuning {
            lr: Some(5e-5),
            mode_seeking: Some(0.5),
            ..Tuning::default()
        },
    }];
    let dir = tempfile::tempdir().unwrap();
    let mut run = Run::create(dir.path(), phased.clone(), &Device::Cpu).unwrap();
    let mut seen = Phases::default();
    run.train(&data, &mut seen).unwrap();
    assert_eq!(final_state(dir.path()), want);
    assert_eq!(seen.0, vec![(2, by_hand.train)]);
    assert_eq!(run.trainer().config().train, by_hand.train);
    assert_eq!(run.trainer().config().phases, phased.phases);

    // Stopped before the phase starts (after epoch 1), inside it (step 7), and resumed.
    for stop in [5, 7] {
        let dir = tempfile::tempdir().unwrap();
        let mut run = Run::create(dir.path(), phased.clone(), &Device::Cpu).unwrap();
        run.train(&data, &mut StopAt(stop)).unwrap();
        drop(run);
        let mut run = Run::resume(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(
            run.trainer().config().phases,
            phased.phases,
            "stop at {stop}"
        );
        let mut seen = Phases::default();
        run.train(&data, &mut seen).unwrap();
        assert_eq!(final_state(dir.path()), want, "stop at {stop}");
        // Entered once: after the stop at the epoch's start, not again inside it.
        assert_eq!(seen.0.len(), usize::from(stop == 5), "stop at {stop}");
    }
}

#[test]
fn a_schedule_out_of_order_or_with_a_bad_value_is_refused() {
    let phase = |from_epoch, mode_seeking| Phase {
        from_epoch,
        set: Tuning {
            mode_seeking: Some(mode_seeking),
            ..Tuning::default()
        },
    };
    let mut cfg = tiny(3, 8);
    for (phases, wanted) in [
        (vec![phase(0, 0.5)], "from_epoch 0"),
        (vec![phase(3, 0.5), phase(2, 0.5)], "after the previous"),
        (vec![phase(2, -1.0)], "phase from epoch 2: mode_seeking"),
    ] {
        cfg.phases = phases;
        let dir = tempfile::tempdir().unwrap();
        let err = Run::create(dir.path(), cfg.clone(), &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains(wanted), "{err}");
    }
}

/// A judge that reads the FIDs of a script, epoch by epoch, and stops after `stop` epochs.
struct Scripted {
    fids: Vec<f64>,
    judged: Vec<u32>,
    reports: Vec<(u32, Option<f64>, Option<u32>)>,
    stop_after: Option<u32>,
}

impl Observer for Scripted {
    fn judge(&mut self, epoch: u32, _: &cdcgan_model::Generator) -> Option<cdcgan_train::Quality> {
        self.judged.push(epoch);
        Some(cdcgan_train::Quality {
            accuracy: 0.5,
            fid: self.fids[epoch as usize - 1],
            real_fid: 1.0,
            diversity_min: 0.9,
            narrowest_class: 6,
        })
    }
    fn on_epoch(&mut self, r: &EpochReport) {
        let best = r.best.map(|(e, _)| e);
        self.reports.push((r.epoch, r.quality.map(|q| q.fid), best));
    }
    fn should_stop(&mut self) -> bool {
        self.stop_after
            .is_some_and(|n| self.reports.len() as u32 >= n)
    }
}

#[test]
fn judged_epochs_go_to_metrics_and_the_best_generator_is_kept_across_a_resume() {
    let data = patterns(64);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny(5, 16);
    cfg.train.eval_every = 2;
    let fids = vec![9.0, 7.0, 8.0, 5.0, 6.0];
    let mut first = Scripted {
        fids: fids.clone(),
        judged: Vec::new(),
        reports: Vec::new(),
        stop_after: Some(3),
    };
    let mut run = Run::create(dir.path(), cfg, &Device::Cpu).unwrap();
    assert!(matches!(
        run.train(&data, &mut first).unwrap(),
        Outcome::Interrupted(_)
    ));
    drop(run);
    // Every second epoch is judged; epoch 2's generator is the best so far.
    assert_eq!(first.judged, vec![2]);
    assert_eq!(
        first.reports,
        vec![(1, None, None), (2, Some(7.0), Some(2)), (3, None, Some(2))]
    );
    let best = dir.path().join("checkpoints").join(cdcgan_train::BEST_FILE);
    let epoch_of = |p: &std::path::Path| {
        let c = Checkpoint::load(p, &Device::Cpu).unwrap();
        let q: cdcgan_train::Quality =
            serde_json::from_str(&c.metadata[cdcgan_train::META_QUALITY]).unwrap();
        (c.metadata["cdcgan.epoch"].clone(), q.fid)
    };
    assert_eq!(epoch_of(&best), ("2".into(), 7.0));

    // Resumed, the best so far carries over: epoch 4 (5.0) beats it.
    let mut second = Scripted {
        fids,
        judged: Vec::new(),
        reports: Vec::new(),
        stop_after: None,
    };
    let mut run = Run::resume(dir.path(), &Device::Cpu).unwrap();
    run.train(&data, &mut second).unwrap();
    assert_eq!(second.judged, vec![4]);
    assert_eq!(
        second.reports,
        vec![(4, Some(5.0), Some(4)), (5, None, Some(4))]
    );
    assert_eq!(epoch_of(&best), ("4".into(), 5.0));

    // The epoch's last metrics row carries its quality; other rows leave it empty.
    let metrics = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    let mut lines = metrics.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .ends_with(",accuracy,fid,diversity_min")
    );
    let judged: Vec<&str> = lines.filter(|l| !l.ends_with(",,")).collect();
    assert_eq!(judged.len(), 2, "{metrics}");
    assert!(judged[0].starts_with("2,") && judged[0].ends_with(",0.500000,7.000000,0.900000"));
    assert!(judged[1].starts_with("4,") && judged[1].ends_with(",5.000000,0.900000"));
}
