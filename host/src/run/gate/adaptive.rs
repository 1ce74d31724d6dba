//! Learning a limit the provider does not announce.
//!
//! Many providers send no rate-limit headers (Gemini, gateways, self-hosted
//! servers behind a proxy) and answer a bare 429, often with a fixed
//! `retry-after: 1` whatever the real window is. Backing off on each 429
//! then either hammers the provider or idles for a minute. Instead the host
//! learns the limit from what the provider *does*:
//!
//! 1. **Open.** Nothing is known: sends go as fast as the run allows, and
//!    every send is remembered (time, token charge, answer).
//! 2. **Searching.** A 429, confirmed by a second one for a send made after
//!    the first was answered, within two minutes (one 429 alone may be a
//!    hiccup: an overloaded server, a per-request quirk), tells the capacity: the requests (and
//!    tokens) the provider accepted before refusing, `R`. The window `W` is
//!    still unknown, and the server's `retry-after` may not be true, so the
//!    host probes it: capacity frees when the oldest accepted request leaves
//!    the window, so one probe goes at `oldest + W` for the candidate
//!    windows 1, 2, 5, 10, 15, 20, 30, 60, 90, 120 s in turn (limits are
//!    counted over round periods), each candidate costing at most one 429.
//! 3. **Pacing.** The first probe that succeeds fixes `W`. From then on the
//!    host mirrors the provider's own count: a send may go only while fewer
//!    than `R` accepted (or pending) sends, and fewer than `T` tokens, lie
//!    in the last `W` plus a small margin. A sliding-window provider then
//!    never refuses, and a fixed-window one neither (every fixed window is a
//!    sliding one).
//!
//! A provider that announces its limit in headers is learned faster: its
//! `remaining` reaching zero marks the moment the window is full (no 429
//! needed), its `limit` is the capacity, and the time its `reset` names,
//! counted from the send that exhausted the window, is the first window
//! tried. Until then the header budget paces ([`super::learned`]); from
//! then on the mirror does, so the next window's capacity is used as it
//! frees instead of after the window is completely empty.
//!
//! The estimate follows the provider: a 429 while pacing sets `R` to what
//! the provider accepted in that window (capacity dropped), and after two
//! clean windows in which the estimate was the binding limit `R` grows, by
//! a quarter back towards the best capacity seen, by a twentieth beyond it,
//! so a raised limit is found again. A scope whose answers carry limit
//! headers is governed by them instead ([`super::learned`]), and the
//! user's `--rpm`/`--tpm` stay a ceiling on top.
//!
//! Pure state: time comes in as an argument.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::run::policy::later;

/// Windows tried, in order, when the provider does not say its window.
const CANDIDATE_WINDOWS: [u64; 10] = [1, 2, 5, 10, 15, 20, 30, 60, 90, 120];

/// How long one refusal keeps a scope suspect: a second refusal within it
/// confirms a limit. Successes in between do not clear it, since a provider
/// telling the truth in `retry-after` (Gemini's `RetryInfo`) has room again
/// right after the wait it named, and the next burst is refused again.
const SUSPICION_FADES: Duration = Duration::from_secs(120);

/// The longest send history kept (a window longer than this is not learned).
const MAX_HISTORY: Duration = Duration::from_secs(130);

/// Sends remembered at most (a run sending faster than this per window is
/// not limited in any way this module could learn).
const MAX_SENDS: usize = 1 << 20;

/// What the provider accepted in one window, as learned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Requests per window.
    pub requests: Option<f64>,
    /// Tokens per window.
    pub tokens: Option<f64>,
    /// The window, once found.
    pub window: Option<Duration>,
}

/// Which limit a refusal named, when it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Requests,
    Tokens,
    Unknown,
}

impl LimitKind {
    /// Reads a refusal's message: "tokens" without "request", or the reverse.
    pub fn from_message(message: &str) -> Self {
        let m = message.to_ascii_lowercase();
        match (m.contains("token"), m.contains("request")) {
            (true, false) => LimitKind::Tokens,
            (false, true) => LimitKind::Requests,
            _ => LimitKind::Unknown,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Pending,
    Accepted,
    Refused,
}

#[derive(Debug, Clone, Copy)]
struct Send {
    at: Instant,
    tokens: u64,
    answer: Answer,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Open,
    /// One refusal was seen (for a send at `hit`, answered at `since`): a
    /// capacity limit if a send made after it is refused too; a passing
    /// hiccup (a marker, an overload answered 429) if one succeeds.
    Suspect {
        hit: Instant,
        since: Instant,
    },
    /// Looking for the window: the limit was hit by a send at `hit`.
    Searching {
        hit: Instant,
        candidate: usize,
        /// The probe on the wire, by sequence number.
        probe: Option<u64>,
    },
    Pacing,
}

/// A limit guessed from one refusal whose wait named when room comes back
/// (`since + wait - oldest send` is the window, what was accepted until the
/// refusal the capacity): paced to while the refusal is only suspected, so
/// the window it let refill is not overrun by every worker at once.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tentative {
    window: Duration,
    requests: Option<f64>,
    tokens: Option<f64>,
}

/// The learned limit of one scope.
#[derive(Debug, Clone)]
pub(super) struct Adaptive {
    sends: VecDeque<Send>,
    /// Sequence number of `sends[0]`.
    first_seq: u64,
    phase: Phase,
    requests: Option<f64>,
    tokens: Option<f64>,
    kind: LimitKind,
    /// The capacity the provider announced, which wins over a count.
    announced: Option<f64>,
    window: Option<Duration>,
    /// The best request capacity that ran clean.
    peak: f64,
    /// While searching: the sends up to this moment are the capacity (the
    /// search's `hit` may be a later refill of the window).
    capacity_at: Option<Instant>,
    /// While suspect: the limit the refusal's wait suggests.
    tentative: Option<Tentative>,
    /// The last step beyond `peak`: when it was made and the estimate
    /// before it, restored if the provider refuses the step.
    step_beyond: Option<(Instant, Option<f64>, Option<f64>)>,
    /// Clean windows, in threes, to wait before the next step beyond the
    /// peak: doubles each time a step is refused (the limit did not move),
    /// back to one when a step runs clean.
    step_holdoff: u32,
    /// When the estimate last went down (429s for earlier sends are echoes).
    lowered_at: Option<Instant>,
    /// When the estimate last changed, and whether it bound since.
    changed_at: Option<Instant>,
    bound: bool,
}

impl Default for Adaptive {
    fn default() -> Self {
        Adaptive {
            sends: VecDeque::new(),
            first_seq: 0,
            phase: Phase::Open,
            requests: None,
            tokens: None,
            kind: LimitKind::Unknown,
            announced: None,
            window: None,
            peak: 0.0,
            capacity_at: None,
            tentative: None,
            step_beyond: None,
            step_holdoff: 1,
            lowered_at: None,
            changed_at: None,
            bound: false,
        }
    }
}

fn candidate_window(index: usize) -> Duration {
    Duration::from_secs(CANDIDATE_WINDOWS.get(index).or(CANDIDATE_WINDOWS.last()).copied().unwrap_or(60))
}

/// The margin added to a learned window: clocks and the network are not exact.
fn margin(window: Duration) -> Duration {
    (window / 50).max(Duration::from_millis(20))
}

/// Time until a send costing `tokens` fits a mirror of the provider's
/// count: fewer than `requests` sends, and `capacity_tokens` tokens, not
/// refused in the last `window` plus its margin.
fn mirror_wait(
    sends: &VecDeque<Send>,
    requests: Option<f64>,
    capacity_tokens: Option<f64>,
    window: Duration,
    tokens: u64,
    now: Instant,
) -> Duration {
    let span = window + margin(window);
    let counted = sends.iter().filter(|s| s.answer != Answer::Refused && now < later(s.at, span));
    let (mut count, mut used) = (0.0f64, 0.0f64);
    let mut oldest = None;
    for s in counted {
        count += 1.0;
        used += s.tokens as f64;
        oldest.get_or_insert(s.at);
    }
    let full_requests = requests.is_some_and(|r| count + 1.0 > r.max(1.0));
    // A send larger than the whole token window goes alone.
    let full_tokens = capacity_tokens.is_some_and(|t| count > 0.0 && used + tokens as f64 > t);
    if !(full_requests || full_tokens) {
        return Duration::ZERO;
    }
    // The earliest counted send leaving the window makes room.
    oldest.map_or(Duration::ZERO, |at| later(at, span).saturating_duration_since(now).max(Duration::from_millis(1)))
}

impl Adaptive {
    /// The current estimate (for events, progress and metrics).
    pub(super) fn estimate(&self) -> Estimate {
        match (self.phase, self.tentative) {
            (Phase::Suspect { .. }, Some(t)) => {
                Estimate { requests: t.requests, tokens: t.tokens, window: Some(t.window) }
            }
            _ => Estimate { requests: self.requests, tokens: self.tokens, window: self.window },
        }
    }

    /// Time until a send costing `tokens` may go (zero: now).
    pub(super) fn wait(&mut self, tokens: u64, now: Instant) -> Duration {
        self.prune(now);
        match self.phase {
            Phase::Open => Duration::ZERO,
            Phase::Suspect { .. } => match self.tentative {
                Some(t) => mirror_wait(&self.sends, t.requests, t.tokens, t.window, tokens, now),
                None => Duration::ZERO,
            },
            Phase::Searching { probe: Some(_), .. } => {
                // One probe at a time; the others wait for its answer.
                self.bound = true;
                Duration::from_secs(1)
            }
            Phase::Searching { hit, candidate, probe: None } => {
                // If the window were this candidate, the provider makes room
                // when the oldest send it counted at the refusal leaves.
                let window = candidate_window(candidate);
                // With none accepted by then (the refused send left first,
                // the successes racing it were sent after it), from the
                // refusal itself: a fixed time, never one that moves with
                // `now` (that put the probe a window away at every look,
                // and the run never sent again).
                let oldest = self.oldest_accepted_after(hit.checked_sub(window), hit).unwrap_or(hit);
                later(later(oldest, window), margin(window)).saturating_duration_since(now)
            }
            Phase::Pacing => {
                let wait = self.pacing_wait(tokens, now);
                if !wait.is_zero() {
                    self.bound = true;
                }
                wait
            }
        }
    }

    fn pacing_wait(&self, tokens: u64, now: Instant) -> Duration {
        let Some(window) = self.window else { return Duration::ZERO };
        mirror_wait(&self.sends, self.requests, self.tokens, window, tokens, now)
    }

    /// Records a send admitted at `now`; returns its sequence number.
    pub(super) fn admit(&mut self, tokens: u64, now: Instant) -> u64 {
        if self.sends.len() >= MAX_SENDS {
            self.sends.pop_front();
            self.first_seq += 1;
        }
        let seq = self.first_seq + self.sends.len() as u64;
        self.sends.push_back(Send { at: now, tokens, answer: Answer::Pending });
        if let Phase::Searching { probe: probe @ None, .. } = &mut self.phase {
            *probe = Some(seq);
        }
        seq
    }

    fn get(&mut self, seq: u64) -> Option<&mut Send> {
        let index = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.sends.get_mut(index)
    }

    /// The oldest accepted send after `from` and up to `until`.
    fn oldest_accepted_after(&self, from: Option<Instant>, until: Instant) -> Option<Instant> {
        self.sends
            .iter()
            .find(|s| s.answer == Answer::Accepted && s.at <= until && from.is_none_or(|f| s.at > f))
            .map(|s| s.at)
    }

    /// The widest candidate window, from `candidate` on, that a probe sent
    /// at `probe` and accepted allows: the provider had room for it, so the
    /// sends accepted in the window before it (less a margin for the
    /// network's jitter) were fewer than the capacity. A probe held back (a
    /// cooldown that outlasted the candidate's time) proves more than its
    /// candidate: taking the candidate then paced a 2 s window as if it
    /// were 1 s, a 429 a second. Counting the sends, not timing the oldest
    /// one before the refusal, keeps a window refilled after the refusal in
    /// view: timing alone took a 10 s window for 15 s.
    fn widest_proven(&self, candidate: usize, probe: Instant) -> usize {
        (candidate..CANDIDATE_WINDOWS.len())
            .take_while(|&c| {
                let window = candidate_window(c);
                let from = probe.checked_sub(window.saturating_sub(margin(window)));
                let (n, t) =
                    self.tally(|s| s.answer == Answer::Accepted && s.at < probe && from.is_none_or(|f| s.at > f));
                // Clearly below: our count of a full window can be a send
                // or two short of the provider's (a refusal racing the
                // window's edge), and 599 of 600 proved a 20 s window.
                c == candidate || (self.requests.is_none_or(|r| n < 0.9 * r) && self.tokens.is_none_or(|x| t < 0.9 * x))
            })
            .last()
            .unwrap_or(candidate)
    }

    /// Whether a sliding window of `window` explains what was seen: every
    /// accepted send found at most as many accepted sends in the window
    /// before it (itself included) as the refusal at `hit` found. The
    /// refusal's count includes the sends not answered yet (the provider
    /// may have counted them): answers race, and a burst whose successes
    /// were still on the way ruled out the true window.
    fn consistent(&self, window: Duration, hit: Instant) -> bool {
        let accepted: Vec<Instant> =
            self.sends.iter().filter(|s| s.answer == Answer::Accepted && s.at <= hit).map(|s| s.at).collect();
        let from = hit.checked_sub(window);
        let at_hit = self
            .sends
            .iter()
            .filter(|s| s.answer != Answer::Refused && s.at <= hit && from.is_none_or(|f| s.at > f))
            .count();
        let mut first = 0;
        for (j, &t) in accepted.iter().enumerate() {
            while accepted.get(first).is_some_and(|&o| t.checked_sub(window).is_some_and(|f| o <= f)) {
                first += 1;
            }
            // A send or two either way is the network's jitter, not proof.
            if j + 1 - first > at_hit + at_hit / 20 + 1 {
                return false;
            }
        }
        true
    }

    /// The first candidate window from `from` on that explains what was seen.
    fn next_candidate(&self, from: usize, hit: Instant) -> usize {
        (from..CANDIDATE_WINDOWS.len())
            .find(|&c| self.consistent(candidate_window(c), hit))
            .unwrap_or(CANDIDATE_WINDOWS.len() - 1)
    }

    /// The sends `keep` picks, counted, and their tokens.
    fn tally(&self, keep: impl Fn(&Send) -> bool) -> (f64, f64) {
        self.sends.iter().filter(|s| keep(s)).fold((0.0, 0.0), |(n, t), s| (n + 1.0, t + s.tokens as f64))
    }

    /// Accepted sends up to `until` (within the history), and their tokens.
    fn accepted_until(&self, until: Instant) -> (f64, f64) {
        self.tally(|s| s.answer == Answer::Accepted && s.at <= until)
    }

    /// Sends made after `from` and up to `until` and not refused (accepted,
    /// or not answered yet), and their tokens.
    fn counted_between(&self, from: Instant, until: Instant) -> (f64, f64) {
        self.tally(|s| s.answer != Answer::Refused && s.at > from && s.at <= until)
    }

    /// Accepted sends in the window that ends at `until`.
    fn accepted_in_window(&self, window: Duration, until: Instant) -> (f64, f64) {
        let from = until.checked_sub(window);
        self.tally(|s| s.answer == Answer::Accepted && s.at <= until && from.is_none_or(|f| s.at > f))
    }

    /// A send was answered without a rate limit (the provider counted it).
    /// Returns whether the estimate changed.
    pub(super) fn on_accepted(&mut self, seq: u64, now: Instant) -> bool {
        let Some(send) = self.get(seq) else { return false };
        send.answer = Answer::Accepted;
        let sent = send.at;
        match self.phase {
            Phase::Suspect { since, .. }
                if sent >= since && now.saturating_duration_since(since) >= SUSPICION_FADES =>
            {
                // Sends long after the refusal go through: it was a hiccup.
                self.phase = Phase::Open;
                self.tentative.take().is_some()
            }
            Phase::Suspect { since, .. } => {
                // A late success sent before the refusal adds to the
                // capacity the refusal's wait suggested (answers race: at
                // the refusal, part of the window's successes were still on
                // the way, and a capacity short of them spilled a run's last
                // items into one more window).
                let Some(t) = self.tentative.filter(|_| sent <= since) else { return false };
                let (n, tokens) = self.accepted_until(since);
                self.tentative = Some(Tentative {
                    requests: t.requests.map(|_| n.max(1.0)),
                    tokens: t.tokens.map(|_| tokens.max(1.0)),
                    ..t
                });
                self.tentative != Some(t)
            }
            Phase::Searching { hit, candidate, probe: Some(p) } if p == seq => {
                // An announced limit's reset named the window; the probe
                // waited for the header budget's reset (a window after the
                // last send of the burst), so its lateness proves nothing.
                let window = if self.announced.is_some() { candidate } else { self.widest_proven(candidate, sent) };
                tracing::debug!(candidate = ?candidate_window(candidate), window = ?candidate_window(window), "window probe accepted");
                self.window = Some(candidate_window(window));
                self.set_capacity(hit, true);
                self.peak = self.requests.unwrap_or(0.0);
                self.phase = Phase::Pacing;
                self.changed_at = Some(now);
                self.bound = false;
                true
            }
            Phase::Searching { hit, .. } => {
                // A late success sent before the limit was hit adds to the
                // capacity (counted up to the first refusal, not a refill).
                self.set_capacity(self.capacity_at.unwrap_or(hit), false);
                false
            }

            Phase::Pacing => self.maybe_grow(now),
            Phase::Open => false,
        }
    }

    /// Whether the learned limit governs the scope (found or being found).
    pub(super) fn is_active(&self) -> bool {
        matches!(self.phase, Phase::Searching { .. } | Phase::Pacing)
    }

    /// Whether a refusal now is answered by the learned limit itself, so no
    /// cooldown is needed on top: a search holds every send but its probe,
    /// and pacing a limit learned from refusals lowers it to what the
    /// provider accepted. Pacing an announced limit does neither (a refusal
    /// there is another client on the same key, or a race with the count),
    /// so the cooldown and its `retry-after` still pause the scope; without
    /// them a retry would find the mirror's room at once and be refused
    /// again, and again.
    pub(super) fn answers_refusals(&self) -> bool {
        match self.phase {
            Phase::Searching { .. } => true,
            Phase::Pacing => self.announced.is_none(),
            Phase::Open | Phase::Suspect { .. } => false,
        }
    }

    /// The provider's headers say the window is full after the send made at
    /// `sent`; `limit` is the capacity they announce, `reset_at` when they
    /// say it is restored. Returns whether the estimate changed.
    pub(super) fn on_exhausted(&mut self, sent: Instant, limit: Option<u64>, reset_at: Instant, now: Instant) -> bool {
        // Headers are better evidence than 429s: they replace a suspicion
        // or a search that 429s started (a search without the announced
        // window waits for late probes and can settle on a window several
        // times too wide), but not a limit already being paced.
        let searching_blind = matches!(self.phase, Phase::Searching { .. }) && self.announced.is_none();
        if !(matches!(self.phase, Phase::Open | Phase::Suspect { .. }) || searching_blind) {
            return false;
        }
        self.kind = LimitKind::Requests;
        self.announced = limit.map(|l| l as f64);
        // The reset counted from the exhausting send: the window, for a
        // provider counting over a sliding window, plus the answer's way
        // back; the nearest candidate not far below it is tried first.
        let hint = reset_at.saturating_duration_since(sent).as_secs_f64();
        let first = CANDIDATE_WINDOWS
            .iter()
            .enumerate()
            .filter(|&(_, &w)| w as f64 >= hint * 0.9)
            .min_by(|a, b| (*a.1 as f64 - hint).abs().total_cmp(&(*b.1 as f64 - hint).abs()))
            .map_or(0, |(i, _)| i);
        self.phase = Phase::Searching { hit: sent, candidate: self.next_candidate(first, sent), probe: None };
        self.capacity_at = Some(sent);
        self.tentative = None;
        self.set_capacity(sent, false);
        self.changed_at = Some(now);
        true
    }

    /// Capacity = what was accepted before the limit was hit at `hit`.
    fn set_capacity(&mut self, hit: Instant, in_window: bool) {
        if let Some(announced) = self.announced {
            self.requests = Some(announced.max(1.0));
            return;
        }
        let (n, t) = match (in_window, self.window) {
            (true, Some(w)) => self.accepted_in_window(w + margin(w), hit),
            _ => self.accepted_until(hit),
        };
        let n = n.max(1.0);
        match self.kind {
            LimitKind::Requests => self.requests = Some(n),
            LimitKind::Tokens => self.tokens = Some(t.max(1.0)),
            LimitKind::Unknown => {
                self.requests = Some(n);
                self.tokens = Some(t.max(1.0));
            }
        }
    }

    fn maybe_grow(&mut self, now: Instant) -> bool {
        let (Some(window), Some(changed), Some(r)) = (self.window, self.changed_at, self.requests) else {
            return false;
        };
        // Back up towards a capacity that ran clean before after one clean
        // window; beyond it, a small step after three: a step that finds the
        // limit unchanged costs a few refusals, so it is made rarely.
        let recovering = r < self.peak;
        // A step beyond the peak that is still unrefused has run clean
        // since it was made: the next one comes at the usual pace.
        let holdoff = if self.step_beyond.is_some() { 1 } else { self.step_holdoff };
        let clean = if recovering { window } else { window * 3 * holdoff };
        // Never above a limit the provider announces.
        let capped = self.announced.is_some_and(|a| r >= a);
        if !self.bound || capped || now < later(changed, clean) {
            return false;
        }
        let grow = |x: f64, ceiling: f64| {
            if x < ceiling { (x * 1.25).min(ceiling) } else { x + (x / 50.0).max(1.0) }
        };
        let per_request = self.tokens.map(|t| t / r.max(1.0));
        if self.step_beyond.take().is_some() {
            // The last step beyond the peak ran clean: the limit was raised.
            self.step_holdoff = 1;
        }
        self.peak = self.peak.max(r);
        if r >= self.peak {
            self.step_beyond = Some((now, self.requests, self.tokens));
        }
        let grown = grow(r, self.peak);
        self.requests = Some(self.announced.map_or(grown, |a| grown.min(a)));
        if let (Some(t), Some(ratio)) = (self.tokens, per_request) {
            self.tokens = Some(grow(t, self.peak * ratio));
        }
        self.changed_at = Some(now);
        self.bound = false;
        true
    }

    /// A send was refused with a rate limit; `kind` is what the refusal
    /// named. Returns whether the estimate changed.
    pub(super) fn on_refused(&mut self, seq: u64, kind: LimitKind, now: Instant) -> bool {
        let Some(send) = self.get(seq) else { return false };
        send.answer = Answer::Refused;
        let sent = send.at;
        if kind != LimitKind::Unknown {
            self.kind = kind;
        }
        match self.phase {
            Phase::Open => {
                self.phase = Phase::Suspect { hit: sent, since: now };
                false
            }
            Phase::Suspect { since, .. } if sent >= since => {
                // The capacity: what was accepted until the first refusal
                // came back (sends racing it may have reached the provider
                // first, and nothing leaves a window that quickly).
                self.set_capacity(since, false);
                self.capacity_at = Some(since);
                self.tentative = None;
                // The window is looked for from the last time it was seen
                // full: when the first refusal came back, or this one if the
                // sends between them filled it again (a truthful retry-after
                // lets a whole window's worth through before the second
                // refusal, and probes timed from the first then found the
                // window still full of the refill: a 10 s window was taken
                // for 20 s). The answer's time, not the send's: sends made
                // after the refused one can reach the provider first.
                let (n, t) = self.counted_between(since, sent);
                let refilled = self.requests.is_some_and(|r| n >= r / 2.0) || self.tokens.is_some_and(|x| t >= x / 2.0);
                let hit = if refilled { now } else { since };
                let candidate = self.next_candidate(0, hit);
                self.phase = Phase::Searching { hit, candidate, probe: None };
                tracing::debug!(refilled, first = ?candidate_window(candidate), "limit confirmed, looking for its window");
                self.changed_at = Some(now);
                true
            }
            Phase::Suspect { .. } => false,
            Phase::Searching { hit, candidate, probe: Some(p) } if p == seq => {
                tracing::debug!(candidate = ?candidate_window(candidate), "window probe refused");
                let next = if candidate + 1 < CANDIDATE_WINDOWS.len() {
                    self.next_candidate(candidate + 1, hit)
                } else {
                    candidate
                };
                self.phase = Phase::Searching { hit, candidate: next, probe: None };
                false
            }
            Phase::Searching { .. } => false,
            Phase::Pacing if self.announced.is_some() => {
                // The provider announces its limit and what is left of it:
                // its headers govern ([`super::learned`]) and the cooldown
                // honours its retry-after. A refusal here is a request that
                // raced the count (sent while others were on the way), not
                // a smaller capacity; lowering the estimate on it left a run
                // at a third of the announced rate under load.
                false
            }
            Phase::Pacing => {
                if self.lowered_at.is_some_and(|at| sent < at) {
                    // Sent before the last correction: the same overload.
                    return false;
                }
                if let Some((stepped, requests, tokens)) = self.step_beyond
                    && sent >= stepped
                {
                    // A step beyond the best clean capacity was refused: the
                    // limit has not moved. Back to what ran clean (what the
                    // window held when refused counts the margin and any
                    // pause, and undershot: a run then spilled its last
                    // items into one more window), and step again later.
                    self.step_beyond = None;
                    self.step_holdoff = (self.step_holdoff * 2).min(16);
                    self.requests = requests;
                    self.tokens = tokens;
                    self.lowered_at = Some(now);
                    self.changed_at = Some(now);
                    self.bound = false;
                    return true;
                }
                let before = (self.requests, self.tokens);
                let window = self.window.unwrap_or(Duration::from_secs(60));
                // What the provider accepted in the window that it refused
                // is its capacity now; when that says nothing new (another
                // client shares the quota), back off by a tenth.
                let (n, t) = self.accepted_in_window(window + margin(window), sent);
                let lower = |estimate: f64, measured: f64| {
                    if measured < estimate { measured.max(1.0) } else { (estimate * 0.9).max(1.0) }
                };
                if matches!(self.kind, LimitKind::Requests | LimitKind::Unknown) {
                    self.requests = self.requests.map(|r| lower(r, n));
                }
                if matches!(self.kind, LimitKind::Tokens | LimitKind::Unknown) {
                    self.tokens = self.tokens.map(|x| lower(x, t));
                }
                self.lowered_at = Some(now);
                self.changed_at = Some(now);
                self.bound = false;
                before != (self.requests, self.tokens)
            }
        }
    }

    /// The refusal just reported said when to try again (`retry-after`,
    /// `RetryInfo`). If it began a suspicion, the wait suggests a limit to
    /// pace to until the suspicion is confirmed or fades: the window from
    /// the oldest send the provider still counts to the end of the wait, the
    /// capacity what it accepted until then. A wait that ends sooner than a
    /// second after the oldest send (an untruthful `retry-after: 1` after a
    /// long run, say) suggests nothing. Returns whether the estimate changed.
    pub(super) fn on_refusal_hint(&mut self, hint: Duration, now: Instant) -> bool {
        let Phase::Suspect { since, .. } = self.phase else { return false };
        if since != now || self.tentative.is_some() {
            return false;
        }
        let Some(oldest) = self.sends.iter().find(|s| s.answer == Answer::Accepted && s.at <= since).map(|s| s.at)
        else {
            return false;
        };
        let window = later(now, hint).saturating_duration_since(oldest);
        if window < Duration::from_secs(1) || window > MAX_HISTORY {
            return false;
        }
        let (n, t) = self.accepted_until(since);
        let (requests, tokens) = match self.kind {
            LimitKind::Requests => (Some(n.max(1.0)), None),
            LimitKind::Tokens => (None, Some(t.max(1.0))),
            LimitKind::Unknown => (Some(n.max(1.0)), Some(t.max(1.0))),
        };
        self.tentative = Some(Tentative { window, requests, tokens });
        true
    }

    /// A send whose call was dropped: the provider may have counted it.
    pub(super) fn on_dropped(&mut self, seq: u64) {
        if let Some(send) = self.get(seq) {
            send.answer = Answer::Accepted;
        }
        if let Phase::Searching { hit, candidate, probe: Some(p) } = self.phase
            && p == seq
        {
            self.phase = Phase::Searching { hit, candidate, probe: None };
        }
    }

    /// Forgets sends that can no longer matter.
    fn prune(&mut self, now: Instant) {
        let keep = match self.window {
            Some(w) if self.phase == Phase::Pacing => w + margin(w),
            _ => MAX_HISTORY,
        };
        while let Some(front) = self.sends.front() {
            let pending = front.answer == Answer::Pending;
            if pending || now < later(front.at, keep) {
                break;
            }
            self.sends.pop_front();
            self.first_seq += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A provider admitting `r` per sliding window `w`, as the mock does.
    struct Sliding {
        r: usize,
        w: Duration,
        admitted: VecDeque<Instant>,
    }

    impl Sliding {
        fn accept(&mut self, at: Instant) -> bool {
            while self.admitted.front().is_some_and(|&t| at >= t + self.w) {
                self.admitted.pop_front();
            }
            if self.admitted.len() < self.r {
                self.admitted.push_back(at);
                true
            } else {
                false
            }
        }
    }

    /// Runs `n` sends as fast as the learner allows, answers after
    /// `latency` with up to `concurrency` in flight, and, as the gates do,
    /// pauses 1 s after a refusal then ramps up as the cooldown does unless
    /// the learned limit has taken over; returns (finish time, refused
    /// count).
    fn simulate(n: usize, r: usize, w: Duration, concurrency: usize, latency: Duration) -> (Duration, usize, Adaptive) {
        simulate_with(n, r, w, concurrency, latency, false)
    }

    /// [`simulate`]; `truthful`: the pause after a refusal lasts until the
    /// provider has room again (as Gemini's `RetryInfo` says), not 1 s.
    fn simulate_with(
        n: usize,
        r: usize,
        w: Duration,
        concurrency: usize,
        latency: Duration,
        truthful: bool,
    ) -> (Duration, usize, Adaptive) {
        let start = Instant::now();
        let mut now = start;
        let mut a = Adaptive::default();
        let mut server = Sliding { r, w, admitted: VecDeque::new() };
        let mut in_flight: Vec<(Instant, u64, bool)> = Vec::new();
        let (mut done, mut refused) = (0, 0);
        let mut paused_until = start;
        let mut ramp_left = 0u32;
        while done < n {
            // Deliver answers due.
            in_flight.sort_by_key(|f| f.0);
            while let Some(&(due, seq, ok)) = in_flight.first() {
                if due > now {
                    break;
                }
                in_flight.remove(0);
                if ok {
                    a.on_accepted(seq, due);
                    done += 1;
                } else {
                    a.on_refused(seq, LimitKind::Unknown, due);
                    refused += 1;
                    let room = server.admitted.front().map(|&t| (t + w).saturating_duration_since(due));
                    if truthful && let Some(room) = room {
                        a.on_refusal_hint(room, due);
                    }
                    if !a.is_active() && due >= paused_until {
                        paused_until = due + if truthful { room.unwrap_or_default() } else { Duration::from_secs(1) };
                        ramp_left = 16;
                    }
                }
            }
            if done >= n {
                break;
            }
            let wait = a.wait(10, now).max(paused_until.saturating_duration_since(now));
            if in_flight.len() < concurrency && done + in_flight.len() < n && wait.is_zero() {
                let seq = a.admit(10, now);
                if ramp_left > 0 {
                    paused_until = now + ms(100).mul_f64(f64::from(ramp_left) / 16.0);
                    ramp_left -= 1;
                }
                let ok = server.accept(now);
                in_flight.push((now + latency, seq, ok));
                continue;
            }
            let next_answer = in_flight.iter().map(|f| f.0).min();
            let next_send = if wait.is_zero() { None } else { Some(now + wait) };
            now = match (next_answer, next_send) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => now + ms(1),
            };
        }
        (now - start, refused, a)
    }

    #[test]
    fn a_sliding_window_without_headers_is_learned_and_then_never_exceeded() {
        // 600 per 10 s, 6,000 sends (10 windows), concurrency 50, 100 ms.
        let (took, refused, a) = simulate(6000, 600, Duration::from_secs(10), 50, ms(100));
        let ideal = Duration::from_secs(90) + ms(100);
        assert_eq!(a.estimate().window, Some(Duration::from_secs(10)));
        assert_eq!(a.estimate().requests, Some(600.0));
        assert!(took <= ideal.mul_f64(1.1), "took {took:?} against an ideal {ideal:?}");
        // The first burst's calls in flight (50), the refusal that confirms
        // the limit, a probe per window tried, and a few per step up (every
        // third clean window, by a fiftieth).
        assert!(refused <= 80, "{refused} refused");
    }

    #[test]
    fn two_windows_worth_finish_close_to_the_ideal() {
        let (took, refused, _) = simulate(1200, 600, Duration::from_secs(10), 50, ms(100));
        assert!(took <= Duration::from_secs(13), "took {took:?}");
        assert!(refused <= 54, "{refused} refused");
    }

    #[test]
    fn a_truthful_retry_after_paces_the_refill_to_the_limit_it_suggests() {
        // The first refusal's wait ends when the oldest send leaves the
        // window: that is the window, what was accepted the capacity, and
        // the refill after the pause is paced to it instead of running into
        // the wall again with every worker (69 refusals before, 50 now: the
        // first wall's calls in flight only).
        let (took, refused, a) = simulate_with(3000, 600, Duration::from_secs(10), 50, ms(10), true);
        assert_eq!(a.estimate().window, Some(Duration::from_secs(10)));
        assert_eq!(a.estimate().requests, Some(600.0));
        let ideal = Duration::from_secs(40);
        assert!(took <= ideal.mul_f64(1.1), "took {took:?} against an ideal {ideal:?}");
        assert!(refused <= 50 + 2, "{refused} refused");
    }

    #[test]
    fn a_window_a_send_short_of_full_does_not_prove_a_wider_one() {
        let t0 = Instant::now();
        let mut a = Adaptive { requests: Some(600.0), ..Adaptive::default() };
        // 599 sends accepted in the half second after t0 + 10 s; a probe
        // 10.4 s later is accepted: the 10 s window is proven, not 20 s.
        for i in 0..599u64 {
            let at = t0 + Duration::from_secs(10) + ms(i / 2);
            let seq = a.admit(1, at);
            a.on_accepted(seq, at);
        }
        let ten = CANDIDATE_WINDOWS.iter().position(|&w| w == 10).expect("a candidate");
        assert_eq!(a.widest_proven(ten, t0 + ms(20_400)), ten);
        // Held back until the whole burst left a 20 s window: 20 s it may be.
        let twenty = CANDIDATE_WINDOWS.iter().position(|&w| w == 20).expect("a candidate");
        assert_eq!(a.widest_proven(ten, t0 + ms(30_600)), twenty);
    }

    #[test]
    fn sends_still_on_the_way_count_towards_the_refusal_that_confirms_a_limit() {
        let t0 = Instant::now();
        let mut a = Adaptive::default();
        let first: Vec<u64> = (0..600u64).map(|i| a.admit(1, t0 + ms(i / 10))).collect();
        for &seq in &first {
            a.on_accepted(seq, t0 + ms(70));
        }
        let refused = a.admit(1, t0 + ms(70));
        a.on_refused(refused, LimitKind::Requests, t0 + ms(80));
        // A window later the next burst fills it. The refusal that confirms
        // the limit is for a send made in its middle (later sends reached
        // the provider first), and comes back while half the burst's
        // answers are on the way.
        let refill = t0 + Duration::from_secs(10) + ms(200);
        let (before, after): (Vec<u64>, Vec<u64>) = {
            let b: Vec<u64> = (0..300u64).map(|i| a.admit(1, refill + ms(i / 10))).collect();
            let second = a.admit(1, refill + ms(30));
            let rest: Vec<u64> = (0..311u64).map(|i| a.admit(1, refill + ms(30 + i / 10))).collect();
            for &seq in &b {
                a.on_accepted(seq, refill + ms(60));
            }
            assert!(a.on_refused(second, LimitKind::Requests, refill + ms(80)), "confirmed");
            (b, rest)
        };
        let Phase::Searching { hit, candidate, .. } = a.phase else { panic!("{:?}", a.phase) };
        assert_eq!(hit, refill + ms(80), "the window is timed from the refill's refusal");
        assert_eq!(candidate_window(candidate), Duration::from_secs(1), "no candidate ruled out by answers on the way");
        // The rest of the burst comes back, the last 11 over the limit
        // refused: the windows the probes have not tried are still possible.
        for (i, &seq) in after.iter().enumerate() {
            if i % 30 == 0 {
                a.on_refused(seq, LimitKind::Requests, refill + ms(90))
            } else {
                a.on_accepted(seq, refill + ms(90))
            };
        }
        assert_eq!(before.len(), 300);
        assert_eq!(a.estimate().requests, Some(600.0), "the capacity is the first window's, not both");
        for window in [2, 5, 10] {
            assert!(a.consistent(Duration::from_secs(window), hit), "{window} s");
        }
    }

    #[test]
    fn late_successes_count_towards_the_limit_a_refusal_suggests() {
        let t0 = Instant::now();
        let mut a = Adaptive::default();
        let sends: Vec<u64> = (0..10u64).map(|i| a.admit(1, t0 + ms(i))).collect();
        for &seq in &sends[..6] {
            a.on_accepted(seq, t0 + ms(20));
        }
        a.on_refused(sends[9], LimitKind::Requests, t0 + ms(30));
        assert!(a.on_refusal_hint(Duration::from_secs(2), t0 + ms(30)));
        assert_eq!(a.estimate().requests, Some(6.0));
        assert_eq!(a.estimate().window, Some(ms(2030)));
        // Two more successes of the window come back after the refusal.
        assert!(a.on_accepted(sends[6], t0 + ms(40)));
        assert!(a.on_accepted(sends[7], t0 + ms(40)));
        assert_eq!(a.estimate().requests, Some(8.0));
        // The window is full: the next send waits for the oldest to leave.
        assert!(a.wait(1, t0 + ms(50)) > Duration::ZERO);
    }

    #[test]
    fn a_search_whose_successes_were_all_sent_after_the_refusal_still_probes() {
        // Headers say the window is full at the first answer, a refusal for
        // the first send; the two successes were sent just after it.
        let t0 = Instant::now();
        let mut a = Adaptive::default();
        let refused = a.admit(1, t0);
        let ok: Vec<u64> = (1..3).map(|i| a.admit(1, t0 + ms(i))).collect();
        a.on_refused(refused, LimitKind::Requests, t0 + ms(5));
        assert!(a.on_exhausted(t0, Some(2), t0 + ms(5), t0 + ms(5)));
        for &seq in &ok {
            a.on_accepted(seq, t0 + ms(6));
        }
        // The probe's time is fixed, and comes.
        let first = a.wait(1, t0 + ms(10));
        let later_look = a.wait(1, t0 + ms(500));
        assert_eq!(first - later_look, ms(490), "a fixed time, not one that moves with each look");
        assert_eq!(a.wait(1, t0 + Duration::from_secs(2)), Duration::ZERO, "the probe goes");
    }

    #[test]
    fn a_probe_per_candidate_finds_a_minute_window() {
        let (took, refused, a) = simulate(300, 100, Duration::from_secs(60), 10, ms(50));
        assert_eq!(a.estimate().window, Some(Duration::from_secs(60)));
        assert!(took < Duration::from_secs(125), "{took:?}");
        // The calls in flight (10), the confirmation, one probe per window
        // tried below a minute (7).
        assert!(refused <= 10 + 1 + 7, "{refused}");
    }

    #[test]
    fn a_drop_in_capacity_lowers_the_estimate_and_clean_windows_raise_it_back() {
        let t0 = Instant::now();
        let mut a = Adaptive { phase: Phase::Pacing, window: Some(Duration::from_secs(10)), ..Adaptive::default() };
        a.requests = Some(100.0);
        a.peak = 100.0;
        a.changed_at = Some(t0);
        // 50 accepted, then a refusal: capacity is now 50.
        let mut seqs = Vec::new();
        for i in 0..51 {
            seqs.push(a.admit(1, t0 + ms(i)));
        }
        for &s in &seqs[..50] {
            a.on_accepted(s, t0 + ms(100));
        }
        assert!(a.on_refused(seqs[50], LimitKind::Requests, t0 + ms(100)));
        assert_eq!(a.estimate().requests, Some(50.0));
        // A clean window in which the estimate bound: back up by a quarter.
        let later_t = t0 + Duration::from_secs(11);
        assert!(a.wait(1, t0 + ms(200)) > Duration::ZERO, "full: binds");
        let s = a.admit(1, later_t);
        assert!(a.on_accepted(s, later_t));
        assert_eq!(a.estimate().requests, Some(62.5));
    }

    #[test]
    fn a_refused_step_beyond_the_clean_capacity_goes_back_to_it_and_waits_longer() {
        let t0 = Instant::now();
        let w = Duration::from_secs(10);
        let mut a = Adaptive { phase: Phase::Pacing, window: Some(w), ..Adaptive::default() };
        a.requests = Some(100.0);
        a.peak = 100.0;
        a.changed_at = Some(t0);
        a.bound = true;
        // Three clean windows at the capacity: a step beyond it.
        let at = t0 + w * 3;
        let s = a.admit(1, at);
        assert!(a.on_accepted(s, at));
        assert_eq!(a.estimate().requests, Some(102.0));
        // The provider refuses the step: back to 100, not to what the
        // window held when refused.
        let refused = a.admit(1, at + ms(10));
        assert!(a.on_refused(refused, LimitKind::Unknown, at + ms(20)));
        assert_eq!(a.estimate().requests, Some(100.0));
        // The next step waits six clean windows, not three.
        a.bound = true;
        let s = a.admit(1, at + w * 4);
        assert!(!a.on_accepted(s, at + w * 4));
        let s = a.admit(1, at + w * 7);
        assert!(a.on_accepted(s, at + w * 7));
        assert_eq!(a.estimate().requests, Some(102.0));
        // That one runs clean: steps go back to every three windows.
        a.bound = true;
        let s = a.admit(1, at + w * 10);
        assert!(a.on_accepted(s, at + w * 10));
        assert_eq!(a.estimate().requests, Some(102.0 + 102.0 / 50.0));
    }

    #[test]
    fn one_refusal_alone_is_a_hiccup_not_a_limit() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut a = Adaptive::default();
        let first = a.admit(1, t0);
        a.on_accepted(first, t0 + ms(10));
        let refused = a.admit(1, t0 + ms(20));
        assert!(!a.on_refused(refused, LimitKind::Unknown, t0 + ms(30)));
        // The retry after it goes through: nothing is learned, nothing paced.
        let retry = a.admit(1, t0 + secs(1));
        a.on_accepted(retry, t0 + secs(1) + ms(10));
        assert!(!a.is_active());
        assert_eq!(a.wait(1, t0 + secs(2)), Duration::ZERO);
        // Two minutes of successes: the refusal is forgotten, and the next
        // one is a suspicion again, not a confirmation.
        let late = a.admit(1, t0 + secs(121));
        a.on_accepted(late, t0 + secs(121) + ms(10));
        assert_eq!(a.phase, Phase::Open);
        let again = a.admit(1, t0 + secs(122));
        assert!(!a.on_refused(again, LimitKind::Unknown, t0 + secs(122) + ms(10)));
        let confirm = a.admit(1, t0 + secs(123));
        assert!(a.on_refused(confirm, LimitKind::Unknown, t0 + secs(123) + ms(10)));
        assert!(a.is_active());
    }

    #[test]
    fn a_truthful_retry_after_between_two_refusals_still_confirms_the_limit() {
        // Gemini's RetryInfo: after the wait it names the window has room,
        // the retry goes through, and the next burst is refused again.
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut a = Adaptive::default();
        let accepted: Vec<u64> = (0..120).map(|i| a.admit(1, t0 + ms(i))).collect();
        for &s in &accepted {
            a.on_accepted(s, t0 + ms(130));
        }
        let refused = a.admit(1, t0 + ms(125));
        assert!(!a.on_refused(refused, LimitKind::Unknown, t0 + ms(140)));
        let retry = a.admit(1, t0 + secs(2));
        a.on_accepted(retry, t0 + secs(2) + ms(5));
        assert!(!a.is_active(), "one refusal paces nothing");
        let burst = a.admit(1, t0 + secs(2) + ms(6));
        assert!(a.on_refused(burst, LimitKind::Unknown, t0 + secs(2) + ms(10)), "the second refusal confirms");
        assert_eq!(a.estimate().requests, Some(120.0));
        // The cooldown held the probe of the 1 s candidate until 2.8 s: its
        // success proves a window of at most 2.8 s, so 2 s, not 1 s.
        let probe = a.admit(1, t0 + ms(2_800));
        assert!(a.on_accepted(probe, t0 + ms(2_810)));
        assert_eq!(a.estimate().window, Some(secs(2)));
    }

    #[test]
    fn headers_replace_a_suspicion_that_a_429_started() {
        let t0 = Instant::now();
        let mut a = Adaptive::default();
        let accepted = a.admit(1, t0);
        a.on_accepted(accepted, t0 + ms(5));
        let refused = a.admit(1, t0 + ms(10));
        assert!(!a.on_refused(refused, LimitKind::Requests, t0 + ms(15)));
        // The next answer's headers say the window is full: that is the limit,
        // with the window its reset names, not a search by probes.
        assert!(a.on_exhausted(t0 + ms(10), Some(120), t0 + Duration::from_secs(2), t0 + ms(20)));
        let probe = a.admit(1, t0 + Duration::from_secs(2));
        assert!(a.on_accepted(probe, t0 + Duration::from_secs(2) + ms(5)));
        assert_eq!(a.estimate().window, Some(Duration::from_secs(2)));
        assert_eq!(a.estimate().requests, Some(120.0));
    }

    #[test]
    fn a_refusal_under_an_announced_limit_keeps_the_estimate() {
        let t0 = Instant::now();
        let mut a = Adaptive::default();
        let first = a.admit(1, t0);
        a.on_accepted(first, t0 + ms(5));
        assert!(a.on_exhausted(t0, Some(600), t0 + Duration::from_secs(10), t0 + ms(5)));
        let probe = a.admit(1, t0 + Duration::from_secs(10));
        assert!(a.on_accepted(probe, t0 + Duration::from_secs(10) + ms(5)));
        assert_eq!(a.estimate().requests, Some(600.0));
        let raced = a.admit(1, t0 + Duration::from_secs(11));
        assert!(!a.on_refused(raced, LimitKind::Requests, t0 + Duration::from_secs(11) + ms(5)));
        assert_eq!(a.estimate().requests, Some(600.0));
    }

    #[test]
    fn the_refusal_names_the_limit() {
        assert_eq!(LimitKind::from_message("Rate limit reached for tokens per min (TPM)"), LimitKind::Tokens);
        assert_eq!(LimitKind::from_message("Too many requests"), LimitKind::Requests);
        assert_eq!(LimitKind::from_message("slow down"), LimitKind::Unknown);
    }
}
