//! `losses.png`: discriminator and generator loss against training steps, from `metrics.csv`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use plotters::prelude::*;

/// Fonts tried for axis labels; without any, the plot is drawn without text.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers the first readable font once per process; whether one was found.
fn register_font() -> bool {
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        FONTS.iter().any(|path| {
            std::fs::read(path).is_ok_and(|bytes| {
                // plotters keeps fonts for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    })
}

/// `(step, d_loss, g_loss)` rows of a run's `metrics.csv`.
fn read_losses(csv: &Path) -> Result<Vec<(f64, f64, f64)>> {
    let text =
        std::fs::read_to_string(csv).with_context(|| format!("cannot read {}", csv.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("{} has no {name} column", csv.display()))
    };
    let (s, d, g) = (col("step")?, col("d_loss")?, col("g_loss")?);
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let num = |c: usize| -> Result<f64> {
            f.get(c)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{} line {}: bad number", csv.display(), i + 2))
        };
        rows.push((num(s)?, num(d)?, num(g)?));
    }
    Ok(rows)
}

/// Draws D and G losses from `csv` into the PNG `out`.
pub fn loss_plot(csv: &Path, out: &Path) -> Result<()> {
    let rows = read_losses(csv)?;
    if rows.is_empty() {
        bail!("{} has no rows to plot", csv.display());
    }
    let text = register_font();
    let max_step = rows.iter().map(|r| r.0).fold(1.0, f64::max);
    let max_loss = rows.iter().map(|r| r.1.max(r.2)).fold(0.5, f64::max) * 1.05;
    let (w, h) = (800u32, 450u32);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut builder = ChartBuilder::on(&root);
        builder.margin(15);
        if text {
            builder
                .caption("cdcgan losses (red: D, blue: G)", ("sans-serif", 22))
                .x_label_area_size(40)
                .y_label_area_size(50);
        }
        let mut chart = builder.build_cartesian_2d(0.0..max_step, 0.0..max_loss)?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("step").y_desc("loss");
        } else {
            mesh.disable_x_axis().disable_y_axis();
        }
        mesh.draw()?;
        chart.draw_series(LineSeries::new(rows.iter().map(|r| (r.0, r.1)), &RED))?;
        chart.draw_series(LineSeries::new(rows.iter().map(|r| (r.0, r.2)), &BLUE))?;
        root.present()?;
    }
    let img = image::RgbImage::from_raw(w, h, rgb).context("plot buffer has the wrong size")?;
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)?;
    mnist_data::write_atomic(out, png.get_ref())
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_a_metrics_file_and_rejects_a_broken_one() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("metrics.csv");
        std::fs::write(
            &csv,
            "epoch,step,d_loss,g_loss,d_real,d_fake,images_per_sec\n1,10,1.2,0.8,0.5,0.4,100\n1,20,1.0,1.1,0.6,0.3,100\n",
        )
        .unwrap();
        let out = dir.path().join("losses.png");
        loss_plot(&csv, &out).unwrap();
        let img = image::open(&out).unwrap();
        assert_eq!((img.width(), img.height()), (800, 450));
        std::fs::write(&csv, "epoch,step,d_loss,g_loss\n1,x,1,1\n").unwrap();
        let err = loss_plot(&csv, &out).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
