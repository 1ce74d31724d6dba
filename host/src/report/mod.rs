//! `batchllm-host report RESULTS [--events EVENTS] [-o report.html]`: one
//! self-contained HTML page about a run, to look at rather than read.
//!
//! The page shows throughput and 429s over time, the latency histogram,
//! cost and tokens by model, failures by class with examples, and the
//! cooldowns of each quota scope (from the `--events` file). It needs no
//! network when viewed: the CSS, the charts (SVG drawn here) and the data
//! (as JSON, for tools) are inline, and it runs no script. Everything a
//! provider or a plugin wrote (ids, messages, models) is escaped.
//!
//! The numbers are those of `--summary-json` for the same records: counts,
//! tokens and cost are sums over the records, and latency percentiles come
//! from the same kind of histogram as the run summary's.

mod data;
mod html;
mod svg;

use std::path::{Path, PathBuf};

pub use data::ReportData;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a batchllm result record ({reason}); give the results file a run wrote")]
    NotARecord { path: PathBuf, line: usize, reason: String },
    #[error("{path}:{line}: not a batchllm event ({reason}); give the file a run wrote with --events")]
    NotAnEvent { path: PathBuf, line: usize, reason: String },
    #[error("cannot write the report to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

/// Reads `results` (and `events`), writes the page to `out`, and returns
/// what it shows.
pub fn write_report(results: &Path, events: Option<&Path>, out: &Path) -> Result<ReportData, ReportError> {
    let data = data::gather(results, events)?;
    let generated = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let page = html::render(&data, &generated);
    let write = |source| ReportError::Write { path: out.into(), source };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write)?;
    }
    // The page quotes ids and provider messages: owner-only, like the results.
    let mut file = crate::results::create_private(out).map_err(write)?;
    std::io::Write::write_all(&mut file, page.as_bytes()).map_err(write)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_cannot_break_out_of_the_page() {
        let dir = tempfile::tempdir().expect("tempdir");
        let results = dir.path().join("results.jsonl");
        let evil = "</script><script>alert(1)</script><img src=x onerror=alert(2)>";
        let line = serde_json::json!({
            "custom_id": evil,
            "error": {"code": "client_error", "message": evil},
            "batchllm": {"status": "failed", "attempts": 1, "rate_limit_retries": 0,
                "usage": {"input_tokens": 1, "output_tokens": 0, "cached_input_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0},
                "latency_ms": 5.0, "error_class": "client_error", "metadata": {"model": evil}, "cost_usd": null,
                "finished_at": "2026-01-01T00:00:00.000Z"}
        });
        std::fs::write(&results, format!("{line}\n")).expect("write");
        let out = dir.path().join("sub/report.html");
        let data = write_report(&results, None, &out).expect("written");
        assert_eq!(data.totals.failed, 1);
        let page = std::fs::read_to_string(&out).expect("read");
        assert!(!page.contains("<script>alert"), "markup from the data is escaped");
        assert!(!page.contains("<img"), "markup from the data is escaped");
        assert_eq!(page.matches("<script").count(), 1, "only the data block");
        assert!(page.contains("&lt;/script&gt;&lt;script&gt;alert(1)"));
        // The embedded data still holds the text, unbroken.
        let start = page.find(r#"id="report-data">"#).expect("data") + r#"id="report-data">"#.len();
        let end = start + page[start..].find("</script>").expect("end");
        let back: serde_json::Value = serde_json::from_str(&page[start..end]).expect("json");
        assert_eq!(back["failures"][0]["examples"][0][1], evil);
        for fetches in ["<link", "url(", "@import", "<img", "<iframe"] {
            assert!(!page.contains(fetches), "nothing to fetch: {fetches}");
        }
    }

    #[test]
    fn an_unreadable_or_foreign_file_is_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = write_report(&dir.path().join("none.jsonl"), None, &dir.path().join("r.html")).expect_err("missing");
        assert!(e.to_string().contains("cannot read"), "{e}");
        let results = dir.path().join("jobs.jsonl");
        std::fs::write(&results, "{\"id\":\"a\",\"prompt\":\"x\"}\n").expect("write");
        let e = write_report(&results, None, &dir.path().join("r.html")).expect_err("not results");
        assert!(e.to_string().contains("jobs.jsonl:1: not a batchllm result record"), "{e}");
    }
}
