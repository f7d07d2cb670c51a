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

/// One bar: label, value and an optional interval (drawn as a whisker).
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub interval: Option<(f64, f64)>,
}

/// One panel of bars sharing a y axis.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub y_desc: String,
    pub bars: Vec<Bar>,
    /// The top of the y axis. A bar or whisker above it is cut at the top and the bar is
    /// labelled with its value, so that one outlier row does not flatten the others. `None`:
    /// the axis fits every bar.
    pub y_max: Option<f64>,
}

/// How one bar is drawn on an axis that ends at `top`.
#[derive(Debug, Clone, PartialEq)]
struct Drawn {
    /// Height of the bar (≤ `top`).
    height: f64,
    /// The whisker's ends (≤ `top`) and whether its upper cap is drawn (not cut off).
    whisker: Option<(f64, f64, bool)>,
    /// The value, printed on a bar that was cut.
    label: Option<String>,
}

fn drawn(b: &Bar, top: f64) -> Drawn {
    let whisker = b
        .interval
        .filter(|i| i.0.is_finite() && i.1.is_finite() && i.0 <= top)
        .map(|(lo, hi)| (lo, hi.min(top), hi <= top));
    Drawn {
        height: b.value.min(top),
        whisker,
        label: (b.value > top).then(|| format!("{:.3} ↑", b.value)),
    }
}

/// Draws `panels` in a grid of `cols` columns into a PNG: one coloured bar per entry (the same
/// colour for the same bar index in every panel, with a legend under the title) and its
/// interval as a whisker.
pub fn bar_panels(
    path: &Path,
    title: &str,
    panels: &[Panel],
    cols: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if panels.is_empty() {
        return Err("no panels to draw".into());
    }
    let cols = cols.clamp(1, panels.len());
    let rows = panels.len().div_ceil(cols);
    let labels = font_available();
    let n_bars = panels.iter().map(|p| p.bars.len()).max().unwrap_or(0);
    let legend_h = if labels { 24 * n_bars as u32 + 16 } else { 0 };
    let (w, h) = (360 * cols as u32, 300 * rows as u32 + 40 + legend_h);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE)?;
    let colors = [
        RGBColor(120, 120, 120),
        RGBColor(230, 140, 40),
        RGBColor(40, 110, 200),
        RGBColor(60, 160, 80),
        RGBColor(170, 60, 170),
        RGBColor(200, 50, 50),
    ];
    let (head, body) = root.split_vertically(40 + legend_h);
    if labels {
        head.draw(&Text::new(title, (12, 8), ("sans-serif", 22)))?;
        if let Some(p) = panels.iter().max_by_key(|p| p.bars.len()) {
            for (i, b) in p.bars.iter().enumerate() {
                let y = 40 + 24 * i as i32;
                let c = colors[i % colors.len()];
                head.draw(&Rectangle::new([(16, y + 2), (34, y + 18)], c.filled()))?;
                head.draw(&Text::new(
                    b.label.as_str(),
                    (42, y + 2),
                    ("sans-serif", 16),
                ))?;
            }
        }
    }
    for (area, panel) in body.split_evenly((rows, cols)).iter().zip(panels) {
        let top = panel
            .bars
            .iter()
            .map(|b| b.interval.map_or(b.value, |i| i.1.max(b.value)))
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let top = match panel.y_max {
            Some(m) if m.is_finite() && m > 0.0 => m,
            _ if top > 0.0 => top * 1.15,
            _ => 1.0,
        };
        let mut builder = ChartBuilder::on(area);
        builder.margin(12);
        if labels {
            builder
                .caption(&panel.title, ("sans-serif", 16))
                .y_label_area_size(48)
                .x_label_area_size(8);
        }
        let n = panel.bars.len().max(1);
        let mut chart = builder.build_cartesian_2d(0f64..n as f64, 0f64..top)?;
        if labels {
            chart
                .configure_mesh()
                .disable_x_mesh()
                .disable_x_axis()
                .y_desc(panel.y_desc.as_str())
                .draw()?;
        }
        for (i, b) in panel.bars.iter().enumerate() {
            if !b.value.is_finite() {
                continue;
            }
            let x0 = i as f64 + 0.15;
            let x1 = i as f64 + 0.85;
            let c = colors[i % colors.len()];
            let d = drawn(b, top);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0, 0.0), (x1, d.height)],
                c.filled(),
            )))?;
            if let Some((lo, hi, cap)) = d.whisker {
                let xm = i as f64 + 0.5;
                let whisker = BLACK.stroke_width(2);
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(xm, lo), (xm, hi)],
                    whisker,
                )))?;
                let caps: &[f64] = if cap { &[lo, hi] } else { &[lo] };
                for &y in caps {
                    chart.draw_series(std::iter::once(PathElement::new(
                        vec![(xm - 0.15, y), (xm + 0.15, y)],
                        whisker,
                    )))?;
                }
            }
            if let Some(text) = d.label.filter(|_| labels) {
                chart.draw_series(std::iter::once(Text::new(
                    text,
                    (x0, top * 0.97),
                    ("sans-serif", 14).into_font().color(&WHITE),
                )))?;
            }
        }
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
    fn writes_bar_panels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.png");
        let bar = |label: &str, value: f64| Bar {
            label: label.into(),
            value,
            interval: Some((value * 0.8, value * 1.2)),
        };
        let panels: Vec<Panel> = (0..4)
            .map(|i| Panel {
                title: format!("task {i}"),
                y_desc: "m".into(),
                bars: vec![bar("a", 0.1), bar("b", 0.2), bar("prior", f64::NAN)],
                y_max: (i == 3).then_some(0.15),
            })
            .collect();
        bar_panels(&path, "table", &panels, 2).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[1..4], b"PNG");
        assert!(bar_panels(&path, "none", &[], 2).is_err());
    }

    #[test]
    fn a_bar_above_the_axis_is_cut_and_labelled() {
        let b = Bar {
            label: "untrained".into(),
            value: 10.659,
            interval: Some((6.7, 15.4)),
        };
        let d = drawn(&b, 0.5);
        assert_eq!(d.height, 0.5);
        assert_eq!(d.label.as_deref(), Some("10.659 ↑"));
        assert_eq!(d.whisker, None, "its whole interval is above the axis");
        let b = Bar {
            label: "trained".into(),
            value: 0.158,
            interval: Some((0.148, 0.7)),
        };
        let d = drawn(&b, 0.5);
        assert_eq!(d.height, 0.158);
        assert_eq!(d.label, None);
        assert_eq!(
            d.whisker,
            Some((0.148, 0.5, false)),
            "the cut whisker loses its cap"
        );
        assert_eq!(drawn(&b, 1.0).whisker, Some((0.148, 0.7, true)));
    }

    #[test]
    fn all_nan_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let pts = [(0u64, f32::NAN)];
        assert!(loss_curve(&dir.path().join("x.png"), "loss", &[("train", &pts)]).is_err());
    }
}
