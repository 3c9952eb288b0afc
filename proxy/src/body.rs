//! Body types that stream through the proxy without buffering.
//!
//! - [`RequestBody`]: the client's body on its way to the origin, counted and held to
//!   `limits.max_request_body` and, when set, `limits.min_body_rate` (R.U.D.Y.: a body trickled
//!   to hold a connection and an origin request open). The rate is the average since the body's
//!   first poll; it is checked once `min_body_rate_grace` has passed, and only while the body
//!   waits for the client.
//! - [`ResponseBody`]: what the client receives: an origin's streamed body or a short body made
//!   here. It carries the request's [`Completion`], which records metrics and writes the access
//!   log line when the body ends or is dropped — the moment the exchange is really over.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::cache::Tee;
use crate::complete::Completion;
use crate::h1::client::OriginBody;
use crate::h1::io::ClientBody;
use crate::metrics::UpstreamErrorKind;
use crate::policy::cut;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The client sent more than `limits.max_request_body`.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the configured limit of {limit} bytes")]
pub struct BodyTooLarge {
    pub limit: u64,
}

/// The client sent its body slower than `limits.min_body_rate`.
#[derive(Debug, thiserror::Error)]
#[error("request body slower than the minimum of {rate} bytes/s")]
pub struct SlowBody {
    pub rate: u64,
}

/// The `min_body_rate` clock of one body (boxed: most bodies have none).
#[derive(Debug)]
struct MinRate {
    rate: u64,
    grace: Duration,
    started: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    /// `portcullis_protection_rejected_total{reason="slow"}` of the site.
    slow: prometheus::IntCounter,
}

impl MinRate {
    /// Whether the body, waiting for the client, has fallen below the rate: it has `seen`
    /// bytes, and is allowed `max(grace, seen / rate)` since it started.
    fn expired(&mut self, cx: &mut Context<'_>, seen: u64) -> bool {
        let started = *self.started.get_or_insert_with(Instant::now);
        let earned = Duration::from_secs_f64(seen as f64 / self.rate as f64);
        let deadline = started + self.grace.max(earned);
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

/// The exchange was cut because a legal order now blocks its host.
#[derive(Debug, thiserror::Error)]
#[error("cut: a legal order now blocks this host")]
pub struct CutByPolicy;

pin_project_lite::pin_project! {
    /// The client's request body, streamed to the origin.
    #[derive(Debug)]
    pub struct RequestBody {
        #[pin]
        inner: ClientBody,
        seen: u64,
        limit: u64,
        counter: prometheus::IntCounter,
        min_rate: Option<Box<MinRate>>,
    }

    impl PinnedDrop for RequestBody {
        fn drop(this: Pin<&mut Self>) {
            this.counter.inc_by(this.seen);
        }
    }
}

impl RequestBody {
    /// `limit` of `None` means unlimited.
    pub fn new(inner: ClientBody, limit: Option<u64>, counter: prometheus::IntCounter) -> Self {
        RequestBody {
            inner,
            seen: 0,
            limit: limit.unwrap_or(u64::MAX),
            counter,
            min_rate: None,
        }
    }

    /// Cuts the body when it arrives slower than `rate` bytes/s after `grace` (see the module
    /// docs), counting the cut in `slow`. `None`: no minimum.
    pub fn min_rate(mut self, min: Option<(u64, Duration)>, slow: &prometheus::IntCounter) -> Self {
        self.min_rate = min.filter(|(rate, _)| *rate > 0).map(|(rate, grace)| {
            Box::new(MinRate {
                rate,
                grace,
                started: None,
                timer: None,
                slow: slow.clone(),
            })
        });
        self
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if let Some(m) = this.min_rate.as_mut() {
            m.started.get_or_insert_with(Instant::now);
        }
        let polled = this.inner.poll_frame(cx);
        if polled.is_pending() {
            if let Some(m) = this.min_rate.as_mut() {
                if m.expired(cx, *this.seen) {
                    m.slow.inc();
                    let rate = m.rate;
                    *this.min_rate = None;
                    return Poll::Ready(Some(Err(Box::new(SlowBody { rate }))));
                }
            }
        }
        let frame = match ready!(polled) {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Poll::Ready(Some(Err(e))),
            None => return Poll::Ready(None),
        };
        if let Some(data) = frame.data_ref() {
            *this.seen += data.len() as u64;
            if *this.seen > *this.limit {
                let limit = *this.limit;
                return Poll::Ready(Some(Err(Box::new(BodyTooLarge { limit }))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// The body sent to the client.
    #[derive(Debug)]
    pub struct ResponseBody {
        #[pin]
        kind: Kind,
        completion: Option<Completion>,
        // Set on forwarded exchanges when legal orders are enforced: a change that blocks the
        // host ends the body with an error.
        cut: Option<cut::Guard>,
        // Set on responses being stored by the cache: each chunk is copied on its way.
        tee: Option<Box<Tee>>,
    }

    impl PinnedDrop for ResponseBody {
        fn drop(this: Pin<&mut Self>) {
            // A body dropped after its last byte was handed over is complete even if nobody
            // polled the final `None` (hyper stops at Content-Length).
            let done = this.as_ref().get_ref().is_end_stream();
            let this = this.project();
            if let Some(mut c) = this.completion.take() {
                if done {
                    c.mark_complete();
                }
            }
            if let Some(tee) = this.tee.take() {
                if done {
                    tee.finish();
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind {
        Full { data: Option<Bytes> },
        H1 { #[pin] inner: OriginBody },
        H2 { #[pin] inner: hyper::body::Incoming },
    }
}

impl ResponseBody {
    /// A body generated here (error pages, admin answers).
    pub fn full(data: impl Into<Bytes>) -> Self {
        ResponseBody {
            kind: Kind::Full {
                data: Some(data.into()),
            },
            completion: None,
            cut: None,
            tee: None,
        }
    }

    pub fn empty() -> Self {
        ResponseBody {
            kind: Kind::Full { data: None },
            completion: None,
            cut: None,
            tee: None,
        }
    }

    pub(crate) fn h1(inner: OriginBody) -> Self {
        ResponseBody {
            kind: Kind::H1 { inner },
            completion: None,
            cut: None,
            tee: None,
        }
    }

    pub(crate) fn h2(inner: hyper::body::Incoming) -> Self {
        ResponseBody {
            kind: Kind::H2 { inner },
            completion: None,
            cut: None,
            tee: None,
        }
    }

    /// Registers the exchange for cutting (see `policy::cut`).
    pub fn set_cut_guard(&mut self, guard: cut::Guard) {
        self.cut = Some(guard);
    }

    /// Stores the body in the cache as it streams (see `cache::Tee`).
    pub fn set_tee(&mut self, tee: Box<Tee>) {
        if self.is_end_stream() {
            tee.finish();
        } else {
            self.tee = Some(tee);
        }
    }

    /// Takes the cut registration out (an upgraded tunnel watches it itself).
    pub fn take_cut_guard(&mut self) -> Option<cut::Guard> {
        self.cut.take()
    }

    pub(crate) fn set_completion(&mut self, mut completion: Completion) {
        if self.is_end_stream() {
            // Nothing will ever be polled (HEAD, 204, 304, empty bodies): finish now.
            completion.mark_complete();
        } else {
            self.completion = Some(completion);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        // Ends the body because a legal order cut the exchange; dropping the completion
        // records the exchange as incomplete.
        let cut = |cut: &mut Option<cut::Guard>, completion: &mut Option<Completion>| {
            *cut = None;
            // Nothing cut short is stored.
            drop(completion.take());
            Poll::Ready(Some(Err(Box::new(CutByPolicy) as Self::Error)))
        };
        if this.cut.as_ref().is_some_and(|g| g.signal.is_cut()) {
            *this.tee = None;
            return cut(this.cut, this.completion);
        }
        let polled = match this.kind.project() {
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::H1 { inner } => inner.poll_frame(cx).map_err(Into::into),
            KindProj::H2 { inner } => inner.poll_frame(cx).map_err(Into::into),
        };
        if let Poll::Ready(ref item) = polled {
            match item {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        if let Some(c) = this.completion.as_mut() {
                            c.add_bytes(data.len() as u64);
                        }
                        if let Some(tee) = this.tee.as_mut() {
                            if !tee.push(data) {
                                // Over max_object_size: streamed on, not stored.
                                *this.tee = None;
                            }
                        }
                    }
                }
                // Only an origin's body can fail: the origin broke the connection mid-body.
                // Dropping the completion records the exchange as incomplete.
                Some(Err(_)) => {
                    *this.tee = None;
                    if let Some(c) = this.completion.take() {
                        c.metrics().count_upstream_error(UpstreamErrorKind::Reset);
                    }
                }
                None => {
                    if let Some(mut c) = this.completion.take() {
                        c.mark_complete();
                    }
                    if let Some(tee) = this.tee.take() {
                        tee.finish();
                    }
                }
            }
        } else if this.cut.as_ref().is_some_and(|g| g.signal.poll_cut(cx)) {
            // Waiting on the origin: woken if a legal order cuts the exchange meanwhile.
            *this.tee = None;
            return cut(this.cut, this.completion);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            Kind::H1 { inner } => inner.is_end_stream(),
            Kind::H2 { inner } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::H1 { inner } => inner.size_hint(),
            Kind::H2 { inner } => inner.size_hint(),
        }
    }
}
