//! Charts as inline SVG, drawn here so the HTML needs no script and no
//! library. Bars are `<rect class="bar">` (only for non-zero values, so every
//! bar has a size) and lines `<path class="line">`; each mark has a
//! `<title>` for a hover tooltip.

use super::html::esc;
use std::fmt::Write;

/// Width of every chart, in SVG units.
const WIDTH: f64 = 760.0;

/// One series of a vertical bar chart.
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// CSS colour.
    pub color: &'a str,
    /// One value per label.
    pub values: Vec<u64>,
}

/// Horizontal bars, one per `(label, value)`, in the order given.
pub fn hbars(title: &str, items: &[(String, u64)], color: &str) -> String {
    let mut s = String::new();
    if items.is_empty() {
        return empty(title);
    }
    let (left, right, row) = (170.0, 70.0, 22.0);
    let height = 30.0 + row * items.len() as f64;
    let max = items.iter().map(|i| i.1).max().unwrap_or(0).max(1) as f64;
    let span = WIDTH - left - right;
    open(&mut s, title, height);
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 24.0 + row * i as f64;
        let _ = write!(
            s,
            r#"<text class="label" x="{x:.1}" y="{ty:.1}" text-anchor="end">{l}</text>"#,
            x = left - 6.0,
            ty = y + 14.0,
            l = esc(&shorten(label, 26))
        );
        if *v > 0 {
            let w = (span * *v as f64 / max).max(1.0);
            let _ = write!(
                s,
                r#"<rect class="bar" data-value="{v}" x="{left:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{color}"><title>{l}: {v}</title></rect>"#,
                h = row - 6.0,
                l = esc(label)
            );
        }
        let _ = write!(
            s,
            r#"<text class="value" x="{x:.1}" y="{ty:.1}">{v}</text>"#,
            x = left + span * *v as f64 / max + 4.0,
            ty = y + 14.0
        );
    }
    s.push_str("</svg>");
    s
}

/// Grouped vertical bars: per label, one bar per series.
pub fn vbars(title: &str, labels: &[String], series: &[Series<'_>]) -> String {
    if labels.is_empty() {
        return empty(title);
    }
    let mut s = String::new();
    let (left, bottom, top, height) = (56.0, 40.0, 40.0, 260.0);
    let plot_h = height - top - bottom;
    let span = WIDTH - left - 10.0;
    let max = nice_max(series.iter().flat_map(|x| x.values.iter().copied()).max());
    open(&mut s, title, height);
    legend(&mut s, series.iter().map(|x| (x.name, x.color)));
    grid(&mut s, left, top, plot_h, max);
    let group = span / labels.len() as f64;
    let bar = ((group * 0.8) / series.len().max(1) as f64).max(0.5);
    for (i, label) in labels.iter().enumerate() {
        let x0 = left + group * i as f64 + group * 0.1;
        for (k, ser) in series.iter().enumerate() {
            let v = ser.values.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let h = (plot_h * v as f64 / max as f64).max(1.0);
            let _ = write!(
                s,
                r#"<rect class="bar" data-value="{v}" x="{x:.2}" y="{y:.2}" width="{bar:.2}" height="{h:.2}" fill="{c}"><title>{l}: {v} {n}</title></rect>"#,
                x = x0 + bar * k as f64,
                y = top + plot_h - h,
                c = ser.color,
                l = esc(label),
                n = esc(ser.name)
            );
        }
    }
    x_labels(&mut s, labels, left, group, height - bottom + 16.0);
    s.push_str("</svg>");
    s
}

/// A line through one value per label, with a dot per point.
pub fn line(title: &str, labels: &[String], name: &str, values: &[u64], color: &str) -> String {
    if labels.is_empty() {
        return empty(title);
    }
    let mut s = String::new();
    let (left, bottom, top, height) = (56.0, 40.0, 40.0, 240.0);
    let plot_h = height - top - bottom;
    let span = WIDTH - left - 10.0;
    let max = nice_max(values.iter().copied().max());
    open(&mut s, title, height);
    legend(&mut s, [(name, color)].into_iter());
    grid(&mut s, left, top, plot_h, max);
    let group = span / labels.len() as f64;
    let point = |i: usize, v: u64| {
        (
            left + group * (i as f64 + 0.5),
            top + plot_h - plot_h * v as f64 / max as f64,
        )
    };
    let mut d = String::new();
    for (i, v) in values.iter().enumerate() {
        let (x, y) = point(i, *v);
        let _ = write!(d, "{}{x:.2},{y:.2} ", if i == 0 { 'M' } else { 'L' });
    }
    // One point still draws: a short flat stroke.
    if values.len() == 1 {
        let (x, y) = point(0, values[0]);
        let _ = write!(d, "M{:.2},{y:.2} L{:.2},{y:.2}", x - 4.0, x + 4.0);
    }
    let _ = write!(
        s,
        r#"<path class="line" d="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
        d.trim_end()
    );
    for (i, (v, label)) in values.iter().zip(labels).enumerate() {
        let (x, y) = point(i, *v);
        let _ = write!(
            s,
            r#"<circle class="point" cx="{x:.2}" cy="{y:.2}" r="3" fill="{color}"><title>{l}: {v} {n}</title></circle>"#,
            l = esc(label),
            n = esc(name)
        );
    }
    x_labels(&mut s, labels, left, group, height - bottom + 16.0);
    s.push_str("</svg>");
    s
}

fn open(s: &mut String, title: &str, height: f64) {
    let _ = write!(
        s,
        r#"<svg class="chart" role="img" aria-label="{t}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}"><text class="title" x="0" y="16">{t}</text>"#,
        t = esc(title)
    );
}

fn empty(title: &str) -> String {
    let mut s = String::new();
    open(&mut s, title, 50.0);
    s.push_str(r#"<text class="label" x="0" y="40">no data</text></svg>"#);
    s
}

fn legend<'a>(s: &mut String, items: impl Iterator<Item = (&'a str, &'a str)>) {
    let mut x = WIDTH - 10.0;
    let items: Vec<_> = items.collect();
    for (name, color) in items.iter().rev() {
        x -= 14.0 + 7.0 * name.len() as f64;
        let _ = write!(
            s,
            r#"<rect class="key" x="{x:.1}" y="6" width="10" height="10" fill="{color}"/><text class="label" x="{tx:.1}" y="15">{n}</text>"#,
            tx = x + 13.0,
            n = esc(name)
        );
        x -= 10.0;
    }
}

/// Horizontal grid lines with their values, at 0, ¼, ½, ¾ and max.
fn grid(s: &mut String, left: f64, top: f64, plot_h: f64, max: u64) {
    for k in 0..=4u64 {
        let y = top + plot_h - plot_h * k as f64 / 4.0;
        let _ = write!(
            s,
            r#"<line class="grid" x1="{left}" x2="{WIDTH}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{x:.1}" y="{ty:.1}" text-anchor="end">{v}</text>"#,
            x = left - 4.0,
            ty = y + 4.0,
            v = max * k / 4
        );
    }
}

/// At most about 12 labels along the bottom, so they never overlap.
fn x_labels(s: &mut String, labels: &[String], left: f64, group: f64, y: f64) {
    let every = labels.len().div_ceil(12).max(1);
    for (i, l) in labels.iter().enumerate().step_by(every) {
        let _ = write!(
            s,
            r#"<text class="axis" x="{x:.1}" y="{y:.1}" text-anchor="middle">{l}</text>"#,
            x = left + group * (i as f64 + 0.5),
            l = esc(l)
        );
    }
}

/// A round axis maximum at or above `max`: four grid steps of 1, 2, 2.5 or
/// 5 times a power of ten, so the grid values are whole and round.
fn nice_max(max: Option<u64>) -> u64 {
    let m = max.unwrap_or(0).max(1);
    let mut p = 1u64;
    loop {
        // 2.5 × 1 is not whole: that step starts at 25.
        let quarter = if p >= 10 { p / 10 * 25 } else { 2 * p };
        for step in [p, p.saturating_mul(2), quarter, p.saturating_mul(5)] {
            if step.saturating_mul(4) >= m {
                return step.saturating_mul(4);
            }
        }
        if p > u64::MAX / 10 {
            return u64::MAX;
        }
        p *= 10;
    }
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}
