//! Line charts as PNG: `losses.png` (D and G loss against steps from `metrics.csv`, and FID
//! where training judged the epochs) and `eval.png` (quality by epoch).

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
type Losses = Vec<(f64, f64, f64)>;

/// [`Losses`] of a run's `metrics.csv`, and `(step, fid)` of the rows that carry an FID (an
/// older file without the column has none).
fn read_losses(csv: &Path) -> Result<(Losses, Vec<(f64, f64)>)> {
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
    let fid_col = col("fid").ok();
    let mut rows = Vec::new();
    let mut fids = Vec::new();
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let num = |c: usize| -> Result<f64> {
            f.get(c)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{} line {}: bad number", csv.display(), i + 2))
        };
        rows.push((num(s)?, num(d)?, num(g)?));
        if let Some(c) = fid_col.filter(|&c| f.get(c).is_some_and(|v| !v.is_empty())) {
            fids.push((num(s)?, num(c)?));
        }
    }
    Ok((rows, fids))
}

/// One line of a chart.
pub struct Series {
    /// Line colour.
    pub color: RGBColor,
    /// `(x, y)` points in order.
    pub points: Vec<(f64, f64)>,
}

/// One chart: a title, axis names and its lines.
pub struct Panel {
    /// Caption above the chart.
    pub title: String,
    /// X-axis name.
    pub x_desc: &'static str,
    /// Y-axis name.
    pub y_desc: &'static str,
    /// The lines.
    pub series: Vec<Series>,
}

/// Draws D and G losses from `csv` into the PNG `out`, with the FID of the judged epochs
/// beside them when there are any.
pub fn loss_plot(csv: &Path, out: &Path) -> Result<()> {
    let (rows, fids) = read_losses(csv)?;
    if rows.is_empty() {
        bail!("{} has no rows to plot", csv.display());
    }
    let panel = Panel {
        title: "cdcgan losses (red: D, blue: G)".into(),
        x_desc: "step",
        y_desc: "loss",
        series: vec![
            Series {
                color: RED,
                points: rows.iter().map(|r| (r.0, r.1)).collect(),
            },
            Series {
                color: BLUE,
                points: rows.iter().map(|r| (r.0, r.2)).collect(),
            },
        ],
    };
    if fids.is_empty() {
        return render(&[panel], (800, 450), out);
    }
    let fid = Panel {
        title: "FID of the judged epochs (lower is better)".into(),
        x_desc: "step",
        y_desc: "FID",
        series: vec![Series {
            color: BLUE,
            points: fids,
        }],
    };
    render(&[panel, fid], (1400, 450), out)
}

/// Draws `panels` side by side into a PNG of `size` pixels at `out` (written atomically).
pub fn render(panels: &[Panel], size: (u32, u32), out: &Path) -> Result<()> {
    let text = register_font();
    let (w, h) = size;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (area, panel) in areas.iter().zip(panels) {
            draw_panel(area, panel, text)?;
        }
        root.present()?;
    }
    let img = image::RgbImage::from_raw(w, h, rgb).context("plot buffer has the wrong size")?;
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)?;
    cdcgan_nn::file::write_atomic(out, png.get_ref())
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
    text: bool,
) -> Result<()> {
    let points = || panel.series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = points().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = points().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if x0 > x1 {
        bail!("nothing to plot in \"{}\"", panel.title);
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let mut builder = ChartBuilder::on(area);
    builder.margin(15);
    if text {
        builder
            .caption(&panel.title, ("sans-serif", 20))
            .x_label_area_size(40)
            .y_label_area_size(55);
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1)?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc(panel.x_desc).y_desc(panel.y_desc);
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    for s in &panel.series {
        chart.draw_series(LineSeries::new(
            s.points.iter().copied(),
            s.color.stroke_width(2),
        ))?;
    }
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
        // With judged epochs, the FID panel joins the losses.
        std::fs::write(
            &csv,
            "epoch,step,d_loss,g_loss,d_real,d_fake,images_per_sec,accuracy,fid,diversity_min\n\
             1,10,1.2,0.8,0.5,0.4,100,,,\n1,20,1.0,1.1,0.6,0.3,100,0.9,12.5,0.8\n\
             2,40,1.0,1.1,0.6,0.3,100,0.95,8.0,0.9\n",
        )
        .unwrap();
        assert_eq!(
            read_losses(&csv).unwrap().1,
            vec![(20.0, 12.5), (40.0, 8.0)]
        );
        loss_plot(&csv, &out).unwrap();
        let img = image::open(&out).unwrap();
        assert_eq!((img.width(), img.height()), (1400, 450));
        std::fs::write(&csv, "epoch,step,d_loss,g_loss\n1,x,1,1\n").unwrap();
        let err = loss_plot(&csv, &out).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
