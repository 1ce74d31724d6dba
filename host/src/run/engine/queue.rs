//! The bounded job queue between the reader thread and the workers.
//!
//! Many workers take from one queue that one blocking thread fills. A plain
//! bounded channel wakes the reader for every job taken once the queue is
//! full (and, behind a mutex around the receiver, hands the workers the
//! lock one after another). Here the reader fills the queue to `capacity`,
//! sleeps, and is woken once when it has drained to half: one thread
//! switch per `capacity / 2` jobs instead of one per job. Memory stays
//! bounded by `capacity` parsed jobs.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// Creates a queue holding at most `capacity` items (at least 2).
pub fn bounded<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let capacity = capacity.max(2);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::with_capacity(capacity),
            closed: false,
            consumers: 1,
            reader_waits: false,
        }),
        space: Condvar::new(),
        items: Notify::new(),
        capacity,
    });
    (Producer { shared: shared.clone() }, Consumer { shared })
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// The reader waits here for the queue to drain to half.
    space: Condvar,
    /// Workers wait here for items (or the end).
    items: Notify,
    capacity: usize,
}

struct State<T> {
    items: VecDeque<T>,
    /// The producer is gone: no more items will come.
    closed: bool,
    /// Live consumer handles; at 0 the producer stops.
    consumers: usize,
    /// The producer sleeps on `space`.
    reader_waits: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // The critical sections only move items; a panic in one leaves the
        // queue consistent, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The filling end, used from a blocking thread.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Producer<T> {
    /// Adds `item`, waiting while the queue is full. Gives the item back when
    /// every consumer is gone (the workers stopped).
    pub fn push_blocking(&self, item: T) -> Result<(), T> {
        let shared = &self.shared;
        let mut state = shared.lock();
        while state.items.len() >= shared.capacity && state.consumers > 0 {
            state.reader_waits = true;
            state = shared.space.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        if state.consumers == 0 {
            return Err(item);
        }
        state.items.push_back(item);
        drop(state);
        shared.items.notify_one();
        Ok(())
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.items.notify_waiters();
    }
}

/// The taking end; clone one per worker.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Consumer<T> {
    /// The next item, or `None` once the producer is gone and the queue is
    /// empty.
    pub async fn pop(&self) -> Option<T> {
        let shared = &self.shared;
        loop {
            // Registered before looking, so a push or close in between is
            // not missed.
            let notified = shared.items.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = shared.lock();
                if let Some(item) = state.items.pop_front() {
                    if state.reader_waits && state.items.len() <= shared.capacity / 2 {
                        state.reader_waits = false;
                        shared.space.notify_one();
                    }
                    return Some(item);
                }
                if state.closed {
                    return None;
                }
            }
            notified.await;
        }
    }
}

impl<T> Clone for Consumer<T> {
    fn clone(&self) -> Self {
        self.shared.lock().consumers += 1;
        Consumer { shared: self.shared.clone() }
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.consumers -= 1;
        if state.consumers == 0 {
            drop(state);
            self.shared.space.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_item_reaches_exactly_one_worker_in_order_of_arrival() {
        let (producer, consumer) = bounded::<usize>(8);
        let reader = tokio::task::spawn_blocking(move || {
            for i in 0..10_000 {
                producer.push_blocking(i).expect("workers alive");
            }
        });
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let consumer = consumer.clone();
            workers.spawn(async move {
                let mut seen = Vec::new();
                while let Some(i) = consumer.pop().await {
                    seen.push(i);
                }
                seen
            });
        }
        drop(consumer);
        let mut all = Vec::new();
        while let Some(seen) = workers.join_next().await {
            let seen = seen.expect("worker");
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "each worker sees items in queue order");
            all.extend(seen);
        }
        reader.await.expect("reader");
        all.sort_unstable();
        assert_eq!(all, (0..10_000).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_queue_never_holds_more_than_its_capacity() {
        let (producer, consumer) = bounded::<usize>(4);
        let reader = tokio::task::spawn_blocking(move || {
            for i in 0..100 {
                producer.push_blocking(i).expect("alive");
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(consumer.shared.lock().items.len(), 4, "the reader waits at capacity");
        let mut n = 0;
        while consumer.pop().await.is_some() {
            assert!(consumer.shared.lock().items.len() <= 4);
            n += 1;
        }
        reader.await.expect("reader");
        assert_eq!(n, 100);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blocked_reader_is_released_when_the_workers_stop() {
        let (producer, consumer) = bounded::<usize>(2);
        let reader = tokio::task::spawn_blocking(move || {
            let mut pushed = 0;
            for i in 0..100 {
                if producer.push_blocking(i).is_err() {
                    break;
                }
                pushed += 1;
            }
            pushed
        });
        assert_eq!(consumer.pop().await, Some(0));
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(consumer);
        let pushed = tokio::time::timeout(Duration::from_secs(5), reader).await.expect("released").expect("reader");
        assert!(pushed < 100, "the reader stopped early ({pushed} pushed)");
    }

    #[tokio::test]
    async fn waiting_workers_see_the_end() {
        let (producer, consumer) = bounded::<usize>(2);
        let waiting = tokio::spawn({
            let consumer = consumer.clone();
            async move { consumer.pop().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(producer);
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("woken").expect("task"), None);
        assert_eq!(consumer.pop().await, None);
    }
}
