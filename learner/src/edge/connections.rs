//! The learner's connections: its own accept loop (a cap on open connections, backoff when
//! the process runs out of descriptors, NODELAY), each connection tracked until it closes, and
//! closed when it makes no authenticated request within the auth timeout, when a newer one
//! displaces it at the cap before it has authenticated, or when the learner stops and it is
//! still open (a slow reader must not hold shutdown).
//!
//! tonic's own `TcpIncoming` has none of these (issue 14: 1,088 silent connections took every
//! descriptor and locked actors out), so the listener is served through [`incoming`].

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::{info, warn};

use super::door::RefusalLog;
use crate::telemetry::EdgeCounters;
use crate::telemetry::edge_counters::bump;

/// Descriptors kept free for everything but connections (run files, checkpoints, the
/// metrics endpoint, the runtime).
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// What the request path learns about the connection it came on (a request extension, under
/// TLS inside `TlsConnectInfo`).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub remote: Option<SocketAddr>,
    conn: Arc<Conn>,
}

impl ConnInfo {
    /// The connection a request came on, plain or under TLS.
    pub fn of(extensions: &http::Extensions) -> Option<&ConnInfo> {
        use tonic::transport::server::TlsConnectInfo;
        extensions.get::<ConnInfo>().or_else(|| {
            extensions
                .get::<TlsConnectInfo<ConnInfo>>()
                .map(TlsConnectInfo::get_ref)
        })
    }

    /// Records that a request on this connection passed authentication: it is no longer
    /// closed by the auth timeout or displaced at the cap.
    pub fn authenticated(&self) {
        self.conn.authenticated.store(true, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Conn {
    authenticated: AtomicBool,
    close: CancellationToken,
    /// The client's address (no port): at the limit, the address holding the most
    /// unauthenticated connections gives one up.
    ip: Option<std::net::IpAddr>,
}

/// The open connections, oldest first.
#[derive(Debug)]
pub struct Connections {
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    max: usize,
    auth_timeout: Duration,
    counters: Arc<EdgeCounters>,
    log: RefusalLog,
}

impl Connections {
    /// At most `max` open connections, each authenticated within `auth_timeout`.
    pub fn new(max: usize, auth_timeout: Duration, counters: Arc<EdgeCounters>) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::default(),
            next: AtomicU64::new(0),
            max: max.max(1),
            auth_timeout,
            counters,
            log: RefusalLog::default(),
        })
    }

    /// Connections open now.
    pub fn open_count(&self) -> usize {
        self.open.lock().expect("connections lock").len()
    }

    /// Closes every open connection (the learner is stopping; what was to be said is said).
    /// Returns how many were open.
    pub fn close_all(&self) -> usize {
        let open = std::mem::take(&mut *self.open.lock().expect("connections lock"));
        for conn in open.values() {
            conn.close.cancel();
        }
        open.len()
    }

    /// Admits a new connection from `ip`: at the cap, the oldest unauthenticated connection of
    /// the address that holds the most unauthenticated ones is closed to make room (a flood
    /// from one address displaces its own connections, not others' reconnecting actors);
    /// `None` (counted, logged) when every open one has authenticated.
    fn admit(self: &Arc<Self>, ip: Option<std::net::IpAddr>) -> Option<(u64, Arc<Conn>)> {
        let mut open = self.open.lock().expect("connections lock");
        if open.len() >= self.max {
            let mut per_ip: std::collections::HashMap<_, (usize, u64)> = Default::default();
            for (&id, c) in open.iter() {
                if !c.authenticated.load(Ordering::Relaxed) {
                    // Oldest first: the first id seen of an address is its oldest.
                    per_ip.entry(c.ip).or_insert((0, id)).0 += 1;
                }
            }
            let oldest = per_ip
                .values()
                .max_by_key(|&&(count, id)| (count, std::cmp::Reverse(id)))
                .map(|&(_, id)| id);
            bump(&self.counters.refused_connections);
            let displaced = oldest.and_then(|id| open.remove(&id));
            if let Some(suppressed) = self.log.allow() {
                warn!(
                    limit = self.max,
                    suppressed,
                    "connection limit reached (learner.limits.max_connections): {}",
                    if displaced.is_some() {
                        "the oldest connection that has not authenticated is closed for the new one"
                    } else {
                        "every open connection has authenticated; the new one is closed"
                    }
                );
            }
            match displaced {
                Some(displaced) => displaced.close.cancel(),
                None => return None,
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let conn = Arc::new(Conn {
            authenticated: AtomicBool::new(false),
            close: CancellationToken::new(),
            ip,
        });
        open.insert(id, conn.clone());
        Some((id, conn))
    }

    fn closed(&self, id: u64) {
        self.open.lock().expect("connections lock").remove(&id);
    }

    /// Closes `conn` unless it authenticates within the auth timeout.
    fn watch(self: &Arc<Self>, conn: Arc<Conn>, remote: Option<SocketAddr>) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(this.auth_timeout) => {}
                _ = conn.close.cancelled() => return,
            }
            if !conn.authenticated.load(Ordering::Relaxed) {
                conn.close.cancel();
                if let Some(suppressed) = this.log.allow() {
                    warn!(
                        peer = ?remote,
                        timeout_s = this.auth_timeout.as_secs_f64(),
                        suppressed,
                        "connection closed: no authenticated request in time \
                         (learner.limits.auth_timeout_secs)"
                    );
                }
            }
        });
    }
}

/// One accepted connection: the socket, closed (reads fail) when the learner closes it; leaves the
/// open set when dropped.
pub struct Tracked {
    stream: TcpStream,
    info: ConnInfo,
    id: u64,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
    connections: Arc<Connections>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.connections.closed(self.id);
        // Ends its auth-timeout watch at once.
        self.info.conn.close.cancel();
    }
}

impl Tracked {
    fn check_open(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.closed.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed by the learner",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Polled first, so that a connection that is only read from wakes when it is closed.
        self.check_open(cx)?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check_open(cx)?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Tracked {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

/// Longest pause of the accept loop after an error (out of descriptors: it waits for some to
/// be freed instead of spinning a core).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts on `listener` until `shutdown`, admitting connections into `connections`; the
/// stream tonic serves.
pub fn incoming(
    listener: TcpListener,
    connections: Arc<Connections>,
    shutdown: CancellationToken,
) -> ReceiverStream<io::Result<Tracked>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut backoff = Duration::ZERO;
        let errors = RefusalLog::default();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.cancelled() => return,
            };
            let (stream, remote) = match accepted {
                Ok(ok) => {
                    backoff = Duration::ZERO;
                    ok
                }
                Err(e) => {
                    // EMFILE/ENFILE (out of descriptors) and the like: wait, then try again.
                    backoff = (backoff * 2).clamp(Duration::from_millis(5), MAX_ACCEPT_BACKOFF);
                    if let Some(suppressed) = errors.allow() {
                        warn!(
                            error = %e,
                            retry_in_ms = backoff.as_millis() as u64,
                            open = connections.open_count(),
                            suppressed,
                            "accepting a connection failed"
                        );
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => continue,
                        _ = shutdown.cancelled() => return,
                    }
                }
            };
            let Some((id, conn)) = connections.admit(Some(remote.ip())) else {
                continue; // dropped: closed at once
            };
            // Without NODELAY, a parameter version's last segment waited for the actor's
            // delayed ACK (~12 ms here).
            let _ = stream.set_nodelay(true);
            connections.watch(conn.clone(), Some(remote));
            let tracked = Tracked {
                stream,
                info: ConnInfo {
                    remote: Some(remote),
                    conn: conn.clone(),
                },
                id,
                closed: Box::pin(conn.close.clone().cancelled_owned()),
                connections: connections.clone(),
            };
            if tx.send(Ok(tracked)).await.is_err() {
                return; // the server stopped
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Raises the soft open-file limit to the hard one where allowed, logs both, and returns the
/// connection limit they leave room for: `max_connections`, or fewer when the descriptors
/// (less [`RESERVED_DESCRIPTORS`]) are fewer.
pub fn fit_connection_limit(max_connections: usize) -> usize {
    let (before, after) = match raise_open_file_limit() {
        Ok(limits) => limits,
        Err(e) => {
            warn!(error = %e, max_connections, "cannot read the open-file limit");
            return max_connections;
        }
    };
    let room = after.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    let limit = (max_connections as u64).min(room) as usize;
    info!(
        open_files_soft_limit = after,
        raised_from = before,
        max_connections = limit,
        "open-file limit"
    );
    if limit < max_connections {
        warn!(
            configured = max_connections,
            max_connections = limit,
            open_files = after,
            "connection limit lowered to what the open-file limit leaves room for \
             (raise it with `ulimit -n` or the container's nofile limit)"
        );
    }
    limit
}

/// (soft limit before, soft limit after): raised to the hard limit.
fn raise_open_file_limit() -> io::Result<(u64, u64)> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    if soft < hard && rlimit::Resource::NOFILE.set(hard, hard).is_ok() {
        return Ok((soft, hard));
    }
    Ok((soft, soft))
}
