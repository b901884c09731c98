//! The clock of a connection between its requests.
//!
//! hyper's own header timer starts when a connection is ready for its next request, so one
//! bound would have to serve two cases: a client trickling a request head (slowloris: a few
//! seconds are plenty) and an agent keeping its connection open between two polls (10–30 s
//! apart, so a bound of a few seconds closes every connection and each poll opens a new one,
//! which costs the node about a third of the poll). Here each gets its own:
//!
//! - a request head must be in within `head` of its first byte (of the connection's start,
//!   for its first request);
//! - a connection with no request in progress and no byte of the next one is closed after
//!   `idle`, and so is one whose client does not take the answer within that time.
//!
//! While a request is answered neither applies: the request timeout does
//! ([`super::serve`]). A connection past either is ended with a `TimedOut` I/O error, which
//! hyper turns into closing it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The two bounds of a connection between requests.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadlines {
    /// From a request head's first byte (or the connection's start) to its end.
    pub(crate) head: Duration,
    /// From the end of a request to the first byte of the next.
    pub(crate) idle: Duration,
}

/// Requests started and finished on one connection, counted by its service: how its I/O
/// knows whether one is in progress, and that one ended. hyper polls the service and the
/// I/O on the connection's task, so the counts are never behind what the I/O sees.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    started: AtomicU32,
    finished: AtomicU32,
}

impl Requests {
    /// Count a request as started; it is finished when the guard is dropped (answered,
    /// timed out or abandoned alike).
    pub(crate) fn start(self: &Arc<Self>) -> InProgress {
        self.started.fetch_add(1, Ordering::Release);
        InProgress(Arc::clone(self))
    }

    fn counts(&self) -> (u32, u32) {
        (
            self.started.load(Ordering::Acquire),
            self.finished.load(Ordering::Acquire),
        )
    }
}

/// A request in progress on its connection.
pub(crate) struct InProgress(Arc<Requests>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Release);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the rest of a request head, bounded by `head`.
    Head,
    /// Between requests, bounded by `idle`.
    Idle,
    /// A request is being answered.
    Answering,
}

/// A connection's I/O with its clock.
pub(crate) struct Clocked<I> {
    io: I,
    requests: Arc<Requests>,
    deadlines: Deadlines,
    phase: Phase,
    /// Requests finished as of the last look, to notice the next one ending.
    finished: u32,
    /// When the current phase ends the connection (not in `Answering`).
    deadline: Instant,
    /// Set at or before `deadline`; moved later only once it fires, so a keep-alive request
    /// costs no timer update, only a look at the clock.
    timer: Pin<Box<Sleep>>,
}

impl<I> Clocked<I> {
    /// A new connection: its first request head is due within `deadlines.head`.
    pub(crate) fn new(io: I, requests: Arc<Requests>, deadlines: Deadlines) -> Self {
        let deadline = Instant::now() + deadlines.head;
        Clocked {
            io,
            requests,
            deadlines,
            phase: Phase::Head,
            finished: 0,
            deadline,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    /// Move to the phase the service's counts and the bytes just read say.
    fn follow(&mut self, read_bytes: bool) {
        let (started, finished) = self.requests.counts();
        if started != finished {
            self.phase = Phase::Answering;
            return;
        }
        if finished != self.finished {
            self.finished = finished;
            self.phase = Phase::Idle;
            self.deadline = Instant::now() + self.deadlines.idle;
        }
        if read_bytes && self.phase == Phase::Idle {
            self.phase = Phase::Head;
            self.deadline = Instant::now() + self.deadlines.head;
        }
    }

    /// Ready with the error that ends the connection once the phase's deadline passed;
    /// pending (with the timer set to wake the task then) before.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.phase == Phase::Answering {
            return Poll::Pending;
        }
        loop {
            if self.timer.deadline() > self.deadline {
                self.timer.as_mut().reset(self.deadline);
            }
            ready!(self.timer.as_mut().poll(cx));
            if self.timer.deadline() >= self.deadline {
                return Poll::Ready(self.expired());
            }
            // It fired for an earlier deadline that has since moved on.
            self.timer.as_mut().reset(self.deadline);
        }
    }

    fn expired(&self) -> io::Error {
        let what = match self.phase {
            Phase::Head => format!("request head not received within {:?}", self.deadlines.head),
            _ => format!("connection idle for {:?}", self.deadlines.idle),
        };
        io::Error::new(io::ErrorKind::TimedOut, what)
    }

    /// An answer went out: set the timer for the idle time now. hyper, its read already
    /// pending while it answered, reads again only when the socket or the timer wakes it.
    fn flushed(&mut self, cx: &mut Context<'_>) {
        self.follow(false);
        if self.phase != Phase::Answering && self.poll_deadline(cx).is_ready() {
            // Already past it: the next read, woken now, ends the connection.
            cx.waker().wake_by_ref();
        }
    }

    /// A write or flush that could not go on: the client is not taking the answer.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        self.follow(false);
        self.poll_deadline(cx)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Clocked<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        this.follow(buf.filled().len() > before);
        match read {
            Poll::Pending => this.poll_deadline(cx).map(Err),
            done => done,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Clocked<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Pending => this.poll_stalled(cx).map(Err),
            done => done,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.poll_stalled(cx).map(Err),
            done => done,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => this.poll_stalled(cx).map(Err),
            Poll::Ready(Ok(())) => {
                this.flushed(cx);
                Poll::Ready(Ok(()))
            }
            failed => failed,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    const DEADLINES: Deadlines = Deadlines {
        head: Duration::from_secs(5),
        idle: Duration::from_secs(75),
    };

    fn clocked() -> (
        Clocked<tokio::io::DuplexStream>,
        tokio::io::DuplexStream,
        Arc<Requests>,
    ) {
        let (server, client) = duplex(64);
        let requests = Arc::new(Requests::default());
        (
            Clocked::new(server, Arc::clone(&requests), DEADLINES),
            client,
            requests,
        )
    }

    /// The client sends a request head's first bytes and the server reads them.
    async fn head_arrives(
        io: &mut Clocked<tokio::io::DuplexStream>,
        client: &mut tokio::io::DuplexStream,
    ) {
        client.write_all(b"GET").await.unwrap();
        let mut head = [0u8; 3];
        io.read_exact(&mut head).await.unwrap();
    }

    async fn read_fails_after(io: &mut Clocked<tokio::io::DuplexStream>) -> (Duration, io::Error) {
        let started = Instant::now();
        let mut byte = [0u8; 1];
        let error = io
            .read(&mut byte)
            .await
            .expect_err("the deadline ends the read");
        (started.elapsed(), error)
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_head_is_due_within_the_head_bound_of_the_connection_start() {
        let (mut io, _client, _) = clocked();
        let (waited, error) = read_fails_after(&mut io).await;
        assert_eq!(waited, DEADLINES.head);
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(error.to_string().contains("request head"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn between_requests_the_idle_bound_applies_and_a_new_head_restarts_the_head_bound() {
        let (mut io, mut client, requests) = clocked();
        // One request, answered.
        head_arrives(&mut io, &mut client).await;
        drop(requests.start());
        // Idle well past the head bound, then the first byte of the next head.
        let mut byte = [0u8; 1];
        let (read, ()) = tokio::join!(io.read_exact(&mut byte), async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            client.write_all(b"P").await.unwrap();
        });
        read.expect("still open after 60 s idle");
        let (waited, error) = read_fails_after(&mut io).await;
        assert_eq!(waited, DEADLINES.head);
        assert!(error.to_string().contains("request head"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_ends_after_the_idle_bound_from_its_last_answer() {
        let (mut io, mut client, requests) = clocked();
        head_arrives(&mut io, &mut client).await;
        let answering = requests.start();
        // A slow answer does not eat into the idle time.
        tokio::time::sleep(Duration::from_secs(9)).await;
        drop(answering);
        let (waited, error) = read_fails_after(&mut io).await;
        assert_eq!(waited, DEADLINES.idle);
        assert!(error.to_string().contains("idle"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_bound_applies_while_a_request_is_answered() {
        let (mut io, _client, requests) = clocked();
        let answering = requests.start();
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(600), io.read(&mut byte)).await;
        assert!(read.is_err(), "the read waited for the client: {read:?}");
        drop(answering);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_does_not_take_its_answer_is_ended_after_the_idle_bound() {
        let (mut io, _client, requests) = clocked();
        drop(requests.start());
        let started = Instant::now();
        // The duplex holds 64 bytes; the client never reads them.
        let error = io
            .write_all(&[0u8; 1024])
            .await
            .expect_err("stalled write ends");
        assert_eq!(started.elapsed(), DEADLINES.idle);
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
