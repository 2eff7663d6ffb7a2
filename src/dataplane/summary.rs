//! What one sync did, counted in one place for the summary log line and the
//! metrics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::memory::Usage;
use crate::metrics::Metrics;
use crate::mode::ProxyMode;

/// Counts by kind of object (`virtual_server`, `ipset_entry`, ...).
pub(crate) type Counts = BTreeMap<&'static str, u64>;

/// What one sync did.
#[derive(Debug, Default)]
pub(crate) struct SyncSummary {
    /// Operations applied, by kind.
    pub(crate) applied: Counts,
    /// Operations that failed, by kind.
    pub(crate) failed: Counts,
    /// Drift found and repaired, by kind.
    pub(crate) drift: Counts,
    /// Real servers draining after this sync.
    pub(crate) draining: usize,
    /// Parts of the dataplane that could not be synced at all (`ipvs`,
    /// `address`, `ipset`, `iptables`, `conntrack`).
    pub(crate) broken: Vec<&'static str>,
    /// Time spent in each part, in milliseconds (a part timed twice adds up).
    pub(crate) parts_ms: Counts,
}

fn bump(map: &mut Counts, kind: &'static str, n: u64) {
    if n > 0 {
        *map.entry(kind).or_insert(0) += n;
    }
}

impl SyncSummary {
    /// Counts `n` operations of `kind` applied.
    pub(crate) fn applied(&mut self, kind: &'static str, n: usize) {
        bump(&mut self.applied, kind, n as u64);
    }

    /// Counts one failed operation of `kind`, logging it with its object.
    pub(crate) fn failed(&mut self, kind: &'static str, error: &dyn std::fmt::Display) {
        tracing::error!(kind, error = %error, "dataplane operation failed");
        bump(&mut self.failed, kind, 1);
    }

    /// Counts drift found, by kind.
    pub(crate) fn drift(&mut self, counts: impl IntoIterator<Item = (&'static str, u64)>) {
        for (kind, n) in counts {
            bump(&mut self.drift, kind, n);
        }
    }

    /// Records that the `kind` part of the dataplane could not be synced:
    /// logged, counted as a failure of that kind; the other parts go on.
    pub(crate) fn broken(&mut self, kind: &'static str, error: &anyhow::Error) {
        self.failed(kind, &format_args!("{error:#}"));
        self.broken.push(kind);
    }

    /// Adds the time since `started` to `part`'s.
    pub(crate) fn timed(&mut self, part: &'static str, started: Instant) {
        *self.parts_ms.entry(part).or_insert(0) += started.elapsed().as_millis() as u64;
    }

    /// Adds what another part of the same sync, run alongside, did.
    pub(crate) fn merge(&mut self, other: SyncSummary) {
        let SyncSummary {
            applied,
            failed,
            drift,
            draining,
            mut broken,
            parts_ms,
        } = other;
        for (mine, theirs) in [
            (&mut self.applied, applied),
            (&mut self.failed, failed),
            (&mut self.drift, drift),
            (&mut self.parts_ms, parts_ms),
        ] {
            for (kind, n) in theirs {
                *mine.entry(kind).or_insert(0) += n;
            }
        }
        self.draining += draining;
        self.broken.append(&mut broken);
    }

    /// Whether every part of the dataplane was synced (some operations may
    /// still have failed): what health reports.
    pub(crate) fn complete(&self) -> bool {
        self.broken.is_empty()
    }

    /// Adds the sync to the metrics (counts and durations) and logs the
    /// one summary line; `objects` is the size of the mode's desired state
    /// (virtual servers, or chains); `memory` what the process holds after it.
    pub(crate) fn report(
        &self,
        metrics: &Metrics,
        mode: ProxyMode,
        full: bool,
        took: Duration,
        objects: usize,
        memory: Usage,
    ) {
        self.record(metrics);
        metrics.sync_duration.observe(took.as_secs_f64());
        if full {
            metrics.sync_full_duration.observe(took.as_secs_f64());
        } else {
            metrics.sync_partial_duration.observe(took.as_secs_f64());
        }
        tracing::info!(
            reason = %if full { "Periodic" } else { "Change" },
            took_ms = took.as_millis() as u64,
            mode = %mode.as_str(),
            objects,
            applied = ?self.applied,
            failed = ?self.failed,
            drift = ?self.drift,
            draining = self.draining,
            broken = ?self.broken,
            parts_ms = ?self.parts_ms,
            rss_mib = memory.resident,
            hwm_mib = memory.peak,
            heap_mib = memory.heap_in_use,
            heap_free_mib = memory.heap_free,
            "sync done"
        );
    }

    /// Adds the counts to the metrics.
    fn record(&self, metrics: &Metrics) {
        for (kind, n) in &self.applied {
            Metrics::count(&metrics.ops_applied, kind, *n);
        }
        for (kind, n) in &self.failed {
            Metrics::count(&metrics.sync_errors, kind, *n);
        }
        for (kind, n) in &self.drift {
            Metrics::count(&metrics.drift_repaired, kind, *n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_part_counts_as_a_failure_and_makes_the_sync_incomplete() {
        let mut s = SyncSummary::default();
        s.applied("ipset_entry", 0);
        s.applied("ipset_entry", 3);
        s.drift([("iptables_chain", 1), ("ipset", 0)]);
        assert!(s.complete());
        s.broken("iptables", &anyhow::anyhow!("restore failed"));
        assert!(!s.complete());
        assert_eq!(s.applied, [("ipset_entry", 3)].into());
        assert_eq!(s.failed, [("iptables", 1)].into());
        assert_eq!(s.drift, [("iptables_chain", 1)].into());
        let metrics = Metrics::new();
        s.report(
            &metrics,
            ProxyMode::Ipvs,
            true,
            Duration::from_millis(5),
            0,
            crate::memory::usage(),
        );
        let text = metrics.encode();
        assert!(
            text.contains(r#"kube_ipvs_proxy_sync_errors_total{kind="iptables"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kube_ipvs_proxy_drift_repaired_total{kind="iptables_chain"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn parts_run_alongside_merge_into_one_summary() {
        let mut ipvs = SyncSummary::default();
        ipvs.applied("real_server", 2);
        ipvs.parts_ms.insert("ipvs", 7);
        ipvs.draining = 1;
        let mut netfilter = SyncSummary::default();
        netfilter.applied("real_server", 1);
        netfilter.applied("ipset_entry", 4);
        netfilter.drift([("ipset", 1)]);
        netfilter.broken("iptables", &anyhow::anyhow!("restore failed"));
        netfilter.parts_ms.insert("ipset", 3);
        ipvs.merge(netfilter);
        assert_eq!(
            ipvs.applied,
            [("ipset_entry", 4), ("real_server", 3)].into()
        );
        assert_eq!(ipvs.failed, [("iptables", 1)].into());
        assert_eq!(ipvs.drift, [("ipset", 1)].into());
        assert_eq!(ipvs.parts_ms, [("ipset", 3), ("ipvs", 7)].into());
        assert_eq!(ipvs.draining, 1);
        assert!(!ipvs.complete());
    }
}
