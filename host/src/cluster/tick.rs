//! One Redis round trip for everything a host asks at a moment.
//!
//! Every item of a cluster asks Redis three things (its reservation, its
//! journal entry, its settle), and one EVALSHA for each was most of the
//! cluster's CPU: on the host the encoding, the syscalls and the wake-ups
//! of each call; in Redis the script call, its arguments and the same few
//! keys read and written again for every item. Here a request goes out at
//! once when nothing else of this host is on the wire (no hop, no wait: a
//! paced run keeps to its slots); otherwise it waits for the ticker's task,
//! which sends whatever has accumulated as one `tick` script call
//! (`lua/tick.lua`), at most [`IN_FLIGHT_TICKS`] at a time. Nothing waits
//! for a batch to fill. The ticker merges what can be merged: the
//! reservations of one scope, the answers that were not 429s (their token
//! corrections add up, their budgets are learned in order, only the latest
//! success matters for the cooldown level), the journal entries of one
//! claim; Redis reads each key once per tick and writes it back once.
//!
//! What each request means does not change: a worker still waits for its
//! own answer; a journal entry is still durable before its request leaves
//! (Redis fsyncs the tick before it replies); a settle reporting a 429 is
//! in Redis before any reservation that comes after it, and within a tick
//! the answers run before the reservations, so a 429 closes the scope for
//! every host at once. Attempts in flight are counted by the limiter and
//! published once per tick instead of one sorted-set entry per attempt.
//! Each reply ends with Redis's clock as the tick read it; with the tick's
//! round trip it keeps [`ServerClock`] (how a slot on Redis's clock maps to
//! this host's) up to date before any answer is handed out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};

use super::clock::ServerClock;
use super::limiter::COMMON;

/// The most requests one tick carries (a bound on the script's arguments).
const MAX_REQUESTS: usize = 512;

/// How often a host's unchanged, non-zero in-flight count is published
/// again (Redis forgets it after its time to live without news).
const REFRESH: Duration = Duration::from_secs(60);

/// A tick failed: Redis unreachable, timed out, or a reply not understood.
/// Cloned to every request the tick carried, so Redis's error is shared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TickError {
    #[error("Redis did not run the tick: {0}")]
    Redis(#[source] Arc<redis::RedisError>),
    #[error("the Redis ticker stopped")]
    Stopped,
    #[error("{0}")]
    BadReply(String),
}

/// A limiter's settings, sent once per tick for all its requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub prefix: String,
    /// RPM and TPM of the buckets (0: none), already paced.
    pub rpm: f64,
    pub tpm: f64,
    pub burst_secs: f64,
    pub slow_start_attempts: u32,
    pub slow_start_spacing_ms: f64,
    pub horizon_ms: u64,
    pub base_ms: f64,
    pub multiplier: f64,
    pub max_ms: f64,
}

/// How an attempt ended, for the shared limiter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    Success,
    Failed,
    /// A 429, with the server's hint in milliseconds (negative: none).
    RateLimited {
        hint_ms: f64,
    },
}

/// One request for Redis.
#[derive(Debug)]
pub enum Request {
    /// A send slot under `head` for `scope` ("": every known scope).
    Reserve { head: Arc<Head>, scope: Box<str>, tokens: u64 },
    /// Whether a reserved slot still holds.
    Confirm { head: Arc<Head>, scope: Box<str> },
    /// The answer to an attempt sent at `sent_ms`; `budgets` are `(scope,
    /// remaining, reset_ms)` read from its headers.
    Settle {
        head: Arc<Head>,
        scope: Box<str>,
        sent_ms: f64,
        answer: Answer,
        estimated: u64,
        used: u64,
        budgets: Vec<(String, i64, f64)>,
    },
    /// The batch journal under `prefix`: `id` sent (`start`) or answered.
    Journal { prefix: Arc<str>, start: bool, chunk: u32, epoch: u64, id: Box<str> },
}

struct Pending {
    request: Request,
    reply: oneshot::Sender<Result<String, TickError>>,
}

/// A count of attempts in flight, published with the ticks.
#[derive(Debug)]
struct Tracked {
    prefix: String,
    host: String,
    count: Arc<AtomicU64>,
    ttl_ms: u64,
    published: u64,
    at: Option<Instant>,
}

/// The batching task of one connection (share it as an `Arc`).
pub struct Ticker {
    tx: mpsc::UnboundedSender<Pending>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Pending>>>,
    shared: Arc<Shared>,
}

/// What the ticker's task and the callers that send directly share.
struct Shared {
    conn: ConnectionManager,
    script: redis::Script,
    tracked: Mutex<Vec<Tracked>>,
    /// Ticks on the wire now.
    on_wire: AtomicUsize,
    /// Redis's clock as the ticks' round trips saw it.
    clock: ServerClock,
}

impl std::fmt::Debug for Ticker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticker").finish_non_exhaustive()
    }
}

/// Counts a tick on the wire until dropped (a caller may give up waiting).
struct OnWire<'a>(&'a AtomicUsize);

impl Drop for OnWire<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ticker {
    /// A ticker over `conn`; its task starts with the first request.
    pub fn new(conn: ConnectionManager) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let script = redis::Script::new(&format!("{COMMON}\n{}", include_str!("lua/tick.lua")));
        let shared = Arc::new(Shared {
            conn,
            script,
            tracked: Mutex::default(),
            on_wire: AtomicUsize::new(0),
            clock: ServerClock::default(),
        });
        Arc::new(Ticker { tx, rx: Mutex::new(Some(rx)), shared })
    }

    /// Publishes `count` (this host's attempts in flight under `prefix`, as
    /// `host`) with the ticks; Redis forgets it `ttl` after the last one.
    pub fn track(&self, prefix: &str, host: &str, count: Arc<AtomicU64>, ttl: Duration) {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let tracked = Tracked { prefix: prefix.into(), host: host.into(), count, ttl_ms, published: 0, at: None };
        self.shared.tracked.lock().unwrap_or_else(PoisonError::into_inner).push(tracked);
    }

    /// Redis's clock, as this ticker's round trips saw it: an answer's
    /// times on it are mapped to this host's before the answer is handed
    /// out.
    pub fn clock(&self) -> &ServerClock {
        &self.shared.clock
    }

    /// Sends `request` with the next tick and waits for its answer. With
    /// nothing on the wire it goes at once, from this task: a host that is
    /// not busy (a paced run) pays no hop through the ticker's task, and
    /// its sends keep to their slots.
    pub async fn call(&self, request: Request) -> Result<String, TickError> {
        self.dispatch(request, false).await
    }

    /// Sends `request` at once, in a tick of its own, whatever else is on
    /// the wire: for the confirmation of a reserved slot, which a worker
    /// asks for at its slot and whose wait would delay its send.
    pub async fn call_now(&self, request: Request) -> Result<String, TickError> {
        self.dispatch(request, true).await
    }

    async fn dispatch(&self, request: Request, now: bool) -> Result<String, TickError> {
        let stopped = || TickError::Stopped;
        let (reply, answer) = oneshot::channel();
        let pending = Pending { request, reply };
        let direct = now || self.shared.on_wire.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst).is_ok();
        if direct {
            if now {
                self.shared.on_wire.fetch_add(1, Ordering::SeqCst);
            }
            let guard = OnWire(&self.shared.on_wire);
            send(&self.shared, vec![pending]).await;
            drop(guard);
        } else {
            self.start();
            self.tx.send(pending).map_err(|_| stopped())?;
        }
        answer.await.map_err(|_| stopped())?
    }

    fn start(&self) {
        let Some(rx) = self.rx.lock().unwrap_or_else(PoisonError::into_inner).take() else { return };
        tokio::spawn(run(self.shared.clone(), rx));
    }
}

/// How many ticks the ticker's task keeps on the wire at once. One would
/// batch the most, but then a request that comes while a tick is out
/// waits for its answer (an fsync of Redis's append-only file) before it
/// even leaves, and a worker sleeping until its slot would send that much
/// later than its slot.
const IN_FLIGHT_TICKS: usize = 2;

/// Sends ticks while requests come; ends when the ticker is dropped.
async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    use futures_util::StreamExt as _;
    let mut out = futures_util::stream::FuturesUnordered::new();
    loop {
        let first = tokio::select! {
            first = rx.recv(), if out.len() < IN_FLIGHT_TICKS => match first {
                Some(first) => first,
                None => break,
            },
            Some(()) = out.next(), if !out.is_empty() => continue,
        };
        let mut batch = Vec::with_capacity(64);
        batch.push(first);
        while batch.len() < MAX_REQUESTS {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        shared.on_wire.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        out.push(async move {
            let _guard = OnWire(&shared.on_wire);
            send(&shared, batch).await;
        });
    }
    while out.next().await.is_some() {}
}

/// Sends one tick and hands out its answers.
async fn send(shared: &Shared, batch: Vec<Pending>) {
    let mut conn = shared.conn.clone();
    let flights = flight_ops(&shared.tracked);
    let tick = Tick::build(&flights, &batch);
    let mut invocation = shared.script.prepare_invoke();
    invocation.arg(&tick.args);
    let sent = tokio::time::Instant::now();
    let replies = match invocation.invoke_async::<Vec<String>>(&mut conn).await {
        Ok(mut replies) if replies.len() == tick.ops + 1 => {
            let received = tokio::time::Instant::now();
            match replies.pop().and_then(|now| now.parse::<f64>().ok()) {
                Some(server_ms) => {
                    shared.clock.observe(sent, received, server_ms);
                    Ok(replies)
                }
                None => Err(TickError::BadReply("the tick script's reply did not end with its clock".into())),
            }
        }
        Ok(replies) => Err(TickError::BadReply(format!(
            "the tick script answered {} replies to {} ops and its clock",
            replies.len(),
            tick.ops
        ))),
        Err(e) => Err(TickError::Redis(Arc::new(e))),
    };
    if replies.is_ok() {
        published(&shared.tracked, &flights);
    }
    tick.answer(batch.into_iter(), replies);
}

/// The ops of one tick: the script's arguments, and for each request the
/// op that carries it (and, in a merged reservation, its place).
struct Tick {
    args: Vec<Vec<u8>>,
    ops: usize,
    /// Per request: its op, and its place among a reservation op's answers.
    routes: Vec<(usize, Option<usize>)>,
}

/// An op being built: its code and arguments.
struct OpBuf {
    code: &'static str,
    args: Vec<Vec<u8>>,
}

impl OpBuf {
    fn new(code: &'static str) -> Self {
        OpBuf { code, args: Vec::with_capacity(8) }
    }

    fn arg(&mut self, value: impl redis::ToRedisArgs) -> &mut Self {
        value.write_redis_args(&mut self.args);
        self
    }
}

/// What a merged op still needs once every request is in.
enum Merge {
    /// Successes and failures of one scope: how many succeeded, the latest
    /// send time of a success, the tokens to correct by, the budgets.
    Settle { n_ok: u64, latest_ok: f64, delta: i64, budgets: Vec<(String, i64, f64)> },
    /// Reservations of one scope: their token costs.
    Reserve { tokens: Vec<u64> },
    /// Journal entries of one claim.
    Journal { ids: Vec<Box<str>> },
    /// Complete already.
    Done,
}

impl Tick {
    fn build(flights: &[(usize, OpBuf, u64)], batch: &[Pending]) -> Tick {
        let mut ops: Vec<(OpBuf, Merge)> = Vec::new();
        for (_, op, _) in flights {
            ops.push((OpBuf { code: op.code, args: op.args.clone() }, Merge::Done));
        }
        // Heads, by identity: their op's number counts from 1.
        let mut heads: Vec<(*const Head, usize)> = Vec::new();
        let mut head_of = |ops: &mut Vec<(OpBuf, Merge)>, head: &Arc<Head>| -> usize {
            let ptr = Arc::as_ptr(head);
            if let Some((_, n)) = heads.iter().find(|(p, _)| *p == ptr) {
                return *n;
            }
            let n = heads.len() + 1;
            heads.push((ptr, n));
            let mut op = OpBuf::new("H");
            op.arg(head.prefix.as_str())
                .arg(head.rpm)
                .arg(head.tpm)
                .arg(head.burst_secs)
                .arg(head.slow_start_attempts)
                .arg(head.slow_start_spacing_ms)
                .arg(head.horizon_ms)
                .arg(head.base_ms)
                .arg(head.multiplier)
                .arg(head.max_ms);
            ops.push((op, Merge::Done));
            n
        };
        let mut merged: HashMap<(char, usize, &str, u64, u64), usize> = HashMap::new();
        let mut routes = Vec::with_capacity(batch.len());
        for pending in batch {
            match &pending.request {
                Request::Reserve { head, scope, tokens } => {
                    let h = head_of(&mut ops, head);
                    let at = *merged.entry(('R', h, scope, 0, 0)).or_insert_with(|| {
                        let mut op = OpBuf::new("R");
                        op.arg(h).arg(&**scope);
                        ops.push((op, Merge::Reserve { tokens: Vec::new() }));
                        ops.len() - 1
                    });
                    let place = match ops.get_mut(at) {
                        Some((_, Merge::Reserve { tokens: all })) => {
                            all.push(*tokens);
                            Some(all.len() - 1)
                        }
                        _ => None,
                    };
                    routes.push((at, place));
                }
                Request::Confirm { head, scope } => {
                    let h = head_of(&mut ops, head);
                    let mut op = OpBuf::new("C");
                    op.arg(h).arg(&**scope);
                    ops.push((op, Merge::Done));
                    routes.push((ops.len() - 1, None));
                }
                Request::Settle { head, scope, sent_ms, answer, estimated, used, budgets } => {
                    let h = head_of(&mut ops, head);
                    let delta = i64::try_from(*used)
                        .unwrap_or(i64::MAX)
                        .saturating_sub(i64::try_from(*estimated).unwrap_or(i64::MAX));
                    match answer {
                        Answer::RateLimited { hint_ms } => {
                            let mut op = OpBuf::new("X");
                            op.arg(h)
                                .arg(&**scope)
                                .arg(format!("{sent_ms:.3}"))
                                .arg(*hint_ms)
                                .arg(*estimated)
                                .arg(*used);
                            push_budgets(&mut op, budgets);
                            ops.push((op, Merge::Done));
                            routes.push((ops.len() - 1, None));
                        }
                        Answer::Success | Answer::Failed => {
                            let at = *merged.entry(('S', h, scope, 0, 0)).or_insert_with(|| {
                                let mut op = OpBuf::new("S");
                                op.arg(h).arg(&**scope);
                                let merge = Merge::Settle { n_ok: 0, latest_ok: -1.0, delta: 0, budgets: Vec::new() };
                                ops.push((op, merge));
                                ops.len() - 1
                            });
                            if let Some((_, Merge::Settle { n_ok, latest_ok, delta: all, budgets: learned })) =
                                ops.get_mut(at)
                            {
                                if *answer == Answer::Success {
                                    *n_ok += 1;
                                    *latest_ok = latest_ok.max(*sent_ms);
                                }
                                *all = all.saturating_add(delta);
                                learned.extend(budgets.iter().cloned());
                            }
                            routes.push((at, None));
                        }
                    }
                }
                Request::Journal { prefix, start, chunk, epoch, id } => {
                    let key = ('J', usize::from(*start), &**prefix, u64::from(*chunk), *epoch);
                    let at = *merged.entry(key).or_insert_with(|| {
                        let mut op = OpBuf::new("J");
                        op.arg(&**prefix).arg(if *start { "start" } else { "settle" }).arg(*chunk).arg(*epoch);
                        ops.push((op, Merge::Journal { ids: Vec::new() }));
                        ops.len() - 1
                    });
                    if let Some((_, Merge::Journal { ids })) = ops.get_mut(at) {
                        ids.push(id.clone());
                    }
                    routes.push((at, None));
                }
            }
        }
        let mut args = Vec::with_capacity(ops.len() * 8 + batch.len());
        let count = ops.len();
        for (mut op, merge) in ops {
            match merge {
                Merge::Settle { n_ok, latest_ok, delta, budgets } => {
                    op.arg(n_ok).arg(format!("{latest_ok:.3}")).arg(delta);
                    push_budgets(&mut op, &budgets);
                }
                Merge::Reserve { tokens } => {
                    op.arg(tokens.len()).arg(tokens);
                }
                Merge::Journal { ids } => {
                    op.arg(ids.len());
                    for id in &ids {
                        op.arg(&**id);
                    }
                }
                Merge::Done => {}
            }
            args.push(op.code.as_bytes().to_vec());
            args.push(op.args.len().to_string().into_bytes());
            args.extend(op.args);
        }
        Tick { args, ops: count, routes }
    }

    /// Hands each request its answer.
    fn answer(&self, batch: impl Iterator<Item = Pending>, replies: Result<Vec<String>, TickError>) {
        let replies = match replies {
            Ok(replies) => replies,
            Err(e) => {
                for pending in batch {
                    let _ = pending.reply.send(Err(e.clone()));
                }
                return;
            }
        };
        // A merged reservation's answers, split once.
        let mut split: HashMap<usize, Vec<&str>> = HashMap::new();
        for (pending, (op, place)) in batch.zip(&self.routes) {
            let reply = replies.get(*op).map(String::as_str).unwrap_or_default();
            let answer = match place {
                Some(i) => {
                    let parts = split.entry(*op).or_insert_with(|| reply.split(' ').collect());
                    parts.get(*i).map(|s| s.replace(',', " ")).ok_or_else(|| {
                        TickError::BadReply(format!("the tick script gave no answer to reservation {i}: {reply:?}"))
                    })
                }
                None => Ok(reply.to_string()),
            };
            let _ = pending.reply.send(answer);
        }
    }
}

fn push_budgets(op: &mut OpBuf, budgets: &[(String, i64, f64)]) {
    op.arg(budgets.len());
    for (scope, remaining, reset_ms) in budgets {
        op.arg(scope.as_str()).arg(*remaining).arg(*reset_ms);
    }
}

/// The in-flight counts that changed (or are due again), as `F` ops: the
/// index of each in `tracked` (which only grows) and the value it publishes.
fn flight_ops(tracked: &Mutex<Vec<Tracked>>) -> Vec<(usize, OpBuf, u64)> {
    let tracked = tracked.lock().unwrap_or_else(PoisonError::into_inner);
    tracked
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let count = t.count.load(Ordering::Relaxed);
            let due = count > 0 && t.at.is_none_or(|at| at.elapsed() >= REFRESH);
            (count != t.published || due).then(|| {
                let mut op = OpBuf::new("F");
                op.arg(t.prefix.as_str()).arg(t.host.as_str()).arg(count).arg(t.ttl_ms);
                (i, op, count)
            })
        })
        .collect()
}

/// Notes the counts a tick published.
fn published(tracked: &Mutex<Vec<Tracked>>, flights: &[(usize, OpBuf, u64)]) {
    if flights.is_empty() {
        return;
    }
    let mut tracked = tracked.lock().unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    for (i, _, count) in flights {
        if let Some(t) = tracked.get_mut(*i) {
            t.published = *count;
            t.at = Some(now);
        }
    }
}
