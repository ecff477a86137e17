//! A horizontal bar chart, as SVG, of the rates a benchmark measured per case.

use std::fmt::Write as _;

use serde_json::Value;

/// Height of a bar and the gap under it, in pixels.
const BAR: f64 = 18.0;
const GAP: f64 = 6.0;
/// Width of a label character (12 px sans-serif, about), and of the longest bar.
const CHAR: f64 = 6.6;
const LONGEST: f64 = 360.0;

/// One bar: its label, its value, and which series (field) it shows.
struct Bar {
    label: String,
    value: f64,
    series: usize,
}

/// Whether a field of a case is a rate worth plotting.
fn is_rate(field: &str) -> bool {
    field.contains("per_s") || field.contains("per_cpu_s")
}

/// The chart of every case's rates (fields named `…per_s…`) in the lists of
/// cases of `value`; `None` if it has none. Rates of one field share a colour;
/// each field's bars are scaled to the largest rate of that field, so that
/// cases compare within a field.
pub(super) fn rates(name: &str, value: &Value) -> Option<String> {
    let mut fields: Vec<String> = Vec::new();
    let mut bars = Vec::new();
    for list in value.as_object()?.values() {
        let Some(rows) = list.as_array() else {
            continue;
        };
        for row in rows {
            let (Some(case), Some(row)) =
                (row.get("case").and_then(Value::as_str), row.as_object())
            else {
                continue;
            };
            for (field, v) in row.iter().filter(|(f, _)| is_rate(f)) {
                let Some(v) = v.as_f64() else { continue };
                let series = match fields.iter().position(|f| f == field) {
                    Some(i) => i,
                    None => {
                        fields.push(field.clone());
                        fields.len() - 1
                    }
                };
                bars.push(Bar {
                    label: format!("{case} · {field}"),
                    value: v,
                    series,
                });
            }
        }
    }
    if bars.is_empty() {
        return None;
    }
    bars.sort_by_key(|b| b.series);
    let mut largest = vec![0.0_f64; fields.len()];
    for bar in &bars {
        largest[bar.series] = largest[bar.series].max(bar.value);
    }
    let colours = ["#3b6ea5", "#d9822b", "#4c9a52", "#a04c8c", "#7a7a7a"];
    // Labels right-aligned against the bars, as wide as the longest.
    let longest = bars
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(0);
    let labels = (longest as f64 * CHAR + 16.0).max(200.0);
    let width = labels + LONGEST + 140.0;
    let height = 40.0 + bars.len() as f64 * (BAR + GAP);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="8" y="20" font-size="14" font-weight="bold">{}</text>"#,
        escape(name)
    );
    for (i, bar) in bars.iter().enumerate() {
        let y = 32.0 + i as f64 * (BAR + GAP);
        let scale = largest[bar.series].max(f64::MIN_POSITIVE);
        let length = (bar.value / scale * LONGEST).max(1.0);
        let colour = colours[bar.series % colours.len()];
        let _ = writeln!(
            svg,
            r#"<text x="{x}" y="{ty}" text-anchor="end">{label}</text><rect x="{bx}" y="{y}" width="{length:.1}" height="{BAR}" fill="{colour}"/><text x="{vx:.1}" y="{ty}">{value}</text>"#,
            x = labels - 6.0,
            ty = y + BAR * 0.75,
            label = escape(&bar.label),
            bx = labels,
            vx = labels + length + 4.0,
            value = round(bar.value),
        );
    }
    svg.push_str("</svg>\n");
    Some(svg)
}

/// A rate with thousands separated by spaces, no decimals above 100.
fn round(value: f64) -> String {
    if value.abs() < 100.0 {
        return format!("{value:.2}");
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    if value < 0.0 { format!("-{out}") } else { out }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rate_of_each_case_is_a_bar_scaled_within_its_field() {
        let value = serde_json::json!({
            "cases": [
                { "case": "a", "records_per_s": 2000.0, "cpu_s": 1.0 },
                { "case": "b<", "records_per_s": 1000.0 },
            ],
        });
        let svg = rates("x", &value).unwrap();
        assert_eq!(svg.matches("<rect x=").count(), 2);
        assert!(svg.contains(r#"width="360.0""#) && svg.contains(r#"width="180.0""#));
        assert!(svg.contains("b&lt; · records_per_s") && svg.contains(">2 000<"));
        assert!(rates("y", &serde_json::json!({ "records": 3 })).is_none());
    }
}
