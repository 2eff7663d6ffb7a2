//! kube-proxy's health checks (`pkg/proxy/healthcheck`): the proxy's own health behind
//! `/healthz` and `/livez` ([`HealthState`], its `proxier_health.go`), and the health check
//! node port servers that tell load balancers whether this node has ready endpoints of an
//! `externalTrafficPolicy: Local` Service ([`ServiceHealth`], its `service_health.go`).

mod proxy_health;
mod service_health;

pub use proxy_health::{Health, HealthState};
pub use service_health::{ERROR_KIND, ServiceHealth};
