//! Serving the daemon's HTTP endpoints (`/healthz`, `/metrics`, the health check node ports)
//! within limits, so that no client can starve the syncs or the other clients: the healthz
//! address and the health check node ports are reachable from every Pod through the node's
//! address.
//!
//! - A connection must send a request's whole head within [`Limits::header_timeout`], and
//!   the next one within the same time after an answer (an idle keep-alive connection is
//!   closed then): slowloris clients and idle floods let go of their sockets.
//! - A connection lives at most [`Limits::lifetime`]: then it finishes the request it serves
//!   and is closed (a client dribbling a request body holds it no longer).
//! - Every server of the process shares one budget of open connections ([`Gate`]), sized
//!   from the process's file-handle limit (`RLIMIT_NOFILE`) so that the syncs' own handles
//!   (netlink sockets, `iptables-restore` pipes, the directory source's files) stay
//!   available. One client address holds at most [`Limits::per_client`] of them, so one
//!   Pod's flood leaves room for the kubelet, Prometheus and load balancers. A connection
//!   beyond either cap is closed as soon as it is accepted: it fails at once rather than
//!   waiting in the kernel's backlog behind the flood, and the next client to come after a
//!   connection closed gets its place.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits of every HTTP server of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a request's head, from the connection's start or the previous answer.
    pub header_timeout: Duration,
    /// Age at which a connection is closed after the request it serves.
    pub lifetime: Duration,
    /// Connections open at once, all servers together.
    pub connections: usize,
    /// Connections open at once from one client address.
    pub per_client: usize,
}

/// Time to send a request's head (and the idle time allowed between requests).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Age at which a connection is closed.
const LIFETIME: Duration = Duration::from_secs(60);
/// At most this many connections, whatever the file-handle limit.
const MAX_CONNECTIONS: usize = 1024;
/// The share of the file-handle limit HTTP connections may hold: one in four.
const NOFILE_SHARE: u64 = 4;
/// Connections from one client address.
const PER_CLIENT: usize = 32;
/// A request's head and buffered body, per connection (hyper's smallest buffer).
const MAX_BUFFER: usize = 8192;
/// Time a connection at the end of its lifetime gets to finish its answer.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

impl Limits {
    /// The limits for a process whose soft `RLIMIT_NOFILE` is `nofile`: a quarter of the
    /// handles for HTTP connections, at most [`MAX_CONNECTIONS`], at least one per server.
    pub fn for_nofile(nofile: u64) -> Self {
        let share = usize::try_from(nofile / NOFILE_SHARE).unwrap_or(usize::MAX);
        let connections = share.clamp(1, MAX_CONNECTIONS);
        Limits {
            header_timeout: HEADER_TIMEOUT,
            lifetime: LIFETIME,
            connections,
            per_client: PER_CLIENT.min(connections),
        }
    }
}

/// The soft `RLIMIT_NOFILE` of this process (`None`: unlimited).
fn nofile() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// The budget of open connections every server of the process takes from.
#[derive(Debug)]
pub struct Gate {
    limits: Limits,
    open: Arc<Semaphore>,
    clients: Mutex<HashMap<IpAddr, usize>>,
}

impl Gate {
    /// A budget of `limits`.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Gate {
            limits,
            open: Arc::new(Semaphore::new(limits.connections)),
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The process's budget, sized from its file-handle limit when first asked for.
    pub fn shared() -> Arc<Self> {
        static SHARED: OnceLock<Arc<Gate>> = OnceLock::new();
        Arc::clone(SHARED.get_or_init(|| {
            let nofile = nofile().unwrap_or(u64::MAX);
            let limits = Limits::for_nofile(nofile);
            tracing::info!(nofile, connections = limits.connections,
                per_client = limits.per_client, header_timeout = ?limits.header_timeout,
                lifetime = ?limits.lifetime, "HTTP connection limits");
            Gate::new(limits)
        }))
    }

    /// A place for a connection from `client`; `None` when the budget is spent or that
    /// client already holds its share.
    fn admit(self: &Arc<Self>, client: IpAddr) -> Option<Place> {
        let permit = Arc::clone(&self.open).try_acquire_owned().ok()?;
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let held = clients.entry(client).or_insert(0);
        if *held >= self.limits.per_client {
            return None;
        }
        *held += 1;
        Some(Place {
            gate: Arc::clone(self),
            client,
            _permit: permit,
        })
    }
}

/// One open connection's share of the [`Gate`], given back when dropped.
struct Place {
    gate: Arc<Gate>,
    client: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut clients = self.gate.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = clients.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                clients.remove(&self.client);
            }
        }
    }
}

/// Serves `router` on `listener` within the limits of `gate`, until the future is dropped
/// (the listener closes with it; open connections finish within their limits).
pub async fn serve(listener: TcpListener, router: Router, gate: Arc<Gate>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of handles or memory: let the syncs have them for a moment.
                tracing::warn!(error = %e, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(place) = gate.admit(peer.ip()) else {
            tracing::debug!(client = %peer, "closing a connection beyond the HTTP connection caps");
            continue;
        };
        tokio::spawn(connection(stream, peer, router.clone(), gate.limits, place));
    }
}

/// Serves one connection until it closes, fails its header timeout or reaches its lifetime.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    place: Place,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_BUFFER)
        // A client may shut its sending side once the request is out (`printf ... | nc`,
        // some load balancers' probes): answer it anyway, as Go's server (kube-proxy's) does,
        // instead of dropping the answer when the EOF is read before it is ready.
        .half_close(true);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = tokio::time::sleep(limits.lifetime) => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(CLOSE_GRACE, conn.as_mut())
                .await
                .unwrap_or(Ok(()))
        }
    };
    if let Err(e) = result {
        tracing::debug!(client = %peer, error = %e, "HTTP connection closed");
    }
    drop(place);
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(connections: usize, per_client: usize) -> Limits {
        Limits {
            header_timeout: Duration::from_millis(300),
            lifetime: Duration::from_secs(3),
            connections,
            per_client,
        }
    }

    /// A server of `/` on 127.0.0.1 within `limits`.
    async fn server(limits: Limits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let router = Router::new().route("/", get(|| async { "ok" })).route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        );
        tokio::spawn(serve(listener, router, Gate::new(limits)));
        addr
    }

    /// A connection to `server` from the loopback address `from`.
    async fn connect(from: [u8; 4], server: SocketAddr) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from((from, 0)))
            .expect("bind the client");
        socket.connect(server).await.expect("connect")
    }

    /// `GET /` from `from`: the whole answer, empty when the server closed (or reset) the
    /// connection unanswered, `None` when nothing came within 2 s.
    async fn get_from(from: [u8; 4], server: SocketAddr) -> Option<String> {
        let mut stream = connect(from, server).await;
        let exchange = async {
            let mut out = String::new();
            if stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.is_ok() {
                let _ = stream.read_to_string(&mut out).await;
            }
            out
        };
        tokio::time::timeout(Duration::from_secs(2), exchange)
            .await
            .ok()
    }

    #[tokio::test]
    async fn a_client_that_shuts_its_sending_side_still_gets_the_answer() {
        let addr = server(limits(16, 8)).await;
        let mut stream = connect([127, 0, 0, 1], addr).await;
        stream
            .write_all(b"GET /slow HTTP/1.0\r\n\r\n")
            .await
            .expect("request");
        stream.shutdown().await.expect("half-close");
        let mut out = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut out)).await;
        assert!(out.starts_with("HTTP/1.0 200 OK"), "{out:?}");
        assert!(out.ends_with("slow"), "{out:?}");
    }

    /// Whether the server closes `stream` (EOF or reset) within `within`.
    async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match tokio::time::timeout(within, stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    #[test]
    fn the_budget_is_a_quarter_of_the_file_handles_within_bounds() {
        assert_eq!(Limits::for_nofile(512).connections, 128);
        assert_eq!(Limits::for_nofile(512).per_client, PER_CLIENT);
        assert_eq!(Limits::for_nofile(1 << 20).connections, MAX_CONNECTIONS);
        let tiny = Limits::for_nofile(3);
        assert_eq!((tiny.connections, tiny.per_client), (1, 1));
    }

    #[tokio::test]
    async fn idle_and_slow_heads_are_closed_after_the_header_timeout() {
        let addr = server(limits(8, 8)).await;
        let mut idle = connect([127, 0, 0, 1], addr).await;
        assert!(closed_within(&mut idle, Duration::from_secs(2)).await);

        // A head sent a byte at a time, each in time, never finished.
        let mut slow = connect([127, 0, 0, 1], addr).await;
        slow.write_all(b"GET / HTTP/1.1\r\nX-Slow: ")
            .await
            .expect("write");
        let closed = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if slow.write_all(b"a").await.is_err() {
                    return;
                }
            }
        };
        assert!(
            tokio::time::timeout(Duration::from_secs(2), closed)
                .await
                .is_ok(),
            "a slow head keeps its connection"
        );

        // A keep-alive connection idle after its answer.
        let mut kept = connect([127, 0, 0, 1], addr).await;
        kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut answer = [0u8; 512];
        let n = kept.read(&mut answer).await.expect("an answer");
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
        assert!(closed_within(&mut kept, Duration::from_secs(2)).await);
    }

    #[tokio::test]
    async fn a_connection_is_closed_at_the_end_of_its_lifetime() {
        let addr = server(Limits {
            header_timeout: Duration::from_secs(30),
            lifetime: Duration::from_millis(300),
            ..limits(8, 8)
        })
        .await;
        // A body announced and never sent, which the header timeout does not cover.
        let mut stream = connect([127, 0, 0, 1], addr).await;
        stream
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            .await
            .expect("write");
        assert!(closed_within(&mut stream, Duration::from_secs(8)).await);
    }

    #[tokio::test]
    async fn one_client_gets_its_share_and_others_still_get_answers() {
        let addr = server(limits(4, 2)).await;
        let _flood = [
            connect([127, 0, 0, 2], addr).await,
            connect([127, 0, 0, 2], addr).await,
        ];
        // Give the server time to take both.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            get_from([127, 0, 0, 2], addr).await.as_deref(),
            Some(""),
            "a third connection from the flooding client is not closed at once"
        );
        let answer = get_from([127, 0, 0, 3], addr).await.expect("an answer");
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    }

    #[tokio::test]
    async fn at_the_cap_new_connections_are_closed_until_one_closes() {
        let addr = server(limits(2, 2)).await;
        let flood = [
            connect([127, 0, 0, 2], addr).await,
            connect([127, 0, 0, 3], addr).await,
        ];
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(get_from([127, 0, 0, 4], addr).await.as_deref(), Some(""));
        drop(flood);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let answer = get_from([127, 0, 0, 4], addr).await.expect("an answer");
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    }
}
