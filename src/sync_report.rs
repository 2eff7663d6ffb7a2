//! A sync's summary into the metrics and the one `sync done` log line.

use std::time::Duration;

use dataplane::SyncSummary;

use crate::memory::Usage;
use crate::metrics::Metrics;
use crate::mode::ProxyMode;

/// What one sync was, besides what its summary counted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sync {
    /// The mode that ran it.
    pub(crate) mode: ProxyMode,
    /// Whether it was a periodic full sync.
    pub(crate) full: bool,
    /// How long it took.
    pub(crate) took: Duration,
    /// The size of the mode's desired state (virtual servers, or chains).
    pub(crate) objects: usize,
    /// What the process holds after it.
    pub(crate) memory: Usage,
}

/// Adds the sync to the metrics (counts and durations) and logs the one
/// summary line.
pub(crate) fn report(summary: &SyncSummary, sync: Sync, metrics: &Metrics) {
    for (kind, n) in &summary.applied {
        Metrics::count(&metrics.ops_applied, kind, *n);
    }
    for (kind, n) in &summary.failed {
        Metrics::count(&metrics.sync_errors, kind, *n);
    }
    for (kind, n) in &summary.drift {
        Metrics::count(&metrics.drift_repaired, kind, *n);
    }
    let seconds = sync.took.as_secs_f64();
    metrics.sync_duration.observe(seconds);
    if sync.full {
        metrics.sync_full_duration.observe(seconds);
    } else {
        metrics.sync_partial_duration.observe(seconds);
    }
    let broken: Vec<&str> = summary.broken.iter().map(|p| p.as_str()).collect();
    tracing::info!(
        reason = %if sync.full { "Periodic" } else { "Change" },
        took_ms = sync.took.as_millis() as u64,
        mode = %sync.mode.as_str(),
        objects = sync.objects,
        applied = ?summary.applied,
        failed = ?summary.failed,
        drift = ?summary.drift,
        draining = summary.draining,
        broken = ?broken,
        parts_ms = ?summary.parts_ms,
        rss_mib = sync.memory.resident,
        hwm_mib = sync.memory.peak,
        heap_mib = sync.memory.heap_in_use,
        heap_free_mib = sync.memory.heap_free,
        "sync done"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::Part;

    #[test]
    fn counts_reach_the_metrics_by_kind() {
        let mut s = SyncSummary::default();
        s.applied("ipset_entry", 3);
        s.drift([("iptables_chain", 1)]);
        s.broken(Part::Address, &"binding addresses to kube-ipvs0: denied");
        let metrics = Metrics::new();
        let sync = Sync {
            mode: ProxyMode::Ipvs,
            full: true,
            took: Duration::from_millis(5),
            objects: 0,
            memory: crate::memory::usage(),
        };
        report(&s, sync, &metrics);
        let text = metrics.encode();
        for line in [
            r#"kube_ipvs_proxy_sync_errors_total{kind="address"} 1"#,
            r#"kube_ipvs_proxy_drift_repaired_total{kind="iptables_chain"} 1"#,
            r#"kube_ipvs_proxy_ops_applied_total{kind="ipset_entry"} 3"#,
            "kubeproxy_sync_full_proxy_rules_duration_seconds_count 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }
}
