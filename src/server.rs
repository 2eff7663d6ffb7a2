//! The HTTP endpoints, at kube-proxy's addresses: `/healthz` and `/livez` on
//! the healthz address (10256), `/metrics` and `/proxyMode` on the metrics
//! address (10249).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use healthcheck::HealthState;
use proxy_metrics::{Code, Metrics};

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
                // A collector may read the kernel (the IPVS statistics): it blocks.
                match tokio::task::spawn_blocking(move || s.metrics.encode()).await {
                    Ok(text) => ([(header::CONTENT_TYPE, content_type)], text).into_response(),
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }),
        )
        .route(
            "/proxyMode",
            get(|State(s): State<Shared>| async move { s.mode }),
        )
        .with_state(shared)
}

/// The longest wait between two tries to bind a taken address (kube-proxy retries every
/// 5 s).
const BIND_RETRY_MAX: Duration = Duration::from_secs(5);

/// Serves the endpoints whose address is set. With `hard_fail` (`bindAddressHardFail`) an
/// address that cannot be bound is an error, as in kube-proxy; otherwise it is retried with
/// backoff, logged each time, while the caller goes on syncing: the old proxy's Pod may
/// still hold the port while it terminates. At an endpoint's first failed bind,
/// `on_failure` gets kube-proxy's Event reason for it ([`failure_reason`]) and a note.
///
/// # Errors
/// With `hard_fail`, the address that could not be bound.
pub(crate) async fn serve(
    healthz: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    hard_fail: bool,
    shared: Shared,
    on_failure: impl Fn(&'static str, String) + Clone + Send + 'static,
) -> anyhow::Result<()> {
    let endpoints = [
        ("healthz", healthz, health_router(shared.clone())),
        ("metrics", metrics, metrics_router(shared)),
    ];
    for (what, address, router) in endpoints {
        let Some(address) = address else {
            tracing::info!("the {what} endpoint is disabled (empty address or port 0)");
            continue;
        };
        if hard_fail {
            let listener = TcpListener::bind(address).await.with_context(|| {
                format!("binding the {what} address {address} (bindAddressHardFail is true)")
            })?;
            tokio::spawn(serve_on(what, listener, router));
        } else {
            let on_failure = on_failure.clone();
            tokio::spawn(async move {
                let listener = bind_retrying(what, address, on_failure).await;
                serve_on(what, listener, router).await;
            });
        }
    }
    Ok(())
}

/// kube-proxy's Event reason for an endpoint (`healthz`, `metrics`) that cannot be served.
pub(crate) fn failure_reason(what: &str) -> &'static str {
    match what {
        "healthz" => "FailedToStartProxierHealthcheck",
        _ => "FailedToStartMetricServer",
    }
}

/// Binds `address`, retrying with backoff (1 s doubling up to [`BIND_RETRY_MAX`]) until it
/// is free, with a warning per failed try and `on_failure` called at the first.
async fn bind_retrying(
    what: &'static str,
    address: SocketAddr,
    on_failure: impl Fn(&'static str, String),
) -> TcpListener {
    let mut delay = Duration::from_secs(1);
    let mut first = true;
    loop {
        match TcpListener::bind(address).await {
            Ok(listener) => return listener,
            Err(e) => {
                tracing::warn!(
                    %address, error = %e, retry_in = ?delay,
                    "cannot bind the {what} address; retrying while syncing goes on"
                );
                if std::mem::take(&mut first) {
                    // kube-proxy's note: "serving healthz on ADDRESS failed: ERROR".
                    on_failure(
                        failure_reason(what),
                        format!("serving {what} on {address} failed: {e}"),
                    );
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(BIND_RETRY_MAX);
            }
        }
    }
}

async fn serve_on(what: &'static str, listener: TcpListener, router: Router) {
    let address = listener.local_addr().ok();
    tracing::info!(?address, "serving the {what} endpoint");
    httpd::serve(listener, router, httpd::Gate::shared()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn shared() -> Shared {
        Shared {
            health: HealthState::new(Duration::from_secs(60)),
            metrics: Arc::new(Metrics::new()),
            mode: "ipvs",
        }
    }

    #[tokio::test]
    async fn a_taken_address_is_served_once_freed_or_fatal_with_hard_fail() {
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = holder.local_addr().unwrap();
        let err = serve(Some(address), None, true, shared(), |_, _| {})
            .await
            .expect_err("taken");
        assert!(
            format!("{err:#}").contains(&format!("binding the healthz address {address}")),
            "{err:#}"
        );
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = {
            let failures = Arc::clone(&failures);
            move |reason: &'static str, note: String| {
                failures.lock().unwrap().push((reason, note));
            }
        };
        serve(Some(address), None, false, shared(), record)
            .await
            .expect("retried in the background");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        // kube-proxy's Event for it, once however many tries fail.
        {
            let failures = failures.lock().unwrap();
            assert_eq!(failures.len(), 1, "{failures:?}");
            assert_eq!(failures[0].0, "FailedToStartProxierHealthcheck");
            assert!(
                failures[0]
                    .1
                    .starts_with(&format!("serving healthz on {address} failed: ")),
                "{failures:?}"
            );
        }
        drop(holder);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(address).await {
                stream
                    .write_all(b"GET /livez HTTP/1.0\r\nHost: x\r\n\r\n")
                    .await
                    .unwrap();
                let mut out = String::new();
                stream.read_to_string(&mut out).await.unwrap();
                assert!(out.starts_with("HTTP/1.0 200"), "{out}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never bound");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
