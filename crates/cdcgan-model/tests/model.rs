//! Behaviour of the networks and checkpoints.

use candle_core::{DType, Device, Tensor, Var};
use cdcgan_model::{
    Checkpoint, Error, Gan, LabelInput, ModelConfig, Net, generator_from_checkpoint,
};

fn cpu() -> Device {
    Device::Cpu
}

fn labels(b: usize) -> Tensor {
    Tensor::from_vec((0..b as u32).map(|i| i % 10).collect(), b, &cpu()).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// The variable `name` of `gan` (a parameter or a BatchNorm statistic).
fn var(gan: &Gan, name: &str) -> Var {
    gan.all_vars()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no variable {name}"))
}

/// The names of `net`'s state (parameters and kept statistics or vectors).
fn state_names(gan: &Gan, net: Net) -> Vec<String> {
    gan.state(net).into_iter().map(|(n, _)| n).collect()
}

/// Multiplies the variable `name` of `gan` by `k` in place.
fn scale(gan: &Gan, name: &str, k: f64) {
    let v = var(gan, name);
    v.set(&(v.as_tensor() * k).unwrap()).unwrap();
}

/// Each `got` within `tol` of `want`, relative to `1 + |want|`.
fn assert_close(want: &[f32], got: &[f32], tol: f32) {
    assert_eq!(want.len(), got.len());
    for (w, g) in want.iter().zip(got) {
        assert!((w - g).abs() < tol * (1.0 + w.abs()), "{g} vs {w}");
    }
}

#[test]
fn dcgan28_tensor_names_and_shapes_follow_the_spec() {
    let gan = Gan::new(ModelConfig::dcgan28(), 0, &cpu()).unwrap();
    let shapes: Vec<(String, Vec<usize>)> = gan
        .all_vars()
        .into_iter()
        .map(|(n, v)| (n, v.dims().to_vec()))
        .collect();
    let expected: Vec<(&str, Vec<usize>)> = vec![
        ("disc.bn2.bias", vec![128]),
        ("disc.bn2.running_mean", vec![128]),
        ("disc.bn2.running_var", vec![128]),
        ("disc.bn2.weight", vec![128]),
        ("disc.conv1.bias", vec![64]),
        ("disc.conv1.weight", vec![64, 11, 4, 4]),
        ("disc.conv2.weight", vec![128, 64, 4, 4]),
        ("disc.fc.bias", vec![1]),
        ("disc.fc.weight", vec![1, 6272]),
        ("gen.bn0.bias", vec![256]),
        ("gen.bn0.running_mean", vec![256]),
        ("gen.bn0.running_var", vec![256]),
        ("gen.bn0.weight", vec![256]),
        ("gen.bn1.bias", vec![128]),
        ("gen.bn1.running_mean", vec![128]),
        ("gen.bn1.running_var", vec![128]),
        ("gen.bn1.weight", vec![128]),
        ("gen.deconv1.weight", vec![256, 128, 4, 4]),
        ("gen.deconv2.bias", vec![1]),
        ("gen.deconv2.weight", vec![128, 1, 4, 4]),
        ("gen.fc.weight", vec![12544, 110]),
    ];
    let expected: Vec<(String, Vec<usize>)> = expected
        .into_iter()
        .map(|(n, s)| (n.to_owned(), s))
        .collect();
    assert_eq!(shapes, expected);
    assert_eq!(gan.params(Net::Generator).len(), 8);
    assert_eq!(gan.params(Net::Discriminator).len(), 7);
}

#[test]
fn forward_shapes_and_range_for_both_label_inputs() {
    for label_input in [LabelInput::OneHot, LabelInput::Embedding] {
        let cfg = ModelConfig {
            label_input,
            ..ModelConfig::tiny()
        };
        let gan = Gan::new(cfg, 3, &cpu()).unwrap();
        let z = Tensor::randn(0f32, 1., (5, cfg.z_dim), &cpu()).unwrap();
        for train in [true, false] {
            let x = gan.generator.forward_t(&z, &labels(5), train).unwrap();
            assert_eq!(x.dims(), &[5, 1, 28, 28]);
            assert!(values(&x).iter().all(|v| (-1.0..=1.0).contains(v)));
            let d = gan.discriminator.forward_t(&x, &labels(5), train).unwrap();
            assert_eq!(d.dims(), &[5]);
        }
    }
}

#[test]
fn projection_adds_the_label_row_dotted_with_the_features() {
    let plain = Gan::new(ModelConfig::tiny(), 5, &cpu()).unwrap();
    let cfg = ModelConfig {
        projection: true,
        ..ModelConfig::tiny()
    };
    let projected = Gan::new(cfg, 5, &cpu()).unwrap();
    let proj = var(&projected, "disc.proj.weight");
    let features = 2 * cfg.disc_width * 7 * 7;
    assert_eq!(proj.dims(), &[10, features]);
    assert_eq!(projected.params(Net::Discriminator).len(), 8);
    let x = Tensor::randn(0f32, 1., (10, 1, 28, 28), &cpu())
        .unwrap()
        .tanh()
        .unwrap();
    let y = labels(10);
    let d_plain = values(&plain.discriminator.forward_t(&x, &y, false).unwrap());
    // D's other weights draw from the same seeded stream before `disc.proj`: with a zero
    // table the two discriminators agree.
    proj.set(&Tensor::zeros((10, features), DType::F32, &cpu()).unwrap())
        .unwrap();
    let d_zero = values(&projected.discriminator.forward_t(&x, &y, false).unwrap());
    for (a, b) in d_plain.iter().zip(&d_zero) {
        assert!((a - b).abs() < 1e-5, "{d_plain:?} vs {d_zero:?}");
    }
    // A non-zero row for class 3 moves only the logit of the image labelled 3.
    let mut table = vec![0f32; 10 * features];
    table[3 * features..4 * features].fill(0.01);
    proj.set(&Tensor::from_vec(table, (10, features), &cpu()).unwrap())
        .unwrap();
    let d_three = values(&projected.discriminator.forward_t(&x, &y, false).unwrap());
    for (i, (a, b)) in d_zero.iter().zip(&d_three).enumerate() {
        assert_eq!(i == 3, (a - b).abs() > 1e-4, "image {i}: {a} vs {b}");
    }
}

#[test]
fn minibatch_std_makes_each_logit_depend_on_the_rest_of_the_batch() {
    let x = Tensor::randn(0f32, 1., (10, 1, 28, 28), &cpu())
        .unwrap()
        .tanh()
        .unwrap();
    // The same batch with image 9 replaced.
    let other = Tensor::cat(
        &[
            x.narrow(0, 0, 9).unwrap(),
            Tensor::zeros((1, 1, 28, 28), DType::F32, &cpu()).unwrap(),
        ],
        0,
    )
    .unwrap();
    let y = labels(10);
    for minibatch_std in [false, true] {
        let cfg = ModelConfig {
            minibatch_std,
            ..ModelConfig::tiny()
        };
        let gan = Gan::new(cfg, 5, &cpu()).unwrap();
        let fc = var(&gan, "disc.fc.weight");
        let features = 2 * cfg.disc_width * 7 * 7;
        let inputs = features + usize::from(minibatch_std);
        assert_eq!(fc.dims(), &[1, inputs]);
        // A large weight on the last input (the minibatch std when on) makes its effect plain.
        let mut w = values(fc.as_tensor());
        w[inputs - 1] = 100.0;
        fc.set(&Tensor::from_vec(w, (1, inputs), &cpu()).unwrap())
            .unwrap();
        // In eval mode BatchNorm uses its running statistics: only the minibatch std ties
        // image 0's logit to image 9.
        let d = |x: &Tensor| values(&gan.discriminator.forward_t(x, &y, false).unwrap())[0];
        let (a, b) = (d(&x), d(&other));
        if minibatch_std {
            assert!((a - b).abs() > 1e-4, "{a} vs {b}");
        } else {
            assert_eq!(a, b);
        }
    }
}

#[test]
fn class_norm_gives_each_class_its_own_generator_affine() {
    let cfg = ModelConfig {
        class_norm: true,
        ..ModelConfig::tiny()
    };
    let gan = Gan::new(cfg, 5, &cpu()).unwrap();
    let w = cfg.gen_width;
    for (name, dims) in [
        ("gen.bn0.weight", vec![10, 2 * w]),
        ("gen.bn0.bias", vec![10, 2 * w]),
        ("gen.bn0.running_mean", vec![2 * w]),
        ("gen.bn1.weight", vec![10, w]),
        ("gen.bn1.running_var", vec![w]),
    ] {
        assert_eq!(var(&gan, name).dims(), dims.as_slice(), "{name}");
    }
    // DCGAN init: every row of gamma near 1, beta 0.
    assert!(
        values(&var(&gan, "gen.bn0.weight"))
            .iter()
            .all(|v| (v - 1.0).abs() < 0.2)
    );
    assert!(values(&var(&gan, "gen.bn1.bias")).iter().all(|&v| v == 0.0));
    let z = Tensor::randn(0f32, 1., (10, cfg.z_dim), &cpu()).unwrap();
    let y = labels(10);
    // The statistics are shared, the affine is not: a new shift for class 3 moves only the
    // image labelled 3, with batch statistics as with running ones.
    for train in [false, true] {
        let before = gan.generator.forward_t(&z, &y, train).unwrap();
        let bias = var(&gan, "gen.bn1.bias");
        let saved = bias.as_tensor().copy().unwrap();
        let mut table = values(&saved);
        table[3 * w..4 * w].iter_mut().for_each(|v| *v += 0.5);
        bias.set(&Tensor::from_vec(table, (10, w), &cpu()).unwrap())
            .unwrap();
        let after = gan.generator.forward_t(&z, &y, train).unwrap();
        bias.set(&saved).unwrap();
        let pixels = 28 * 28;
        let (before, after) = (values(&before), values(&after));
        for i in 0..10 {
            let d = before[i * pixels..(i + 1) * pixels]
                .iter()
                .zip(&after[i * pixels..(i + 1) * pixels])
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            assert_eq!(i == 3, d > 1e-4, "train {train}, image {i}: {d}");
        }
    }
}

#[test]
fn class_batch_norm_matches_its_definition_in_value_and_gradient() {
    use candle_nn::{VarBuilder, VarMap};
    use cdcgan_nn::kernels::Activation;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &cpu());
    let (n, c, classes) = (6, 5, 4);
    let norm = cdcgan_nn::layers::class_batch_norm(classes, c, 1e-5, 0.1, vb).unwrap();
    assert_eq!(
        varmap.all_vars().len(),
        4,
        "running mean and variance, two tables"
    );
    let table = |name: &str| {
        let data = varmap.data().lock().unwrap();
        data[name].clone()
    };
    let (gamma, beta) = (table("weight"), table("bias"));
    gamma
        .set(&Tensor::randn(1f32, 0.3, (classes, c), &cpu()).unwrap())
        .unwrap();
    beta.set(&Tensor::randn(0f32, 0.3, (classes, c), &cpu()).unwrap())
        .unwrap();
    let x = Var::from_tensor(&Tensor::randn(0.5f32, 2., (n, c, 3, 3), &cpu()).unwrap()).unwrap();
    let y = Tensor::new(&[0u32, 3, 3, 1, 2, 0], &cpu()).unwrap();
    let probe = Tensor::randn(0f32, 1., (n, c, 3, 3), &cpu()).unwrap();

    let out = norm
        .forward_act(x.as_tensor(), &y, true, Activation::LeakyRelu(0.2))
        .unwrap();
    // The definition in stock candle ops: batch statistics over (n, h, w), biased variance.
    let mean = x.as_tensor().mean_keepdim((0, 2, 3)).unwrap();
    let centred = x.as_tensor().broadcast_sub(&mean).unwrap();
    let var = centred.sqr().unwrap().mean_keepdim((0, 2, 3)).unwrap();
    let normed = centred
        .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
        .unwrap();
    let pick = |t: &Var| {
        t.as_tensor()
            .index_select(&y, 0)
            .unwrap()
            .reshape((n, c, 1, 1))
            .unwrap()
    };
    let affine = normed
        .broadcast_mul(&pick(&gamma))
        .unwrap()
        .broadcast_add(&pick(&beta))
        .unwrap();
    let reference = affine.maximum(&(&affine * 0.2).unwrap()).unwrap();

    let ours = (&out * &probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let theirs = (&reference * &probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let close = |a: &Tensor, b: &Tensor, what: &str| {
        let (a, b) = (values(a), values(b));
        for (p, q) in a.iter().zip(&b) {
            assert!(
                (p - q).abs() <= 1e-4 * (1.0 + q.abs()),
                "{what}: {p} vs {q}"
            );
        }
    };
    close(&out, &reference, "value");
    for (v, what) in [(&x, "dx"), (&gamma, "dgamma"), (&beta, "dbeta")] {
        close(
            ours.get(v.as_tensor()).unwrap(),
            theirs.get(v.as_tensor()).unwrap(),
            what,
        );
    }
}

#[test]
fn init_is_seeded_and_follows_dcgan() {
    let a = Gan::new(ModelConfig::dcgan28(), 7, &cpu()).unwrap();
    let b = Gan::new(ModelConfig::dcgan28(), 7, &cpu()).unwrap();
    let c = Gan::new(ModelConfig::dcgan28(), 8, &cpu()).unwrap();
    for ((n, va), ((_, vb), (_, vc))) in a
        .all_vars()
        .iter()
        .zip(b.all_vars().iter().zip(c.all_vars().iter()))
    {
        assert_eq!(values(va), values(vb), "{n}");
        let v = values(va);
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt();
        if n.ends_with(".bias") || n.ends_with("running_mean") {
            assert!(v.iter().all(|&x| x == 0.0), "{n}");
        } else if n.ends_with("running_var") {
            assert!(v.iter().all(|&x| x == 1.0), "{n}");
        } else {
            assert_ne!(v, values(vc), "{n} should depend on the seed");
            let want = if n.contains(".bn") { 1.0 } else { 0.0 };
            assert!((mean - want).abs() < 0.01, "{n}: mean {mean}");
            if v.len() > 1000 {
                assert!((std - 0.02).abs() < 0.002, "{n}: std {std}");
            }
        }
    }
}

#[test]
fn batchnorm_train_updates_running_stats_and_eval_uses_them() {
    let gan = Gan::new(ModelConfig::tiny(), 1, &cpu()).unwrap();
    let running = |name: &str| values(&var(&gan, name));
    let z = Tensor::randn(0f32, 1., (16, 8), &cpu()).unwrap();
    let eval1 = values(&gan.generator.forward_t(&z, &labels(16), false).unwrap());
    assert_eq!(running("gen.bn0.running_mean"), vec![0.0; 8]);
    gan.generator.forward_t(&z, &labels(16), true).unwrap();
    let mean = running("gen.bn0.running_mean");
    assert!(mean.iter().any(|&m| m != 0.0));
    // The update is momentum 0.1 of the batch mean: |running| is a tenth of it.
    let eval2 = values(&gan.generator.forward_t(&z, &labels(16), false).unwrap());
    assert_ne!(
        eval1, eval2,
        "eval output must follow the running statistics"
    );
    let eval3 = values(&gan.generator.forward_t(&z, &labels(16), false).unwrap());
    assert_eq!(eval2, eval3, "eval mode must not change state");
}

#[test]
fn checkpoints_round_trip_in_f32_and_f16() {
    let dir = tempfile::tempdir().unwrap();
    let gan = Gan::new(ModelConfig::tiny(), 5, &cpu()).unwrap();
    let mut ckpt = Checkpoint::new(*gan.config());
    gan.export(&mut ckpt, "");
    ckpt.metadata.insert("cdcgan.step".into(), "12".into());
    for (dtype, tol) in [(DType::F32, 0.0), (DType::F16, 1e-3)] {
        let path = dir.path().join("c.safetensors");
        ckpt.save(&path, dtype).unwrap();
        let back = Checkpoint::load(&path, &cpu()).unwrap();
        assert_eq!(back.metadata["cdcgan.step"], "12");
        let other = Gan::new(*back.config(), 99, &cpu()).unwrap();
        other.import(&back, "").unwrap();
        for ((n, a), (_, b)) in gan.all_vars().iter().zip(other.all_vars().iter()) {
            let d = values(a)
                .iter()
                .zip(values(b))
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(d <= tol, "{n}: {d}");
        }
    }
}

fn saved(gan: &Gan, edit: impl FnOnce(&mut Checkpoint)) -> Vec<u8> {
    let mut ckpt = Checkpoint::new(*gan.config());
    gan.export(&mut ckpt, "");
    edit(&mut ckpt);
    ckpt.to_bytes(DType::F32).unwrap()
}

#[test]
fn bad_checkpoints_are_refused_naming_the_tensor() {
    let gan = Gan::new(ModelConfig::tiny(), 5, &cpu()).unwrap();
    let load = |bytes: Vec<u8>| {
        Checkpoint::from_bytes(&bytes, "x.safetensors", &cpu()).and_then(|c| gan.import(&c, ""))
    };

    // Missing tensor: drop one by rebuilding the checkpoint without it.
    let mut ckpt = Checkpoint::new(*gan.config());
    for (n, v) in gan.all_vars() {
        if n != "gen.bn1.weight" {
            ckpt.insert(n, v.as_tensor().clone());
        }
    }
    let err = load(ckpt.to_bytes(DType::F32).unwrap()).unwrap_err();
    assert!(matches!(err, Error::MissingTensor { .. }), "{err}");
    assert!(
        err.to_string().contains("gen.bn1.weight") && err.to_string().contains("x.safetensors")
    );

    let err = load(saved(&gan, |c| {
        c.insert(
            "gen.fc.weight",
            Tensor::zeros((3, 3), DType::F32, &cpu()).unwrap(),
        )
    }))
    .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    assert!(err.to_string().contains("gen.fc.weight"), "{err}");

    let err = load(saved(&gan, |c| {
        c.insert(
            "gen.extra.weight",
            Tensor::zeros(3, DType::F32, &cpu()).unwrap(),
        )
    }))
    .unwrap_err();
    assert!(matches!(err, Error::UnexpectedTensor { .. }), "{err}");

    // A checkpoint of a wider model does not load into the tiny one.
    let wide = Gan::new(
        ModelConfig {
            gen_width: 6,
            ..ModelConfig::tiny()
        },
        0,
        &cpu(),
    )
    .unwrap();
    let err = load(saved(&wide, |_| {})).map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");

    let err = load(b"definitely not safetensors".to_vec()).unwrap_err();
    assert!(err.to_string().contains("x.safetensors"), "{err}");

    // A safetensors file without our metadata (another program's) is refused by name.
    let plain = safetensors::serialize(
        vec![(
            "gen.fc.weight".to_owned(),
            Tensor::zeros(2, DType::F32, &cpu()).unwrap(),
        )],
        None,
    )
    .unwrap();
    let err = load(plain).unwrap_err();
    assert!(err.to_string().contains("not a cdcgan checkpoint"), "{err}");
}

#[test]
fn generator_alone_prefers_ema_weights() {
    let gan = Gan::new(ModelConfig::tiny(), 5, &cpu()).unwrap();
    let ema = Gan::new(ModelConfig::tiny(), 6, &cpu()).unwrap();
    let mut ckpt = Checkpoint::new(*gan.config());
    gan.export(&mut ckpt, "");
    ema.export(&mut ckpt, "ema.");
    let z = Tensor::randn(0f32, 1., (3, 8), &cpu()).unwrap();
    let out = |g: &cdcgan_model::Generator| values(&g.forward_t(&z, &labels(3), false).unwrap());
    let g = generator_from_checkpoint(&ckpt, true, &cpu()).unwrap();
    assert_eq!(out(&g), out(&ema.generator));
    let g = generator_from_checkpoint(&ckpt, false, &cpu()).unwrap();
    assert_eq!(out(&g), out(&gan.generator));
}

#[test]
fn checksums_sizes_and_headers_are_checked_before_use() {
    let dir = tempfile::tempdir().unwrap();
    let gan = Gan::new(ModelConfig::tiny(), 0, &cpu()).unwrap();
    let good = saved(&gan, |_| {});
    let path = dir.path().join("a.safetensors");

    // The checksum is written, verified, and not exposed as user metadata.
    std::fs::write(&path, &good).unwrap();
    let back = Checkpoint::load(&path, &cpu()).unwrap();
    assert!(!back.metadata.contains_key(cdcgan_model::META_SHA256));
    let st = safetensors::SafeTensors::read_metadata(&good).unwrap().1;
    assert_eq!(
        st.metadata().as_ref().unwrap()[cdcgan_model::META_SHA256].len(),
        64
    );

    // One flipped bit in the last tensor byte.
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let err = Checkpoint::load(&path, &cpu()).unwrap_err().to_string();
    assert!(
        err.contains("a.safetensors") && err.contains("checksum mismatch"),
        "{err}"
    );

    // A header length field far beyond any real header.
    let mut bad = good.clone();
    bad[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    std::fs::write(&path, &bad).unwrap();
    let err = Checkpoint::load(&path, &cpu()).unwrap_err().to_string();
    assert!(
        err.contains("header of") && err.contains("at most"),
        "{err}"
    );

    // A file far larger than the tiny architecture needs is refused before it is read
    // (the 4 GiB tail is sparse: nothing is written or read).
    std::fs::write(&path, &good).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(4 << 30).unwrap();
    let err = Checkpoint::load(&path, &cpu()).unwrap_err().to_string();
    assert!(err.contains("holds at most"), "{err}");

    // Too short to be anything.
    std::fs::write(&path, b"abc").unwrap();
    let err = Checkpoint::load(&path, &cpu()).unwrap_err().to_string();
    assert!(err.contains("too short"), "{err}");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_bytes_never_panic_the_loader(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Checkpoint::from_bytes(&bytes, "fuzz", &Device::Cpu);
        }

        #[test]
        fn corrupting_a_real_checkpoint_never_panics(i in any::<prop::sample::Index>(), x in 1u8..) {
            let gan = Gan::new(ModelConfig::tiny(), 0, &Device::Cpu).unwrap();
            let mut bytes = saved(&gan, |_| {});
            let at = i.index(bytes.len());
            bytes[at] ^= x;
            let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            match Checkpoint::from_bytes(&bytes, "fuzz", &Device::Cpu) {
                Ok(c) => {
                    // A flipped tensor byte never passes the checksum.
                    prop_assert!(at < header_end, "corruption at byte {} went unnoticed", at);
                    let _ = gan.import(&c, "");
                }
                Err(e) => prop_assert!(e.to_string().starts_with("fuzz"), "{}", e),
            }
        }
    }
}

#[test]
fn frozen_discriminator_passes_gradients_to_images_but_not_to_its_weights() {
    let dev = Device::Cpu;
    let gan = Gan::new(ModelConfig::tiny(), 5, &dev).unwrap();
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., (6, 1, 28, 28), &dev).unwrap()).unwrap();
    let y = Tensor::new(&[0u32, 1, 2, 3, 4, 9], &dev).unwrap();
    let d = &gan.discriminator;
    let live = d.forward_t(x.as_tensor(), &y, false).unwrap();
    let frozen = d.frozen().forward_t(x.as_tensor(), &y, false).unwrap();
    assert_eq!(
        live.to_vec1::<f32>().unwrap(),
        frozen.to_vec1::<f32>().unwrap()
    );
    let g_live = live.sum_all().unwrap().backward().unwrap();
    let g_frozen = frozen.sum_all().unwrap().backward().unwrap();
    let dx = |g: &candle_core::backprop::GradStore| {
        g.get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(dx(&g_live), dx(&g_frozen));
    for (name, var) in gan.params(Net::Discriminator) {
        assert!(
            g_live.get(var.as_tensor()).is_some(),
            "{name} has a gradient when live"
        );
        assert!(
            g_frozen.get(var.as_tensor()).is_none(),
            "{name} has a gradient when frozen"
        );
    }
}

#[test]
fn spectral_norm_swaps_d_batch_norm_for_normalised_weights_with_kept_vectors() {
    let cfg = ModelConfig {
        spectral_norm: true,
        projection: true,
        ..ModelConfig::tiny()
    };
    let gan = Gan::new(cfg, 5, &cpu()).unwrap();
    let w = cfg.disc_width;
    let names = state_names(&gan, Net::Discriminator);
    assert!(names.iter().all(|n| !n.contains("bn2")), "{names:?}");
    for (name, dims) in [
        ("disc.conv1.sn_u", vec![w]),
        ("disc.conv2.sn_u", vec![2 * w]),
        ("disc.conv2.bias", vec![2 * w]),
        ("disc.fc.sn_u", vec![1]),
        ("disc.proj.sn_u", vec![10]),
    ] {
        assert_eq!(var(&gan, name).dims(), dims.as_slice(), "{name}");
    }
    // The vectors are state: Adam never sees them.
    let params = gan.params(Net::Discriminator);
    assert!(params.iter().all(|(n, _)| !n.ends_with("sn_u")));
    assert!(params.iter().any(|(n, _)| n == "disc.conv2.bias"));

    let x = Tensor::randn(0f32, 1., (10, 1, 28, 28), &cpu()).unwrap();
    let y = labels(10);
    let u = var(&gan, "disc.conv2.sn_u");
    let before = values(u.as_tensor());
    gan.discriminator.forward_t(&x, &y, false).unwrap();
    assert_eq!(values(u.as_tensor()), before, "eval mode keeps u");
    // Training forwards move u to conv2's top singular vector (unit length).
    for _ in 0..30 {
        gan.discriminator.forward_t(&x, &y, true).unwrap();
    }
    let after = values(u.as_tensor());
    assert_ne!(after, before);
    let norm: f32 = after.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    // Scaling every D weight leaves the logits unchanged: each is divided by its own norm
    // (biases are 0 at init).
    let logits = values(&gan.discriminator.forward_t(&x, &y, false).unwrap());
    for name in [
        "disc.conv1.weight",
        "disc.conv2.weight",
        "disc.fc.weight",
        "disc.proj.weight",
    ] {
        scale(&gan, name, 7.0);
    }
    let scaled = values(&gan.discriminator.forward_t(&x, &y, false).unwrap());
    assert_close(&logits, &scaled, 1e-4);
}

#[test]
fn spectral_norm_can_leave_the_projection_table_free() {
    let cfg = ModelConfig {
        spectral_norm: true,
        projection: true,
        spectral_norm_proj: false,
        ..ModelConfig::tiny()
    };
    let gan = Gan::new(cfg, 5, &cpu()).unwrap();
    let names = state_names(&gan, Net::Discriminator);
    assert!(names.iter().any(|n| n == "disc.fc.sn_u"), "{names:?}");
    assert!(names.iter().all(|n| n != "disc.proj.sn_u"), "{names:?}");

    // The normalised layers still cancel a scale; the free table passes it on.
    let x = Tensor::randn(0f32, 1., (10, 1, 28, 28), &cpu()).unwrap();
    let y = labels(10);
    let logits = |gan: &Gan| values(&gan.discriminator.forward_t(&x, &y, false).unwrap());
    let before = logits(&gan);
    for name in ["disc.conv1.weight", "disc.conv2.weight", "disc.fc.weight"] {
        scale(&gan, name, 7.0);
    }
    let normalised = logits(&gan);
    assert_close(&before, &normalised, 1e-4);
    let fc_part = {
        let v = var(&gan, "disc.proj.weight");
        let table = v.as_tensor().copy().unwrap();
        v.set(&table.zeros_like().unwrap()).unwrap();
        let fc_part = logits(&gan);
        v.set(&table).unwrap();
        fc_part
    };
    scale(&gan, "disc.proj.weight", 7.0);
    // logit = fc(h) + proj[y]·h: only the projection term grows sevenfold.
    let want: Vec<f32> = normalised
        .iter()
        .zip(&fc_part)
        .map(|(a, f)| f + 7.0 * (a - f))
        .collect();
    assert_close(&want, &logits(&gan), 1e-3);
}
