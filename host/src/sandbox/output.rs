//! A plugin's stdout and stderr: forwarded to the host's `tracing` output,
//! tagged with the plugin and the item, and bounded.
//!
//! Why not a plain capture pipe: a bounded `MemoryOutputPipe` *closes* when
//! full, and a guest whose stdout closes typically panics on its next print
//! (Rust's `println!`, Python's `print`), so a chatty but correct plugin would
//! start trapping after a few KiB of output over an instance's life. This
//! stream never refuses a write: it forwards whole lines (each cut at
//! [`SandboxLimits::max_log_message`]) until the call's budget
//! ([`SandboxLimits::max_output_capture`]) is spent, then counts and drops
//! the rest, saying so once per call. The host's memory use stays bounded
//! whatever the plugin writes: one partial line per stream plus a small tail
//! kept for trap reports. Secret values are scrubbed before anything is
//! logged.
//!
//! Lines go to target `batchllm::plugin` at `info` with fields `plugin`,
//! `item` (`-` outside an item) and `stream` (`stdout` or `stderr`). The
//! plugin's `host.log` messages share the same per-call budget, so no way of
//! writing floods the host's log.
//!
//! Nothing a plugin writes can forge a log line or reach the terminal raw:
//! control characters (`\n` and `\r` inside a message, escape sequences,
//! and the Unicode line separators and bidirectional overrides that
//! reorder what a terminal shows) are printed escaped ([`printable`]).

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::egress::{CallScope, Secrets};

/// Bytes of output kept for trap reports.
const TAIL: usize = 4096;

/// Which of the two streams a handle writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// What the output of one plugin's instances is tagged and bounded with.
#[derive(Debug, Clone)]
pub struct OutputContext {
    /// The plugin's display name, for log tags.
    pub plugin: String,
    /// Longest line (or `host.log` message) forwarded, in bytes.
    pub max_line: usize,
    /// Bytes forwarded per call; the rest is counted and dropped.
    pub budget: usize,
    /// Values scrubbed from everything forwarded.
    pub secrets: Secrets,
}

/// The output of one plugin instance, shared by its stdout and stderr.
#[derive(Clone)]
pub struct PluginOutput {
    inner: Arc<Mutex<Sink>>,
}

struct Sink {
    ctx: OutputContext,
    scope: CallScope,
    /// The current, unfinished line of each stream (at most `max_log_message` bytes).
    partial: [Vec<u8>; 2],
    /// Bytes cut from the current line of each stream.
    cut: [usize; 2],
    /// Bytes forwarded to `tracing` in this call.
    forwarded: usize,
    /// Bytes not forwarded in this call because the budget was spent.
    dropped: usize,
    /// The last bytes written, for trap reports.
    tail: Vec<u8>,
}

impl PluginOutput {
    /// The output of a new instance, tagged with the item `scope` serves.
    pub fn new(ctx: OutputContext, scope: CallScope) -> Self {
        let sink = Sink {
            ctx,
            scope,
            partial: [Vec::new(), Vec::new()],
            cut: [0, 0],
            forwarded: 0,
            dropped: 0,
            tail: Vec::new(),
        };
        PluginOutput { inner: Arc::new(Mutex::new(sink)) }
    }

    fn lock(&self) -> MutexGuard<'_, Sink> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A WASI stdout/stderr for the instance's `WasiCtx`.
    pub fn stream(&self, stream: Stream) -> OutputHandle {
        OutputHandle { output: self.clone(), stream }
    }

    /// Starts a call: a fresh budget and an empty tail.
    pub fn begin_call(&self) {
        let mut sink = self.lock();
        sink.forwarded = 0;
        sink.dropped = 0;
        sink.tail.clear();
    }

    /// Ends a call: logs unfinished lines and what was dropped.
    pub fn end_call(&self) {
        let mut sink = self.lock();
        for stream in [Stream::Stdout, Stream::Stderr] {
            sink.flush_line(stream);
        }
        if sink.dropped > 0 {
            let (plugin, item) = sink.tags();
            tracing::warn!(
                target: "batchllm::plugin", %plugin, %item, dropped_bytes = sink.dropped,
                "plugin output (stdout, stderr, logs) over the limit of {} bytes per call; the rest was not logged",
                sink.ctx.budget
            );
            sink.dropped = 0;
        }
    }

    /// The last `max` bytes written (secrets scrubbed), for trap reports.
    pub fn tail(&self, max: usize) -> String {
        let sink = self.lock();
        let text = sink.ctx.secrets.scrub(&String::from_utf8_lossy(&sink.tail));
        let mut start = text.len().saturating_sub(max);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_string()
    }

    fn write(&self, stream: Stream, bytes: &[u8]) {
        self.lock().accept(stream, bytes);
    }

    /// Logs one `host.log` message at `level` (cut at the line limit,
    /// secrets scrubbed), counted against the call's budget.
    pub fn log(&self, level: tracing::Level, message: &str) {
        let mut sink = self.lock();
        let max = sink.ctx.max_line;
        let mut end = message.len().min(max);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        if !sink.spend(end, message.len()) {
            return;
        }
        // Counted against the budget either way (above), but a message no
        // subscriber wants is not scrubbed and escaped for nothing: plugins
        // log per item at levels that are usually off.
        if !level_enabled(level) {
            return;
        }
        let mut text = printable(&sink.ctx.secrets.scrub(&message[..end])).into_owned();
        if end < message.len() {
            text.push_str("…[truncated]");
        }
        let (plugin, item) = sink.tags();
        match level {
            tracing::Level::TRACE => tracing::trace!(target: "batchllm::plugin", %plugin, %item, "{text}"),
            tracing::Level::DEBUG => tracing::debug!(target: "batchllm::plugin", %plugin, %item, "{text}"),
            tracing::Level::INFO => tracing::info!(target: "batchllm::plugin", %plugin, %item, "{text}"),
            tracing::Level::WARN => tracing::warn!(target: "batchllm::plugin", %plugin, %item, "{text}"),
            _ => tracing::error!(target: "batchllm::plugin", %plugin, %item, "{text}"),
        }
    }
}

/// Whether a plugin message at `level` would be written anywhere.
fn level_enabled(level: tracing::Level) -> bool {
    match level {
        tracing::Level::TRACE => tracing::enabled!(target: "batchllm::plugin", tracing::Level::TRACE),
        tracing::Level::DEBUG => tracing::enabled!(target: "batchllm::plugin", tracing::Level::DEBUG),
        tracing::Level::INFO => tracing::enabled!(target: "batchllm::plugin", tracing::Level::INFO),
        tracing::Level::WARN => tracing::enabled!(target: "batchllm::plugin", tracing::Level::WARN),
        _ => tracing::enabled!(target: "batchllm::plugin", tracing::Level::ERROR),
    }
}

impl Sink {
    /// Takes `kept` bytes from the call's budget; when they do not fit,
    /// counts `total` as dropped and returns false.
    fn spend(&mut self, kept: usize, total: usize) -> bool {
        if self.forwarded.saturating_add(kept) > self.ctx.budget {
            self.dropped += total;
            return false;
        }
        self.forwarded += kept;
        true
    }

    fn tags(&self) -> (String, String) {
        (self.ctx.plugin.clone(), self.scope.item_id().unwrap_or_else(|| "-".into()))
    }

    fn accept(&mut self, stream: Stream, bytes: &[u8]) {
        self.tail.extend_from_slice(&bytes[bytes.len().saturating_sub(TAIL)..]);
        if self.tail.len() > TAIL {
            let excess = self.tail.len() - TAIL;
            self.tail.drain(..excess);
        }
        let max_line = self.ctx.max_line;
        let i = stream.index();
        for (n, piece) in bytes.split(|&b| b == b'\n').enumerate() {
            if n > 0 {
                self.flush_line(stream);
            }
            let room = max_line.saturating_sub(self.partial[i].len());
            let take = piece.len().min(room);
            self.partial[i].extend_from_slice(&piece[..take]);
            self.cut[i] += piece.len() - take;
        }
    }

    fn flush_line(&mut self, stream: Stream) {
        let i = stream.index();
        if self.partial[i].is_empty() && self.cut[i] == 0 {
            return;
        }
        let line = std::mem::take(&mut self.partial[i]);
        let cut = std::mem::take(&mut self.cut[i]);
        if !self.spend(line.len(), line.len() + cut) {
            return;
        }
        let mut text = printable(&self.ctx.secrets.scrub(&String::from_utf8_lossy(&line))).into_owned();
        if cut > 0 {
            text.push_str(&format!("…[{cut} bytes cut]"));
        }
        let (plugin, item) = self.tags();
        tracing::info!(target: "batchllm::plugin", %plugin, %item, stream = stream.name(), "{text}");
    }
}

/// `text` with every character that could forge a log line or drive a
/// terminal escaped: control characters (C0 including `\n`, `\r`, `\t`
/// and ESC, DEL, C1), the Unicode line and paragraph separators, and the
/// bidirectional embeddings, overrides and isolates.
pub fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One stream of a [`PluginOutput`], as WASI sees it: always ready, never
/// full, never closed.
#[derive(Clone)]
pub struct OutputHandle {
    output: PluginOutput,
    stream: Stream,
}

impl IsTerminal for OutputHandle {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputHandle {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

/// What `check-write` grants: any size works, this keeps guest buffers small.
const WRITE_PERMIT: usize = 64 << 10;

impl OutputStream for OutputHandle {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.output.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputHandle {
    async fn ready(&mut self) {}
}

impl AsyncWrite for OutputHandle {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.output.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::EgressPolicy;

    fn output(max_line: usize, budget: usize) -> PluginOutput {
        let secrets = Secrets::from_values(vec![("k".into(), "sk-secret".into())], EgressPolicy::default());
        let ctx = OutputContext { plugin: "p".into(), max_line, budget, secrets };
        PluginOutput::new(ctx, CallScope::default())
    }

    #[test]
    fn control_characters_are_escaped() {
        assert!(matches!(printable("plain text, ünïcode"), Cow::Borrowed(_)));
        let forged = "ok\n2025-01-01T00:00:00Z  INFO batchllm: fake\r\u{1b}[2J\u{7f}\u{85}\u{2028}\u{202e}x\t";
        let shown = printable(forged);
        assert!(!shown.chars().any(|c| c.is_control() || ('\u{2028}'..='\u{206f}').contains(&c)), "{shown:?}");
        assert_eq!(
            shown,
            "ok\\n2025-01-01T00:00:00Z  INFO batchllm: fake\\r\\u{1b}[2J\\u{7f}\\u{85}\\u{2028}\\u{202e}x\\t"
        );
    }

    #[test]
    fn lines_are_cut_and_the_budget_bounds_forwarding() {
        let out = output(10, 25);
        out.begin_call();
        out.write(Stream::Stdout, b"0123456789abcdef\nshort\n");
        {
            let sink = out.lock();
            assert_eq!(sink.forwarded, 15, "one cut line (10) and one short line (5)");
        }
        // Over budget: counted, not forwarded, not kept.
        out.write(Stream::Stderr, &vec![b'z'; 1 << 20]);
        out.write(Stream::Stderr, b"\n");
        let sink = out.lock();
        assert_eq!(sink.forwarded, 25);
        assert_eq!(sink.dropped, 0, "the huge line was cut to 10 bytes and fit");
        assert!(sink.partial.iter().all(Vec::is_empty));
        assert!(sink.tail.len() <= TAIL);
    }

    #[test]
    fn dropping_starts_when_the_budget_is_spent_and_resets_per_call() {
        let out = output(100, 10);
        out.begin_call();
        for _ in 0..5 {
            out.write(Stream::Stdout, b"12345678\n");
        }
        assert_eq!(out.lock().forwarded, 8);
        assert_eq!(out.lock().dropped, 32);
        out.end_call();
        out.begin_call();
        out.write(Stream::Stdout, b"again\n");
        assert_eq!(out.lock().forwarded, 5);
    }

    #[test]
    fn log_messages_share_the_budget() {
        let out = output(4, 10);
        out.begin_call();
        out.log(tracing::Level::ERROR, "123456789");
        assert_eq!(out.lock().forwarded, 4, "cut at the line limit");
        out.log(tracing::Level::ERROR, "abcdefgh");
        out.log(tracing::Level::ERROR, "more");
        assert_eq!(out.lock().forwarded, 8);
        assert_eq!(out.lock().dropped, 4);
    }

    #[test]
    fn the_tail_is_bounded_and_scrubbed() {
        let out = output(100, 1000);
        out.write(Stream::Stderr, &vec![b'a'; 10_000]);
        out.write(Stream::Stderr, b"key sk-secret\n");
        let tail = out.tail(64);
        assert!(tail.ends_with("key [secret:k]\n"), "{tail}");
        assert!(out.lock().tail.len() <= TAIL);
    }

    #[test]
    fn the_stream_never_refuses_a_write() {
        let out = output(10, 10);
        let mut handle = out.stream(Stream::Stdout);
        for _ in 0..1000 {
            assert_eq!(handle.check_write().expect("open"), WRITE_PERMIT);
            handle.write(Bytes::from_static(&[b'x'; 1024])).expect("accepted");
        }
    }
}
