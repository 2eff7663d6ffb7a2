//! The HTTP endpoints, at kube-proxy's addresses: `/healthz` and `/livez` on
//! the healthz address (10256), `/metrics` and `/proxyMode` on the metrics
//! address (10249).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::health::HealthState;
use crate::http;
use crate::metrics::{Code, Metrics};

/// What the endpoints read.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    /// Sync health.
    pub(crate) health: HealthState,
    /// Every metric.
    pub(crate) metrics: Arc<Metrics>,
    /// `ipvs` or `iptables`, for `/proxyMode`.
    pub(crate) mode: &'static str,
}

/// Which health verdict an endpoint serves.
#[derive(Debug, Clone, Copy)]
enum Probe {
    Healthz,
    Livez,
}

async fn probe(probe: Probe, shared: &Shared) -> impl IntoResponse + use<> {
    let health = shared.health.health(SystemTime::now());
    let (ok, family) = match probe {
        Probe::Healthz => (health.ready(), &shared.metrics.healthz),
        Probe::Livez => (health.healthy, &shared.metrics.livez),
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    family
        .get_or_create(&Code {
            code: status.as_u16().to_string(),
        })
        .inc();
    let body = serde_json::to_string(&health).unwrap_or_default();
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

fn health_router(shared: Shared) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|State(s): State<Shared>| async move { probe(Probe::Healthz, &s).await }),
        )
        .route(
            "/livez",
            get(|State(s): State<Shared>| async move { probe(Probe::Livez, &s).await }),
        )
        .with_state(shared)
}

fn metrics_router(shared: Shared) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(s): State<Shared>| async move {
                let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                ([(header::CONTENT_TYPE, content_type)], s.metrics.encode())
            }),
        )
        .route(
            "/proxyMode",
            get(|State(s): State<Shared>| async move { s.mode }),
        )
        .with_state(shared)
}

/// Binds both addresses (failing early, naming the address, when one is
/// taken) and returns the future that serves them, within [`http`]'s limits.
pub(crate) async fn bind(
    healthz: SocketAddr,
    metrics: SocketAddr,
    shared: Shared,
) -> anyhow::Result<impl Future<Output = std::io::Result<()>>> {
    let health_listener = TcpListener::bind(healthz)
        .await
        .with_context(|| format!("binding the healthz address {healthz}"))?;
    let metrics_listener = TcpListener::bind(metrics)
        .await
        .with_context(|| format!("binding the metrics address {metrics}"))?;
    let gate = http::Gate::shared();
    let health = http::serve(
        health_listener,
        health_router(shared.clone()),
        Arc::clone(&gate),
    );
    let metrics = http::serve(metrics_listener, metrics_router(shared), gate);
    Ok(async move {
        tokio::join!(health, metrics);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_health_metrics_and_mode() {
        let shared = Shared {
            health: HealthState::new(Duration::from_secs(60)),
            metrics: Arc::new(Metrics::new()),
            mode: "ipvs",
        };
        let health = axum::serve(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            health_router(shared.clone()),
        );
        let health_addr = health.local_addr().unwrap();
        let metrics = axum::serve(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            metrics_router(shared.clone()),
        );
        let metrics_addr = metrics.local_addr().unwrap();
        tokio::spawn(health.into_future());
        tokio::spawn(metrics.into_future());

        let ok = get(health_addr, "/healthz").await;
        assert!(ok.starts_with("HTTP/1.0 200"), "{ok}");
        assert!(ok.contains("\"nodeEligible\":true"), "{ok}");

        shared
            .health
            .queued(SystemTime::now() - Duration::from_secs(120));
        let stalled = get(health_addr, "/livez").await;
        assert!(stalled.starts_with("HTTP/1.0 503"), "{stalled}");

        let text = get(metrics_addr, "/metrics").await;
        assert!(
            text.contains("kubeproxy_proxy_healthz_total{code=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("kubeproxy_proxy_livez_total{code=\"503\"} 1"),
            "{text}"
        );
        assert!(get(metrics_addr, "/proxyMode").await.ends_with("ipvs"));
    }
}
