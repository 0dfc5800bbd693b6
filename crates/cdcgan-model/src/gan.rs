//! The generator and discriminator together with their parameters, seeded initialisation,
//! and import/export to checkpoints.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::checkpoint::Checkpoint;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::meta;
use crate::networks::{Discriminator, Generator};

/// Name prefix of the generator's tensors.
pub const GEN: &str = "gen";
/// Name prefix of the discriminator's tensors.
pub const DISC: &str = "disc";

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// The generator (`gen.*`).
    Generator,
    /// The discriminator (`disc.*`).
    Discriminator,
}

impl Net {
    /// The tensor-name prefix of this network, with the trailing dot.
    pub fn prefix(self) -> &'static str {
        match self {
            Net::Generator => "gen.",
            Net::Discriminator => "disc.",
        }
    }
}

/// Whether a tensor is state, not a trained parameter: a BatchNorm running statistic or a
/// spectral normaliser's power-iteration vector.
pub fn is_buffer(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var") || name.ends_with(".sn_u")
}

/// A generator and a discriminator sharing one parameter store.
pub struct Gan {
    config: ModelConfig,
    vars: VarMap,
    /// G(z, y).
    pub generator: Generator,
    /// D(x, y).
    pub discriminator: Discriminator,
}

impl std::fmt::Debug for Gan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gan")
            .field("config", &self.config)
            .field("tensors", &self.all_vars().len())
            .finish_non_exhaustive()
    }
}

impl Gan {
    /// Builds both networks on `device`, initialised from `seed` (DCGAN init:
    /// weights N(0, 0.02), biases 0, BatchNorm gamma N(1, 0.02) and beta 0).
    pub fn new(config: ModelConfig, seed: u64, device: &Device) -> Result<Self> {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, device);
        let generator = Generator::new(&config, vb.pp(GEN))?;
        let discriminator = Discriminator::new(&config, vb.pp(DISC))?;
        let gan = Self {
            config,
            vars,
            generator,
            discriminator,
        };
        init_dcgan(&gan.all_vars(), seed)?;
        Ok(gan)
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Every variable (parameters and running statistics), sorted by name.
    pub fn all_vars(&self) -> Vec<(String, Var)> {
        sorted_vars(&self.vars)
    }

    /// The trainable parameters of `net`, sorted by name (running statistics excluded).
    pub fn params(&self, net: Net) -> Vec<(String, Var)> {
        self.all_vars()
            .into_iter()
            .filter(|(n, _)| n.starts_with(net.prefix()) && !is_buffer(n))
            .collect()
    }

    /// All tensors of `net` (parameters and running statistics), sorted by name.
    pub fn state(&self, net: Net) -> Vec<(String, Var)> {
        self.all_vars()
            .into_iter()
            .filter(|(n, _)| n.starts_with(net.prefix()))
            .collect()
    }

    /// Adds copies of every tensor to `ckpt`, names prefixed by `prefix` (e.g. `""` or `"ema."`).
    pub fn export(&self, ckpt: &mut Checkpoint, prefix: &str) {
        for (name, var) in self.all_vars() {
            ckpt.insert(format!("{prefix}{name}"), var.as_tensor().detach());
        }
    }

    /// Sets every tensor from `ckpt`, reading `{prefix}{name}`; checks names and shapes first.
    pub fn import(&self, ckpt: &Checkpoint, prefix: &str) -> Result<()> {
        import_vars(&self.all_vars(), ckpt, prefix)
    }

    /// Like [`Gan::import`], for the tensors of `net` alone.
    pub fn import_net(&self, ckpt: &Checkpoint, prefix: &str, net: Net) -> Result<()> {
        import_vars(&self.state(net), ckpt, prefix)
    }
}

/// Builds a generator alone from a checkpoint: the EMA weights (`ema.gen.*`) when present
/// and `prefer_ema`, else `gen.*`. Loads in eval-ready form.
pub fn generator_from_checkpoint(
    ckpt: &Checkpoint,
    prefer_ema: bool,
    device: &Device,
) -> Result<Generator> {
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, device);
    let generator = Generator::new(ckpt.config(), vb.pp(GEN))?;
    let prefix = if prefer_ema && ckpt.has_prefix("ema.gen.") {
        "ema."
    } else {
        ""
    };
    import_vars(&sorted_vars(&vars), ckpt, prefix)?;
    Ok(generator)
}

/// The generator part of any checkpoint (a training state or a generator file) as a
/// generator-only checkpoint: EMA weights when `prefer_ema` and present, stored as `gen.*`.
///
/// Metadata is kept, with `cdcgan.kind` set to `generator` and `cdcgan.ema` saying which
/// weights were taken. Fails if the generator's tensors are missing or misshapen.
pub fn generator_checkpoint(ckpt: &Checkpoint, prefer_ema: bool) -> Result<Checkpoint> {
    // Building the generator from it checks every name and shape.
    generator_from_checkpoint(ckpt, prefer_ema, &Device::Cpu)?;
    let ema = prefer_ema && ckpt.has_prefix("ema.gen.");
    let from = if ema { "ema.gen." } else { "gen." };
    let mut out = Checkpoint::new(*ckpt.config());
    for (name, t) in ckpt.tensors() {
        if let Some(rest) = name.strip_prefix(from) {
            out.insert(format!("{GEN}.{rest}"), t.clone());
        }
    }
    out.metadata = ckpt.metadata.clone();
    out.metadata.insert(meta::KIND.into(), "generator".into());
    if ema || !out.metadata.contains_key(meta::EMA) {
        // A generator file says itself whether it holds EMA weights; keep that.
        out.metadata.insert(meta::EMA.into(), ema.to_string());
    }
    out.metadata.retain(|k, _| !meta::is_training_only(k));
    Ok(out)
}

/// Every variable of `vars`, sorted by name (the order init, export and import use).
pub fn sorted_vars(vars: &VarMap) -> Vec<(String, Var)> {
    let data = vars.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<_> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Checks every expected tensor's presence and shape, and that no unknown tensor shares the
/// networks' prefixes, before changing anything.
fn import_vars(vars: &[(String, Var)], ckpt: &Checkpoint, prefix: &str) -> Result<()> {
    let origin = ckpt.origin();
    let mut found = Vec::with_capacity(vars.len());
    for (name, var) in vars {
        let key = format!("{prefix}{name}");
        let t = ckpt.get(&key).ok_or_else(|| Error::MissingTensor {
            origin: origin.to_owned(),
            name: key.clone(),
        })?;
        if t.dims() != var.dims() {
            return Err(Error::Shape {
                origin: origin.to_owned(),
                name: key,
                expected: var.dims().to_vec(),
                found: t.dims().to_vec(),
            });
        }
        found.push((var, t));
    }
    let nets: Vec<String> = vars
        .iter()
        .filter_map(|(n, _)| n.split('.').next())
        .map(|net| format!("{prefix}{net}."))
        .collect();
    for name in ckpt.tensors().keys() {
        let ours = nets.iter().any(|p| name.starts_with(p.as_str()));
        let known = vars.iter().any(|(n, _)| format!("{prefix}{n}") == *name);
        if ours && !known {
            return Err(Error::UnexpectedTensor {
                origin: origin.to_owned(),
                name: name.clone(),
            });
        }
    }
    for (var, t) in found {
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    Ok(())
}

/// Draws `n` samples of N(mean, std) from `rng`.
pub fn normal_vec(rng: &mut impl rand::Rng, n: usize, mean: f32, std: f32) -> Vec<f32> {
    // std is a finite positive constant at every call site.
    let dist = Normal::new(mean, std).unwrap_or_else(|_| Normal::new(0.0, 1.0).expect("valid"));
    (0..n).map(|_| dist.sample(rng)).collect()
}

/// Standard-normal noise `[n, z_dim]` drawn from `rng`.
pub fn noise(rng: &mut impl rand::Rng, n: usize, z_dim: usize, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        normal_vec(rng, n * z_dim, 0.0, 1.0),
        (n, z_dim),
        device,
    )?)
}

/// DCGAN initialisation of `vars` (sorted by name) from one seeded stream.
fn init_dcgan(vars: &[(String, Var)], seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (name, var) in vars {
        let n = var.elem_count();
        let is_bn = name.split('.').any(|part| part.starts_with("bn"));
        let values = if name.ends_with(".running_var") {
            vec![1.0; n]
        } else if name.ends_with(".bias") || name.ends_with(".running_mean") {
            vec![0.0; n]
        } else if is_bn {
            normal_vec(&mut rng, n, 1.0, 0.02)
        } else {
            normal_vec(&mut rng, n, 0.0, 0.02)
        };
        var.set(&Tensor::from_vec(values, var.shape(), var.device())?)?;
    }
    Ok(())
}
