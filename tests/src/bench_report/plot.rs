//! Hand-written SVG plots: dataplane throughput per configuration (bars at the median,
//! whiskers min–max), the agent's time to program every peer against the cluster size, and
//! lines over time (the soak's RSS per process).

use std::fmt::Write;

use super::aggregate::Figure;
use super::markdown::number;

/// The bench and unit whose figures are throughput bars.
pub const THROUGHPUT_BENCH: &str = "mesh_throughput";
pub const THROUGHPUT_UNIT: &str = "Gbit/s";
/// The agent_scale figure plotted against its `nodes` parameter.
pub const SCALE_BENCH: &str = "agent_scale";
pub const SCALE_FIGURE: &str = "last Node created → all peers programmed";

const WIDTH: f64 = 760.0;
const BAR_HEIGHT: f64 = 26.0;
const LABEL_WIDTH: f64 = 330.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn svg_open(height: f64, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        escape(title)
    )
}

/// Bars of every throughput figure, or `None` when there is none.
pub fn throughput_svg(figures: &[Figure]) -> Option<String> {
    let bars: Vec<&Figure> = figures
        .iter()
        .filter(|f| f.bench == THROUGHPUT_BENCH && f.unit == THROUGHPUT_UNIT)
        .collect();
    let top = bars.iter().map(|f| f.max.max(f.median)).fold(0.0, f64::max);
    if bars.is_empty() || top <= 0.0 {
        return None;
    }
    let plot_width = WIDTH - LABEL_WIDTH - 90.0;
    let scale = |v: f64| LABEL_WIDTH + v / top * plot_width;
    let height = 50.0 + bars.len() as f64 * (BAR_HEIGHT + 8.0) + 20.0;
    let mut svg = svg_open(
        height,
        "Throughput per configuration (median, whiskers min–max)",
    );
    for (i, f) in bars.iter().enumerate() {
        let y = 40.0 + i as f64 * (BAR_HEIGHT + 8.0);
        let mid = y + BAR_HEIGHT / 2.0;
        let label = f.name.trim_end_matches(" median");
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n\
             <rect x=\"{LABEL_WIDTH}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{BAR_HEIGHT}\" fill=\"#4e79a7\"/>\n\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{mid:.1}\" y2=\"{mid:.1}\" stroke=\"black\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\">{} {}</text>\n",
            LABEL_WIDTH - 6.0,
            mid + 4.0,
            escape(label),
            scale(f.median) - LABEL_WIDTH,
            scale(f.min),
            scale(f.max),
            scale(f.max) + 6.0,
            mid + 4.0,
            number(f.median),
            THROUGHPUT_UNIT,
        );
    }
    svg.push_str("</svg>\n");
    Some(svg)
}

/// (nodes, figure) of the scale figure at each cluster size, smallest first.
fn scale_points(figures: &[Figure]) -> Vec<(f64, &Figure)> {
    let mut points: Vec<(f64, &Figure)> = figures
        .iter()
        .filter(|f| f.bench == SCALE_BENCH && f.name == SCALE_FIGURE)
        .filter_map(|f| Some((f.params.get("nodes")?.parse().ok()?, f)))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// Time to program every peer against the cluster size (log scale), with each size's target;
/// `None` unless at least two sizes were measured.
pub fn scale_svg(figures: &[Figure]) -> Option<String> {
    let points = scale_points(figures);
    if points.len() < 2 {
        return None;
    }
    let (left, right, top, bottom) = (70.0, WIDTH - 30.0, 40.0, 320.0);
    let y_top = points
        .iter()
        .map(|(_, f)| f.max.max(f.target.unwrap_or(0.0)))
        .fold(0.0, f64::max)
        * 1.1;
    let (x_min, x_max) = (points[0].0.log10(), points[points.len() - 1].0.log10());
    let x = |n: f64| left + (n.log10() - x_min) / (x_max - x_min) * (right - left);
    let y = |v: f64| bottom - v / y_top * (bottom - top);
    let mut svg = svg_open(
        bottom + 50.0,
        "Agent: Node creation → all peers programmed vs cluster size",
    );
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"black\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">nodes (log scale)</text>\n\
         <text x=\"12\" y=\"{:.1}\">s</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
        (left + right) / 2.0,
        bottom + 40.0,
        top + 4.0,
        left - 6.0,
        top + 4.0,
        number(y_top),
    );
    let line: Vec<String> = points
        .iter()
        .map(|(n, f)| format!("{:.1},{:.1}", x(*n), y(f.median)))
        .collect();
    let _ = writeln!(
        svg,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#4e79a7\" stroke-width=\"2\"/>",
        line.join(" ")
    );
    for (n, f) in &points {
        let (px, py) = (x(*n), y(f.median));
        let _ = write!(
            svg,
            "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
             <circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"4\" fill=\"#4e79a7\"/>\n\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
             <text x=\"{:.1}\" y=\"{:.1}\">{} s</text>\n",
            y(f.min),
            y(f.max),
            bottom + 16.0,
            number(*n),
            px + 6.0,
            py - 6.0,
            number(f.median),
        );
        if let Some(target) = f.target {
            let ty = y(target);
            let _ = writeln!(
                svg,
                "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{ty:.1}\" y2=\"{ty:.1}\" stroke=\"#e15759\" \
                 stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#e15759\">target {} s</text>",
                px - 14.0,
                px + 14.0,
                px + 16.0,
                ty + 4.0,
                number(target),
            );
        }
    }
    svg.push_str("</svg>\n");
    Some(svg)
}

/// Colours of the lines of a time series, in turn.
const PALETTE: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
];

/// One line of a time-series plot: `(x, y)` points, and x values to mark with a circle
/// (such as a process restart).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub marks: Vec<f64>,
}

/// Lines of `series` against time, with a legend; `None` when no series has two points.
pub fn time_series_svg(
    title: &str,
    x_unit: &str,
    y_unit: &str,
    series: &[Series],
) -> Option<String> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    if series.iter().all(|s| s.points.len() < 2) {
        return None;
    }
    let x_max = all()
        .map(|p| p.0)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let y_max = all()
        .map(|p| p.1)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.1;
    let legend = 20.0 * series.len() as f64;
    let (left, right, top, bottom) = (70.0, WIDTH - 30.0, 40.0, 320.0);
    let x = |v: f64| left + v / x_max * (right - left);
    let y = |v: f64| bottom - v / y_max * (bottom - top);
    let mut svg = svg_open(bottom + 50.0 + legend, title);
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"black\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
         <text x=\"12\" y=\"{:.1}\">{}</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">0</text>\n\
         <text x=\"{right:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
        (left + right) / 2.0,
        bottom + 36.0,
        escape(x_unit),
        top + 4.0,
        escape(y_unit),
        left - 6.0,
        top + 4.0,
        number(y_max),
        left - 6.0,
        bottom + 4.0,
        bottom + 16.0,
        number(x_max),
    );
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let line: Vec<String> = s
            .points
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/>",
            line.join(" ")
        );
        for mark in &s.marks {
            let at = s.points.iter().find(|p| p.0 >= *mark).or(s.points.last());
            if let Some(&(px, py)) = at {
                let _ = writeln!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                    x(px),
                    y(py)
                );
            }
        }
        let ly = bottom + 56.0 + i as f64 * 20.0;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"3\"/>\n\
             <text x=\"{:.1}\" y=\"{ly:.1}\">{}</text>\n",
            left + 24.0,
            ly - 4.0,
            ly - 4.0,
            left + 30.0,
            escape(&s.name),
        );
    }
    svg.push_str("</svg>\n");
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench_report::aggregate::Verdict;
    use crate::bench_report::schema::Goal;
    use std::collections::BTreeMap;

    fn figure(bench: &str, name: &str, unit: &str, nodes: Option<&str>, values: &[f64]) -> Figure {
        let mut params = BTreeMap::new();
        if let Some(n) = nodes {
            params.insert("nodes".to_string(), n.to_string());
        }
        Figure {
            bench: bench.into(),
            params,
            name: name.into(),
            unit: unit.into(),
            goal: Goal::AtMost,
            target: Some(1.0),
            values: values.to_vec(),
            median: values[values.len() / 2],
            min: values[0],
            max: values[values.len() - 1],
            baseline: None,
            ratio: None,
            verdict: Verdict::Ok,
            note: String::new(),
        }
    }

    #[test]
    fn throughput_bars_only_for_throughput_figures() {
        let figures = [
            figure(
                THROUGHPUT_BENCH,
                "(a) plaintext median",
                "Gbit/s",
                None,
                &[9.0, 10.0, 11.0],
            ),
            figure(
                THROUGHPUT_BENCH,
                "(b) manual <wg> median",
                "Gbit/s",
                None,
                &[1.0, 2.0, 3.0],
            ),
            figure(THROUGHPUT_BENCH, "ratio", "", None, &[0.9]),
            figure("webhook", "throughput", "Gbit/s", None, &[5.0]),
        ];
        let svg = throughput_svg(&figures).expect("two bars");
        assert_eq!(svg.matches("fill=\"#4e79a7\"").count(), 2, "{svg}");
        assert!(svg.contains(">(a) plaintext</text>"), "{svg}");
        assert!(svg.contains("(b) manual &lt;wg&gt;"), "{svg}");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(throughput_svg(&figures[3..]), None);
    }

    #[test]
    fn scale_plot_needs_two_sizes_and_orders_them() {
        let small = figure(
            SCALE_BENCH,
            SCALE_FIGURE,
            "s",
            Some("100"),
            &[0.1, 0.2, 0.3],
        );
        let large = figure(
            SCALE_BENCH,
            SCALE_FIGURE,
            "s",
            Some("5000"),
            &[0.8, 0.9, 1.4],
        );
        let unrelated = figure(SCALE_BENCH, "agent RSS", "MiB", Some("1000"), &[30.0]);
        assert_eq!(scale_svg(&[small.clone(), unrelated.clone()]), None);
        let svg = scale_svg(&[large, unrelated, small]).expect("two sizes");
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        let first = svg.find(">100</text>").expect("the 100-node label");
        let second = svg.find(">5000</text>").expect("the 5000-node label");
        assert!(first < second, "{svg}");
        assert_eq!(svg.matches("target 1 s").count(), 2, "{svg}");
    }

    #[test]
    fn time_series_draw_one_line_per_series_with_its_marks() {
        let series = [
            Series {
                name: "agent <node-1>".into(),
                points: vec![(0.0, 10.0), (1.0, 11.0), (2.0, 11.0)],
                marks: vec![1.0],
            },
            Series {
                name: "webhook".into(),
                points: vec![(0.0, 20.0), (2.0, 21.0)],
                marks: vec![],
            },
        ];
        let svg = time_series_svg("RSS", "minutes", "MiB", &series).expect("two lines");
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        assert!(svg.contains(">agent &lt;node-1&gt;</text>"), "{svg}");
        let single = Series {
            name: "one".into(),
            points: vec![(0.0, 1.0)],
            marks: vec![],
        };
        assert_eq!(time_series_svg("RSS", "minutes", "MiB", &[single]), None);
    }
}
