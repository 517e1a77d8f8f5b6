//! The report page's layout: run metadata, pipeline counts, rejects by reason, then each answer as
//! a chart (where a person would rather look than read) and a table.
//!
//! Fed by [`super::write`] and [`super::rerender`] with a [`RunMeta`] and the answers; produces
//! one HTML document with its style inline and no script. Which answers get a chart, and from
//! which columns, is the table [`CHARTS`].

use std::fmt::Write as _;

use super::svg::{self, Bar};
use super::{AnswerTable, RunMeta, escape};

/// How an answer is charted: its label column(s), the value column, an optional note column
/// shown after the value, and whether the bars are sorted by value (largest first).
struct ChartSpec {
    answer: &'static str,
    label: &'static [&'static str],
    value: &'static str,
    note: Option<&'static str>,
    by_value: bool,
}

/// The charted answers. Q3b is a single row: a table says it better.
const CHARTS: [ChartSpec; 8] = [
    ChartSpec { answer: "q1", label: &["country"], value: "category_count", note: Some("category"), by_value: true },
    ChartSpec { answer: "q2", label: &["post_year"], value: "category_count", note: Some("category"), by_value: false },
    ChartSpec {
        answer: "q3a",
        label: &["country"],
        value: "follower_count",
        note: Some("poster_name"),
        by_value: true,
    },
    ChartSpec { answer: "q4", label: &["age_group"], value: "category_count", note: Some("category"), by_value: false },
    ChartSpec { answer: "q5", label: &["age_group"], value: "median_follower_count", note: None, by_value: false },
    ChartSpec { answer: "q6", label: &["post_year"], value: "number_users_joined", note: None, by_value: false },
    ChartSpec { answer: "q7", label: &["post_year"], value: "median_follower_count", note: None, by_value: false },
    ChartSpec {
        answer: "q8",
        label: &["age_group", "post_year"],
        value: "median_follower_count",
        note: None,
        by_value: false,
    },
];

/// The names of the answers the page draws a chart for.
pub fn charted_answers() -> impl Iterator<Item = &'static str> {
    CHARTS.iter().map(|c| c.answer)
}

/// The question each answer answers (SPEC §6), for headings.
fn question(name: &str) -> &'static str {
    match name {
        "q1" => "Most popular category per country",
        "q2" => "Most popular category per year, 2018–2022",
        "q3a" => "Per country, the poster with the most followers",
        "q3b" => "The country whose top poster has the most followers",
        "q4" => "Most popular category per age group",
        "q5" => "Median follower count per age group",
        "q6" => "Users who joined each year, 2015–2020",
        "q7" => "Median follower count by join year, 2015–2020",
        "q8" => "Median follower count by join year and age group",
        _ => "",
    }
}

/// `q3a` → `Q3a`, as SPEC §6 writes the names.
fn title(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d232b;background:#f6f7f9}
main{max-width:980px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 10px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:16px 18px;margin:16px 0}
nav a{margin-right:10px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e6e9ed;padding:3px 10px;text-align:left;vertical-align:top}
th{background:#f0f2f5}td.num{text-align:right}td.null{color:#8a929c;font-style:italic}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}dl.meta dt{color:#5b6470}
dl.meta dd{margin:0}
svg.chart{display:block;margin:6px 0 12px;max-width:100%;height:auto}
svg.chart rect{fill:#c8102e}svg.chart text{font-size:12px;fill:#1d232b}svg.chart text.value{fill:#5b6470}
.muted{color:#5b6470}
details summary{cursor:pointer;color:#5b6470;margin-bottom:6px}
";

/// Tables longer than this are folded under a `<details>` (the chart above shows them).
const FOLD_ROWS: usize = 15;

/// The whole page for one run.
pub fn render(meta: &RunMeta, answers: &[AnswerTable]) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>pinpipe batch report: {id}</title><style>{STYLE}</style></head><body><main>\n",
        id = escape(&meta.id),
    );
    let _ = writeln!(
        out,
        "<h1>pinpipe batch report: {}</h1><p class=\"muted\">The last batch run over the lake's sink files: \
         the answers to Q1–Q8 from the batch tables, what this run read (the files new since the run \
         before) and what it rejected.</p>",
        escape(&meta.id)
    );
    out.push_str("<nav>");
    for name in ["run", "counts", "rejects"] {
        let _ = write!(out, "<a href=\"#{name}\">{name}</a>");
    }
    for answer in answers {
        let _ = write!(out, "<a href=\"#{}\">{}</a>", escape(&answer.name), escape(&title(&answer.name)));
    }
    out.push_str("</nav>\n");
    run_section(&mut out, meta);
    counts_section(&mut out, meta);
    rejects_section(&mut out, meta);
    for answer in answers {
        answer_section(&mut out, answer);
    }
    out.push_str("</main></body></html>\n");
    out
}

fn run_section(out: &mut String, meta: &RunMeta) {
    out.push_str("<section id=\"run\"><h2>Run</h2><dl class=\"meta\">");
    let records: u64 = meta.tables.iter().map(|t| t.records).sum();
    let files: u64 = meta.tables.iter().map(|t| t.files).sum();
    let phases: Vec<String> = meta.phases.iter().map(|p| format!("{} {:.3} s", p.name, p.seconds)).collect();
    let rows = [
        ("pipeline id", meta.id.clone()),
        ("started", meta.started_at.clone()),
        ("finished", meta.finished_at.clone()),
        ("took", format!("{:.3} s ({})", meta.duration_seconds, phases.join(", "))),
        ("batch run", format!("{}{}", meta.run, if meta.full_refresh { " (full refresh)" } else { "" })),
        ("input", format!("{files} new sink files, {records} records")),
        ("lake", meta.lake.clone()),
        ("pinpipe", meta.version.clone()),
    ];
    for (name, value) in rows {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(name), escape(&value));
    }
    out.push_str("</dl></section>\n");
}

fn counts_section(out: &mut String, meta: &RunMeta) {
    out.push_str(
        "<section id=\"counts\"><h2>Pipeline counts</h2><table class=\"counts\"><thead><tr><th>table</th>\
         <th>new sink files</th><th>records read</th><th>rejected</th><th>rows added</th>\
         <th>rows in the table (one per ind)</th><th>follower_count not a number</th></tr></thead><tbody>",
    );
    for t in &meta.tables {
        let rejected: u64 = t.rejected.values().sum();
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(t.table.name()),
            t.files,
            t.records,
            rejected,
            t.kept,
            t.rows,
            t.unreadable_follower_counts
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn rejects_section(out: &mut String, meta: &RunMeta) {
    out.push_str("<section id=\"rejects\"><h2>Rejects by reason</h2>");
    let rows: Vec<(&str, &str, u64)> = meta
        .tables
        .iter()
        .flat_map(|t| t.rejected.iter().map(move |(reason, n)| (t.table.name(), reason.as_str(), *n)))
        .collect();
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">No record was rejected.</p>");
    } else {
        out.push_str(
            "<p class=\"muted\">Each rejected record is in the Delta table <code>&lt;id&gt;_batch_rejects</code> \
             with its source and reason.</p>\
             <table class=\"rejects\"><thead><tr><th>table</th><th>reason</th><th>records</th></tr></thead><tbody>",
        );
        for (table, reason, n) in rows {
            let _ =
                write!(out, "<tr><td>{}</td><td>{}</td><td class=\"num\">{n}</td></tr>", escape(table), escape(reason));
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>\n");
}

fn answer_section(out: &mut String, answer: &AnswerTable) {
    let heading = format!("{}: {}", title(&answer.name), question(&answer.name));
    let _ = write!(
        out,
        "<section id=\"{id}\" class=\"answer\"><h2>{heading}</h2>",
        id = escape(&answer.name),
        heading = escape(&heading)
    );
    if let Some(spec) = CHARTS.iter().find(|c| c.answer == answer.name) {
        out.push_str(&svg::bar_chart(&answer.name, &heading, &bars(spec, answer)));
    }
    let fold = answer.rows.len() > FOLD_ROWS;
    if fold {
        let _ = write!(out, "<details><summary>the table ({} rows)</summary>", answer.rows.len());
    }
    let _ = write!(out, "<table class=\"answer\" data-answer=\"{}\"><thead><tr>", escape(&answer.name));
    for column in &answer.columns {
        let _ = write!(out, "<th>{}</th>", escape(column));
    }
    out.push_str("</tr></thead><tbody>");
    if answer.rows.is_empty() {
        let _ = write!(out, "<tr><td class=\"null\" colspan=\"{}\">no rows</td></tr>", answer.columns.len().max(1));
    }
    for row in &answer.rows {
        out.push_str("<tr>");
        for cell in row {
            match cell {
                Some(v) if v.parse::<f64>().is_ok() => {
                    let _ = write!(out, "<td class=\"num\">{}</td>", escape(v));
                }
                Some(v) => {
                    let _ = write!(out, "<td>{}</td>", escape(v));
                }
                None => out.push_str("<td class=\"null\">NULL</td>"),
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    if fold {
        out.push_str("</details>");
    }
    out.push_str("</section>\n");
}

/// The bars of `answer` as `spec` says; rows with a missing column or a non-numeric value are left
/// out (an answer read from an older results folder may lack a column).
fn bars(spec: &ChartSpec, answer: &AnswerTable) -> Vec<Bar> {
    let labels: Option<Vec<usize>> = spec.label.iter().map(|c| answer.column(c)).collect();
    let (Some(labels), Some(value)) = (labels, answer.column(spec.value)) else {
        return Vec::new();
    };
    let note = spec.note.and_then(|c| answer.column(c));
    let mut bars: Vec<Bar> = answer
        .rows
        .iter()
        .filter_map(|row| {
            let shown = row.get(value)?.clone()?;
            let number = shown.parse::<f64>().ok()?;
            let label = labels.iter().map(|&i| row.get(i).cloned().flatten().unwrap_or_default()).collect::<Vec<_>>();
            let note = note.and_then(|i| row.get(i).cloned().flatten());
            Some(Bar { label: label.join(" · "), value: number, shown, note })
        })
        .collect();
    if spec.by_value {
        // Stable: equal values keep the answer's order (by its first column).
        bars.sort_by(|a, b| b.value.total_cmp(&a.value));
    }
    bars
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{PhaseTime, TableCounts};

    fn meta() -> RunMeta {
        RunMeta {
            id: "pin<terest>".into(),
            lake: "file:///tmp/lake".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:01Z".into(),
            duration_seconds: 1.25,
            phases: vec![PhaseTime { name: "read".into(), seconds: 1.0 }],
            tables: vec![TableCounts {
                table: crate::contract::Table::Pin,
                files: 2,
                records: 10,
                rejected: [("not JSON".to_string(), 1)].into(),
                unreadable_follower_counts: 0,
                kept: 9,
                rows: 0,
            }],
            answers: vec!["q1".into(), "q3b".into()],
            version: "0.1.0".into(),
            run: 1,
            full_refresh: false,
        }
    }

    fn cell(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn charts_the_charted_answers_sorted_and_escapes_everything() {
        let q1 = AnswerTable {
            name: "q1".into(),
            columns: vec!["country".into(), "category".into(), "category_count".into()],
            rows: vec![
                vec![cell("A<script>"), cell("art"), cell("3")],
                vec![cell("B"), cell("diy"), cell("7")],
                vec![cell("C"), None, cell("x")],
            ],
        };
        let q3b = AnswerTable {
            name: "q3b".into(),
            columns: vec!["country".into(), "follower_count".into()],
            rows: vec![vec![cell("B"), cell("100")]],
        };
        let page = render(&meta(), &[q1, q3b]);
        assert_eq!(page.matches("<svg class=\"chart\"").count(), 1, "{page}");
        assert!(page.contains("data-answer=\"q1\""));
        assert!(!page.contains("<script") && page.contains("A&lt;script&gt;"));
        assert!(page.contains("pin&lt;terest&gt;"));
        // B (7) is drawn before A (3); C has no numeric value and no bar.
        let b = page.find("<title>B: 7 (diy)</title>").unwrap();
        let a = page.find("<title>A&lt;script&gt;: 3 (art)</title>").unwrap();
        assert!(b < a);
        assert_eq!(page.matches("<g class=\"bar\">").count(), 2);
        assert!(page.contains("<td>not JSON</td><td class=\"num\">1</td>"));
        assert!(!page.contains("http://") && !page.contains("https://"));
    }
}
