//! The chart: requests/s per server, one panel per load (bars are medians,
//! whiskers go from the slowest to the fastest repetition), written as
//! plain SVG.

use std::fmt::Write as _;

use crate::load::Shape;
use crate::report::{Metric, Results};
use crate::servers::Server;
use crate::stats::{median, min_max};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 30.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 120.0;

fn color(server: Server) -> &'static str {
    match server {
        Server::FastnetSmol => "#1f5fa8",
        Server::FastnetStd => "#6fa8dc",
        Server::TokioFramed => "#e07b00",
        Server::TokioRaw => "#f6b26b",
        Server::Mio => "#38761d",
        Server::Std => "#999999",
        Server::FastnetSmolShared => "#0b2f5a",
        Server::Uring => "#93c47d",
        Server::TokioFastnet => "#b45f06",
        Server::FastnetSmolRaw => "#45818e",
        Server::FastnetStdRaw => "#3d85c6",
        Server::MioFramed => "#6aa84f",
        Server::StdFramed => "#b7b7b7",
        // Not charted (the TLS runs have a table of their own).
        Server::FastnetSmolTls => "#741b47",
        Server::TokioRustls => "#c27ba0",
    }
}

/// A round axis step so that about five steps cover `max`.
///
/// ```
/// use fastnet_bench_echo::svg::nice_step;
/// assert_eq!(nice_step(47_000.0), 10_000.0);
/// assert_eq!(nice_step(9.0), 2.0);
/// ```
pub fn nice_step(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / 5.0;
    let pow = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * pow)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * pow)
}

fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart of `results` as an SVG document: one panel per load, each
/// with its own scale (pipelined loads answer ten times more requests).
pub fn chart(results: &Results) -> String {
    let servers = &results.servers;
    let shapes = &results.shapes;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="16" font-weight="bold">Echo requests/s, 512-byte payloads (median of {} runs; whiskers: min–max)</text>"#,
        WIDTH / 2.0,
        results.reps
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="42" text-anchor="middle" fill="#555555">{} · {} cores · {} · each panel has its own scale</text>"##,
        WIDTH / 2.0,
        escape(&results.date),
        results.machine.cores,
        escape(&results.machine.cpu)
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">requests/s</text>"#,
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0
    );
    let panel_w = (WIDTH - LEFT - RIGHT) / shapes.len().max(1) as f64;
    for (g, &shape) in shapes.iter().enumerate() {
        let x0 = LEFT + g as f64 * panel_w;
        panel(&mut s, results, shape, x0, panel_w);
    }
    // Legend, three per row.
    for (i, &server) in servers.iter().enumerate() {
        let lx = LEFT + (i % 3) as f64 * 280.0;
        let ly = HEIGHT - BOTTOM + 50.0 + (i / 3) as f64 * 22.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.1}" y="{:.1}" width="14" height="14" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            ly - 11.0,
            color(server),
            lx + 20.0,
            ly,
            escape(server.label())
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One load's bars, in the panel starting at `x0`, `width` wide.
fn panel(s: &mut String, results: &Results, shape: Shape, x0: f64, width: f64) {
    let servers = &results.servers;
    let data: Vec<Option<(f64, f64, f64)>> = servers
        .iter()
        .map(|&server| {
            let v = results.values(server, shape, Metric::Rps);
            let (lo, hi) = min_max(&v)?;
            Some((median(&v)?, lo, hi))
        })
        .collect();
    let max = data
        .iter()
        .flatten()
        .map(|&(_, _, hi)| hi)
        .fold(0.0, f64::max);
    let step = nice_step(max * 1.05);
    let top = (max * 1.05 / step).ceil().max(1.0) * step;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |v: f64| TOP + plot_h * (1.0 - v / top);
    let (left, right) = (x0 + 34.0, x0 + width - 8.0);
    // Grid and this panel's scale.
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left:.1}" y1="{yy:.1}" x2="{right:.1}" y2="{yy:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="10">{}</text>"##,
            left - 4.0,
            yy + 4.0,
            short(v)
        );
        v += step;
    }
    let bar_w = (right - left) / servers.len().max(1) as f64;
    for (i, &server) in servers.iter().enumerate() {
        let x = left + i as f64 * bar_w;
        let Some((m, lo, hi)) = data[i] else {
            continue;
        };
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {:.0} req/s (min {:.0}, max {:.0})</title></rect>"#,
            x + 1.0,
            y(m),
            (bar_w - 2.0).max(1.0),
            TOP + plot_h - y(m),
            color(server),
            escape(server.label()),
            m,
            lo,
            hi
        );
        let cx = x + bar_w / 2.0;
        let _ = writeln!(
            s,
            r##"<line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="#222222"/>"##,
            y(lo),
            y(hi)
        );
        let _ = writeln!(
            s,
            r#"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-size="9">{}</text>"#,
            y(hi) - 4.0,
            short(m)
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{left:.1}" y1="{:.1}" x2="{right:.1}" y2="{:.1}" stroke="#000000"/>"##,
        TOP + plot_h,
        TOP + plot_h
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (left + right) / 2.0,
        TOP + plot_h + 18.0,
        escape(&shape.label())
    );
}
