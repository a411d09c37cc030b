//! The chart: requests/s per server per load as grouped bars (median, with
//! a whisker from the slowest to the fastest repetition), written as plain
//! SVG.

use std::fmt::Write as _;

use crate::report::{Metric, Results};
use crate::servers::Server;
use crate::stats::{median, min_max};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 80.0;
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
        Server::FastnetSmolPerThread => "#0b2f5a",
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

/// The chart of `results` as an SVG document.
pub fn chart(results: &Results) -> String {
    let servers = &results.servers;
    let shapes = &results.shapes;
    let data: Vec<Vec<Option<(f64, f64, f64)>>> = shapes
        .iter()
        .map(|&shape| {
            servers
                .iter()
                .map(|&server| {
                    let v = results.values(server, shape, Metric::Rps);
                    let (lo, hi) = min_max(&v)?;
                    Some((median(&v)?, lo, hi))
                })
                .collect()
        })
        .collect();
    let max = data
        .iter()
        .flatten()
        .flatten()
        .map(|&(_, _, hi)| hi)
        .fold(0.0, f64::max);
    let step = nice_step(max * 1.05);
    let top = (max * 1.05 / step).ceil().max(1.0) * step;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |v: f64| TOP + plot_h * (1.0 - v / top);

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
        r##"<text x="{}" y="42" text-anchor="middle" fill="#555555">{} · {} cores · {}</text>"##,
        WIDTH / 2.0,
        escape(&results.date),
        results.machine.cores,
        escape(&results.machine.cpu)
    );
    // Grid and y axis.
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            short(v)
        );
        v += step;
    }
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">requests/s</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    // Bars.
    let group_w = plot_w / shapes.len().max(1) as f64;
    let bar_w = (group_w * 0.8) / servers.len().max(1) as f64;
    for (g, shape) in shapes.iter().enumerate() {
        let gx = LEFT + g as f64 * group_w + group_w * 0.1;
        for (i, &server) in servers.iter().enumerate() {
            let x = gx + i as f64 * bar_w;
            let Some((m, lo, hi)) = data[g][i] else {
                continue;
            };
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {:.0} req/s</title></rect>"#,
                x + 1.0,
                y(m),
                bar_w - 2.0,
                TOP + plot_h - y(m),
                color(server),
                escape(server.label()),
                m
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
                r#"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                y(hi) - 4.0,
                short(m)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + g as f64 * group_w + group_w / 2.0,
            TOP + plot_h + 18.0,
            escape(&shape.label())
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#000000"/>"##,
        TOP + plot_h,
        WIDTH - RIGHT,
        TOP + plot_h
    );
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
