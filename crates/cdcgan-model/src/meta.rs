//! Every `cdcgan.*` metadata key the project writes into safetensors files, in one place
//! (docs/checkpoint-format.md says what each holds).

/// What every key begins with.
pub const PREFIX: &str = "cdcgan.";
/// Any file: the checkpoint format version.
pub const FORMAT: &str = "cdcgan.format";
/// Any file: the architecture name (`dcgan28`, or the classifier's `mnist-cnn-1`).
pub const ARCH: &str = "cdcgan.arch";
/// Any checkpoint: the model configuration as JSON.
pub const MODEL: &str = "cdcgan.model";
/// Any checkpoint: SHA-256 of the tensors, verified on load.
pub const SHA256: &str = "cdcgan.sha256";
/// `training` or `generator`.
pub const KIND: &str = "cdcgan.kind";
/// A generator file: whether it holds EMA weights.
pub const EMA: &str = "cdcgan.ema";
/// The epochs done when the file was written.
pub const EPOCH: &str = "cdcgan.epoch";
/// The generator steps done when the file was written.
pub const STEP: &str = "cdcgan.step";
/// A judged generator: its quality (JSON).
pub const QUALITY: &str = "cdcgan.quality";
/// A classifier file: how it was trained (JSON).
pub const CLASSIFIER: &str = "cdcgan.classifier";

/// A training state: the training settings in force (JSON).
pub const TRAIN: &str = "cdcgan.train";
/// A training state: the schedule (`[[phase]]` tables, JSON).
pub const PHASES: &str = "cdcgan.phases";
/// A training state: epoch, batch and step.
pub const POSITION: &str = "cdcgan.position";
/// A training state: the noise generator's state.
pub const RNG: &str = "cdcgan.rng";
/// A training state: EMA updates done.
pub const EMA_UPDATES: &str = "cdcgan.ema_updates";
/// A training state: the running sums of the epoch and metrics row under way, and the best
/// judged epoch.
pub const RUN_SUMS: &str = "cdcgan.run_sums";
/// A training state: the prefix of the optimisers' keys.
pub const OPT_PREFIX: &str = "cdcgan.opt.";
/// A training state: G's Adam step count.
pub const OPT_G_STEPS: &str = "cdcgan.opt.gen.t";
/// A training state: D's Adam step count.
pub const OPT_D_STEPS: &str = "cdcgan.opt.disc.t";

/// The keys only a training state carries (with those under [`OPT_PREFIX`]): a generator
/// exported from it drops them.
pub const TRAINING_ONLY: [&str; 6] = [TRAIN, PHASES, POSITION, RNG, EMA_UPDATES, RUN_SUMS];

/// Whether `key` belongs to a training state only.
pub fn is_training_only(key: &str) -> bool {
    TRAINING_ONLY.contains(&key) || key.starts_with(OPT_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_the_prefix_and_training_keys_are_told_apart() {
        let all = [
            FORMAT,
            ARCH,
            MODEL,
            SHA256,
            KIND,
            EMA,
            EPOCH,
            STEP,
            QUALITY,
            CLASSIFIER,
            TRAIN,
            PHASES,
            POSITION,
            RNG,
            EMA_UPDATES,
            RUN_SUMS,
            OPT_G_STEPS,
            OPT_D_STEPS,
        ];
        assert!(all.iter().all(|k| k.starts_with(PREFIX)));
        let mut unique = all.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
        for k in [
            TRAIN,
            PHASES,
            RUN_SUMS,
            OPT_G_STEPS,
            "cdcgan.opt.gen.m.fc.weight",
        ] {
            assert!(is_training_only(k), "{k}");
        }
        for k in [FORMAT, ARCH, MODEL, SHA256, KIND, EMA, EPOCH, STEP, QUALITY] {
            assert!(!is_training_only(k), "{k}");
        }
    }
}
