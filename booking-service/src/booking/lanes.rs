//! One lane per contested slot: while an attempt is in flight, requests for the same slot queue
//! behind it instead of piling onto the database, and a failure (a taken slot, above all) is
//! offered to every request that was already waiting when the attempt which produced it started.
//! Each waiter judges the failure against its own request: an identical one takes it as it is,
//! another (a different length at the same start) takes it only where it answers that request
//! too, and otherwise makes its own attempt.
//!
//! The database still decides every conflict. A lane only saves asking it the same question again:
//! a shared answer was read from the database during the lifetime of each request it is given to,
//! so every answer stays one the request could have got on its own. A success is never shared, nor
//! does it wipe the last failure (still an answer for the requests that waited before it was
//! read); a request that no failure answers makes its own attempt, as does every request after a
//! failure that answers only the request that met it ([`SharedFailure`]). A lane disappears with
//! its last request.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::watch;

/// Whether a failure answers every request of its lane (a taken slot is taken for everyone), or
/// only the one that met it (a limit of that caller's own).
pub trait SharedFailure {
    fn is_shared(&self) -> bool;
}

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
        Self { open: Mutex::new(HashMap::new()), clock: AtomicU64::new(0) }
    }
}

impl<K: Hash + Eq + Clone, E: Clone + SharedFailure> Lanes<K, E> {
    /// Runs `attempt` in the lane of `key`, or answers with what `judge` makes of the failure of
    /// an attempt that started after this call did (`None`: that failure does not answer this
    /// request, which then makes its own attempt).
    pub async fn run<T>(
        &self,
        key: K,
        judge: impl Fn(&E) -> Option<E>,
        attempt: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let arrived = self.tick();
        let entered = self.enter(key);
        let lane = entered.lane();
        // The start of the last failure judged, so that one is not judged again.
        let mut judged = None;
        let started = loop {
            let next = {
                let mut state = lock(&lane.state);
                match &state.last {
                    Some((started, failure)) if *started > arrived && judged != Some(*started) => {
                        Next::Judge(*started, failure.clone())
                    }
                    _ if !state.running => {
                        state.running = true;
                        break self.tick();
                    }
                    _ => Next::Wait(lane.ended.subscribe()),
                }
            };
            // Judged outside the lane's lock: it may compute alternatives.
            match next {
                Next::Judge(started, failure) => match judge(&failure) {
                    Some(answer) => return Err(answer),
                    None => judged = Some(started),
                },
                // The sender lives as long as the lane, which this request holds.
                Next::Wait(mut ended) => {
                    let _ = ended.changed().await;
                }
            }
        };
        let running = Running { lane, last: None };
        let result = attempt.await;
        running.end(result.as_ref().err().filter(|e| e.is_shared()).map(|e| (started, e.clone())));
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
                    state: Mutex::new(LaneState { running: false, last: None }),
                    ended: watch::Sender::new(()),
                })
            })
            .clone();
        Entered { lanes: self, key, lane: Some(lane) }
    }

    #[cfg(test)]
    fn open_lanes(&self) -> usize {
        lock(&self.open).len()
    }
}

/// What a waiting request does next: judge a failure it has not judged yet, or wait for the
/// attempt in flight to end.
enum Next<E> {
    Judge(u64, E),
    Wait(watch::Receiver<()>),
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
        // A success, a failure of the caller's own or a dropped attempt leaves nothing to share,
        // and keeps the last failure for the requests that were waiting before it was read.
        if let Some(failure) = self.last.take() {
            state.last = Some(failure);
        }
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
        if open.get(&self.key).is_some_and(|l| Arc::strong_count(l) == 1) {
            open.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    type TestLanes = Lanes<u32, String>;
    type Answer = Result<&'static str, String>;

    /// Lanes that count the attempts made in them.
    #[derive(Clone, Default)]
    struct Counted {
        lanes: Arc<TestLanes>,
        attempts: Arc<AtomicUsize>,
    }

    impl Counted {
        /// A request in lane `key` whose attempt waits for `hold` (if any), then answers `answer`.
        fn request(&self, key: u32, hold: Option<oneshot::Receiver<()>>, answer: Answer) -> JoinHandle<Answer> {
            self.judging(key, |failure| Some(failure.clone()), hold, answer)
        }

        /// A request that takes another's failure only as `judge` makes it.
        fn judging(
            &self,
            key: u32,
            judge: fn(&String) -> Option<String>,
            hold: Option<oneshot::Receiver<()>>,
            answer: Answer,
        ) -> JoinHandle<Answer> {
            let this = self.clone();
            tokio::spawn(async move {
                let attempt = async {
                    this.attempts.fetch_add(1, Ordering::SeqCst);
                    if let Some(hold) = hold {
                        hold.await.ok();
                    }
                    answer
                };
                this.lanes.run(key, judge, attempt).await
            })
        }

        fn attempts(&self) -> usize {
            self.attempts.load(Ordering::SeqCst)
        }
    }

    /// In these tests a failure is the caller's own when it says so.
    impl SharedFailure for String {
        fn is_shared(&self) -> bool {
            !self.starts_with("own:")
        }
    }

    /// Lets the spawned tasks reach their await points.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_burst_of_identical_requests_asks_twice_and_shares_the_refusal() {
        let lanes = Counted::default();
        let (release, hold) = oneshot::channel();
        // The first request holds the slot until released; it wins.
        let first = lanes.request(7, Some(hold), Ok("booked"));
        settle().await;
        let losers: Vec<_> = (0..50).map(|_| lanes.request(7, None, Err("taken".into()))).collect();
        settle().await;
        assert_eq!(lanes.attempts(), 1, "the others wait");
        release.send(()).ok();
        assert_eq!(first.await.ok(), Some(Ok("booked")));
        for loser in losers {
            assert_eq!(loser.await.ok(), Some(Err("taken".into())));
        }
        assert_eq!(lanes.attempts(), 2, "one attempt won, one found the slot taken for all the others");
        assert_eq!(lanes.lanes.open_lanes(), 0);
    }

    #[tokio::test]
    async fn a_failure_read_before_a_request_arrived_is_not_given_to_it() {
        let lanes = Counted::default();
        let (release, hold) = oneshot::channel();
        let first = lanes.request(1, Some(hold), Err("down".into()));
        settle().await;
        // Arrives after the first attempt started: it must ask again itself.
        let second = lanes.request(1, None, Ok("booked"));
        settle().await;
        release.send(()).ok();
        assert_eq!(first.await.ok(), Some(Err("down".into())));
        assert_eq!(second.await.ok(), Some(Ok("booked")));
        assert_eq!(lanes.attempts(), 2);
    }

    #[tokio::test]
    async fn a_success_is_never_shared_and_other_keys_do_not_wait() {
        let lanes = Counted::default();
        let (release, hold) = oneshot::channel();
        let first = lanes.request(1, Some(hold), Ok("a"));
        settle().await;
        let second = lanes.request(1, None, Ok("b"));
        let other = lanes.request(2, None, Ok("c"));
        assert_eq!(other.await.ok(), Some(Ok("c")), "another lane does not wait");
        assert_eq!(lanes.attempts(), 2, "the second request waits for the first");
        release.send(()).ok();
        assert_eq!(first.await.ok(), Some(Ok("a")));
        assert_eq!(second.await.ok(), Some(Ok("b")), "it made its own attempt");
        assert_eq!(lanes.attempts(), 3);
        assert_eq!(lanes.lanes.open_lanes(), 0);
    }

    #[tokio::test]
    async fn a_request_dropped_in_the_lane_leaves_it_usable_and_closes_it() {
        let lanes = Counted::default();
        let (_never, hold) = oneshot::channel();
        let stuck = lanes.request(3, Some(hold), Ok("never"));
        settle().await;
        assert_eq!(lanes.lanes.open_lanes(), 1);
        stuck.abort();
        assert!(stuck.await.is_err_and(|e| e.is_cancelled()));
        assert_eq!(lanes.lanes.open_lanes(), 0);
        assert_eq!(lanes.request(3, None, Ok("booked")).await.ok(), Some(Ok("booked")));
    }

    #[tokio::test]
    async fn a_failure_of_the_callers_own_is_not_shared() {
        let lanes = Counted::default();
        let (release, hold) = oneshot::channel();
        let first = lanes.request(5, Some(hold), Err("own: over quota".into()));
        settle().await;
        let others: Vec<_> = (0..3).map(|_| lanes.request(5, None, Ok("booked"))).collect();
        settle().await;
        release.send(()).ok();
        assert_eq!(first.await.ok(), Some(Err("own: over quota".into())));
        for other in others {
            assert_eq!(other.await.ok(), Some(Ok("booked")), "each asked for itself");
        }
        assert_eq!(lanes.attempts(), 4);
    }

    #[tokio::test]
    async fn a_failure_is_given_as_each_waiter_judges_it() {
        let lanes = Counted::default();
        let (release, hold) = oneshot::channel();
        let first = lanes.request(9, Some(hold), Ok("booked"));
        settle().await;
        // Six waiters that take a refusal in their own words (each would be refused itself), and
        // one that no refusal answers.
        let taken: Vec<_> = (0..6)
            .map(|_| lanes.judging(9, |f| Some(format!("{f}, in my words")), None, Err("taken".into())))
            .collect();
        let clear = lanes.judging(9, |_| None, None, Ok("booked for me"));
        settle().await;
        assert_eq!(lanes.attempts(), 1, "the others wait");
        release.send(()).ok();
        assert_eq!(first.await.ok(), Some(Ok("booked")));
        assert_eq!(clear.await.ok(), Some(Ok("booked for me")), "it made its own attempt");
        let mut answers = Vec::new();
        for waiter in taken {
            answers.push(waiter.await.expect("answered").expect_err("refused"));
        }
        answers.sort();
        let wrapped = vec!["taken, in my words".to_owned(); 5];
        assert_eq!(answers, [vec!["taken".to_owned()], wrapped].concat(), "one was refused itself, five judged it");
        assert_eq!(lanes.attempts(), 3, "the winner, one refusal, the request it did not answer");
        assert_eq!(lanes.lanes.open_lanes(), 0);
    }

    #[test]
    fn a_success_keeps_the_last_failure_for_the_requests_that_waited_before_it() {
        let lane = Lane {
            state: Mutex::new(LaneState { running: true, last: Some((4, "taken".to_owned())) }),
            ended: watch::Sender::new(()),
        };
        Running { lane: &lane, last: None }.end(None);
        let state = lock(&lane.state);
        assert!(!state.running);
        assert_eq!(state.last, Some((4, "taken".to_owned())));
    }
}
