//! The status page (`/`) and the per-tenant Prometheus metrics (`/metrics`).
//!
//! The page is one server-rendered HTML document (no script, no external
//! asset: it works offline and behind any proxy) that refreshes itself
//! every 5 seconds. A browser asks for the key with HTTP Basic (any user
//! name, the key as password); an operator key shows every tenant, a
//! tenant's key only that tenant. Everything shown is HTML-escaped: ids,
//! metadata and error messages come from tenants.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::api::presented_key;
use super::objects::{Batch, BatchStatus, now_unix};
use super::service::Service;
use super::tenants::Caller;

/// Most batches shown per tenant.
const PER_TENANT: usize = 50;

fn who(svc: &Service, headers: &HeaderMap) -> Option<Caller> {
    presented_key(headers).and_then(|k| svc.tenants().authenticate(&k))
}

fn ask_for_key() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"batchllm-host\", charset=\"UTF-8\"")],
        "401: give an operator key (every tenant) or a tenant's key (its batches) as the password\n",
    )
        .into_response()
}

/// Every tenant's batches (operator) or one tenant's, newest first, with
/// live counts for the running ones.
async fn batches_for(svc: &Arc<Service>, caller: &Caller) -> BTreeMap<String, Vec<Batch>> {
    let names: Vec<String> = match caller {
        Caller::Operator => svc.tenants().tenants.keys().cloned().collect(),
        Caller::Tenant(t) => vec![t.name.clone()],
    };
    let mut out = BTreeMap::new();
    for name in names {
        let n = name.clone();
        let batches = match svc.db(move |s| s.list_batches(Some(&n), None, PER_TENANT)).await {
            Ok((b, _)) => b,
            Err(e) => {
                tracing::error!(error = %e, "the status page could not read batches");
                Vec::new()
            }
        };
        let batches = batches.into_iter().map(|b| svc.active_batch(&name, &b.id).map_or(b, |a| a.view())).collect();
        out.insert(name, batches);
    }
    out
}

pub async fn page(State(svc): State<Arc<Service>>, headers: HeaderMap) -> Response {
    let Some(caller) = who(&svc, &headers) else { return ask_for_key() };
    let tenants = batches_for(&svc, &caller).await;
    let mut html = String::with_capacity(16 * 1024);
    html.push_str(HEAD);
    let scope = match &caller {
        Caller::Operator => "all tenants".to_string(),
        Caller::Tenant(t) => format!("tenant {}", escape(&t.name)),
    };
    let _ = write!(
        html,
        "<header><h1>batchllm-host <span>service</span></h1><p>{scope} · {} · refreshes every 5 s</p></header>",
        clock(now_unix())
    );
    for (tenant, batches) in &tenants {
        tenant_section(&mut html, &svc, tenant, batches);
    }
    html.push_str("</body></html>\n");
    Html(html).into_response()
}

fn tenant_section(html: &mut String, svc: &Service, tenant: &str, batches: &[Batch]) {
    let running = batches.iter().filter(|b| b.status.is_active()).count();
    let done: u64 = batches.iter().map(|b| b.request_counts.completed).sum();
    let failed: u64 = batches.iter().map(|b| b.request_counts.failed).sum();
    // A fold from +0.0: an empty f64 sum is -0.0, shown as "$-0.0000".
    let cost = batches.iter().fold(0.0, |sum, b| sum + b.batchllm.cost_usd);
    let in_flight = svc.runtime_of(tenant).map_or(String::new(), |r| {
        let cap = svc.tenants().get(tenant).map_or(0, |t| t.max_concurrent_items());
        format!(" · {} of {cap} items in flight", cap.saturating_sub(r.items.available_permits()))
    });
    let _ = write!(
        html,
        "<section><h2>{}</h2><p class=sum>{} shown · {running} active{in_flight} · \
         <b class=ok>{done}</b> succeeded · <b class=bad>{failed}</b> failed · ${cost:.4}</p>",
        escape(tenant),
        match batches.len() {
            1 => "1 batch".to_string(),
            n => format!("{n} batches"),
        }
    );
    if batches.is_empty() {
        html.push_str("<p class=empty>No batches yet.</p></section>");
        return;
    }
    html.push_str(
        "<table><thead><tr><th>batch</th><th>status</th><th>progress</th><th>succeeded</th><th>failed</th>\
         <th>failures</th><th>tokens</th><th>cost</th><th>created</th></tr></thead><tbody>",
    );
    for b in batches {
        let c = b.request_counts;
        let ended = c.completed.saturating_add(c.failed);
        let pct = if c.total == 0 { 0.0 } else { (ended as f64 / c.total as f64 * 100.0).min(100.0) };
        let ok_pct = if c.total == 0 { 0.0 } else { (c.completed as f64 / c.total as f64 * 100.0).min(100.0) };
        let failures = if b.batchllm.failures.is_empty() {
            match &b.errors {
                Some(e) => e.data.first().map(|e| escape(&e.message)).unwrap_or_default(),
                None => String::new(),
            }
        } else {
            b.batchllm.failures.iter().map(|(k, n)| format!("{} × {n}", escape(k))).collect::<Vec<_>>().join(", ")
        };
        let tokens = b.usage.map_or(0, |u| u.total_tokens);
        let _ = write!(
            html,
            "<tr><td><code>{}</code><div class=ep>{}</div></td><td><span class=\"st {}\">{}</span></td>\
             <td><div class=bar><i class=f style=\"width:{pct:.1}%\"></i><i class=o style=\"width:{ok_pct:.1}%\"></i></div>\
             <small>{ended} / {} ({pct:.0}%)</small></td><td class=n>{}</td><td class=n>{}</td><td class=fl>{failures}</td>\
             <td class=n>{tokens}</td><td class=n>${:.4}</td><td class=t>{}</td></tr>",
            escape(&b.id),
            escape(&b.endpoint),
            b.status.as_str(),
            b.status.as_str().replace('_', " "),
            c.total,
            c.completed,
            c.failed,
            b.batchllm.cost_usd,
            clock(b.created_at),
        );
    }
    html.push_str("</tbody></table></section>");
}

/// `HH:MM:SS UTC` on the day, plus the date.
fn clock(unix: i64) -> String {
    let secs = unix.rem_euclid(86_400);
    let days = unix.div_euclid(86_400);
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const HEAD: &str = r#"<!doctype html><html lang=en><head><meta charset=utf-8>
<meta http-equiv=refresh content=5><meta name=viewport content="width=device-width,initial-scale=1">
<title>batchllm-host service</title><style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 32px}header h1{margin:0;font-size:20px}
header h1 span{font-weight:400;opacity:.7}header p{margin:4px 0 0;opacity:.75;font-size:13px}
section{background:#fff;margin:20px 32px;padding:16px 20px;border-radius:8px;box-shadow:0 1px 3px #0001}
h2{margin:0 0 4px;font-size:17px}.sum{margin:0 0 12px;color:#555}.ok{color:#1a7f37}.bad{color:#c62828}
.empty{color:#777}table{border-collapse:collapse;width:100%}
th{text-align:left;font-weight:600;color:#666;font-size:12px;text-transform:uppercase;letter-spacing:.03em;
border-bottom:1px solid #e3e5ea;padding:6px 8px}td{border-bottom:1px solid #f0f1f4;padding:8px;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}code{font-size:12px}.ep{color:#888;font-size:12px}
.fl{color:#a33;font-size:12px;max-width:260px}
.bar{position:relative;width:180px;height:8px;border-radius:4px;background:#e8eaef;overflow:hidden;margin:4px 0}
.bar i{position:absolute;left:0;top:0;bottom:0}.bar .f{background:#e57373}.bar .o{background:#43a047}
small{color:#777}.st{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600;
white-space:nowrap}td.t{white-space:nowrap;color:#555;font-size:13px}
.validating,.finalizing{background:#e3f2fd;color:#1565c0}.in_progress{background:#fff3e0;color:#e65100}
.completed{background:#e8f5e9;color:#1b5e20}.failed,.expired{background:#ffebee;color:#b71c1c}
.cancelling,.cancelled{background:#eceff1;color:#455a64}
</style></head><body>"#;

/// Per-tenant Prometheus metrics: batches by status, requests by outcome,
/// cost, items in flight and rate limits (operator key only).
pub async fn metrics(State(svc): State<Arc<Service>>, headers: HeaderMap) -> Response {
    match who(&svc, &headers) {
        Some(Caller::Operator) => {}
        Some(Caller::Tenant(_)) => {
            return (StatusCode::FORBIDDEN, "/metrics needs an operator key\n").into_response();
        }
        None => return ask_for_key(),
    }
    let everyone = batches_for(&svc, &Caller::Operator).await;
    let mut out = String::new();
    let mut by_status: Vec<(String, &'static str, u64)> = Vec::new();
    let mut requests: Vec<(String, &'static str, u64)> = Vec::new();
    let mut cost: Vec<(String, f64)> = Vec::new();
    for (tenant, batches) in &everyone {
        for status in [
            BatchStatus::Validating,
            BatchStatus::InProgress,
            BatchStatus::Finalizing,
            BatchStatus::Completed,
            BatchStatus::Failed,
            BatchStatus::Expired,
            BatchStatus::Cancelling,
            BatchStatus::Cancelled,
        ] {
            let n = batches.iter().filter(|b| b.status == status).count() as u64;
            by_status.push((tenant.clone(), status.as_str(), n));
        }
        requests.push((tenant.clone(), "succeeded", batches.iter().map(|b| b.request_counts.completed).sum()));
        requests.push((tenant.clone(), "failed", batches.iter().map(|b| b.request_counts.failed).sum()));
        cost.push((tenant.clone(), batches.iter().fold(0.0, |sum, b| sum + b.batchllm.cost_usd)));
    }
    out.push_str(
        "# HELP batchllm_serve_batches Recent batches by tenant and status.\n# TYPE batchllm_serve_batches gauge\n",
    );
    for (t, s, n) in by_status {
        let _ = writeln!(out, "batchllm_serve_batches{{tenant=\"{t}\",status=\"{s}\"}} {n}");
    }
    out.push_str(
        "# HELP batchllm_serve_requests Requests of recent batches by outcome.\n# TYPE batchllm_serve_requests gauge\n",
    );
    for (t, s, n) in requests {
        let _ = writeln!(out, "batchllm_serve_requests{{tenant=\"{t}\",status=\"{s}\"}} {n}");
    }
    out.push_str("# HELP batchllm_serve_cost_usd Cost of recent batches.\n# TYPE batchllm_serve_cost_usd gauge\n");
    for (t, c) in cost {
        let _ = writeln!(out, "batchllm_serve_cost_usd{{tenant=\"{t}\"}} {c}");
    }
    out.push_str(
        "# HELP batchllm_serve_items_in_flight Items in flight.\n# TYPE batchllm_serve_items_in_flight gauge\n",
    );
    out.push_str("# HELP batchllm_serve_rate_limits_total Rate-limited attempts.\n# TYPE batchllm_serve_rate_limits_total counter\n");
    let tenants = svc.tenants();
    for (name, tenant) in &tenants.tenants {
        if let Some(r) = svc.runtime_of(name) {
            let cap = tenant.max_concurrent_items();
            let _ = writeln!(
                out,
                "batchllm_serve_items_in_flight{{tenant=\"{name}\"}} {}",
                cap.saturating_sub(r.items.available_permits())
            );
            let _ =
                writeln!(out, "batchllm_serve_rate_limits_total{{tenant=\"{name}\"}} {}", r.gates.stats().rate_limits);
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_escapes() {
        assert_eq!(clock(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(clock(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(escape("<b a='x'>&"), "&lt;b a=&#39;x&#39;&gt;&amp;");
    }
}
