//! The kernel's IPVS traffic counters in `/metrics`, per Service port (each
//! of its virtual servers) and, when configured, per backend
//! (`--ipvs-stats`, `ipvs.stats`): `docs/operations.md` lists each metric.
//!
//! A scrape reads the kernel only when the last read is older than
//! [`MAX_AGE`]; scrapes in between (several Prometheus servers, retries)
//! share it, so whatever the scrape rate the kernel is read at most once per
//! [`MAX_AGE`]. The read blocks: `/metrics` encodes on tokio's blocking
//! pool, never on an async worker. A table that cannot be
//! read exports no statistics (never stale ones) and is logged once until
//! it can be read again. Only IPVS mode registers this collector: the
//! iptables mode has no such counters.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dataplane::ipvs::{BackendStats, IpvsStats, StatsDetail, StatsNames, VirtualServerStats};
use desired::DesiredState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The longest a scrape shows counters read earlier.
pub const MAX_AGE: Duration = Duration::from_secs(5);

/// What reads the counters of the virtual servers `names` knows.
type Reader =
    Box<dyn FnMut(&StatsNames) -> Result<Vec<VirtualServerStats>, dataplane::Error> + Send>;

/// The statistics collector registered in the metrics registry.
///
/// Two locks: the reader's, held by the one scrape that reads the kernel (others wait for
/// its result), and the state's, held only for moments, so that the sync loop taking new
/// names ([`IpvsStatsCollector::follow`]) never waits for a kernel read.
pub struct IpvsStatsCollector {
    read: Mutex<Reader>,
    state: Mutex<State>,
}

/// What the collector knows between scrapes.
#[derive(Debug, Default)]
struct State {
    names: Arc<StatsNames>,
    /// The last read, and when it was made; `None` when it failed.
    last: Option<(Instant, Arc<Vec<VirtualServerStats>>)>,
    /// Whether the last read failed (and was logged).
    failing: bool,
}

impl std::fmt::Debug for IpvsStatsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpvsStatsCollector")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl IpvsStatsCollector {
    /// Reads the kernel's table with the detail configured; the connection
    /// to IPVS is opened at the first scrape (and again after a failure).
    pub fn kernel(detail: StatsDetail) -> Self {
        let mut client: Option<IpvsStats> = None;
        Self::reading(Box::new(move |names| {
            let stats = match &mut client {
                Some(stats) => stats,
                None => client.insert(IpvsStats::open(detail)?),
            };
            let read = stats.read(names);
            if read.is_err() {
                client = None;
            }
            read
        }))
    }

    /// Reads through `read`.
    pub fn reading(read: Reader) -> Self {
        IpvsStatsCollector {
            read: Mutex::new(read),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The names of `state`'s virtual servers, with the Pods of `pods_from` (the model)
    /// when given; `None` when they are the names the collector has.
    pub fn names_of(
        &self,
        state: &DesiredState,
        pods_from: Option<&model::Model>,
    ) -> Option<StatsNames> {
        (!self.state().names.is_of(state)).then(|| StatsNames::of(state, pods_from))
    }

    /// Takes `names` ([`IpvsStatsCollector::names_of`]) for the scrapes from now on.
    pub fn follow(&self, names: StatsNames) {
        let mut known = self.state();
        known.names = Arc::new(names);
        known.last = None;
    }

    /// The last read when it is younger than [`MAX_AGE`].
    fn fresh(&self, now: Instant) -> Option<Arc<Vec<VirtualServerStats>>> {
        let state = self.state();
        let (at, read) = state.last.as_ref()?;
        (now.duration_since(*at) < MAX_AGE).then(|| Arc::clone(read))
    }

    /// The counters, read again when older than [`MAX_AGE`]; none when the
    /// table cannot be read.
    fn current(&self, now: Instant) -> Arc<Vec<VirtualServerStats>> {
        if let Some(read) = self.fresh(now) {
            return read;
        }
        let mut reader = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        // Another scrape may have read while this one waited.
        if let Some(read) = self.fresh(now) {
            return read;
        }
        let names = Arc::clone(&self.state().names);
        let result = reader(&names);
        let mut state = self.state();
        // Names taken during the read: the read is shown, but not kept for later scrapes.
        let current = Arc::ptr_eq(&names, &state.names);
        match result {
            Ok(read) => {
                if state.failing {
                    tracing::info!("the IPVS statistics can be read again");
                }
                state.failing = false;
                let read = Arc::new(read);
                if current {
                    state.last = Some((now, Arc::clone(&read)));
                }
                read
            }
            Err(e) => {
                if !state.failing {
                    tracing::warn!(error = %e, "no IPVS statistics in /metrics until the table can be read");
                }
                state.failing = true;
                state.last = None;
                Arc::default()
            }
        }
    }
}

impl Collector for IpvsStatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let read = self.current(Instant::now());
        encode(&read, &mut encoder)
    }
}

/// A counter of a virtual or real server, and how it is read from the
/// kernel's statistics.
type Count = (&'static str, &'static str, fn(&ipvs::Stats) -> u64);

/// The counters, for Services (`kube_ipvs_proxy_service_*`) and backends
/// (`kube_ipvs_proxy_backend_*`).
const COUNTS: [Count; 5] = [
    ("connections", "Connections scheduled", |s| s.connections),
    ("packets_in", "Packets in (client to server)", |s| {
        s.packets_in
    }),
    ("packets_out", "Packets out (server to client)", |s| {
        s.packets_out
    }),
    ("bytes_in", "Bytes in (client to server)", |s| s.bytes_in),
    ("bytes_out", "Bytes out (server to client)", |s| s.bytes_out),
];

/// The labels of a virtual server: its Service port's names.
fn service_labels(vs: &VirtualServerStats) -> [(&'static str, Cow<'_, str>); 6] {
    let n = &vs.names;
    [
        ("namespace", Cow::Borrowed(&n.namespace)),
        ("service", Cow::Borrowed(&n.service)),
        ("port", Cow::Borrowed(&n.port)),
        ("protocol", Cow::Borrowed(n.protocol)),
        ("ip_family", Cow::Borrowed(n.ip_family)),
        ("virtual_server", Cow::Owned(n.virtual_server.to_string())),
    ]
}

/// The labels a real server adds: its endpoint, and its Pod (empty when not known).
fn backend_labels(b: &BackendStats) -> [(&'static str, String); 2] {
    [
        ("endpoint", b.endpoint.to_string()),
        ("pod", b.pod.as_deref().unwrap_or_default().to_owned()),
    ]
}

/// Writes the metric families of `read`; the backend families only when a
/// virtual server has backends read.
fn encode(
    read: &[VirtualServerStats],
    encoder: &mut DescriptorEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    if read.is_empty() {
        return Ok(());
    }
    for (name, help, value) in COUNTS {
        let name = format!("kube_ipvs_proxy_service_{name}");
        let help = format!("{help} by the IPVS virtual server of a Service port");
        let mut family = encoder.encode_descriptor(&name, &help, None, MetricType::Counter)?;
        for vs in read {
            ConstCounter::new(value(&vs.stats))
                .encode(family.encode_family(&service_labels(vs))?)?;
        }
    }
    let backends: Vec<_> = read
        .iter()
        .flat_map(|vs| {
            vs.backends
                .iter()
                .map(move |b| (service_labels(vs), backend_labels(b), b))
        })
        .collect();
    if backends.is_empty() {
        return Ok(());
    }
    for (name, help, value) in COUNTS {
        let name = format!("kube_ipvs_proxy_backend_{name}");
        let help = format!("{help} by an IPVS real server (a Service's endpoint)");
        let mut family = encoder.encode_descriptor(&name, &help, None, MetricType::Counter)?;
        for (service, endpoint, b) in &backends {
            ConstCounter::new(value(&b.stats))
                .encode(family.encode_family(&(service.as_slice(), endpoint.as_slice()))?)?;
        }
    }
    for (name, help, value) in CONNECTIONS {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (service, endpoint, b) in &backends {
            ConstGauge::new(i64::from(value(b)))
                .encode(family.encode_family(&(service.as_slice(), endpoint.as_slice()))?)?;
        }
    }
    Ok(())
}

/// A connection gauge of a real server, and how it is read.
type Connections = (&'static str, &'static str, fn(&BackendStats) -> u32);

/// The connection gauges of backends.
const CONNECTIONS: [Connections; 2] = [
    (
        "kube_ipvs_proxy_backend_active_connections",
        "Connections in an active state (TCP ESTABLISHED) to an IPVS real server",
        |b| b.active_connections,
    ),
    (
        "kube_ipvs_proxy_backend_inactive_connections",
        "Other connections (TCP closing, UDP) to an IPVS real server",
        |b| b.inactive_connections,
    ),
];

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use dataplane::ipvs::ServiceNames;
    use prometheus_client::registry::Registry;

    use super::*;

    /// Counters of `default/web:http` on 10.96.0.10:80, with `backends`.
    pub(crate) fn web(backends: Vec<BackendStats>) -> VirtualServerStats {
        VirtualServerStats {
            names: Arc::new(ServiceNames {
                namespace: "shop".into(),
                service: "web".into(),
                port: "http".into(),
                protocol: "tcp",
                ip_family: "IPv4",
                virtual_server: "10.96.0.10:80".parse().expect("address"),
            }),
            stats: ipvs::Stats {
                connections: 3,
                packets_in: 30,
                packets_out: 27,
                bytes_in: 1800,
                bytes_out: 1500,
                ..ipvs::Stats::default()
            },
            backends,
        }
    }

    /// Counters and connections of endpoint 10.244.1.5:8080.
    pub(crate) fn backend() -> BackendStats {
        BackendStats {
            endpoint: "10.244.1.5:8080".parse().expect("endpoint"),
            pod: Some("web-7d4b9-abcde".into()),
            active_connections: 2,
            inactive_connections: 1,
            stats: ipvs::Stats {
                connections: 3,
                bytes_out: 1500,
                ..ipvs::Stats::default()
            },
        }
    }

    /// A collector serving `read`, counting its reads.
    fn collector(read: Vec<VirtualServerStats>) -> (Arc<IpvsStatsCollector>, Arc<AtomicUsize>) {
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&reads);
        let collector = IpvsStatsCollector::reading(Box::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(read.clone())
        }));
        (Arc::new(collector), reads)
    }

    fn scrape(collector: &Arc<IpvsStatsCollector>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Arc::clone(collector)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        out
    }

    const WEB: &str = "namespace=\"shop\",service=\"web\",port=\"http\",protocol=\"tcp\",\
                       ip_family=\"IPv4\",virtual_server=\"10.96.0.10:80\"";

    #[test]
    fn service_counters_carry_the_kubernetes_names() {
        let (collector, _) = collector(vec![web(Vec::new())]);
        let text = scrape(&collector);
        for line in [
            "# TYPE kube_ipvs_proxy_service_connections counter".to_string(),
            format!("kube_ipvs_proxy_service_connections_total{{{WEB}}} 3"),
            format!("kube_ipvs_proxy_service_packets_in_total{{{WEB}}} 30"),
            format!("kube_ipvs_proxy_service_packets_out_total{{{WEB}}} 27"),
            format!("kube_ipvs_proxy_service_bytes_in_total{{{WEB}}} 1800"),
            format!("kube_ipvs_proxy_service_bytes_out_total{{{WEB}}} 1500"),
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        assert!(!text.contains("kube_ipvs_proxy_backend"), "{text}");
    }

    #[test]
    fn backends_add_the_endpoint_and_its_connections() {
        let (collector, _) = collector(vec![web(vec![backend()])]);
        let text = scrape(&collector);
        let labels = format!("{WEB},endpoint=\"10.244.1.5:8080\",pod=\"web-7d4b9-abcde\"");
        for line in [
            format!("kube_ipvs_proxy_backend_connections_total{{{labels}}} 3"),
            format!("kube_ipvs_proxy_backend_bytes_out_total{{{labels}}} 1500"),
            format!("kube_ipvs_proxy_backend_packets_in_total{{{labels}}} 0"),
            format!("kube_ipvs_proxy_backend_active_connections{{{labels}}} 2"),
            format!("kube_ipvs_proxy_backend_inactive_connections{{{labels}}} 1"),
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
    }

    #[test]
    fn scrapes_within_max_age_share_one_read() {
        let (collector, reads) = collector(vec![web(Vec::new())]);
        let start = Instant::now();
        collector.current(start);
        collector.current(start + MAX_AGE / 2);
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        collector.current(start + MAX_AGE);
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn an_unreadable_table_exports_nothing() {
        let collector = Arc::new(IpvsStatsCollector::reading(Box::new(|_| {
            let denied = ipvs::Error::Io {
                op: ipvs::Operation::ListServices,
                source: std::io::ErrorKind::PermissionDenied.into(),
            };
            Err(dataplane::Error::new("reading the IPVS statistics", denied))
        })));
        assert_eq!(scrape(&collector), "# EOF\n");
    }
}
