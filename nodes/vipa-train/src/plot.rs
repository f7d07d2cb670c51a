//! The loss-curve PNG written next to the checkpoints.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

/// Fonts are read at run time (Debian `fonts-dejavu-core`); without one the plot has no labels.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

fn font_available() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        for path in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps registered fonts for the process lifetime.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        tracing::debug!("no TrueType font found; the loss plot will have no labels");
        false
    })
}

/// Draws `series` (name, points of `(step, loss)`) into a PNG at `path`.
pub fn loss_curve(
    path: &Path,
    title: &str,
    series: &[(&str, &[(u64, f32)])],
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let points = series.iter().flat_map(|(_, s)| s.iter());
    let (mut max_step, mut lo, mut hi) = (1u64, f32::INFINITY, f32::NEG_INFINITY);
    for &(step, loss) in points {
        if loss.is_finite() {
            max_step = max_step.max(step);
            lo = lo.min(loss);
            hi = hi.max(loss);
        }
    }
    if !lo.is_finite() {
        return Err("no finite losses to plot".into());
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let labels = font_available();
    let root = BitMapBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(16);
    if labels {
        builder
            .caption(title, ("sans-serif", 22))
            .x_label_area_size(36)
            .y_label_area_size(56);
    }
    let mut chart = builder.build_cartesian_2d(0u64..max_step, (lo - pad)..(hi + pad))?;
    if labels {
        chart
            .configure_mesh()
            .x_desc("optimizer step")
            .y_desc("loss")
            .draw()?;
    }
    let colors = [BLUE, RED, GREEN, MAGENTA, BLACK];
    for (i, (name, s)) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        let line = chart.draw_series(LineSeries::new(
            s.iter().copied().filter(|(_, l)| l.is_finite()),
            color.stroke_width(2),
        ))?;
        if labels {
            line.label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
    }
    if labels && series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.png");
        let pts: Vec<(u64, f32)> = (0..50).map(|s| (s, 3.0 / (1.0 + s as f32))).collect();
        loss_curve(&path, "loss", &[("train", &pts)]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 1000);
    }

    #[test]
    fn all_nan_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let pts = [(0u64, f32::NAN)];
        assert!(loss_curve(&dir.path().join("x.png"), "loss", &[("train", &pts)]).is_err());
    }
}
