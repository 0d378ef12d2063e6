//! A request's two deadlines, kept apart because they blame different parties: its body must
//! arrive within the body read timeout of its headers (a slow client: 408 `request_timeout`), and
//! its answer must be ready within the request timeout (the service or its database: 503).

use super::error::ApiError;
use super::AppState;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Answers instead of hanging when a request outlives its deadline; the handler's future is
/// dropped, which rolls back any open transaction. A handler still waiting for the body then is
/// waiting for the client, so that answer is 408, not the database's 503.
pub(super) async fn deadline(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(Arrived(Instant::now()));
    let waiting_for_client = Arc::new(AtomicBool::new(false));
    let req = if req.body().is_end_stream() {
        req
    } else {
        let watch = waiting_for_client.clone();
        req.map(|body| Body::new(DeadlineBody::new(body, state.body_read_timeout, watch)))
    };
    let answer_by = Instant::now() + state.request_timeout;
    match tokio::time::timeout_at(answer_by, ANSWER_BY.scope(answer_by, next.run(req))).await {
        Ok(response) => response,
        Err(_) if waiting_for_client.load(Ordering::Relaxed) => ApiError::RequestTimeout.into_response(),
        Err(_) => ApiError::Busy("the request took longer than its deadline; try again shortly".into()).into_response(),
    }
}

tokio::task_local! {
    static ANSWER_BY: Instant;
}

/// When the answer to the request being handled is due (`None` outside one): a handler that has
/// committed a change waits for nothing optional past it, lest the deadline answer 503, "try
/// again", for a change that was made.
pub fn answer_by() -> Option<Instant> {
    ANSWER_BY.try_with(|at| *at).ok()
}

/// When the request's headers had arrived: the deadlines of what it asks for run from then, not
/// from when its body had (a Vapi tool call must be answered before Vapi gives up, however long
/// its body took).
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub Instant);

/// The error a body gives once its deadline has passed; the extractors answer it with 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

/// Whether `error` (a body extractor's rejection) comes from a body that did not arrive in time.
pub fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// A body that fails with [`BodyTimedOut`] once its deadline has passed. tower-http's
/// `RequestBodyTimeout` restarts its timer at every frame, so a client sending one byte a second
/// would never trip it; this deadline is for the whole body.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    /// True while the reader waits for bytes the client has not sent.
    waiting_for_client: Arc<AtomicBool>,
}

impl DeadlineBody {
    fn new(inner: Body, timeout: Duration, waiting_for_client: Arc<AtomicBool>) -> Self {
        Self { inner, deadline: Box::pin(tokio::time::sleep(timeout)), waiting_for_client }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.waiting_for_client.store(false, Ordering::Relaxed);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                self.waiting_for_client.store(true, Ordering::Relaxed);
                match self.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
