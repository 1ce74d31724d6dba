//! The shared limiter against a real `redis-server`: several hosts' gates
//! (each with its own connection, as separate processes would have) share
//! one RPM bucket, one cooldown and one learned budget, decided in Redis on
//! the server's clock; with Redis gone, nothing is admitted.

use std::sync::Arc;
use std::time::Duration;

use batchllm_host::cluster::limiter::{self, RedisLimiter};
use batchllm_host::cluster::local::LocalRedis;
use batchllm_host::model::Exchange;
use batchllm_host::run::gate::{
    AdmissionLimits, CooldownPolicy, GateSettings, Gates, LimitKind, RateLimitEffect, Verdict,
};
use tokio::time::Instant;

/// A redis-server on loopback; fails (never skips) when it is not installed.
pub(crate) async fn redis(dir: &tempfile::TempDir) -> LocalRedis {
    LocalRedis::start(&dir.path().join("redis")).await.unwrap_or_else(|e| panic!("{e}"))
}

fn settings(rpm: Option<f64>, burst: f64) -> GateSettings {
    GateSettings {
        cooldown: CooldownPolicy { slow_start_attempts: 0, ..CooldownPolicy::default() },
        admission: AdmissionLimits { rpm, tpm: None, burst_secs: burst },
        learn_from_headers: true,
        adaptive: false,
        max_server_wait: Duration::from_secs(120),
        startup_ramp: None,
    }
}

/// `n` hosts' gates over one Redis, one connection each.
async fn hosts(url: &str, n: usize, settings: &GateSettings, namespace: &str) -> Vec<Arc<Gates>> {
    let mut all = Vec::new();
    for _ in 0..n {
        let conn = limiter::connect(url).await.expect("connects");
        let shared = Arc::new(RedisLimiter::new(conn, namespace, "test"));
        all.push(Arc::new(Gates::shared(settings.clone(), Instant::now(), shared)));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_share_one_rpm_bucket_and_reserve_slots_in_turn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = redis(&dir).await;
    twelve_workers_on_three_hosts_keep_to_the_slots(&server.url(), "rpm", Duration::from_millis(4500)).await;
}

/// Replies that come late (here Redis is kept busy by a script for 150-250
/// ms every 400 ms, as an fsync on a busy disk delays every reply of its
/// moment) must not put sends of different slots together: a slot is kept
/// on Redis's clock, and one reached too late is given up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_replies_from_redis_do_not_bunch_the_slots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = redis(&dir).await;
    let url = server.url();
    let mut conn = limiter::connect(&url).await.expect("connects");
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let staller = tokio::spawn(async move {
        // Busy for `ms` on the server's clock; nothing else runs meanwhile.
        let busy = redis::Script::new(
            "local t = redis.call('TIME') local until_us = t[1] * 1e6 + t[2] + ARGV[1] * 1000 \
             repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] >= until_us return 1",
        );
        let mut stalls = 0u32;
        for ms in [150u64, 250, 200].iter().cycle() {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(400)) => {}
                _ = &mut stopped => break,
            }
            let _: i64 = busy.arg(*ms).invoke_async(&mut conn).await.expect("stall");
            stalls += 1;
        }
        stalls
    });
    // Each slot given up costs 50 ms of the run: up to three more seconds.
    twelve_workers_on_three_hosts_keep_to_the_slots(&url, "late", Duration::from_millis(7500)).await;
    let _ = stop.send(());
    let stalls = staller.await.expect("staller");
    assert!(stalls >= 5, "Redis was stalled only {stalls} times");
}

/// Three hosts' gates, four workers each, five admissions per worker at
/// 1,200 RPM with a burst of one: every host gets its share, the run takes
/// the time the limit gives (less than `slowest`), and no second holds more
/// than the limit.
async fn twelve_workers_on_three_hosts_keep_to_the_slots(url: &str, namespace: &str, slowest: Duration) {
    // 1,200 RPM = one every 50 ms, a burst of one.
    let settings = settings(Some(1200.0), 0.05);
    let gates = hosts(url, 3, &settings, namespace).await;
    let started = Instant::now();
    // How late this test's own timers fire while it runs: an admission is
    // timed when its task wakes, so a loaded machine bunches the timestamps
    // (not the reservations) by up to that much.
    let (stop_probe, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let lateness = tokio::spawn(async move {
        let mut worst = Duration::ZERO;
        loop {
            let before = Instant::now();
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
                _ = &mut stopped => return worst,
            }
            worst = worst.max(before.elapsed().saturating_sub(Duration::from_millis(10)));
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (h, g) in gates.iter().enumerate() {
        for _ in 0..4 {
            let g = g.clone();
            tasks.spawn(async move {
                let mut sent = Vec::new();
                for _ in 0..5 {
                    let ticket = g.admit(Some("api:443"), 0, std::future::pending()).await.expect("admitted");
                    sent.push(Instant::now());
                    ticket.settle(Some("api:443"), Verdict::Success, &[], 0, Instant::now()).await;
                }
                (h, sent)
            });
        }
    }
    let mut all = Vec::new();
    let mut per_host = [0; 3];
    while let Some(done) = tasks.join_next().await {
        let (h, sent) = done.expect("task");
        per_host[h] += sent.len();
        all.extend(sent);
    }
    all.sort();
    let _ = stop_probe.send(());
    let late = lateness.await.expect("probe");
    assert_eq!(all.len(), 60);
    // 60 admissions at 20/s: about 3 s (the first is free).
    let span = *all.last().expect("some") - started;
    assert!(span >= Duration::from_millis(2900), "faster than the shared limit: {span:?}");
    assert!(span < slowest, "slower than the limit allows: {span:?}");
    // No second anywhere holds more than the limit plus its burst (the
    // second shortened by the timers' worst lateness, which can only have
    // moved admissions closer together).
    let second = Duration::from_secs(1).saturating_sub(late);
    let timeline: Vec<u128> = all.iter().map(|t| (*t - started).as_millis()).collect();
    for (i, first) in all.iter().enumerate() {
        let in_second = all[i..].iter().take_while(|t| **t < *first + second).count();
        assert!(
            in_second <= 21,
            "{in_second} admissions within {second:?} (timers up to {late:?} late); ms from the start: {timeline:?}"
        );
    }
    assert!(per_host.iter().all(|&n| n == 20), "{per_host:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooldown_one_host_reports_pauses_every_host_and_an_echo_does_not_escalate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = redis(&dir).await;
    let settings = settings(None, 1.0);
    let gates = hosts(&server.url(), 3, &settings, "cooldown").await;
    let a = gates[0].admit(Some("api:443"), 0, std::future::pending()).await.expect("open");
    let early = gates[1].admit(Some("api:443"), 0, std::future::pending()).await.expect("open");
    let hint = Some(Duration::from_millis(1500));
    let effect = a
        .settle(Some("api:443"), Verdict::RateLimited { hint, kind: LimitKind::Unknown }, &[], 0, Instant::now())
        .await;
    assert_eq!(effect.rate_limit, Some(RateLimitEffect::Started(Duration::from_millis(1500))));
    let paused = Instant::now();
    // A 429 for a request sent before the pause began: no second pause.
    let echo = early
        .settle(Some("api:443"), Verdict::RateLimited { hint: None, kind: LimitKind::Unknown }, &[], 0, Instant::now())
        .await;
    assert_eq!(echo.rate_limit, Some(RateLimitEffect::Absorbed));
    let mut waits = tokio::task::JoinSet::new();
    for g in &gates[1..] {
        let g = g.clone();
        waits.spawn(async move {
            let t = g.admit(Some("api:443"), 0, std::future::pending()).await.expect("after the pause");
            let at = Instant::now();
            t.settle(Some("api:443"), Verdict::Success, &[], 0, at).await;
            at
        });
    }
    while let Some(at) = waits.join_next().await {
        let waited = at.expect("task") - paused;
        assert!(waited >= Duration::from_millis(1400), "a host sent during another host's cooldown ({waited:?})");
        assert!(waited < Duration::from_millis(3000), "{waited:?}");
    }
    // Other scopes were never paused.
    let other =
        tokio::time::timeout(Duration::from_millis(500), gates[2].admit(Some("other:443"), 0, std::future::pending()));
    assert!(other.await.expect("at once").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_learned_by_one_host_holds_the_others_until_its_reset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = redis(&dir).await;
    let settings = settings(None, 1.0);
    let gates = hosts(&server.url(), 2, &settings, "learned").await;
    let t = gates[0].admit(None, 0, std::future::pending()).await.expect("open");
    let headers = Exchange {
        authority: "api:443".into(),
        status: Some(200),
        signal_headers: vec![
            ("x-ratelimit-remaining-requests".into(), "1".into()),
            ("x-ratelimit-reset-requests".into(), "1s".into()),
        ],
        ..Exchange::default()
    };
    t.settle(Some("api:443"), Verdict::Success, &[headers], 0, Instant::now()).await;
    let learned = Instant::now();
    let one = gates[1].admit(Some("api:443"), 0, std::future::pending()).await.expect("one left");
    let next = gates[0].admit(Some("api:443"), 0, std::future::pending()).await.expect("after the reset");
    assert!(
        learned.elapsed() >= Duration::from_millis(900),
        "the other host ignored the budget: {:?}",
        learned.elapsed()
    );
    drop((one, next));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_nothing_is_admitted_and_the_state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = redis(&dir).await;
    let settings = settings(Some(60.0), 1.0);
    let gates = hosts(&server.url(), 1, &settings, "down").await;
    let g = gates[0].clone();
    g.admit(Some("s"), 0, std::future::pending())
        .await
        .expect("the burst")
        .settle(Some("s"), Verdict::Success, &[], 0, Instant::now())
        .await;
    server.kill();
    let waiting = tokio::spawn({
        let g = g.clone();
        async move {
            let t = g.admit(Some("s"), 0, std::future::pending()).await.expect("admitted once back");
            let at = Instant::now();
            drop(t);
            at
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!waiting.is_finished(), "admitted while Redis was down");
    let back = Instant::now();
    server.restart().await.expect("restarts");
    let at = tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .expect("admitted after the restart")
        .expect("task");
    assert!(at >= back, "admitted before Redis was back");
    // The bucket survived the restart (append-only file): the next slot is
    // still a second after the last.
    let t = g.admit(Some("s"), 0, std::future::pending()).await.expect("admitted");
    assert!(at.elapsed() >= Duration::from_millis(900), "the bucket was lost: {:?}", at.elapsed());
    drop(t);
}

/// Redis's count of script calls so far (`INFO commandstats`).
async fn script_calls(url: &str) -> u64 {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis answers");
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(&mut conn).await.expect("info");
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosts_concurrent_requests_share_round_trips_and_a_429_among_them_still_pauses_every_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = redis(&dir).await;
    let settings = settings(None, 1.0);
    let gates = hosts(&server.url(), 2, &settings, "batched").await;
    let busy = gates[0].clone();
    let before = script_calls(&server.url()).await;
    // 40 workers of one host admitted and answered at once: 39 successes
    // and one 429, their reservations and settles carried by shared ticks.
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..40 {
        let g = busy.clone();
        tasks.spawn(async move {
            let t = g.admit(Some("api:443"), 0, std::future::pending()).await.expect("open");
            let verdict = if w == 17 {
                Verdict::RateLimited { hint: Some(Duration::from_millis(1500)), kind: LimitKind::Unknown }
            } else {
                Verdict::Success
            };
            t.settle(Some("api:443"), verdict, &[], 0, Instant::now()).await.rate_limit
        });
    }
    let mut started = 0;
    while let Some(effect) = tasks.join_next().await {
        if matches!(effect.expect("task"), Some(RateLimitEffect::Started(_))) {
            started += 1;
        }
    }
    let paused = Instant::now();
    assert_eq!(started, 1, "the 429 among the batched answers started one pause");
    let calls = script_calls(&server.url()).await - before;
    assert!(calls < 80, "80 requests took {calls} script calls: nothing was batched");
    // The other host, and this one, wait for the pause.
    for g in &gates {
        let t = g.admit(Some("api:443"), 0, std::future::pending()).await.expect("after the pause");
        let waited = paused.elapsed();
        assert!(waited >= Duration::from_millis(1300), "a host sent during the pause ({waited:?})");
        t.settle(Some("api:443"), Verdict::Success, &[], 0, Instant::now()).await;
    }
}
