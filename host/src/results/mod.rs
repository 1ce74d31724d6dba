//! The results file: one JSON line per input line, written as items finish,
//! and the checkpoint a re-run resumes from.
//!
//! The line format is [`crate::model::ResultRecord`]; this module owns the
//! file: appending and flushing records (plain, or gzip-compressed when its
//! name ends in `.gz`), reading them back on resume, and the in-flight
//! journal that keeps a crash from resending a paid request.

mod checkpoint;
mod journal;
mod lines;
mod order;
mod writer;

pub use checkpoint::{Checkpoint, Judgement, Previous, ResumeCounts, ResumeError, ResumeOptions, RunIdentity};
pub use journal::{Journal, journal_path, read_journal};
pub use lines::{for_each_line, is_gzip};
pub use order::sort_by_line;
pub use writer::{ResultWriter, ResultsError, private_file};

/// Creates (or truncates) a file only its owner can read: results, journals
/// and event logs hold prompts, outputs and provider messages.
pub fn create_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    private_file().write(true).create(true).truncate(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Fingerprint, HostBlock, ItemStatus, ProviderResponse, ResultRecord, TokenUsage, body_json, line_id,
    };
    use serde_json::Value;

    fn record() -> ResultRecord {
        ResultRecord {
            id: line_id("a"),
            custom_id: "a".into(),
            response: Some(ProviderResponse {
                status_code: 200,
                request_id: Some("req_1".into()),
                body: body_json("{\"x\":1}"),
            }),
            error: None,
            batchllm: HostBlock {
                status: ItemStatus::Succeeded,
                output: Some("hi".into()),
                attempts: 1,
                rate_limit_retries: 0,
                usage: TokenUsage::default(),
                latency_ms: 1.5,
                error_class: None,
                http_status: Some(200),
                metadata: None,
                context: None,
                line: 1,
                finished_at: None,
                fingerprint: Fingerprint { input: "i".into(), plugin: "p".into(), config: "c".into() },
                cost_usd: None,
            },
        }
    }

    #[test]
    fn writes_openai_batch_shaped_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/results.jsonl");
        let mut w = ResultWriter::open(&path, true, false).expect("create");
        w.write(&record()).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        let v: Value = serde_json::from_str(text.trim()).expect("json");
        assert_eq!(v["custom_id"], "a");
        assert_eq!(v["response"]["status_code"], 200);
        assert_eq!(v["response"]["body"]["x"], 1);
        assert_eq!(v["error"], Value::Null);
        assert_eq!(v["batchllm"]["status"], "succeeded");
    }

    #[test]
    fn a_gz_results_file_gets_one_gzip_member_per_write() {
        use std::io::Read as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("results.jsonl.gz");
        let mut w = ResultWriter::open(&path, true, false).expect("create");
        w.write_all(&[record(), record()]).expect("write");
        let one = std::fs::metadata(&path).expect("meta").len();
        w.write(&record()).expect("write");
        drop(w);
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(&bytes[..2], [0x1f, 0x8b]);
        assert_eq!(&bytes[one as usize..one as usize + 2], [0x1f, 0x8b], "the second write starts a member");
        // What any gzip reader sees: three lines.
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_string(&mut text).expect("gunzip");
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()));
    }
}
