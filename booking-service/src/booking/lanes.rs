//! One lane per contested request: while an attempt is in flight, identical requests queue behind
//! it instead of piling onto the database, and a failure (a taken slot, above all) is handed to
//! every request that was already waiting when the attempt which produced it started.
//!
//! The database still decides every conflict. A lane only saves asking it the same question again:
//! a shared answer was read from the database during the lifetime of each request it is given to,
//! so every answer stays one the request could have got on its own. A success is never shared; the
//! next request in the lane makes its own attempt. A lane disappears with its last request.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::watch;

#[derive(Debug)]
pub struct Lanes<K, E> {
    open: Mutex<HashMap<K, Arc<Lane<E>>>>,
    /// Orders arrivals and attempt starts.
    clock: AtomicU64,
}

#[derive(Debug)]
struct Lane<E> {
    state: Mutex<LaneState<E>>,
    /// Wakes every waiter at once when an attempt ends, so none waits for another to be scheduled.
    ended: watch::Sender<()>,
}

#[derive(Debug)]
struct LaneState<E> {
    running: bool,
    /// The last failure, with the tick its attempt started at.
    last: Option<(u64, E)>,
}

impl<K: Hash + Eq + Clone, E: Clone> Default for Lanes<K, E> {
    fn default() -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            clock: AtomicU64::new(0),
        }
    }
}

impl<K: Hash + Eq + Clone, E: Clone> Lanes<K, E> {
    /// Runs `attempt` in the lane of `key`, or answers with the failure of an attempt that started
    /// after this call did.
    pub async fn run<T>(
        &self,
        key: K,
        attempt: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let arrived = self.tick();
        let entered = self.enter(key);
        let lane = entered.lane();
        let started = loop {
            let mut ended = {
                let mut state = lock(&lane.state);
                if let Some((started, failure)) = &state.last {
                    if *started > arrived {
                        return Err(failure.clone());
                    }
                }
                if !state.running {
                    state.running = true;
                    break self.tick();
                }
                lane.ended.subscribe()
            };
            // The sender lives as long as the lane, which this request holds.
            let _ = ended.changed().await;
        };
        let running = Running { lane, last: None };
        let result = attempt.await;
        running.end(result.as_ref().err().map(|e| (started, e.clone())));
        result
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    fn enter(&self, key: K) -> Entered<'_, K, E> {
        let lane = lock(&self.open)
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Lane {
                    state: Mutex::new(LaneState {
                        running: false,
                        last: None,
                    }),
                    ended: watch::Sender::new(()),
                })
            })
            .clone();
        Entered {
            lanes: self,
            key,
            lane: Some(lane),
        }
    }

    #[cfg(test)]
    fn open_lanes(&self) -> usize {
        lock(&self.open).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The attempt in flight; ending it, or dropping it half-way, lets the waiters go on.
struct Running<'a, E> {
    lane: &'a Lane<E>,
    last: Option<(u64, E)>,
}

impl<E> Running<'_, E> {
    fn end(mut self, failure: Option<(u64, E)>) {
        self.last = failure;
    }
}

impl<E> Drop for Running<'_, E> {
    fn drop(&mut self) {
        let mut state = lock(&self.lane.state);
        state.running = false;
        // A dropped attempt leaves nothing to share.
        state.last = self.last.take();
        drop(state);
        self.lane.ended.send_replace(());
    }
}

/// A request's place in a lane; leaving it closes the lane when nobody else is in it, also when
/// the request is dropped half-way.
struct Entered<'a, K: Hash + Eq + Clone, E: Clone> {
    lanes: &'a Lanes<K, E>,
    key: K,
    lane: Option<Arc<Lane<E>>>,
}

impl<K: Hash + Eq + Clone, E: Clone> Entered<'_, K, E> {
    fn lane(&self) -> &Lane<E> {
        self.lane.as_deref().expect("present until dropped")
    }
}

impl<K: Hash + Eq + Clone, E: Clone> Drop for Entered<'_, K, E> {
    fn drop(&mut self) {
        // References are taken and given back only under the map's lock, so the count is exact.
        let mut open = lock(&self.lanes.open);
        drop(self.lane.take());
        if open
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            open.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::oneshot;

    type TestLanes = Lanes<u32, String>;

    /// Lets the spawned tasks reach their await points.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_burst_of_identical_requests_asks_twice_and_shares_the_refusal() {
        let lanes = Arc::new(TestLanes::default());
        let attempts = Arc::new(AtomicUsize::new(0));
        let (release, gate) = oneshot::channel::<()>();
        // The first request holds the slot until released; it wins.
        let first = {
            let (lanes, attempts) = (lanes.clone(), attempts.clone());
            tokio::spawn(async move {
                lanes
                    .run(7, async {
                        attempts.fetch_add(1, Ordering::SeqCst);
                        gate.await.ok();
                        Ok::<_, String>("booked")
                    })
                    .await
            })
        };
        settle().await;
        let losers: Vec<_> = (0..50)
            .map(|_| {
                let (lanes, attempts) = (lanes.clone(), attempts.clone());
                tokio::spawn(async move {
                    lanes
                        .run(7, async {
                            attempts.fetch_add(1, Ordering::SeqCst);
                            Err::<&str, _>("taken".to_string())
                        })
                        .await
                })
            })
            .collect();
        settle().await;
        assert_eq!(attempts.load(Ordering::SeqCst), 1, "the others wait");
        release.send(()).ok();
        assert_eq!(first.await.ok(), Some(Ok("booked")));
        for loser in losers {
            assert_eq!(loser.await.ok(), Some(Err("taken".to_string())));
        }
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            2,
            "one attempt won, one found the slot taken for all the others"
        );
        assert_eq!(lanes.open_lanes(), 0);
    }

    #[tokio::test]
    async fn a_failure_read_before_a_request_arrived_is_not_given_to_it() {
        let lanes = Arc::new(TestLanes::default());
        let attempts = Arc::new(AtomicUsize::new(0));
        let (release, gate) = oneshot::channel::<()>();
        let first = {
            let (lanes, attempts) = (lanes.clone(), attempts.clone());
            tokio::spawn(async move {
                lanes
                    .run(1, async {
                        attempts.fetch_add(1, Ordering::SeqCst);
                        gate.await.ok();
                        Err::<(), _>("down".to_string())
                    })
                    .await
            })
        };
        settle().await;
        // Arrives after the first attempt started: it must ask again itself.
        let second = {
            let (lanes, attempts) = (lanes.clone(), attempts.clone());
            tokio::spawn(async move {
                lanes
                    .run(1, async {
                        attempts.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, String>(())
                    })
                    .await
            })
        };
        settle().await;
        release.send(()).ok();
        assert_eq!(first.await.ok(), Some(Err("down".to_string())));
        assert_eq!(second.await.ok(), Some(Ok(())));
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_success_is_never_shared_and_other_keys_do_not_wait() {
        let lanes = TestLanes::default();
        let attempts = AtomicUsize::new(0);
        let attempt = || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(())
        };
        let (a, b, c) = tokio::join!(
            lanes.run(1, attempt()),
            lanes.run(1, attempt()),
            lanes.run(2, attempt())
        );
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        assert_eq!(lanes.open_lanes(), 0);
    }

    #[tokio::test]
    async fn a_request_dropped_in_the_lane_leaves_it_usable_and_closes_it() {
        let lanes = Arc::new(TestLanes::default());
        let stuck = {
            let lanes = lanes.clone();
            tokio::spawn(async move {
                lanes
                    .run(3, std::future::pending::<Result<(), String>>())
                    .await
            })
        };
        settle().await;
        assert_eq!(lanes.open_lanes(), 1);
        stuck.abort();
        assert!(stuck.await.is_err_and(|e| e.is_cancelled()));
        assert_eq!(lanes.open_lanes(), 0);
        assert_eq!(lanes.run(3, async { Ok::<_, String>(5) }).await, Ok(5));
    }
}
