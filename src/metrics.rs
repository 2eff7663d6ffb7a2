//! Prometheus metrics: kube-proxy's names where kube-proxy has the metric (so
//! dashboards and alerts carry over), `kube_ipvs_proxy_*` for our own.
//! `docs/operations.md` explains each.

use std::sync::atomic::AtomicU64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A `kind` label: the kind of operation, drift or error.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Kind {
    /// The kind, e.g. `virtual_server`, `real_server`, `address`, `ipset_entry`.
    pub(crate) kind: String,
}

/// A `code` label: the HTTP status a health endpoint answered.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Code {
    /// The HTTP status code.
    pub(crate) code: String,
}

/// A `mode` label: the dataplane in use.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Mode {
    /// `ipvs` or `iptables`.
    pub(crate) mode: String,
}

/// Seconds as a float gauge.
pub(crate) type Seconds = Gauge<f64, AtomicU64>;

/// Every metric the daemon exports, and the registry that encodes them.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// `kubeproxy_sync_proxy_rules_duration_seconds`: every sync.
    pub(crate) sync_duration: Histogram,
    /// `kubeproxy_sync_full_proxy_rules_duration_seconds`: periodic full resyncs.
    pub(crate) sync_full_duration: Histogram,
    /// `kubeproxy_sync_partial_proxy_rules_duration_seconds`: syncs on a change.
    pub(crate) sync_partial_duration: Histogram,
    /// `kubeproxy_sync_proxy_rules_last_timestamp_seconds`: end of the last successful sync.
    pub(crate) last_sync: Seconds,
    /// `kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds`: the last change queued.
    pub(crate) last_queued: Seconds,
    /// `kubeproxy_sync_proxy_rules_service_changes_total`: Services whose
    /// spec or endpoints changed (the model does not tell the two apart).
    pub(crate) service_changes: Counter,
    /// `kubeproxy_proxy_healthz_total{code}`.
    pub(crate) healthz: Family<Code, Counter>,
    /// `kubeproxy_proxy_livez_total{code}`.
    pub(crate) livez: Family<Code, Counter>,
    /// `kube_ipvs_proxy_ops_applied_total{kind}`: kernel operations that succeeded.
    pub(crate) ops_applied: Family<Kind, Counter>,
    /// `kube_ipvs_proxy_drift_repaired_total{kind}`: kernel state found wrong
    /// on a sync although we had programmed it (changed by hand or by others).
    pub(crate) drift_repaired: Family<Kind, Counter>,
    /// `kube_ipvs_proxy_sync_errors_total{kind}`: operations or steps that failed.
    pub(crate) sync_errors: Family<Kind, Counter>,
    /// `kube_ipvs_proxy_proxy_mode{mode}`: 1 for the dataplane in use.
    pub(crate) proxy_mode: Family<Mode, Gauge>,
    /// `kube_ipvs_proxy_invalid_objects_total{kind}`: problems found in
    /// Kubernetes objects (the object or the field skipped), by object kind.
    pub(crate) invalid_objects: Family<Kind, Counter>,
}

impl Metrics {
    /// Creates and registers every metric.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        // kube-proxy's buckets: 1 ms to ~16 s.
        let histogram = || Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let metrics = Metrics {
            sync_duration: histogram(),
            sync_full_duration: histogram(),
            sync_partial_duration: histogram(),
            last_sync: Seconds::default(),
            last_queued: Seconds::default(),
            service_changes: Counter::default(),
            healthz: Family::default(),
            livez: Family::default(),
            ops_applied: Family::default(),
            drift_repaired: Family::default(),
            sync_errors: Family::default(),
            proxy_mode: Family::default(),
            invalid_objects: Family::default(),
            registry: Registry::default(),
        };
        let m = &metrics;
        registry.register(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            m.sync_duration.clone(),
        );
        registry.register(
            "kubeproxy_sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs",
            m.sync_full_duration.clone(),
        );
        registry.register(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs",
            m.sync_partial_duration.clone(),
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced",
            m.last_sync.clone(),
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
            "The last time a sync of proxy rules was queued",
            m.last_queued.clone(),
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_service_changes",
            "Cumulative proxy rules Service changes",
            m.service_changes.clone(),
        );
        registry.register(
            "kubeproxy_proxy_healthz",
            "Cumulative proxy healthz HTTP status",
            m.healthz.clone(),
        );
        registry.register(
            "kubeproxy_proxy_livez",
            "Cumulative proxy livez HTTP status",
            m.livez.clone(),
        );
        registry.register(
            "kube_ipvs_proxy_ops_applied",
            "Kernel operations applied, by kind",
            m.ops_applied.clone(),
        );
        registry.register(
            "kube_ipvs_proxy_drift_repaired",
            "Kernel state found changed behind our back and repaired, by kind",
            m.drift_repaired.clone(),
        );
        registry.register(
            "kube_ipvs_proxy_sync_errors",
            "Operations or sync steps that failed, by kind",
            m.sync_errors.clone(),
        );
        registry.register(
            "kube_ipvs_proxy_proxy_mode",
            "The dataplane in use (1)",
            m.proxy_mode.clone(),
        );
        registry.register(
            "kube_ipvs_proxy_invalid_objects",
            "Problems found in Kubernetes objects (object or field skipped), by object kind",
            m.invalid_objects.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The metrics in the OpenMetrics text format that Prometheus scrapes.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Adds the metrics `collector` writes at each scrape.
    pub(crate) fn with_collector(mut self, collector: Box<dyn Collector>) -> Self {
        self.registry.register_collector(collector);
        self
    }

    /// Counts `n` operations of `kind` into `family`.
    pub(crate) fn count(family: &Family<Kind, Counter>, kind: &str, n: u64) {
        if n > 0 {
            family
                .get_or_create(&Kind {
                    kind: kind.to_string(),
                })
                .inc_by(n);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_kube_proxy_names() {
        let metrics = Metrics::new();
        metrics.sync_duration.observe(0.02);
        metrics.service_changes.inc();
        Metrics::count(&metrics.ops_applied, "real_server", 3);
        metrics
            .proxy_mode
            .get_or_create(&Mode {
                mode: "iptables".into(),
            })
            .set(1);
        let text = metrics.encode();
        for line in [
            "kubeproxy_sync_proxy_rules_duration_seconds_count 1",
            "kubeproxy_sync_proxy_rules_service_changes_total 1",
            "kube_ipvs_proxy_ops_applied_total{kind=\"real_server\"} 3",
            "kube_ipvs_proxy_proxy_mode{mode=\"iptables\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }
}
