//! What `cdcgan train` shows: the progress bar, per-epoch summaries or JSON lines, the live
//! judge's verdicts, and the Ctrl-C flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cdcgan_model::Generator;
use cdcgan_train::{EpochReport, Observer, Quality, StepReport, TrainConfig};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::TrainArgs;
use crate::watch::LiveJudge;

/// Progress bar, per-epoch summaries or JSON lines, and the stop flag.
pub struct Display {
    pub bar: ProgressBar,
    quiet: bool,
    json: bool,
    profile: bool,
    stop: Arc<AtomicBool>,
    judge: Option<LiveJudge>,
}

impl Display {
    pub fn new(args: &TrainArgs, stop: Arc<AtomicBool>, judge: Option<LiveJudge>) -> Self {
        let bar = if args.quiet || args.json {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        };
        Self {
            bar,
            quiet: args.quiet,
            json: args.json,
            profile: args.profile,
            stop,
            judge,
        }
    }

    /// A line on stderr above the bar; also when stderr is no terminal (a log file), where
    /// the bar is hidden and its own `println` would drop the line.
    fn say(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }
}

impl Observer for Display {
    fn on_step(&mut self, r: &StepReport) {
        self.bar.set_length(r.batches as u64);
        self.bar.set_position(r.batch as u64);
        self.bar.set_prefix(format!("{}/{}", r.epoch, r.epochs));
        self.bar.set_message(format!(
            "{:.0} img/s  d_loss {:.3}  g_loss {:.3}",
            r.images_per_sec, r.stats.d_loss, r.stats.g_loss
        ));
    }

    fn on_epoch(&mut self, r: &EpochReport) {
        if self.json {
            let line = serde_json::json!({
                "epoch": r.epoch, "epochs": r.epochs, "step": r.step,
                "d_loss": r.mean.d_loss, "g_loss": r.mean.g_loss,
                "d_real": r.mean.d_real, "d_fake": r.mean.d_fake, "r1": r.mean.r1,
                "images_per_sec": r.images_per_sec, "seconds": r.seconds,
                "grid": r.grid, "checkpoint": r.checkpoint,
                "quality": r.quality, "best_epoch": r.best.map(|(e, _)| e), "time": r.time,
            });
            println!("{line}");
        } else if !self.quiet {
            let quality = r.quality.map_or(String::new(), |q| {
                format!(
                    "\n  judged on {} digits (a trend; `cdcgan eval` measures on 10,000): label \
                     accuracy {:.2}%, FID {:.2} (real {:.2}, {:.2}x), narrowest class {} at {:.3}{}",
                    mnist_data::NUM_CLASSES * crate::watch::PER_CLASS,
                    100.0 * q.accuracy,
                    q.fid,
                    q.real_fid,
                    q.fid / q.real_fid,
                    q.narrowest_class,
                    q.diversity_min,
                    if r.best.is_some_and(|(e, _)| e == r.epoch) {
                        "; best so far"
                    } else {
                        ""
                    }
                )
            });
            let time = if self.profile {
                let t = &r.time;
                format!(
                    "\n  time: steps {:.1}s, batching {:.1}s, logging {:.1}s, grid {:.1}s, \
                     checkpoints {:.1}s, judge {:.1}s",
                    t.steps, t.data, t.logging, t.grid, t.checkpoints, t.judge
                )
            } else {
                String::new()
            };
            self.say(&format!(
                "epoch {}/{}: d_loss {:.3} g_loss {:.3} D(x) {:.2} D(G(z)) {:.2}{}, {:.0} img/s, {:.0}s; {}{quality}{time}",
                r.epoch,
                r.epochs,
                r.mean.d_loss,
                r.mean.g_loss,
                r.mean.d_real,
                r.mean.d_fake,
                r.mean.r1.map_or(String::new(), |p| format!(" R1 {p:.4}")),
                r.images_per_sec,
                r.seconds,
                r.grid.display()
            ));
        }
        self.bar.reset();
    }

    fn on_phase(&mut self, epoch: u32, t: &TrainConfig) {
        if !self.quiet && !self.json {
            self.say(&format!("epoch {epoch}: phase: {}", t.scheduled_summary()));
        }
    }

    fn judge(&mut self, epoch: u32, generator: &Generator) -> Option<Quality> {
        let judge = self.judge.as_ref()?;
        match judge.measure(generator) {
            Ok(q) => Some(q),
            Err(e) => {
                // Training goes on; only the measurement is lost.
                self.say(&format!(
                    "warning: epoch {epoch} could not be judged: {e:#}"
                ));
                None
            }
        }
    }

    fn should_stop(&mut self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}
