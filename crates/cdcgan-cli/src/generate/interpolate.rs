//! `cdcgan interpolate`: every class along a walk from one handwriting style to another.

use std::path::PathBuf;

use anyhow::Result;
use candle_core::{Device, Tensor};
use cdcgan_model::Sampler;
use cdcgan_train::{GridLayout, grid_image, save_png};
use clap::Args;
use mnist_data::NUM_CLASSES;

use cdcgan_train::save_gif;

use super::{check_output, rng};

/// Options of `cdcgan interpolate`.
#[derive(Args, Debug)]
pub struct InterpolateOpts {
    /// Columns from the first style to the second (2 to 1000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(2..=1000))]
    pub steps: u16,
    /// Seed of the two styles.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Enlarge every pixel K times.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub scale: u32,
    /// Output PNG (default interpolation.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the walk as an animated GIF here.
    #[arg(long, value_name = "FILE")]
    pub gif: Option<PathBuf>,
    /// A generator or training checkpoint (or a run directory) instead of the built-in generator.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
}

/// Spherical interpolation between two Gaussian noise vectors (keeps the norm typical).
fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    let cos = (dot / (na * nb).max(1e-12)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    if omega.abs() < 1e-4 {
        return a.iter().zip(b).map(|(x, y)| x + t * (y - x)).collect();
    }
    let (sa, sb) = (
        ((1.0 - t) * omega).sin() / omega.sin(),
        (t * omega).sin() / omega.sin(),
    );
    a.iter().zip(b).map(|(x, y)| sa * x + sb * y).collect()
}

/// `cdcgan interpolate`: rows are classes, columns walk from one style to another.
pub fn interpolate(src: &Sampler, o: &InterpolateOpts) -> Result<()> {
    let steps = usize::from(o.steps);
    let layout = GridLayout::new(NUM_CLASSES * steps, steps, o.scale)?;
    let out = o.out.clone().unwrap_or_else(|| "interpolation.png".into());
    check_output(&out, "picture")?;
    if let Some(gif) = &o.gif {
        check_output(gif, "animation")?;
    }
    let ends: Vec<f32> = src.noise(&mut rng(o.seed), 2)?.flatten_all()?.to_vec1()?;
    let (a, b) = ends.split_at(src.z_dim());
    let path: Vec<Vec<f32>> = (0..steps)
        .map(|i| slerp(a, b, i as f32 / (steps - 1) as f32))
        .collect();
    // Row r = class r, column c = step c.
    let mut z = Vec::with_capacity(NUM_CLASSES * steps * src.z_dim());
    let mut labels = Vec::with_capacity(NUM_CLASSES * steps);
    for class in 0..NUM_CLASSES as u8 {
        for p in &path {
            z.extend_from_slice(p);
            labels.push(class);
        }
    }
    let z = Tensor::from_vec(z, (labels.len(), src.z_dim()), &Device::Cpu)?;
    let images = src.generate(&z, &labels)?;
    let mut img = layout.canvas();
    layout.paste(&mut img, 0, &images)?;
    save_png(&img, &out)?;
    println!(
        "wrote {} ({NUM_CLASSES} classes x {steps} steps)",
        out.display()
    );
    if let Some(gif) = &o.gif {
        // Frame c: all ten classes at step c, there and back.
        let mut frames = Vec::new();
        let order: Vec<usize> = (0..steps).chain((1..steps - 1).rev()).collect();
        for &c in &order {
            let idx: Vec<u32> = (0..NUM_CLASSES).map(|r| (r * steps + c) as u32).collect();
            let idx = Tensor::from_vec(idx, NUM_CLASSES, &Device::Cpu)?;
            let row = images.index_select(&idx, 0)?;
            frames.push(grid_image(&row, NUM_CLASSES, o.scale.max(2))?);
        }
        save_gif(&frames, 120, gif)?;
        println!("wrote {} ({} frames)", gif.display(), frames.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slerp_hits_the_ends() {
        let (a, b) = ([1.0, 0.0], [0.0, 1.0]);
        assert_eq!(slerp(&a, &b, 0.0), vec![1.0, 0.0]);
        let end = slerp(&a, &b, 1.0);
        assert!((end[0]).abs() < 1e-6 && (end[1] - 1.0).abs() < 1e-6);
        let mid = slerp(&a, &b, 0.5);
        assert!((mid[0] - mid[1]).abs() < 1e-6 && (mid[0].hypot(mid[1]) - 1.0).abs() < 1e-5);
    }
}
