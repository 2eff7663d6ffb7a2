//! A sync's summary into the metrics and the one `sync done` log line.

use std::time::Duration;

use dataplane::SyncSummary;
use model::IpFamily;

use crate::memory::Usage;
use dataplane::ProxyMode;
use proxy_metrics::Metrics;

/// What one sync was, besides what its summary counted.
#[derive(Debug, Clone)]
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
    /// The families it wrote rules for (the node's): kube-proxy runs one proxier per
    /// family, each observing its own syncs, so one sync here counts in each.
    pub(crate) families: Vec<IpFamily>,
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
    let iptables_mode = sync.mode == ProxyMode::Iptables;
    for family in &sync.families {
        let label = proxy_metrics::IpFamily::from(*family);
        metrics.sync_duration.get_or_create(&label).observe(seconds);
        if iptables_mode {
            let by_kind = if sync.full {
                &metrics.sync_full_duration
            } else {
                &metrics.sync_partial_duration
            };
            by_kind.get_or_create(&label).observe(seconds);
        }
    }
    for family in &summary.restore_failed {
        let label = proxy_metrics::IpFamily::from(match family {
            iptables::Family::V4 => IpFamily::V4,
            iptables::Family::V6 => IpFamily::V6,
        });
        metrics.restore_failures.get_or_create(&label).inc();
        if iptables_mode && !sync.full {
            metrics.partial_restore_failures.get_or_create(&label).inc();
        }
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

    fn assert_lines(text: &str, lines: &[&str]) {
        for line in lines {
            assert!(
                text.lines().any(|l| l == *line),
                "missing {line:?} in:\n{text}"
            );
        }
    }

    /// A 5 ms sync of both families.
    fn dual_stack(mode: ProxyMode, full: bool) -> Sync {
        Sync {
            mode,
            full,
            took: Duration::from_millis(5),
            objects: 0,
            memory: crate::memory::usage(),
            families: vec![IpFamily::V4, IpFamily::V6],
        }
    }

    #[test]
    fn counts_reach_the_metrics_by_kind() {
        let mut s = SyncSummary::default();
        s.applied("ipset_entry", 3);
        s.drift([("iptables_chain", 1)]);
        s.broken(Part::Address, &"binding addresses to kube-ipvs0: denied");
        let metrics = Metrics::for_mode(ProxyMode::Ipvs);
        report(&s, dual_stack(ProxyMode::Ipvs, true), &metrics);
        assert_lines(
            &metrics.encode(),
            &[
                r#"kube_ipvs_proxy_sync_errors_total{kind="address"} 1"#,
                r#"kube_ipvs_proxy_drift_repaired_total{kind="iptables_chain"} 1"#,
                r#"kube_ipvs_proxy_ops_applied_total{kind="ipset_entry"} 3"#,
                r#"kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"} 1"#,
                r#"kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv6"} 1"#,
            ],
        );
    }

    #[test]
    fn restore_failures_count_per_family_and_partial_ones_in_the_iptables_mode() {
        let metrics = Metrics::for_mode(ProxyMode::Iptables);
        for full in [false, true] {
            let mut s = SyncSummary::default();
            s.restore_failed.insert(iptables::Family::V6);
            report(&s, dual_stack(ProxyMode::Iptables, full), &metrics);
        }
        let text = metrics.encode();
        assert_lines(
            &text,
            &[
                r#"kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="IPv6"} 2"#,
                r#"kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total{ip_family="IPv6"} 1"#,
                r#"kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family="IPv4"} 1"#,
                r#"kubeproxy_sync_partial_proxy_rules_duration_seconds_count{ip_family="IPv4"} 1"#,
            ],
        );
        assert!(!text.contains(r#"restore_failures_total{ip_family="IPv4"}"#));
    }
}
