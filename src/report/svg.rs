//! Horizontal bar charts as inline SVG, drawn by hand so the report needs no script or library.
//!
//! Fed by [`super::html`], which picks the bars out of an answer; the output is an `<svg>` element
//! with class `chart` and `data-answer="<name>"` (tests count them), sized to its bars, with
//! every text HTML-escaped and a `<title>` per bar for the full label when it is shortened.

use std::fmt::Write as _;

use super::escape;

/// One bar: a label on the left, the bar, then the value and an optional note after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// What the bar is for (a country, a year, an age group).
    pub label: String,
    /// The number the bar's length shows.
    pub value: f64,
    /// The value as the answer's table prints it.
    pub shown: String,
    /// Extra text after the value (the winning category or poster).
    pub note: Option<String>,
}

const WIDTH: u32 = 760;
const LABEL_WIDTH: u32 = 230;
const BAR_SPACE: u32 = 330;
const ROW: u32 = 20;
const TOP: u32 = 6;
/// Labels longer than this many characters are shortened (the full text stays in the tooltip).
const LABEL_CHARS: usize = 34;

/// An SVG bar chart of `bars`, in the order given, scaled to the largest value.
pub fn bar_chart(answer: &str, title: &str, bars: &[Bar]) -> String {
    let rows = bars.len().max(1) as u32;
    let height = TOP * 2 + rows * ROW;
    let mut out = String::with_capacity(256 + bars.len() * 320);
    let _ = write!(
        out,
        r#"<svg class="chart" data-answer="{answer}" role="img" aria-label="{title}" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">"#,
        answer = escape(answer),
        title = escape(title),
    );
    let _ = write!(out, "<title>{}</title>", escape(title));
    if bars.is_empty() {
        let _ = write!(out, r#"<text class="empty" x="0" y="{}">no rows</text>"#, TOP + ROW - 6);
    }
    let max = bars.iter().map(|b| b.value).filter(|v| v.is_finite()).fold(0.0_f64, f64::max);
    for (i, bar) in bars.iter().enumerate() {
        let y = TOP + i as u32 * ROW;
        let text_y = y + ROW - 6;
        let length = if max > 0.0 && bar.value.is_finite() && bar.value > 0.0 {
            ((bar.value / max) * f64::from(BAR_SPACE)).round().max(1.0)
        } else {
            0.0
        };
        let full = match &bar.note {
            Some(note) => format!("{}: {} ({note})", bar.label, bar.shown),
            None => format!("{}: {}", bar.label, bar.shown),
        };
        let label = shorten(&bar.label, LABEL_CHARS);
        let after = match &bar.note {
            Some(note) => format!("{} · {note}", bar.shown),
            None => bar.shown.clone(),
        };
        let _ = write!(
            out,
            r#"<g class="bar"><title>{full}</title><text class="label" x="{lx}" y="{text_y}" text-anchor="end">{label}</text><rect x="{bx}" y="{ry}" width="{length}" height="{rh}"></rect><text class="value" x="{vx}" y="{text_y}">{after}</text></g>"#,
            full = escape(&full),
            lx = LABEL_WIDTH - 8,
            label = escape(&label),
            bx = LABEL_WIDTH,
            ry = y + 3,
            rh = ROW - 6,
            vx = f64::from(LABEL_WIDTH) + length + 6.0,
            after = escape(&after),
        );
    }
    out.push_str("</svg>");
    out
}

/// `text` cut to `max` characters, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, value: f64) -> Bar {
        Bar { label: label.into(), value, shown: value.to_string(), note: Some("<art>".into()) }
    }

    #[test]
    fn draws_one_group_per_bar_scaled_to_the_largest() {
        let svg = bar_chart("q1", "Q1 & more", &[bar("Côte d'Ivoire", 10.0), bar("B", 5.0)]);
        assert!(svg.starts_with(r#"<svg class="chart" data-answer="q1""#), "{svg}");
        assert_eq!(svg.matches(r#"<g class="bar">"#).count(), 2);
        assert!(svg.contains(&format!(r#"width="{BAR_SPACE}""#)), "{svg}");
        assert!(svg.contains(&format!(r#"width="{}""#, BAR_SPACE / 2)), "{svg}");
        assert!(svg.contains("Côte d&#39;Ivoire"), "{svg}");
        assert!(svg.contains("&lt;art&gt;") && svg.contains("Q1 &amp; more"), "{svg}");
        assert!(!svg.contains("<art>"));
    }

    #[test]
    fn an_empty_answer_still_draws_a_chart_saying_so() {
        let svg = bar_chart("q2", "Q2", &[]);
        assert!(svg.contains("no rows") && svg.ends_with("</svg>"), "{svg}");
    }

    #[test]
    fn long_labels_are_shortened() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
