//! kube-proxy's health check node port servers (`pkg/proxy/healthcheck/service_health.go`):
//! one HTTP server per Service that [`desired::health_check`] lists, on its
//! `healthCheckNodePort`, telling load balancers whether this node has ready endpoints of
//! the Service. The sync loop calls [`ServiceHealth::sync`] after every successful sync, in
//! both proxy modes, as kube-proxy's proxiers call `SyncServices` and `SyncEndpoints`.
//!
//! Every request, whatever its method and path, gets `Content-Type: application/json`,
//! `X-Content-Type-Options: nosniff`, `X-Load-Balancing-Endpoint-Weight: N`, status 200 when
//! N > 0 and the proxy is healthy (the `/livez` verdict), 503 otherwise, and kube-proxy's body
//! to the byte (see [`body`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use anyhow::Context as _;
use axum::Router;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::IntoResponse;
use desired::{HealthCheck, Listen};
use model::source::kube::EventReporter;
use model::{Kind, ObjectId};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::proxy_health::HealthState;
use httpd::Gate;

/// The Event reason kube-proxy uses when a health check port cannot be opened.
const FAILED_EVENT: &str = "FailedToStartServiceHealthcheck";

/// The `sync_errors` kind counting health check servers that could not be started.
pub const ERROR_KIND: &str = "health_check_node_port";

/// kube-proxy's header with the number of local endpoints, for load balancers that weigh
/// nodes by it.
const WEIGHT: HeaderName = HeaderName::from_static("x-load-balancing-endpoint-weight");

/// The running health check servers, by Service.
pub struct ServiceHealth {
    node_name: String,
    health: HealthState,
    events: Option<Arc<EventReporter>>,
    gate: Arc<Gate>,
    servers: BTreeMap<ObjectId, Server>,
}

impl ServiceHealth {
    /// No servers yet. `health` gives `serviceProxyHealthy`; a failed start is logged and,
    /// with a cluster source, published through `events`.
    pub fn new(node_name: &str, health: HealthState, events: Option<Arc<EventReporter>>) -> Self {
        ServiceHealth {
            node_name: node_name.to_owned(),
            health,
            events,
            gate: Gate::shared(),
            servers: BTreeMap::new(),
        }
    }

    /// Makes the servers those of `wanted`, as kube-proxy's `SyncServices` then
    /// `SyncEndpoints`: closes those no longer wanted or wanted on another port or addresses,
    /// opens the missing ones (a port that cannot be bound is logged and reported, and tried
    /// again at the next sync; the others are not affected), and sets every server's count
    /// of local endpoints. Returns how many servers could not be started, for the caller to
    /// count as [`ERROR_KIND`] errors.
    #[must_use = "the servers that failed to start are counted by the caller"]
    pub async fn sync(&mut self, wanted: &BTreeMap<ObjectId, HealthCheck>) -> u64 {
        let mut failed = 0;
        let stale: Vec<ObjectId> = self
            .servers
            .iter()
            .filter(|(id, s)| {
                wanted
                    .get(*id)
                    .is_none_or(|w| w.port != s.port || w.listen != s.listen)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some(server) = self.servers.remove(&id) {
                tracing::info!(service = %id, port = server.port, "closing the health check server");
                server.close().await;
            }
        }
        for (id, check) in wanted {
            if self.servers.contains_key(id) {
                continue;
            }
            match Server::open(id, check, &self.health, &self.gate).await {
                Ok(server) => {
                    tracing::info!(service = %id, port = check.port, listen = ?check.listen,
                        "health check server open");
                    self.servers.insert(id.clone(), server);
                }
                Err(e) => {
                    failed += 1;
                    self.failed(id, check.port, &e);
                }
            }
        }
        for (id, server) in &self.servers {
            let count = wanted.get(id).map_or(0, |w| w.local_endpoints);
            server.local_endpoints.store(count, Ordering::Relaxed);
        }
        failed
    }

    /// Reports a server that could not be started.
    fn failed(&self, id: &ObjectId, port: u16, error: &anyhow::Error) {
        tracing::error!(service = %id, port, error = format!("{error:#}"),
            "failed to start the health check server");
        if let Some(events) = &self.events {
            let note = format!(
                "node {} failed to start healthcheck \"{id}\" on port {port}: {error:#}",
                self.node_name
            );
            let (events, id) = (Arc::clone(events), id.clone());
            tokio::spawn(async move {
                if let Err(e) = events
                    .warning(Kind::Service, &id, FAILED_EVENT, "Listen", &note)
                    .await
                {
                    tracing::warn!(error = %e, "cannot publish an Event about {id}");
                }
            });
        }
    }
}

/// One Service's server: a listener per address, all answering with the same count.
struct Server {
    port: u16,
    listen: Listen,
    local_endpoints: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds every address of `check` (none stays bound when one fails) and serves them
    /// within the limits of `gate`.
    async fn open(
        id: &ObjectId,
        check: &HealthCheck,
        health: &HealthState,
        gate: &Arc<Gate>,
    ) -> anyhow::Result<Self> {
        let listeners = bind(&check.listen, check.port).await?;
        let local_endpoints = Arc::new(AtomicUsize::new(check.local_endpoints));
        let app = router(id.clone(), Arc::clone(&local_endpoints), health.clone());
        let tasks = listeners
            .into_iter()
            .map(|listener| tokio::spawn(httpd::serve(listener, app.clone(), Arc::clone(gate))))
            .collect();
        Ok(Server {
            port: check.port,
            listen: check.listen.clone(),
            local_endpoints,
            tasks,
        })
    }

    /// Closes the listeners before returning, so the port can be bound again at once; open
    /// connections finish within their limits.
    async fn close(self) {
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

/// The listeners for `listen`: one dual-stack wildcard socket for [`Listen::All`] (IPv4 only
/// where the node has no IPv6), else one per address.
async fn bind(listen: &Listen, port: u16) -> anyhow::Result<Vec<TcpListener>> {
    match listen {
        Listen::All => Ok(vec![TcpListener::from_std(wildcard(port)?)?]),
        Listen::Addresses(ips) => {
            let mut listeners = Vec::with_capacity(ips.len());
            for ip in ips {
                let addr = SocketAddr::new(*ip, port);
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening on {addr}"))?;
                listeners.push(listener);
            }
            Ok(listeners)
        }
    }
}

/// A listener on every address of both families (`[::]` accepting IPv4 too, as Go's
/// listener on `0.0.0.0` is), or on `0.0.0.0` where IPv6 sockets cannot be made.
fn wildcard(port: u16) -> anyhow::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let (socket, addr) = match Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP)) {
        Ok(socket) => {
            socket.set_only_v6(false)?;
            (
                socket,
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            )
        }
        Err(_) => (
            Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        ),
    };
    let listen = || -> std::io::Result<()> {
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)
    };
    listen().with_context(|| format!("listening on {addr}"))?;
    Ok(socket.into())
}

/// Answers every request for `service`.
fn router(service: ObjectId, local_endpoints: Arc<AtomicUsize>, health: HealthState) -> Router {
    Router::new().fallback(move || {
        let count = local_endpoints.load(Ordering::Relaxed);
        let healthy = health.health(SystemTime::now()).healthy;
        let response = answer(&service, count, healthy);
        async move { response }
    })
}

/// kube-proxy's answer: 200 only with local endpoints and a healthy proxy.
fn answer(service: &ObjectId, count: usize, healthy: bool) -> impl IntoResponse + use<> {
    let status = if count > 0 && healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (WEIGHT, count.to_string()),
        ],
        body(service, count, healthy),
    )
}

/// kube-proxy's body, byte for byte: its `dedent`ed template, tab-indented, no final newline.
fn body(service: &ObjectId, count: usize, healthy: bool) -> String {
    // Names are DNS labels: JSON quoting is Go's %q for them.
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": {},\n\t\t\"name\": {}\n\t}},\n\
         \t\"localEndpoints\": {count},\n\t\"serviceProxyHealthy\": {healthy}\n}}",
        quote(&service.namespace),
        quote(&service.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn id() -> ObjectId {
        ObjectId::new("shop", "web")
    }

    fn check(port: u16, local_endpoints: usize) -> BTreeMap<ObjectId, HealthCheck> {
        let listen = Listen::Addresses(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        BTreeMap::from([(
            id(),
            HealthCheck {
                port,
                listen,
                local_endpoints,
            },
        )])
    }

    /// A free port on 127.0.0.1 (bound, then released).
    fn free_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("address").port()
    }

    async fn get(port: u16, path: &str) -> Option<String> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await.ok()?;
        Some(out)
    }

    #[test]
    fn the_body_is_kube_proxys_template() {
        assert_eq!(
            body(&id(), 2, true),
            "{\n\t\"service\": {\n\t\t\"namespace\": \"shop\",\n\t\t\"name\": \"web\"\n\t},\n\
             \t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}"
        );
        let parsed: serde_json::Value =
            serde_json::from_str(&body(&id(), 0, false)).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!({"service": {"namespace": "shop", "name": "web"},
                               "localEndpoints": 0, "serviceProxyHealthy": false})
        );
    }

    #[tokio::test]
    async fn serves_counts_follows_syncs_and_survives_a_taken_port() {
        let health = HealthState::new(Duration::from_secs(60));
        let mut servers = ServiceHealth::new("node-1", health.clone(), None);
        let port = free_port();
        assert_eq!(servers.sync(&check(port, 1)).await, 0);
        let ok = get(port, "/any/path").await.expect("an answer");
        assert!(ok.starts_with("HTTP/1.0 200"), "{ok}");
        for header in [
            "content-type: application/json",
            "x-content-type-options: nosniff",
            "x-load-balancing-endpoint-weight: 1",
        ] {
            assert!(ok.to_ascii_lowercase().contains(header), "{header}: {ok}");
        }
        assert!(ok.ends_with("\"localEndpoints\": 1,\n\t\"serviceProxyHealthy\": true\n}"));

        assert_eq!(servers.sync(&check(port, 0)).await, 0);
        let none = get(port, "/").await.expect("an answer");
        assert!(none.starts_with("HTTP/1.0 503"), "{none}");
        assert!(none.contains("\"localEndpoints\": 0"), "{none}");

        // An unhealthy proxy fails the check even with local endpoints.
        assert_eq!(servers.sync(&check(port, 3)).await, 0);
        health.queued(SystemTime::now() - Duration::from_secs(120));
        let stalled = get(port, "/").await.expect("an answer");
        assert!(stalled.starts_with("HTTP/1.0 503"), "{stalled}");
        assert!(
            stalled.contains("\"serviceProxyHealthy\": false"),
            "{stalled}"
        );
        health.updated(SystemTime::now());

        // Another port: the old one is closed before the sync returns.
        let moved = free_port();
        assert_eq!(servers.sync(&check(moved, 1)).await, 0);
        assert_eq!(get(port, "/").await, None, "the old port still answers");
        assert!(
            get(moved, "/")
                .await
                .is_some_and(|r| r.starts_with("HTTP/1.0 200"))
        );

        // A port someone else holds: returned as failed, and tried again at the next sync.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let taken_port = taken.local_addr().expect("address").port();
        assert_eq!(servers.sync(&check(taken_port, 1)).await, 1);
        drop(taken);
        assert_eq!(servers.sync(&check(taken_port, 1)).await, 0);
        assert!(
            get(taken_port, "/")
                .await
                .is_some_and(|r| r.starts_with("HTTP/1.0 200"))
        );

        assert_eq!(servers.sync(&BTreeMap::new()).await, 0);
        assert_eq!(
            get(taken_port, "/").await,
            None,
            "a Service gone keeps its port"
        );
    }
}
