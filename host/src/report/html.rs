//! The report page: one HTML file with its CSS, its charts (SVG, drawn
//! here) and its data (JSON) inline. Nothing is fetched when it is viewed,
//! and nothing on it runs: hover titles are SVG `<title>`s.

use std::fmt::Write as _;

use super::data::{ReportData, Slice};
use super::svg::{Svg, escape, ticks};

const STYLE: &str = r#"
:root { --ink:#1d2433; --muted:#6b7385; --line:#e3e6ee; --bg:#f5f6fa; --card:#fff;
  --ok:#2f9e6e; --bad:#d64545; --warn:#e8a33d; --accent:#3a67d8; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { background:#1d2433; color:#fff; padding:22px 32px 18px; }
header h1 { margin:0; font-size:22px; font-weight:600; letter-spacing:.2px; }
header .sub { margin:4px 0 0; color:#aab3c5; font-size:13px; }
header .verdict { display:inline-block; margin-left:10px; padding:2px 10px; border-radius:999px; font-size:12px;
  font-weight:600; vertical-align:middle; }
.verdict.ok { background:#1f6f4d; } .verdict.bad { background:#9c2f2f; }
main { max-width:1240px; margin:0 auto; padding:20px 24px 40px; }
.cards { display:grid; grid-template-columns:repeat(4, 1fr); gap:14px; margin-bottom:18px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:14px 16px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.6px; }
.card .value { font-size:26px; font-weight:650; margin-top:2px; font-variant-numeric:tabular-nums; }
.card .note { color:var(--muted); font-size:12.5px; margin-top:2px; }
.card .value.ok { color:var(--ok); } .card .value.bad { color:var(--bad); } .card .value.warn { color:#b7791f; }
.panel { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:16px 18px 12px;
  margin-bottom:18px; }
.panel h2 { margin:0 0 2px; font-size:16px; font-weight:620; }
.panel .hint { margin:0 0 10px; color:var(--muted); font-size:12.5px; }
.grid2 { display:grid; grid-template-columns:1fr 1fr; gap:18px; }
.grid2 .panel { margin-bottom:18px; }
.legend { display:flex; gap:16px; font-size:12.5px; color:var(--muted); margin:0 0 6px; }
.legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:5px; vertical-align:-1px; }
table { width:100%; border-collapse:collapse; font-size:13px; font-variant-numeric:tabular-nums; }
th { text-align:left; color:var(--muted); font-weight:560; font-size:12px; border-bottom:1px solid var(--line);
  padding:6px 8px; }
td { border-bottom:1px solid var(--line); padding:6px 8px; vertical-align:top; }
td.num, th.num { text-align:right; white-space:nowrap; }
td.msg { color:#3d4556; word-break:break-word; }
td code { font-size:12px; background:#f1f3f8; padding:1px 5px; border-radius:4px; }
.bar { height:8px; background:#e9ecf3; border-radius:4px; overflow:hidden; min-width:60px; }
.bar span { display:block; height:100%; background:var(--accent); }
.bar.bad span { background:var(--bad); }
.empty { color:var(--muted); padding:14px 0; }
svg text { font-size:11px; fill:#6b7385; }
svg .title { font-size:11px; fill:#3d4556; font-weight:600; }
svg .grid { stroke:#eceef4; stroke-width:1; }
svg .axis { stroke:#c5cad6; stroke-width:1; }
svg .ok { fill:var(--ok); } svg .bad { fill:var(--bad); } svg .warn { fill:var(--warn); }
svg .band { fill:#e8a33d; fill-opacity:.13; }
svg .hist { fill:var(--accent); fill-opacity:.85; }
svg .mark { stroke:#1d2433; stroke-width:1.2; stroke-dasharray:4 3; }
svg .pause { fill:var(--warn); fill-opacity:.85; }
footer { color:var(--muted); font-size:12px; text-align:center; margin-top:8px; }
@media (max-width: 900px) { .cards { grid-template-columns:repeat(2, 1fr); } .grid2 { grid-template-columns:1fr; } }
"#;

/// `1234567` as `1,234,567`.
pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Dollars: four decimals below a dollar, two above.
pub(super) fn dollars(usd: f64) -> String {
    if usd.abs() < 1.0 { format!("${usd:.4}") } else { format!("${}", with_cents(usd)) }
}

fn with_cents(usd: f64) -> String {
    let cents = (usd * 100.0).round().max(0.0) as u64;
    format!("{}.{:02}", thousands(cents / 100), cents % 100)
}

/// A duration for people: `850 ms`, `12.4 s`, `4 min 05 s`, `2 h 07 min`.
pub(super) fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".into();
    }
    if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1000.0)
    } else if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        let s = seconds.round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = (seconds / 60.0).round() as u64;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

/// Milliseconds for a latency: `4.2 ms`, `180 ms`, `2.35 s`.
pub(super) fn millis(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// A round latency for an axis: `1 ms`, `100 ms`, `10 s`.
fn round_millis(ms: f64) -> String {
    if ms >= 1000.0 { format!("{} s", short(ms / 1000.0)) } else { format!("{} ms", short(ms)) }
}

/// An axis label for seconds since the start.
fn clock(seconds: f64) -> String {
    let s = seconds.round().max(0.0) as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

/// The whole page.
pub(super) fn render(data: &ReportData, generated: &str) -> String {
    let t = &data.totals;
    let mut page = String::with_capacity(64 * 1024);
    let all_ok = t.failed == 0 && t.items > 0;
    let _ = write!(
        page,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Batch report: {results}</title><style>{STYLE}</style></head>
<body><header><h1>Batch report <span class="verdict {verdict_class}">{verdict}</span></h1>
<p class="sub">{results}{events} &middot; generated {generated} by batchllm-host</p></header><main>
"#,
        results = escape(&data.results),
        events = data.events.as_deref().map(|e| format!(" &middot; events {}", escape(e))).unwrap_or_default(),
        generated = escape(generated),
        verdict_class = if all_ok { "ok" } else { "bad" },
        verdict = if t.items == 0 {
            "no records".to_string()
        } else if all_ok {
            "every item succeeded".to_string()
        } else {
            format!("{} failed", thousands(t.failed))
        },
    );
    cards(&mut page, data);
    throughput_panel(&mut page, data);
    page.push_str(r#"<div class="grid2">"#);
    latency_panel(&mut page, data);
    models_panel(&mut page, data);
    page.push_str("</div>");
    failures_panel(&mut page, data);
    cooldowns_panel(&mut page, data);
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
    // `<` escaped: no text in the data can close the script element.
    let json = json.replace('<', "\\u003c");
    let _ = write!(
        page,
        r#"<footer>Numbers from {} record(s){}. Latency percentiles are computed as the run summary computes them. Costs use the prices recorded with each item.</footer>
</main>
<script type="application/json" id="report-data">{json}</script>
</body></html>
"#,
        thousands(t.items),
        if data.undated > 0 {
            format!("; {} without a finish time (written by an older version) are not on the time axis", data.undated)
        } else {
            String::new()
        }
    );
    page
}

fn card(page: &mut String, metric: &str, label: &str, value: &str, class: &str, note: &str) {
    let _ = write!(
        page,
        r#"<div class="card" data-metric="{metric}"><div class="label">{}</div><div class="value {class}">{}</div><div class="note">{}</div></div>"#,
        escape(label),
        escape(value),
        note
    );
}

fn cards(page: &mut String, data: &ReportData) {
    let t = &data.totals;
    let u = &t.usage;
    page.push_str(r#"<section class="cards">"#);
    card(page, "items", "Items", &thousands(t.items), "", &format!("{} attempts", thousands(t.attempts)));
    card(
        page,
        "succeeded",
        "Succeeded",
        &thousands(t.succeeded),
        "ok",
        &format!("{:.1}% of items", percent(t.succeeded, t.items)),
    );
    card(
        page,
        "failed",
        "Failed",
        &thousands(t.failed),
        if t.failed > 0 { "bad" } else { "" },
        &match data.failures.first() {
            Some(f) => format!("most: <code>{}</code> ({})", escape(&f.class), thousands(f.count)),
            None => "none".to_string(),
        },
    );
    card(
        page,
        "cost",
        "Cost",
        &dollars(t.cost_usd),
        "",
        &if t.unpriced > 0 {
            format!("{} items on a model without a price", thousands(t.unpriced))
        } else {
            format!("{} per 1,000 items", dollars(if t.items > 0 { t.cost_usd * 1000.0 / t.items as f64 } else { 0.0 }))
        },
    );
    card(
        page,
        "tokens",
        "Tokens",
        &thousands(u.input_tokens.saturating_add(u.output_tokens)),
        "",
        &format!(
            "{} in ({:.0}% cached) &middot; {} out",
            thousands(u.input_tokens),
            percent(u.cached_input_tokens, u.input_tokens),
            thousands(u.output_tokens)
        ),
    );
    let throughput = if data.elapsed_seconds > 0.0 { t.items as f64 / data.elapsed_seconds } else { 0.0 };
    card(
        page,
        "elapsed",
        "Elapsed",
        &duration(data.elapsed_seconds),
        "",
        &format!("{throughput:.1} items/s on average"),
    );
    card(
        page,
        "latency",
        "Latency p50",
        &millis(data.latency.p50_ms),
        "",
        &format!(
            "p95 {} &middot; p99 {} &middot; max {}",
            millis(data.latency.p95_ms),
            millis(data.latency.p99_ms),
            millis(data.latency.max_ms)
        ),
    );
    card(
        page,
        "rate_limits",
        "Rate limits",
        &thousands(data.rate_limits),
        if data.rate_limits > 0 { "warn" } else { "" },
        &if data.events.is_some() {
            format!("{} cooldowns, {} paused", thousands(data.cooldown_count), duration(data.cooldown_seconds))
        } else {
            "429 answers retried".to_string()
        },
    );
    page.push_str("</section>");
}

/// Plot geometry shared by the time charts.
struct Frame {
    left: f64,
    right: f64,
    width: f64,
    span: f64,
}

impl Frame {
    fn x(&self, seconds: f64) -> f64 {
        self.left + (seconds / self.span).clamp(0.0, 1.0) * (self.right - self.left)
    }
}

fn time_axis(svg: &mut Svg, frame: &Frame, y: f64) {
    svg.line(frame.left, y, frame.right, y, "axis");
    for tick in ticks(frame.span) {
        if tick > frame.span {
            break;
        }
        let x = frame.x(tick);
        svg.line(x, y, x, y + 4.0, "axis");
        svg.text(x, y + 16.0, "middle", "", &clock(tick));
    }
}

fn throughput_panel(page: &mut String, data: &ReportData) {
    let source = if data.time_source == "events" {
        "from the events file (the run's own clock)"
    } else {
        "from each record's finish time; pass --events FILE for 429s as they happened and the cooldowns"
    };
    let _ = write!(
        page,
        r#"<section class="panel" id="throughput"><h2>Throughput and rate limits over time</h2><p class="hint">Items finished per second, {} s per bar, {source}.</p>
<div class="legend"><span><i style="background:var(--ok)"></i>succeeded</span><span><i style="background:var(--bad)"></i>failed</span><span><i style="background:var(--warn)"></i>rate-limited answers (429)</span>{}</div>"#,
        fmt_secs(data.slice_seconds),
        if data.cooldowns.is_empty() {
            ""
        } else {
            r#"<span><i style="background:#e8a33d;opacity:.3"></i>cooldown (every new attempt paused)</span>"#
        }
    );
    if data.timeline.is_empty() || data.totals.items == 0 {
        page.push_str(r#"<p class="empty">No records with a finish time.</p></section>"#);
        return;
    }
    let (width, top, main_h, gap, strip_h) = (1160.0, 26.0, 210.0, 34.0, 60.0);
    let height = top + main_h + gap + strip_h + 30.0;
    let span = data.timeline.len() as f64 * data.slice_seconds;
    let frame = Frame { left: 52.0, right: width - 12.0, width, span };
    let per_second = |n: u64| n as f64 / data.slice_seconds;
    let peak = data.timeline.iter().map(|s| per_second(s.succeeded + s.failed)).fold(0.0, f64::max);
    let peak_429 = data.timeline.iter().map(|s| per_second(s.rate_limited)).fold(0.0, f64::max);
    let mut svg = Svg::new(frame.width, height, "items finished per second over time, and rate-limited answers");
    let y_ticks = ticks(peak);
    let y_max = y_ticks.last().copied().unwrap_or(1.0).max(1e-9);
    let y = |v: f64| top + main_h - v / y_max * main_h;
    for c in &data.cooldowns {
        let (x1, x2) = (frame.x(c.at), frame.x(c.at + c.seconds));
        let title = format!("cooldown of {} on {} at {}", duration(c.seconds), c.scope, clock(c.at));
        svg.rect(x1, top, (x2 - x1).max(1.0), main_h, "band", Some(&title));
    }
    for tick in &y_ticks {
        svg.line(frame.left, y(*tick), frame.right, y(*tick), "grid");
        svg.text(frame.left - 6.0, y(*tick) + 4.0, "end", "", &short(*tick));
    }
    svg.text(frame.left - 44.0, top - 14.0, "start", "title", "items/s");
    let bar = (frame.right - frame.left) / data.timeline.len() as f64;
    for s in &data.timeline {
        let x = frame.x(s.at);
        let (ok, bad) = (per_second(s.succeeded), per_second(s.failed));
        let title = slice_title(s, data.slice_seconds);
        svg.rect(x + bar * 0.08, y(ok), bar * 0.84, main_h - (y(ok) - top), "ok", Some(&title));
        svg.rect(x + bar * 0.08, y(ok + bad), bar * 0.84, y(ok) - y(ok + bad), "bad", Some(&title));
    }
    svg.line(frame.left, top + main_h, frame.right, top + main_h, "axis");
    // The 429 strip, on its own scale.
    let strip_top = top + main_h + gap;
    let s_ticks = ticks(peak_429);
    let s_max = s_ticks.last().copied().unwrap_or(1.0).max(1e-9);
    svg.text(frame.left - 44.0, strip_top - 14.0, "start", "title", "429s/s");
    svg.text(frame.left - 6.0, strip_top + 4.0, "end", "", &short(s_max));
    svg.line(frame.left, strip_top, frame.right, strip_top, "grid");
    for s in &data.timeline {
        let v = per_second(s.rate_limited);
        let h = v / s_max * strip_h;
        let title = format!("{} rate-limited answers from {}", thousands(s.rate_limited), clock(s.at));
        svg.rect(frame.x(s.at) + bar * 0.08, strip_top + strip_h - h, bar * 0.84, h, "warn", Some(&title));
    }
    if data.rate_limits == 0 {
        svg.text((frame.left + frame.right) / 2.0, strip_top + strip_h / 2.0 + 4.0, "middle", "", "no rate limits");
    }
    time_axis(&mut svg, &frame, strip_top + strip_h);
    page.push_str(&svg.finish());
    page.push_str("</section>");
}

fn slice_title(s: &Slice, width: f64) -> String {
    format!(
        "{}-{}: {} succeeded, {} failed, {} rate-limited",
        clock(s.at),
        clock(s.at + width),
        thousands(s.succeeded),
        thousands(s.failed),
        thousands(s.rate_limited)
    )
}

fn fmt_secs(s: f64) -> String {
    if s.fract() == 0.0 { format!("{s:.0}") } else { format!("{s}") }
}

/// A tick value: `0`, `2.5`, `1,500`, `12k`.
fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        thousands(v as u64)
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}").trim_end_matches('0').to_string()
    }
}

fn latency_panel(page: &mut String, data: &ReportData) {
    page.push_str(
        r#"<section class="panel" id="latency"><h2>Latency</h2><p class="hint">Items by time from their first attempt to their record (retries and waits included), log scale.</p>"#,
    );
    if data.latency_buckets.is_empty() {
        page.push_str(r#"<p class="empty">No records.</p></section>"#);
        return;
    }
    let (width, height, left, right, top, bottom) = (560.0, 250.0, 44.0, 548.0, 22.0, 212.0);
    let mut svg = Svg::new(width, height, "histogram of item latencies");
    let buckets = &data.latency_buckets;
    let peak = buckets.iter().map(|b| b.count).max().unwrap_or(1) as f64;
    let y_ticks = ticks(peak);
    let y_max = y_ticks.last().copied().unwrap_or(1.0).max(1e-9);
    let y = |v: f64| bottom - v / y_max * (bottom - top);
    let (lo, hi) = (
        buckets.first().map_or(1.0, |b| b.from_ms).max(1e-6).log10(),
        buckets.last().map_or(10.0, |b| b.to_ms).max(1e-6).log10(),
    );
    let x = |ms: f64| left + ((ms.max(1e-6).log10() - lo) / (hi - lo).max(1e-9)).clamp(0.0, 1.0) * (right - left);
    for tick in &y_ticks {
        svg.line(left, y(*tick), right, y(*tick), "grid");
        svg.text(left - 6.0, y(*tick) + 4.0, "end", "", &short(*tick));
    }
    for b in buckets {
        let (x1, x2) = (x(b.from_ms), x(b.to_ms));
        let title = format!("{} items between {} and {}", thousands(b.count), millis(b.from_ms), millis(b.to_ms));
        svg.rect(
            x1 + 1.0,
            y(b.count as f64),
            (x2 - x1 - 2.0).max(1.0),
            bottom - y(b.count as f64),
            "hist",
            Some(&title),
        );
    }
    svg.line(left, bottom, right, bottom, "axis");
    let mut decade = lo.ceil();
    while decade <= hi + 1e-9 {
        let ms = 10f64.powf(decade);
        svg.line(x(ms), bottom, x(ms), bottom + 4.0, "axis");
        svg.text(x(ms), bottom + 16.0, "middle", "", &round_millis(ms));
        decade += 1.0;
    }
    let l = &data.latency;
    for (i, (name, ms)) in [("p50", l.p50_ms), ("p95", l.p95_ms), ("p99", l.p99_ms)].into_iter().enumerate() {
        let at = x(ms);
        svg.line(at, top - 4.0, at, bottom, "mark");
        // Labels stacked, and on the left of their line near the right edge.
        let (dx, anchor) = if at > right - 90.0 { (-4.0, "end") } else { (4.0, "start") };
        svg.text(at + dx, top + 6.0 + 13.0 * i as f64, anchor, "title", &format!("{name} {}", millis(ms)));
    }
    page.push_str(&svg.finish());
    page.push_str("</section>");
}

fn models_panel(page: &mut String, data: &ReportData) {
    page.push_str(
        r#"<section class="panel" id="models"><h2>Cost and tokens by model</h2><p class="hint">The model each provider answer named; cost over every attempt.</p>"#,
    );
    if data.models.is_empty() {
        page.push_str(r#"<p class="empty">No records.</p></section>"#);
        return;
    }
    page.push_str(r#"<table><tr><th>model</th><th class="num">items</th><th class="num">input</th><th class="num">cached</th><th class="num">output</th><th class="num">cost</th><th>share of cost</th></tr>"#);
    let total = data.totals.cost_usd;
    for m in &data.models {
        let share = if total > 0.0 { m.cost_usd / total * 100.0 } else { 0.0 };
        let cost = if m.unpriced > 0 && m.cost_usd == 0.0 { "no price".to_string() } else { dollars(m.cost_usd) };
        let _ = write!(
            page,
            r#"<tr><td><code>{}</code></td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td><div class="bar"><span style="width:{share:.1}%"></span></div></td></tr>"#,
            escape(&m.model),
            thousands(m.items),
            thousands(m.usage.input_tokens),
            thousands(m.usage.cached_input_tokens),
            thousands(m.usage.output_tokens),
            cost,
        );
    }
    page.push_str("</table></section>");
}

fn failures_panel(page: &mut String, data: &ReportData) {
    page.push_str(r#"<section class="panel" id="failures"><h2>Failures by class</h2>"#);
    if data.failures.is_empty() {
        page.push_str(r#"<p class="empty">No item failed.</p></section>"#);
        return;
    }
    page.push_str(
        r#"<p class="hint">The class is the record's <code>error.code</code>; a few examples of each, with the message the item ended with.</p><table><tr><th>class</th><th class="num">items</th><th class="num">of all</th><th></th></tr>"#,
    );
    let most = data.failures.first().map_or(1, |f| f.count).max(1);
    for f in &data.failures {
        let _ = write!(
            page,
            r#"<tr><td><code>{}</code></td><td class="num">{}</td><td class="num">{:.1}%</td><td style="width:45%"><div class="bar bad"><span style="width:{:.1}%"></span></div></td></tr>"#,
            escape(&f.class),
            thousands(f.count),
            percent(f.count, data.totals.items),
            f.count as f64 * 100.0 / most as f64
        );
    }
    page.push_str(r#"</table><h2 style="margin-top:16px;font-size:14px">Examples</h2><table><tr><th>class</th><th>custom_id</th><th>message</th></tr>"#);
    for f in &data.failures {
        for (id, message) in &f.examples {
            let _ = write!(
                page,
                r#"<tr><td><code>{}</code></td><td><code>{}</code></td><td class="msg">{}</td></tr>"#,
                escape(&f.class),
                escape(id),
                escape(message)
            );
        }
    }
    page.push_str("</table></section>");
}

fn cooldowns_panel(page: &mut String, data: &ReportData) {
    page.push_str(r#"<section class="panel" id="cooldowns"><h2>Cooldowns</h2>"#);
    if data.events.is_none() {
        page.push_str(r#"<p class="empty">Pass <code>--events FILE</code> (the file a run wrote with <code>--events</code>) to see when each quota scope paused.</p></section>"#);
        return;
    }
    if data.cooldowns.is_empty() {
        page.push_str(r#"<p class="empty">No cooldown: no rate limit paused the run.</p></section>"#);
        return;
    }
    let _ = write!(
        page,
        r#"<p class="hint">After a rate limit every new attempt to that scope waits; {} pauses, {} in total.</p>"#,
        thousands(data.cooldown_count),
        duration(data.cooldown_seconds)
    );
    let mut scopes: Vec<&str> = data.cooldowns.iter().map(|c| c.scope.as_str()).collect();
    scopes.sort_unstable();
    scopes.dedup();
    let row = 26.0;
    let (width, top) = (1160.0, 8.0);
    let label_width = 170.0;
    let height = top + row * scopes.len() as f64 + 30.0;
    let span = (data.timeline.len() as f64 * data.slice_seconds).max(data.elapsed_seconds).max(1.0);
    let frame = Frame { left: label_width, right: width - 12.0, width, span };
    let mut svg = Svg::new(width, height, "cooldowns per quota scope over time");
    for (i, scope) in scopes.iter().enumerate() {
        let y = top + row * i as f64;
        svg.text(label_width - 8.0, y + row / 2.0 + 4.0, "end", "title", scope);
        svg.line(frame.left, y + row - 2.0, frame.right, y + row - 2.0, "grid");
        for c in data.cooldowns.iter().filter(|c| c.scope == *scope) {
            let (x1, x2) = (frame.x(c.at), frame.x(c.at + c.seconds));
            let title = format!("{} from {}", duration(c.seconds), clock(c.at));
            svg.rect(x1, y + 5.0, (x2 - x1).max(2.0), row - 12.0, "pause", Some(&title));
        }
    }
    time_axis(&mut svg, &frame, top + row * scopes.len() as f64);
    page.push_str(&svg.finish());
    page.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(dollars(0.01234), "$0.0123");
        assert_eq!(dollars(1234.5), "$1,234.50");
        assert_eq!(duration(0.25), "250 ms");
        assert_eq!(duration(75.0), "1 min 15 s");
        assert_eq!(duration(7300.0), "2 h 02 min");
        assert_eq!(millis(2350.0), "2.35 s");
        assert_eq!(clock(3725.0), "1:02:05");
        assert_eq!(round_millis(0.01), "0.01 ms");
        assert_eq!(round_millis(10_000.0), "10 s");
        assert_eq!(short(2.5), "2.5");
    }
}
