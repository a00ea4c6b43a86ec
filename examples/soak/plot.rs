//! The soak's picture: the core's resident memory, and its calls and terminals, over the run (SVG).

use super::observer::Sample;
use plotters::prelude::*;
use std::path::Path;

/// Draws `samples` into an SVG at `path`: memory on top, calls and terminals below.
pub fn draw(path: &Path, samples: &[Sample]) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (top, bottom) = root.split_vertically(320);
    let end = samples.last().map_or(1.0, |s| s.at).max(1.0);

    let mib = |s: &Sample| s.rss_kib as f64 / 1024.0;
    let most = samples.iter().map(mib).fold(1.0, f64::max) * 1.1;
    let mut memory = ChartBuilder::on(&top)
        .caption("core resident memory (MiB)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..end, 0.0..most)
        .map_err(|e| fail(&e))?;
    memory
        .configure_mesh()
        .x_desc("seconds")
        .draw()
        .map_err(|e| fail(&e))?;
    memory
        .draw_series(LineSeries::new(
            samples.iter().map(|s| (s.at, mib(s))),
            &BLUE,
        ))
        .map_err(|e| fail(&e))?;

    let most = samples
        .iter()
        .map(|s| s.calls.max(s.terminals))
        .fold(1.0, f64::max)
        * 1.1;
    let mut load = ChartBuilder::on(&bottom)
        .caption("calls and terminals", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..end, 0.0..most)
        .map_err(|e| fail(&e))?;
    load.configure_mesh()
        .x_desc("seconds")
        .draw()
        .map_err(|e| fail(&e))?;
    load.draw_series(LineSeries::new(
        samples.iter().map(|s| (s.at, s.calls)),
        &RED,
    ))
    .map_err(|e| fail(&e))?
    .label("calls")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
    load.draw_series(LineSeries::new(
        samples.iter().map(|s| (s.at, s.terminals)),
        &GREEN,
    ))
    .map_err(|e| fail(&e))?
    .label("terminals")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], GREEN));
    load.configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}
