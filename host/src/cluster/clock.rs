//! Redis's clock, seen from this host.
//!
//! Redis books every send slot on its own clock (`TIME`) and a reply names
//! the slot as a time on that clock. Read as "sleep this long from when the
//! reply came", every delay of a reply (an fsync of the append-only file
//! behind it, a busy runtime) became a delay of the send, and replies
//! delayed by different amounts put slots booked 50 ms apart within a
//! millisecond of each other: a second of the provider's window held more
//! than the limit. Here each tick's round trip bounds the offset between
//! the two clocks (Redis read its clock after the tick left and before the
//! reply arrived), and the tightest bound of the recent ticks (their
//! minimum, as NTP's clock filter keeps the fastest exchange) maps a slot
//! to a local instant that is never early and late by at most the fastest
//! round trip, whatever one reply's delay.
//!
//! The bound ages out after [`MAX_AGE`] (the clocks drift apart by a few
//! milliseconds an hour, and Redis's is the wall clock), and a tick that
//! contradicts it (it left after the instant the bound gives for Redis's
//! reading: Redis's clock was set back) replaces it at once.
//!
//! The smoothed round trip (as TCP's estimator keeps it) tells a worker how
//! early to confirm its slot so that the answer is back by the slot.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How long the tightest bound is kept before a newer tick's replaces it.
pub const MAX_AGE: Duration = Duration::from_secs(10);

/// The most a confirmation is sent ahead of its slot.
pub const MAX_LEAD: Duration = Duration::from_millis(100);

/// Maps Redis's clock to this host's.
#[derive(Debug)]
pub struct ServerClock {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Local times are kept as milliseconds since this instant.
    epoch: Instant,
    /// The tightest upper bound of `local - server` (ms), and when it was
    /// observed.
    upper: Option<(f64, Instant)>,
    /// Smoothed round trip and its mean deviation (ms).
    srtt: Option<(f64, f64)>,
}

impl Default for ServerClock {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl ServerClock {
    /// A clock with nothing observed yet; local times count from `epoch`.
    pub fn new(epoch: Instant) -> Self {
        ServerClock { state: Mutex::new(State { epoch, upper: None, srtt: None }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A tick that left at `sent` and whose reply came at `received`, in
    /// which Redis read `server_ms` on its clock.
    /// A reading that is not a finite number (a reply of the wrong shape)
    /// is ignored.
    pub fn observe(&self, sent: Instant, received: Instant, server_ms: f64) {
        if !server_ms.is_finite() {
            return;
        }
        let mut s = self.lock();
        let ms = |t: Instant| t.saturating_duration_since(s.epoch).as_secs_f64() * 1000.0;
        let (sent_ms, received_ms) = (ms(sent), ms(received));
        let upper = received_ms - server_ms;
        let lower = sent_ms - server_ms;
        let keep = match s.upper {
            Some((best, at)) => best <= upper && lower <= best && received.saturating_duration_since(at) < MAX_AGE,
            None => false,
        };
        if !keep {
            s.upper = Some((upper, received));
        }
        let rtt = (received_ms - sent_ms).max(0.0);
        s.srtt = Some(match s.srtt {
            None => (rtt, rtt / 2.0),
            Some((srtt, var)) => (srtt * 0.875 + rtt * 0.125, var * 0.75 + (rtt - srtt).abs() * 0.25),
        });
    }

    /// The local instant of `server_ms` on Redis's clock: never before it,
    /// late by at most the fastest recent round trip. Before any tick was
    /// observed, `now` (the caller has nothing better).
    pub fn local(&self, server_ms: f64, now: Instant) -> Instant {
        let s = self.lock();
        let Some((upper, _)) = s.upper else { return now };
        let ms = server_ms + upper;
        if !ms.is_finite() || ms <= 0.0 {
            return s.epoch;
        }
        s.epoch + Duration::from_secs_f64(ms.min(1e12) / 1000.0)
    }

    /// How long before a slot to ask whether it still holds, so that the
    /// answer is back by then: the smoothed round trip and four deviations
    /// (TCP's retransmission timeout), at most [`MAX_LEAD`].
    pub fn lead(&self) -> Duration {
        let s = self.lock();
        let Some((srtt, var)) = s.srtt else { return Duration::ZERO };
        Duration::from_secs_f64(((srtt + 4.0 * var) / 1000.0).clamp(0.0, MAX_LEAD.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn a_late_reply_does_not_move_the_slot() {
        let base = Instant::now();
        let clock = ServerClock::new(base);
        // Redis's clock reads 1,000,000 when ours reads 10 ms; a fast tick.
        clock.observe(at(base, 10), at(base, 11), 1_000_000.5);
        // A tick whose reply waited 300 ms behind an fsync.
        clock.observe(at(base, 100), at(base, 400), 1_000_090.5);
        // A slot booked 200 ms after that reading is due 290 ms after the
        // fast tick's reading (between our 10 and 11 ms): at 301 ms, not
        // 200 ms after the late reply came (600 ms).
        let due = clock.local(1_000_290.5, at(base, 400));
        assert_eq!(due, at(base, 301));
    }

    #[test]
    fn the_slot_is_never_early() {
        let base = Instant::now();
        let clock = ServerClock::new(base);
        // Redis read its clock somewhere in each round trip; the true
        // offset is 10 ms (local = server + 10).
        for (sent, read_after, rtt) in [(0u64, 3u64, 5u64), (50, 1, 2), (80, 6, 40), (200, 0, 1)] {
            let server = (sent + read_after) as f64 - 10.0 + 1000.0;
            clock.observe(at(base, sent), at(base, sent + rtt), server);
            let due = clock.local(2000.0, at(base, sent + rtt));
            assert!(due >= at(base, 1010), "early: {:?}", due - base);
            assert!(due <= at(base, 1010 + rtt), "later than the round trip: {:?}", due - base);
        }
    }

    #[test]
    fn a_clock_set_back_replaces_the_bound_and_an_old_bound_ages_out() {
        let base = Instant::now();
        let clock = ServerClock::new(base);
        clock.observe(at(base, 0), at(base, 1), 5000.0);
        // Redis's clock went back a second: this tick left after the
        // instant the old bound gives for its reading.
        clock.observe(at(base, 100), at(base, 102), 4100.0);
        assert_eq!(clock.local(4200.0, at(base, 102)), at(base, 202));
        // A slower tick does not replace a recent bound...
        clock.observe(at(base, 1000), at(base, 1050), 5000.0);
        assert_eq!(clock.local(4200.0, at(base, 1050)), at(base, 202));
        // ...but one observed after the bound's age does.
        let late = 102 + MAX_AGE.as_millis() as u64;
        clock.observe(at(base, late), at(base, late + 30), (late as f64) + 4000.0);
        assert_eq!(clock.local(4200.0, at(base, late + 30)), at(base, 230));
    }

    #[test]
    fn a_reading_that_is_not_a_number_is_ignored() {
        let base = Instant::now();
        let clock = ServerClock::new(base);
        clock.observe(at(base, 0), at(base, 1), 5000.0);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            clock.observe(at(base, 10), at(base, 11), bad);
        }
        assert_eq!(clock.local(5100.0, at(base, 11)), at(base, 101));
    }

    #[test]
    fn the_lead_follows_the_round_trip_up_to_its_cap() {
        let base = Instant::now();
        let clock = ServerClock::new(base);
        assert_eq!(clock.lead(), Duration::ZERO);
        for i in 0..50 {
            clock.observe(at(base, i * 10), at(base, i * 10 + 2), 0.0);
        }
        let lead = clock.lead();
        assert!(lead >= Duration::from_millis(2) && lead < Duration::from_millis(4), "{lead:?}");
        for i in 50..100 {
            clock.observe(at(base, i * 1000), at(base, i * 1000 + 500), 0.0);
        }
        assert_eq!(clock.lead(), MAX_LEAD);
    }
}
