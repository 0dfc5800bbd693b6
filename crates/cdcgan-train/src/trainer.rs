//! The adversarial update: one D step (or several) then one G step, with Adam, optional
//! clipping and an EMA of the generator. Holds the whole training state.

use candle_core::{Device, Tensor};
use cdcgan_model::meta;
use cdcgan_model::{Checkpoint, Gan, Generator, Net, is_buffer, noise};
use cdcgan_nn::{Adam, AdamConfig, moving_average};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::loss::bce_with_logits;
use crate::settings::{ModeSeekingSpace, TrainConfig, Tuning};

/// Metadata key of the training config (JSON).
pub const META_TRAIN: &str = meta::TRAIN;
/// Metadata key of the checkpoint kind (`training` or `generator`).
pub const META_KIND: &str = meta::KIND;
use meta::{
    EMA_UPDATES as META_EMA_UPDATES, OPT_D_STEPS as META_OPT_D_STEPS,
    OPT_G_STEPS as META_OPT_G_STEPS, PHASES as META_PHASES, POSITION as META_POSITION,
    RNG as META_RNG,
};

/// Where training stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Position {
    /// Epochs completed.
    pub epoch: u32,
    /// Batches completed in the current epoch.
    pub batch: usize,
    /// Generator steps taken in all.
    pub step: u64,
}

/// Scalars from one training step.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct StepStats {
    /// Discriminator loss (real + fake BCE), from the last D step.
    pub d_loss: f64,
    /// Generator loss (non-saturating BCE).
    pub g_loss: f64,
    /// Mean D(x) on real images.
    pub d_real: f64,
    /// Mean D(G(z)) on generated images, before the D step.
    pub d_fake: f64,
    /// The R1 penalty `γ/2·mean‖∇ₓD‖²` on the real batch, on the steps that apply it (every
    /// `r1_every`-th D update with `r1` on); `None` on the others.
    pub r1: Option<f64>,
}

#[derive(Serialize, Deserialize)]
struct RngState {
    seed: String,
    stream: u64,
    word_pos: String,
}

/// The training state: networks, optimizers, EMA, noise stream and position.
pub struct Trainer {
    config: RunConfig,
    gan: Gan,
    ema: Option<Gan>,
    ema_updates: u64,
    opt_g: Adam,
    opt_d: Adam,
    rng: ChaCha8Rng,
    position: Position,
    device: Device,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Trainer {
    /// A fresh state: networks initialised from the config's seed.
    pub fn new(config: RunConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let t = &config.train;
        let gan = Gan::new(config.model, t.seed, device)?;
        let ema = if t.ema_decay > 0.0 {
            let ema = Gan::new(config.model, t.seed, device)?;
            Some(ema)
        } else {
            None
        };
        let adam = |lr| AdamConfig {
            lr,
            beta1: t.beta1,
            beta2: t.beta2,
            eps: t.eps,
        };
        let opt_g = Adam::new(gan.params(Net::Generator), adam(t.lr_g))?;
        let opt_d = Adam::new(gan.params(Net::Discriminator), adam(t.lr_d))?;
        let mut rng = ChaCha8Rng::seed_from_u64(t.seed);
        rng.set_stream(1);
        Ok(Self {
            config,
            gan,
            ema,
            ema_updates: 0,
            opt_g,
            opt_d,
            rng,
            position: Position::default(),
            device: device.clone(),
        })
    }

    /// The state saved in a training checkpoint.
    pub fn from_checkpoint(ckpt: &Checkpoint, device: &Device) -> Result<Self> {
        let err = |problem: String| Error::Checkpoint {
            origin: ckpt.origin().to_owned(),
            problem,
        };
        let meta = |key: &str| {
            ckpt.metadata
                .get(key)
                .ok_or_else(|| err(format!("not a training checkpoint: no `{key}`")))
        };
        let train = serde_json::from_str(meta(META_TRAIN)?)
            .map_err(|e| err(format!("training config: {e}")))?;
        // Checkpoints of runs without a schedule carry none.
        let phases = match ckpt.metadata.get(META_PHASES) {
            Some(s) => serde_json::from_str(s).map_err(|e| err(format!("phases: {e}")))?,
            None => Vec::new(),
        };
        let config = RunConfig {
            model: *ckpt.config(),
            train,
            phases,
        };
        let mut this = Self::new(config, device)?;
        this.gan.import(ckpt, "")?;
        if let Some(ema) = &this.ema {
            ema.import_net(ckpt, "ema.", Net::Generator)?;
        }
        for (opt, steps_key) in [
            (&mut this.opt_g, META_OPT_G_STEPS),
            (&mut this.opt_d, META_OPT_D_STEPS),
        ] {
            let steps = meta(steps_key)?
                .parse()
                .map_err(|_| err(format!("malformed `{steps_key}`")))?;
            opt.load_state(|name| ckpt.get(&format!("opt.{name}")), steps)
                .map_err(|e| err(e.to_string()))?;
        }
        this.position = serde_json::from_str(meta(META_POSITION)?)
            .map_err(|e| err(format!("position: {e}")))?;
        let rng: RngState =
            serde_json::from_str(meta(META_RNG)?).map_err(|e| err(format!("rng: {e}")))?;
        this.rng = restore_rng(&rng).ok_or_else(|| err("rng: malformed state".into()))?;
        this.ema_updates = match meta(META_EMA_UPDATES) {
            Ok(s) => s
                .parse()
                .map_err(|_| err("malformed EMA update count".into()))?,
            Err(_) => 0,
        };
        Ok(this)
    }

    /// The whole state as a checkpoint.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let mut ckpt = Checkpoint::new(self.config.model);
        self.gan.export(&mut ckpt, "");
        if let Some(ema) = &self.ema {
            ema_generator_export(ema, &mut ckpt);
        }
        for (opt, steps_key) in [
            (&self.opt_g, META_OPT_G_STEPS),
            (&self.opt_d, META_OPT_D_STEPS),
        ] {
            for (name, t) in opt.state()? {
                ckpt.insert(format!("opt.{name}"), t);
            }
            ckpt.metadata
                .insert(steps_key.into(), opt.steps().to_string());
        }
        let m = &mut ckpt.metadata;
        m.insert(META_KIND.into(), "training".into());
        m.insert(META_TRAIN.into(), json(&self.config.train));
        if !self.config.phases.is_empty() {
            m.insert(META_PHASES.into(), json(&self.config.phases));
        }
        m.insert(META_POSITION.into(), json(&self.position));
        m.insert(META_RNG.into(), json(&save_rng(&self.rng)));
        m.insert(META_EMA_UPDATES.into(), self.ema_updates.to_string());
        m.insert(meta::EPOCH.into(), self.position.epoch.to_string());
        m.insert(meta::STEP.into(), self.position.step.to_string());
        Ok(ckpt)
    }

    /// The generator alone (EMA weights when EMA is on), for sampling elsewhere.
    pub fn generator_checkpoint(&self) -> Checkpoint {
        let mut ckpt = Checkpoint::new(self.config.model);
        let src = self.ema.as_ref().unwrap_or(&self.gan);
        for (name, var) in src.state(Net::Generator) {
            ckpt.insert(name, var.as_tensor().detach());
        }
        let m = &mut ckpt.metadata;
        m.insert(META_KIND.into(), "generator".into());
        m.insert(meta::EMA.into(), self.ema.is_some().to_string());
        m.insert(meta::EPOCH.into(), self.position.epoch.to_string());
        m.insert(meta::STEP.into(), self.position.step.to_string());
        ckpt
    }

    /// The run's configuration.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Continues under `train`, which may differ from the current settings in `epochs`
    /// (extend or shorten) and in what a schedule may change ([`Tuning::FIELDS`]; Adam's
    /// moments are kept). The rest (batch size, seed, Adam's betas and epsilon, the EMA, the
    /// grid) shapes the saved state or the data order, so a change there is an error that
    /// names it.
    pub fn retune(&mut self, train: TrainConfig) -> Result<()> {
        train.validate()?;
        crate::config::check_r1(&train, &self.config.model)?;
        let changed = self.config.train.fixed_changes(&train);
        if !changed.is_empty() {
            return Err(Error::Config(format!(
                "a run keeps its {} for life; only epochs and {} may change",
                changed.join(", "),
                Tuning::FIELDS.join(", ")
            )));
        }
        self.config.train = train;
        self.opt_g.set_lr(train.lr_g);
        self.opt_d.set_lr(train.lr_d);
        Ok(())
    }

    /// Where training stands.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Moves the position on (used by the loop at batch and epoch ends).
    pub(crate) fn position_mut(&mut self) -> &mut Position {
        &mut self.position
    }

    /// The networks being trained.
    pub fn gan(&self) -> &Gan {
        &self.gan
    }

    /// The generator to sample from: the EMA one when EMA is on.
    pub fn sampling_generator(&self) -> &Generator {
        &self.ema.as_ref().unwrap_or(&self.gan).generator
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// One training step on a batch of real `images` `[b, 1, 28, 28]` and `labels` `[b]`.
    pub fn step(&mut self, images: &Tensor, labels: &Tensor) -> Result<StepStats> {
        let t = self.config.train;
        let b = images.dim(0)?;
        let (g, d) = (&self.gan.generator, &self.gan.discriminator);
        let real_target = 1.0 - t.label_smoothing;
        let pairs = b / 2;
        let fake_labels = if t.mode_seeking > 0.0 {
            // Fakes `b - pairs + j` repeat the labels of fakes `j`: `pairs` same-class pairs.
            Tensor::cat(
                &[labels.narrow(0, 0, b - pairs)?, labels.narrow(0, 0, pairs)?],
                0,
            )?
        } else {
            labels.clone()
        };
        let mut stats = StepStats::default();
        let mut fake = None;
        for _ in 0..t.d_steps {
            let z = noise(&mut self.rng, b, self.config.model.z_dim, &self.device)?;
            let f = g.forward_t(&z, &fake_labels, true)?;
            let aug = t.diff_augment;
            let (d_real, d_fake) = if d.per_example() {
                // One pass over reals and fakes together (BigGAN's D step): the same logits,
                // half the passes, and one spectral-norm step per update as in SN-GAN.
                let both = Tensor::cat(&[images, &f.detach()], 0)?;
                let both = d.forward_t(
                    &aug.apply(&both, &mut self.rng)?,
                    &Tensor::cat(&[labels, &fake_labels], 0)?,
                    true,
                )?;
                (both.narrow(0, 0, b)?, both.narrow(0, b, b)?)
            } else {
                let real = aug.apply(images, &mut self.rng)?;
                let fake = aug.apply(&f.detach(), &mut self.rng)?;
                (
                    d.forward_t(&real, labels, true)?,
                    d.forward_t(&fake, &fake_labels, true)?,
                )
            };
            let mut loss =
                (bce_with_logits(&d_real, real_target)? + bce_with_logits(&d_fake, 0.0)?)?;
            stats.d_loss = scalar(&loss)?;
            check_finite(stats.d_loss, "discriminator loss", self.position.step)?;
            stats.d_real = scalar(&sigmoid(&d_real)?.mean_all()?)?;
            stats.d_fake = scalar(&sigmoid(&d_fake)?.mean_all()?)?;
            // Lazy R1: on every `r1_every`-th D update, counted by the optimizer (saved with it).
            if t.r1 > 0.0 && self.opt_d.steps().is_multiple_of(u64::from(t.r1_every)) {
                let every = f64::from(t.r1_every);
                let r1 = crate::r1::r1(d, images, labels, t.r1, every)?;
                check_finite(r1.penalty, "R1 penalty", self.position.step)?;
                stats.r1 = Some(r1.penalty);
                loss = (loss + r1.surrogate)?;
            }
            self.opt_d.step(&loss.backward()?)?;
            if t.clip > 0.0 {
                for (_, var) in self.opt_d.vars() {
                    var.set(&var.as_tensor().clamp(-t.clip, t.clip)?)?;
                }
            }
            fake = Some((z, f));
        }
        let (z, fake) = fake.ok_or_else(|| Error::Config("d_steps must be at least 1".into()))?;
        // D's weights are frozen here: the G step needs gradients through D, not of it.
        let seen = t.diff_augment.apply(&fake, &mut self.rng)?;
        let (logit, features) = d.frozen().forward_features_t(&seen, &fake_labels, true)?;
        let mut g_loss = bce_with_logits(&logit, 1.0)?;
        stats.g_loss = scalar(&g_loss)?;
        if t.mode_seeking > 0.0 && pairs > 0 {
            let space = match t.mode_seeking_space {
                ModeSeekingSpace::Pixels => &fake,
                ModeSeekingSpace::DiscFeatures => &features,
            };
            g_loss = (g_loss + (mode_seeking_loss(&z, space, pairs)? * t.mode_seeking)?)?;
        }
        check_finite(stats.g_loss, "generator loss", self.position.step)?;
        self.opt_g.step(&g_loss.backward()?)?;
        self.update_ema()?;
        self.check_parameters()?;
        self.position.step += 1;
        Ok(stats)
    }

    /// Fails naming the first parameter that holds NaN or infinity (a finite loss can still
    /// come with an overflowing gradient).
    fn check_parameters(&self) -> Result<()> {
        for (name, var) in self.opt_d.vars().iter().chain(self.opt_g.vars()) {
            // NaN and infinities survive a sum; finite f32 weights this small cannot overflow it.
            let sum = var.as_tensor().sum_all()?.to_scalar::<f32>()?;
            check_finite(
                f64::from(sum),
                &format!("parameter {name}"),
                self.position.step,
            )?;
        }
        Ok(())
    }

    /// `ema = d·ema + (1-d)·g` for parameters, a copy for BatchNorm statistics, with the
    /// decay warmed up as `min(decay, (1+n)/(10+n))` so early samples are not stuck at init.
    fn update_ema(&mut self) -> Result<()> {
        let Some(ema) = &self.ema else { return Ok(()) };
        let n = self.ema_updates as f64;
        let decay = self.config.train.ema_decay.min((1.0 + n) / (10.0 + n));
        for ((name, src), (_, dst)) in self
            .gan
            .state(Net::Generator)
            .iter()
            .zip(ema.state(Net::Generator).iter())
        {
            let src = src.as_tensor();
            if is_buffer(name) {
                dst.set(src)?;
            } else {
                moving_average(dst, src, decay)?;
            }
        }
        self.ema_updates += 1;
        Ok(())
    }
}

/// MSGAN's mode-seeking term `1 / (mean|f1 - f2| / mean|z1 - z2| + 1e-5)` over the pairs
/// (row `j`, row `b - pairs + j`) of noise `z` and what was made from it, `fake`: the images
/// or D's features of them.
fn mode_seeking_loss(z: &Tensor, fake: &Tensor, pairs: usize) -> Result<Tensor> {
    let b = z.dim(0)?;
    let gap = |t: &Tensor| -> Result<Tensor> {
        Ok((t.narrow(0, 0, pairs)? - t.narrow(0, b - pairs, pairs)?)?
            .abs()?
            .mean_all()?)
    };
    let ratio = (gap(fake)? / gap(z)?.detach())?;
    Ok((ratio + 1e-5)?.recip()?)
}

/// Exports an EMA model's generator tensors as `ema.gen.*`.
fn ema_generator_export(ema: &Gan, ckpt: &mut Checkpoint) {
    for (name, var) in ema.state(Net::Generator) {
        ckpt.insert(format!("ema.{name}"), var.as_tensor().detach());
    }
}

fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok((x.neg()?.exp()? + 1.0)?.recip()?)
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(f64::from(
        t.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?,
    ))
}

fn check_finite(v: f64, what: &str, step: u64) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(Error::NonFinite {
            step,
            what: what.to_owned(),
        })
    }
}

fn save_rng(rng: &ChaCha8Rng) -> RngState {
    RngState {
        seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
        stream: rng.get_stream(),
        word_pos: rng.get_word_pos().to_string(),
    }
}

fn restore_rng(s: &RngState) -> Option<ChaCha8Rng> {
    if s.seed.len() != 64 || !s.seed.is_ascii() {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s.seed[2 * i..2 * i + 2], 16).ok()?;
    }
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(s.stream);
    rng.set_word_pos(s.word_pos.parse().ok()?);
    Some(rng)
}

/// JSON for metadata values; every type stored this way serialises infallibly.
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn mode_seeking_loss_matches_the_closed_form_and_pushes_pairs_apart() {
        let dev = Device::Cpu;
        // Pairs (0, 3) and (1, 4); row 2 is unpaired and must not count.
        let z = Tensor::new(&[[0f32, 0.], [0., 0.], [9., 9.], [1., 1.], [3., 3.]], &dev).unwrap();
        let fake = Var::new(
            &[[0f32, 0.], [0., 0.], [9., 9.], [0.5, 0.5], [0.5, 0.5]],
            &dev,
        )
        .unwrap();
        let loss = mode_seeking_loss(&z, fake.as_tensor(), 2).unwrap();
        // mean|f1 - f2| = 0.5, mean|z1 - z2| = 2: ratio 0.25.
        let want = 1.0 / (0.25 + 1e-5);
        let got = f64::from(loss.to_scalar::<f32>().unwrap());
        assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        let grad = loss.backward().unwrap();
        let g = grad
            .get(fake.as_tensor())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // Moving a pair's second image further from its first lowers the loss; row 2 gets nothing.
        assert!(g[3].iter().chain(&g[4]).all(|&v| v < 0.0), "{g:?}");
        assert!(g[0].iter().chain(&g[1]).all(|&v| v > 0.0), "{g:?}");
        assert!(g[2].iter().all(|&v| v == 0.0), "{g:?}");
        assert!(grad.get(&z).is_none());
    }
}
