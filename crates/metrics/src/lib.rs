//! Prometheus metrics: kube-proxy's names where kube-proxy has the metric (so
//! dashboards and alerts carry over), `kube_ipvs_proxy_*` for our own.
//! `docs/operations.md` explains each.
//!
//! kube-proxy's are those of `pkg/proxy/metrics/metrics.go` (Kubernetes v1.33–v1.35), with
//! its types, labels and buckets, registered per mode as its `RegisterMetrics(mode)` does;
//! plus `kubernetes_build_info` (component-base) and the Go client's `process_*`.

mod build_labels;
pub mod changes;
pub mod ipvs_stats;
mod process;

#[cfg(test)]
mod dashboard_tests;

use std::sync::atomic::AtomicU64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use dataplane::ProxyMode;

/// A `kind` label: the kind of operation, drift or error.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// The kind, e.g. `virtual_server`, `real_server`, `address`, `ipset_entry`.
    pub kind: String,
}

/// A `code` label: the HTTP status a health endpoint answered.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Code {
    /// The HTTP status code.
    pub code: String,
}

/// A `mode` label: the dataplane in use.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Mode {
    /// `ipvs` or `iptables`.
    pub mode: String,
}

/// Seconds as a float gauge.
pub type Seconds = Gauge<f64, AtomicU64>;

/// kube-proxy's `ip_family` label: `IPv4` or `IPv6`, the family of the rules a sync wrote.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IpFamily {
    /// Kubernetes' spelling of the family.
    pub ip_family: String,
}

impl From<model::IpFamily> for IpFamily {
    fn from(family: model::IpFamily) -> Self {
        IpFamily {
            ip_family: family.to_string(),
        }
    }
}

/// The labels of `kubeproxy_sync_proxy_rules_no_local_endpoints_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NoLocal {
    /// `internal` or `external`.
    pub traffic_policy: String,
    /// `IPv4` or `IPv6`.
    pub ip_family: String,
}

/// A histogram per family, all with the same buckets.
pub type ByFamily<M> = Family<IpFamily, M, fn() -> M>;

/// kube-proxy's sync duration buckets: 1 ms to ~16 s (`ExponentialBuckets(0.001, 2, 15)`).
fn sync_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// kube-proxy's network programming buckets: 0 (component-base's `MergeBuckets` starts
/// its result with one zero), 0.25 s, 0.5 s, 1 s to 59 s by 1 s, 60 s to 115 s by 5 s,
/// 120 s to 300 s by 30 s (four `LinearBuckets`).
fn network_programming_buckets() -> Histogram {
    let linear =
        |start: f64, width: f64, count: u32| (0..count).map(move |i| start + width * f64::from(i));
    Histogram::new(
        std::iter::once(0.0)
            .chain(linear(0.25, 0.25, 2))
            .chain(linear(1.0, 1.0, 59))
            .chain(linear(60.0, 5.0, 12))
            .chain(linear(120.0, 30.0, 7)),
    )
}

/// Every metric the daemon exports, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `kubeproxy_sync_proxy_rules_duration_seconds{ip_family}`: every sync.
    pub sync_duration: ByFamily<Histogram>,
    /// `kubeproxy_sync_full_proxy_rules_duration_seconds{ip_family}`: periodic full
    /// resyncs (registered in the iptables mode only, as kube-proxy).
    pub sync_full_duration: ByFamily<Histogram>,
    /// `kubeproxy_sync_partial_proxy_rules_duration_seconds{ip_family}`: syncs on a change
    /// (iptables mode only).
    pub sync_partial_duration: ByFamily<Histogram>,
    /// `kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family}`: end of the last
    /// successful sync.
    pub last_sync: Family<IpFamily, Seconds>,
    /// `kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds{ip_family}`: the last
    /// time a sync was asked for (a change, or the start).
    pub last_queued: Family<IpFamily, Seconds>,
    /// `kubeproxy_sync_proxy_rules_service_changes_total`: Service add, update and
    /// delete events received (kube-proxy's `ServiceChangeTracker.Update` calls).
    pub service_changes: Counter,
    /// `kubeproxy_proxy_healthz_total{code}`.
    pub healthz: Family<Code, Counter>,
    /// `kubeproxy_proxy_livez_total{code}`.
    pub livez: Family<Code, Counter>,
    /// `kube_ipvs_proxy_ops_applied_total{kind}`: kernel operations that succeeded.
    pub ops_applied: Family<Kind, Counter>,
    /// `kube_ipvs_proxy_drift_repaired_total{kind}`: kernel state found wrong
    /// on a sync although we had programmed it (changed by hand or by others).
    pub drift_repaired: Family<Kind, Counter>,
    /// `kube_ipvs_proxy_sync_errors_total{kind}`: operations or steps that failed.
    pub sync_errors: Family<Kind, Counter>,
    /// `kube_ipvs_proxy_proxy_mode{mode}`: 1 for the dataplane in use.
    pub proxy_mode: Family<Mode, Gauge>,
    /// `kube_ipvs_proxy_invalid_objects_total{kind}`: problems found in
    /// Kubernetes objects (the object or the field skipped), by object kind.
    pub invalid_objects: Family<Kind, Counter>,
    /// `kubeproxy_network_programming_duration_seconds{ip_family}`: from an EndpointSlice's
    /// last-change trigger time to the sync that programmed it.
    pub network_programming: ByFamily<Histogram>,
    /// `kubeproxy_sync_proxy_rules_endpoint_changes_pending`: EndpointSlice changes no
    /// sync has taken yet.
    pub endpoint_changes_pending: Gauge,
    /// `kubeproxy_sync_proxy_rules_endpoint_changes_total`: EndpointSlice add, update and
    /// delete events received.
    pub endpoint_changes: Counter,
    /// `kubeproxy_sync_proxy_rules_service_changes_pending`: Services changed that no
    /// sync has taken yet.
    pub service_changes_pending: Gauge,
    /// `kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy,ip_family}`:
    /// Services (IPVS mode; Service ports in the iptables mode) with a `Local` policy and
    /// endpoints, none on this node, as of the last complete sync.
    pub no_local_endpoints: Family<NoLocal, Gauge>,
    /// `kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family}`.
    pub restore_failures: Family<IpFamily, Counter>,
    /// `kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total{ip_family}`:
    /// the restore failures of syncs on a change (iptables mode only).
    pub partial_restore_failures: Family<IpFamily, Counter>,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let by_family: fn(fn() -> Histogram) -> ByFamily<Histogram> = Family::new_with_constructor;
        let metrics = Metrics {
            sync_duration: by_family(sync_buckets),
            sync_full_duration: by_family(sync_buckets),
            sync_partial_duration: by_family(sync_buckets),
            last_sync: Family::default(),
            last_queued: Family::default(),
            service_changes: Counter::default(),
            healthz: Family::default(),
            livez: Family::default(),
            ops_applied: Family::default(),
            drift_repaired: Family::default(),
            sync_errors: Family::default(),
            proxy_mode: Family::default(),
            invalid_objects: Family::default(),
            network_programming: by_family(network_programming_buckets),
            endpoint_changes_pending: Gauge::default(),
            endpoint_changes: Counter::default(),
            service_changes_pending: Gauge::default(),
            no_local_endpoints: Family::default(),
            restore_failures: Family::default(),
            partial_restore_failures: Family::default(),
            registry: Registry::default(),
        };
        let m = &metrics;
        registry.register(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            m.sync_duration.clone(),
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
        registry.register(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds",
            m.network_programming.clone(),
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
            "Pending proxy rules Endpoint changes",
            m.endpoint_changes_pending.clone(),
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_endpoint_changes",
            "Cumulative proxy rules Endpoint changes",
            m.endpoint_changes.clone(),
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_service_changes_pending",
            "Pending proxy rules Service changes",
            m.service_changes_pending.clone(),
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
            "Number of services with a Local traffic policy and no endpoints",
            m.no_local_endpoints.clone(),
        );
        registry.register(
            "kubernetes_build_info",
            "A metric with a constant '1' value labeled by major, minor, git version, git commit, git tree state, build date, Go version, and compiler from which Kubernetes was built, and platform on which it is running.",
            build_labels::build_info(),
        );
        registry.register_collector(Box::new(process::ProcessCollector));
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The metrics of the `mode` dataplane: those every mode has ([`Metrics::new`]) and
    /// the ones kube-proxy's `RegisterMetrics` adds for that mode.
    pub fn for_mode(mode: ProxyMode) -> Self {
        let mut metrics = Self::new();
        let registry = &mut metrics.registry;
        registry.register(
            "kubeproxy_sync_proxy_rules_iptables_restore_failures",
            "Cumulative proxy iptables restore failures",
            metrics.restore_failures.clone(),
        );
        if mode == ProxyMode::Iptables {
            registry.register(
                "kubeproxy_sync_full_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds for full resyncs",
                metrics.sync_full_duration.clone(),
            );
            registry.register(
                "kubeproxy_sync_partial_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds for partial resyncs",
                metrics.sync_partial_duration.clone(),
            );
            registry.register(
                "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures",
                "Cumulative proxy iptables partial restore failures",
                metrics.partial_restore_failures.clone(),
            );
        }
        metrics
    }

    /// The metrics in the OpenMetrics text format that Prometheus scrapes.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Adds the metrics `collector` writes at each scrape.
    pub fn with_collector(mut self, collector: Box<dyn Collector>) -> Self {
        self.registry.register_collector(collector);
        self
    }

    /// Counts `n` operations of `kind` into `family`.
    pub fn count(family: &Family<Kind, Counter>, kind: &str, n: u64) {
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
    fn exports_our_own_by_kind() {
        let metrics = Metrics::new();
        Metrics::count(&metrics.ops_applied, "real_server", 3);
        metrics
            .proxy_mode
            .get_or_create(&Mode {
                mode: "iptables".into(),
            })
            .set(1);
        let text = metrics.encode();
        for line in [
            "kube_ipvs_proxy_ops_applied_total{kind=\"real_server\"} 3",
            "kube_ipvs_proxy_proxy_mode{mode=\"iptables\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }

    /// Where kube-proxy's `RegisterMetrics(mode)` registers a metric.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum In {
        /// Every mode.
        All,
        /// The IPVS and iptables modes.
        Both,
        /// The iptables mode only.
        Iptables,
    }

    /// kube-proxy's metrics, as `pkg/proxy/metrics/metrics.go` of Kubernetes v1.33–v1.35
    /// declares and registers them (read at github.com/vitorsavian/kubernetes, commit
    /// e81160e7, a tree with `RegisterMetrics(mode)` and the `ip_family` labels), with
    /// `kubernetes_build_info` from component-base's `metrics/prometheus/version` and the
    /// Go client's Linux process collector: series name, type, labels, modes. Left out,
    /// and said so in docs/operations.md: the iptables mode's rule counts
    /// (`sync_proxy_rules_iptables_total`, `_last`), its nfacct packet counters, the
    /// conntrack reconciler's two, and the nftables mode's.
    const KUBE_PROXY: &[(&str, &str, &[&str], In)] = &[
        (
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "histogram",
            &["ip_family"],
            In::All,
        ),
        (
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
            "gauge",
            &["ip_family"],
            In::All,
        ),
        (
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "gauge",
            &["ip_family"],
            In::All,
        ),
        (
            "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
            "gauge",
            &[],
            In::All,
        ),
        (
            "kubeproxy_sync_proxy_rules_endpoint_changes_total",
            "counter",
            &[],
            In::All,
        ),
        (
            "kubeproxy_sync_proxy_rules_service_changes_pending",
            "gauge",
            &[],
            In::All,
        ),
        (
            "kubeproxy_sync_proxy_rules_service_changes_total",
            "counter",
            &[],
            In::All,
        ),
        (
            "kubeproxy_proxy_healthz_total",
            "counter",
            &["code"],
            In::All,
        ),
        ("kubeproxy_proxy_livez_total", "counter", &["code"], In::All),
        (
            "kubeproxy_network_programming_duration_seconds",
            "histogram",
            &["ip_family"],
            In::All,
        ),
        (
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
            "gauge",
            &["ip_family", "traffic_policy"],
            In::All,
        ),
        (
            "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
            "counter",
            &["ip_family"],
            In::Both,
        ),
        (
            "kubeproxy_sync_full_proxy_rules_duration_seconds",
            "histogram",
            &["ip_family"],
            In::Iptables,
        ),
        (
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "histogram",
            &["ip_family"],
            In::Iptables,
        ),
        (
            "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
            "counter",
            &["ip_family"],
            In::Iptables,
        ),
        (
            "kubernetes_build_info",
            "gauge",
            &[
                "build_date",
                "compiler",
                "git_commit",
                "git_tree_state",
                "git_version",
                "go_version",
                "major",
                "minor",
                "platform",
            ],
            In::All,
        ),
        ("process_cpu_seconds_total", "counter", &[], In::All),
        ("process_open_fds", "gauge", &[], In::All),
        ("process_max_fds", "gauge", &[], In::All),
        ("process_virtual_memory_bytes", "gauge", &[], In::All),
        ("process_virtual_memory_max_bytes", "gauge", &[], In::All),
        ("process_resident_memory_bytes", "gauge", &[], In::All),
        ("process_start_time_seconds", "gauge", &[], In::All),
    ];

    /// Gives every labelled metric one series, so that the encoding shows its labels.
    fn touch_every_family(m: &Metrics) {
        let v4 = IpFamily::from(model::IpFamily::V4);
        for histogram in [
            &m.sync_duration,
            &m.sync_full_duration,
            &m.sync_partial_duration,
            &m.network_programming,
        ] {
            histogram.get_or_create(&v4).observe(0.5);
        }
        for gauge in [&m.last_sync, &m.last_queued] {
            gauge.get_or_create(&v4).set(1.0);
        }
        for counter in [&m.restore_failures, &m.partial_restore_failures] {
            counter.get_or_create(&v4).inc();
        }
        let ok = Code { code: "200".into() };
        m.healthz.get_or_create(&ok).inc();
        m.livez.get_or_create(&ok).inc();
        let internal = NoLocal {
            traffic_policy: "internal".into(),
            ip_family: "IPv4".into(),
        };
        m.no_local_endpoints.get_or_create(&internal).set(1);
    }

    /// The label names of the series `series` in `text`, `None` when there is none.
    fn labels_of(text: &str, series: &str) -> Option<Vec<String>> {
        let line = text.lines().find(|l| {
            l.strip_prefix(series)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })?;
        let inside = line.split_once('{').and_then(|(_, r)| r.split_once('}'));
        let mut names: Vec<String> = inside
            .map(|(labels, _)| {
                labels
                    .split(',')
                    .filter_map(|kv| Some(kv.split_once('=')?.0.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        Some(names)
    }

    #[test]
    fn exports_kube_proxys_metrics_name_for_name_per_mode() {
        for mode in [ProxyMode::Ipvs, ProxyMode::Iptables] {
            let metrics = Metrics::for_mode(mode);
            touch_every_family(&metrics);
            let text = metrics.encode();
            for (name, kind, labels, modes) in KUBE_PROXY {
                let registered = match modes {
                    In::All | In::Both => true,
                    In::Iptables => mode == ProxyMode::Iptables,
                };
                // OpenMetrics names a counter's family without `_total`, its series with.
                let family = name
                    .strip_suffix("_total")
                    .filter(|_| *kind == "counter")
                    .unwrap_or(name);
                let type_line = format!("# TYPE {family} {kind}");
                assert_eq!(
                    text.lines().any(|l| l == type_line),
                    registered,
                    "{mode:?}: {type_line:?} in:\n{text}"
                );
                if !registered {
                    continue;
                }
                let series = if *kind == "histogram" {
                    format!("{name}_count")
                } else {
                    (*name).to_owned()
                };
                assert_eq!(
                    labels_of(&text, &series),
                    Some(labels.iter().map(|l| (*l).to_owned()).collect()),
                    "{mode:?}: labels of {series}"
                );
            }
        }
    }

    #[test]
    fn histograms_have_kube_proxys_buckets() {
        let metrics = Metrics::for_mode(ProxyMode::Iptables);
        touch_every_family(&metrics);
        let text = metrics.encode();
        let bounds = |name: &str| -> Vec<String> {
            let prefix = format!("{name}_bucket{{");
            text.lines()
                .filter(|l| l.starts_with(&prefix))
                .filter_map(|l| Some(l.split_once("le=\"")?.1.split_once('"')?.0.to_owned()))
                .collect()
        };
        // ExponentialBuckets(0.001, 2, 15): 0.001 .. 16.384, then +Inf.
        let sync = bounds("kubeproxy_sync_proxy_rules_duration_seconds");
        assert_eq!(
            (sync.len(), sync[0].as_str(), sync[14].as_str()),
            (16, "0.001", "16.384")
        );
        // MergeBuckets(LinearBuckets(0.25, 0.25, 2), LinearBuckets(1, 1, 59),
        // LinearBuckets(60, 5, 12), LinearBuckets(120, 30, 7)): `make([]float64, 1)` then
        // the 80 bounds, so 0 first; then +Inf.
        let programming = bounds("kubeproxy_network_programming_duration_seconds");
        assert_eq!(programming.len(), 82);
        assert_eq!(&programming[..5], ["0.0", "0.25", "0.5", "1.0", "2.0"]);
        assert_eq!(&programming[61..65], ["59.0", "60.0", "65.0", "70.0"]);
        assert_eq!(
            &programming[73..82],
            [
                "115.0", "120.0", "150.0", "180.0", "210.0", "240.0", "270.0", "300.0", "+Inf"
            ]
        );
    }
}
