//! The HTTP server under the router, built for the open internet: a bounded number of connections,
//! clients cut when they send a request's headers too slowly or sit idle, and a shutdown that ends
//! within its grace whatever the clients do.
//!
//! `axum::serve` has none of this (a socket holding half a request header stays open for ever, and
//! shutdown waits for every such socket), so connections are served with hyper directly, as in
//! axum's `serve-with-hyper` example. hyper's own `header_read_timeout` is not used: it runs from
//! the moment a connection waits for a request, so it would also close every idle kept-alive
//! connection after the header timeout, and hyper-util's version detection has no timeout at all.
//! Each connection instead keeps an [`Activity`] record that a watchdog in its task reads.
//! Slow bodies are the router's business (`http::deadline`), answered 408.
//!
//! A client that arrives while every connection slot is taken has one connection kept alive
//! between requests close for it (nginx frees its idle keep-alive connections the same way when it
//! runs out), so a client holding thousands of idle sockets cannot keep others waiting; the closed
//! one's client reconnects when it needs to. With none kept alive, it waits for a slot.

use axum::http::{header, HeaderValue, Request, Version};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

/// The most requests one HTTP/2 connection carries at once (hyper's default is 200):
/// `MAX_CONNECTIONS` bounds the connections, this what each one adds.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 16;

/// Descriptors an instance keeps for what is not a client's connection: its database pools, the
/// mail and SMS files being written, webhook and Twilio sockets, the runtime's own.
const OTHER_DESCRIPTORS: u64 = 1024;

/// The connections this process can hold: `wanted` (`MAX_CONNECTIONS`), once the soft open-file
/// limit is raised (up to the hard one) to hold them and the instance's other descriptors; fewer,
/// said at start, where the hard limit is lower. Past the open-file limit accepting fails, and
/// the pool, the spool files and webhooks with it, while a cap above it never engages to close an
/// idle connection for a new one.
pub fn connection_cap(wanted: usize) -> usize {
    let needed = (wanted as u64).saturating_add(OTHER_DESCRIPTORS);
    let limit = match rlimit::increase_nofile_limit(needed) {
        Ok(limit) if limit >= needed => return wanted,
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit; MAX_CONNECTIONS is taken as set");
            return wanted;
        }
    };
    let cap = usize::try_from(limit.saturating_sub(OTHER_DESCRIPTORS.min(limit / 4))).unwrap_or(wanted).max(1);
    tracing::warn!(
        max_connections = wanted,
        open_file_limit = limit,
        connections = cap,
        "the open-file limit holds fewer connections than MAX_CONNECTIONS: raise it (LimitNOFILE, ulimit -n) or lower MAX_CONNECTIONS"
    );
    cap
}

/// The most an HTTP/1 request's line and headers may hold (431 past it; hyper's default is about
/// 400 KiB, which every open connection could be made to hold).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How connections are bounded (README, Configuration).
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// From a request's first byte to the end of its headers.
    pub header_read_timeout: Duration,
    /// With no request in flight and no byte moving.
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// From the shutdown signal to the end of serving.
    pub shutdown_grace: Duration,
    /// The longest a request may take: the drain takes no new one later than this before the
    /// grace ends, so that every request taken is answered within it.
    pub request_timeout: Duration,
}

/// Set once shutdown begins: `/readyz` answers 503 from then on, so load balancers drain the
/// instance, and every answer closes its connection.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn begin(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The last answer of the database to a readiness probe. Probes take turns, and one arriving
/// within [`Readiness::FRESH`] of the last answer gets that answer: a flood of `/readyz` asks the
/// database once a second instead of queueing on its one readiness connection until the load
/// balancer's own probe times out.
#[derive(Debug, Default)]
pub struct Readiness {
    last: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

impl Readiness {
    pub const FRESH: Duration = Duration::from_secs(1);

    /// Whether the database answers within a second: the answer `/readyz` and the
    /// `service_ready` gauge share.
    pub async fn database(&self, store: &crate::store::DynStore) -> bool {
        self.check(async { matches!(tokio::time::timeout(Duration::from_secs(1), store.ping()).await, Ok(Ok(()))) })
            .await
    }

    /// The answer of `ping`, or of the one before it when that is fresh.
    async fn check(&self, ping: impl Future<Output = bool>) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ready)) = *last {
            if at.elapsed() < Self::FRESH {
                return ready;
            }
        }
        let ready = ping.await;
        *last = Some((std::time::Instant::now(), ready));
        ready
    }
}

/// What the drain leaves after a request's timeout for its answer (a 503 at the timeout included)
/// to be written before the grace ends.
pub const ANSWER_MARGIN: Duration = Duration::from_secs(2);

/// Serves `router` on `listener` until `shutdown` completes, then drains: `/readyz` turns 503,
/// new connections are still taken while requests are in flight (so a load balancer sees the
/// 503), and when none is left, or at the last call (the grace less the request timeout and
/// [`ANSWER_MARGIN`]: under steady traffic none is ever left), the listener closes and every connection is asked to
/// finish its answer and close. Whatever is still open at the end of the grace is cut; a request
/// taken before the last call has ended by then. Returns the instant the grace ends, which
/// bounds what the caller still does.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServerSettings,
    draining: Draining,
    shutdown: impl Future<Output = ()>,
) -> Instant {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The watchdog times headers instead (see the module's comment).
    builder.http1().header_read_timeout(None).max_buf_size(MAX_HEAD_BYTES);
    builder.http2().max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
    let server = Server {
        slots: Arc::new(Semaphore::new(settings.max_connections.clamp(1, Semaphore::MAX_PERMITS))),
        shared: Arc::new(Shared {
            builder,
            router,
            settings,
            draining,
            requests: InFlight::default(),
            reclaim: Reclaim::default(),
        }),
        close: watch::channel(false).0,
        waiting: Mutex::default(),
    };
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = server.accept(&listener) => server.spawn(&mut connections, accepted),
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    server.shared.draining.begin();
    let (settings, now) = (&server.shared.settings, Instant::now());
    let deadline = now + settings.shutdown_grace;
    let last_call = now + settings.shutdown_grace.saturating_sub(settings.request_timeout + ANSWER_MARGIN);
    tracing::info!(
        in_flight = server.shared.requests.count(),
        grace_secs = settings.shutdown_grace.as_secs_f64(),
        "shutting down: /readyz answers 503; finishing requests in flight"
    );
    while server.shared.requests.count() > 0 {
        let idle = server.shared.requests.idle.notified();
        if server.shared.requests.count() == 0 {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until(last_call) => break,
            () = idle => {}
            accepted = server.accept(&listener) => server.spawn(&mut connections, accepted),
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    drop(listener);
    let _ = server.close.send(true);
    let closed = tokio::time::timeout_at(deadline, async { while connections.join_next().await.is_some() {} }).await;
    if closed.is_err() {
        tracing::warn!(
            connections = connections.len(),
            in_flight = server.shared.requests.count(),
            "shutdown grace over: cutting the connections still open"
        );
        connections.shutdown().await;
    }
    deadline
}

struct Server {
    shared: Arc<Shared>,
    /// One permit per open connection.
    slots: Arc<Semaphore>,
    /// Turns true when every connection is to finish its answer and close.
    close: watch::Sender<bool>,
    /// A client accepted while every slot was taken, waiting for one: kept here rather than in the
    /// accept future, which the serve loop drops whenever another of its branches is ready.
    waiting: Mutex<Option<TcpStream>>,
}

/// What every connection's task reads.
struct Shared {
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    settings: ServerSettings,
    draining: Draining,
    requests: InFlight,
    reclaim: Reclaim,
}

/// A slot wanted by a client waiting for one, given up by the first connection found kept alive
/// between requests. The want stays until a connection takes it or a slot frees, so a connection
/// busy when it was made takes it once its answer is sent.
struct Reclaim {
    wanted: AtomicBool,
    /// Wakes the connections kept alive between requests to look at the want.
    wake: watch::Sender<()>,
}

impl Default for Reclaim {
    fn default() -> Self {
        Self { wanted: AtomicBool::new(false), wake: watch::channel(()).0 }
    }
}

impl Reclaim {
    fn want(&self) {
        self.wanted.store(true, Ordering::SeqCst);
        self.wake.send_replace(());
    }

    fn withdraw(&self) {
        self.wanted.store(false, Ordering::SeqCst);
    }

    /// Takes the want, if there is one: the caller is to close.
    fn take(&self) -> bool {
        self.wanted.swap(false, Ordering::SeqCst)
    }
}

impl Server {
    /// The next connection, once there is room for it: a client accepted while every slot is
    /// taken has a kept-alive connection close for it, or waits (the clients after it in the
    /// kernel's listen queue). `None` after an accept error (logged; the loop goes on).
    async fn accept(&self, listener: &TcpListener) -> Option<(TcpStream, OwnedSemaphorePermit)> {
        let waiting = self.waiting().take();
        let stream = match waiting {
            Some(stream) => stream,
            None => match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or a connection reset before it was taken: wait a moment
                    // rather than spin, as hyper and axum do.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return None;
                }
            },
        };
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            // A want an accept given up while it waited left (the loop served a connection's end
            // first) is this client's, and met: left, it would close the next kept-alive
            // connection for nobody.
            self.shared.reclaim.withdraw();
            return Some((stream, permit));
        }
        *self.waiting() = Some(stream);
        self.shared.reclaim.want();
        let permit = self.slots.clone().acquire_owned().await.ok()?;
        self.shared.reclaim.withdraw();
        Some((self.waiting().take()?, permit))
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Option<TcpStream>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn(&self, connections: &mut JoinSet<()>, accepted: Option<(TcpStream, OwnedSemaphorePermit)>) {
        let Some((stream, permit)) = accepted else {
            return;
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(stream, permit, self.shared.clone(), self.close.subscribe()));
    }
}

/// Serves one connection until it ends, the watchdog cuts it, or shutdown closes it.
async fn connection(
    stream: TcpStream,
    permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
    mut close: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let peer = stream.peer_addr().ok();
    let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
    let service = {
        let activity = activity.clone();
        let shared = shared.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            // The peer's address, for `CLIENT_IP_SOURCE=ConnectInfo` (`http::extract::ClientAddress`).
            if let Some(peer) = peer {
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            }
            let guard = RequestGuard::enter(activity.clone(), shared.clone());
            let close_after = req.version() <= Version::HTTP_11 && shared.draining.is_draining();
            let router = shared.router.clone();
            async move {
                let mut response = match router.oneshot(req).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                if close_after {
                    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                drop(guard);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let settings = &shared.settings;
    let conn = shared.builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut closing = false;
    let mut reclaim = shared.reclaim.wake.subscribe();
    loop {
        // Looked at after every wake-up, once `conn` has read what the client sent: a request
        // already read makes the connection busy, not kept alive.
        if !closing && activity.kept_alive() && shared.reclaim.take() {
            tracing::debug!("closing a kept-alive connection for a client waiting for a slot");
            closing = true;
            conn.as_mut().graceful_shutdown();
        }
        // Made before the state is read, so a change in between still wakes this loop.
        let changed = activity.changed.notified();
        let cut_at = activity.cut_at(settings);
        let watchdog = async {
            match cut_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = watchdog => {
                if activity.cut_at(settings).is_some_and(|at| at <= Instant::now()) {
                    tracing::debug!("closing a connection that sent too slowly or sat idle");
                    break;
                }
            }
            () = changed => {}
            Ok(()) = close.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            // Only a connection that could give its slot up looks: a want would otherwise wake
            // every open connection, and one client re-connecting in a loop, all of them each time.
            // One that becomes kept alive later is woken by that change and looks then.
            Ok(()) = reclaim.changed(), if activity.kept_alive() => {}
        }
    }
    drop(permit);
}

/// Requests being answered across all connections; `idle` is notified when the count drops to 0.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// What the watchdog of one connection needs to know.
struct Activity {
    state: Mutex<ActivityState>,
    /// Notified when a request starts or ends, and on the first byte of a request.
    changed: Notify,
}

struct ActivityState {
    in_flight: usize,
    /// The last byte read, or the end of the last request. Bytes written do not count: an answer
    /// is to be taken within the idle timeout of its end, or a client reading a byte a minute
    /// would hold its connection (and the slot a waiting client could have) for ever.
    last_io: Instant,
    /// The first byte read since the connection last had no request in flight (a request has
    /// begun), or, until its first request, when the connection was accepted: a client that
    /// connects owes its first header within the header timeout, whether it sends a byte or none.
    request_begun: Option<Instant>,
    /// What its first read said: HTTP/2 (its first bytes the client preface), HTTP/1, or not yet.
    /// An HTTP/2 client sends frames between requests (a PING, a WINDOW_UPDATE after a large
    /// answer) that begin none, so between its requests only the idle timeout applies: cut at the
    /// header timeout, a proxy reusing the connection just then would meet a reset.
    http2: Option<bool>,
}

/// How an HTTP/2 connection with prior knowledge begins (RFC 9113, 3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl Activity {
    fn new() -> Self {
        let accepted = Instant::now();
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                last_io: accepted,
                request_begun: Some(accepted),
                http2: None,
            }),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the connection is to be cut if nothing changes: none while a request is in flight
    /// (its body and deadline are the router's), else the idle timeout from the last byte read or
    /// the last request's end (its answer still being taken included), and, once a request has
    /// begun, the header timeout from its beginning if that comes first.
    fn cut_at(&self, settings: &ServerSettings) -> Option<Instant> {
        let state = self.state();
        if state.in_flight > 0 {
            return None;
        }
        let idle = state.last_io + settings.idle_timeout;
        Some(state.request_begun.map_or(idle, |begun| idle.min(begun + settings.header_read_timeout)))
    }

    /// Whether the connection sits between requests, having answered one (not one still owing its
    /// first request's headers: the header timeout bounds those).
    fn kept_alive(&self) -> bool {
        let state = self.state();
        state.in_flight == 0 && state.request_begun.is_none()
    }

    /// `bytes` were read. A first read shorter than the preface counts as HTTP/1 (a real HTTP/2
    /// client sends the preface in one write).
    fn read(&self, bytes: &[u8]) {
        let mut state = self.state();
        state.last_io = Instant::now();
        let http2 = *state.http2.get_or_insert_with(|| bytes.starts_with(HTTP2_PREFACE));
        if state.in_flight == 0 && state.request_begun.is_none() && !http2 {
            state.request_begun = Some(state.last_io);
            drop(state);
            self.changed.notify_waiters();
        }
    }
}

/// Counts a request in flight on its connection and on the server until it is answered (or
/// dropped, when the client leaves).
struct RequestGuard {
    activity: Arc<Activity>,
    shared: Arc<Shared>,
}

impl RequestGuard {
    fn enter(activity: Arc<Activity>, shared: Arc<Shared>) -> Self {
        shared.requests.count.fetch_add(1, Ordering::SeqCst);
        {
            let mut state = activity.state();
            state.in_flight += 1;
            state.request_begun = None;
        }
        activity.changed.notify_waiters();
        Self { activity, shared }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        {
            let mut state = self.activity.state();
            state.in_flight = state.in_flight.saturating_sub(1);
            state.last_io = Instant::now();
            // Bytes read meanwhile were this request's body (or a pipelined request, which then
            // waits at most the idle timeout).
            state.request_begun = None;
        }
        self.activity.changed.notify_waiters();
        let requests = &self.shared.requests;
        if requests.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            // notify_one keeps the wake-up if the drain loop is between its check and its wait.
            requests.idle.notify_one();
        }
    }
}

/// The socket, telling its connection's [`Activity`] when bytes move.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hundred probes at once ask the database once, and all get its answer; a probe after the
    /// answer has aged asks again.
    #[tokio::test]
    async fn concurrent_probes_share_one_database_ping() {
        let readiness = Readiness::default();
        let pings = AtomicUsize::new(0);
        let ping = || async {
            pings.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            true
        };
        let answers = futures::future::join_all((0..100).map(|_| readiness.check(ping()))).await;
        assert!(answers.iter().all(|ready| *ready));
        assert_eq!(pings.load(Ordering::SeqCst), 1, "one ping for the whole flood");

        tokio::time::sleep(Readiness::FRESH).await;
        assert!(readiness.check(ping()).await);
        assert_eq!(pings.load(Ordering::SeqCst), 2, "an aged answer is asked again");
    }

    /// An accept given up while it waited for a slot leaves its want; once its client finds a
    /// slot free, the want goes, so no kept-alive connection is closed for nobody.
    #[tokio::test]
    async fn a_client_finding_a_slot_free_withdraws_the_want_it_left() {
        let settings = ServerSettings {
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_connections: 1,
            shutdown_grace: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
        };
        let server = Server {
            slots: Arc::new(Semaphore::new(1)),
            shared: Arc::new(Shared {
                builder: auto::Builder::new(TokioExecutor::new()),
                router: Router::new(),
                settings,
                draining: Draining::default(),
                requests: InFlight::default(),
                reclaim: Reclaim::default(),
            }),
            close: watch::channel(false).0,
            waiting: Mutex::default(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let _client = TcpStream::connect(listener.local_addr().expect("address")).await.expect("connect");
        let taken = server.slots.clone().try_acquire_owned().expect("the one slot");
        let given_up = tokio::time::timeout(Duration::from_millis(200), server.accept(&listener)).await;
        assert!(given_up.is_err() && server.shared.reclaim.wanted.load(Ordering::SeqCst), "waiting, wanting a slot");
        drop(taken);
        assert!(server.accept(&listener).await.is_some(), "the waiting client gets the freed slot");
        assert!(!server.shared.reclaim.take(), "no want left behind");
    }

    /// The open-file limit is raised to hold the connections and the rest; past the hard limit,
    /// the cap is what it allows, with room left for the pool, files and webhooks.
    #[test]
    fn the_connection_cap_fits_the_open_file_limit() {
        assert_eq!(connection_cap(100), 100);
        let (soft, hard) = rlimit::Resource::NOFILE.get().expect("getrlimit");
        assert!(soft >= 100 + OTHER_DESCRIPTORS, "raised to {soft}");
        let Ok(beyond) = usize::try_from(hard) else { return };
        if beyond == usize::MAX {
            return; // no hard limit to pass
        }
        let cap = connection_cap(beyond);
        assert!(cap < beyond && (cap as u64) < hard, "{cap} of {hard}");
    }
}
