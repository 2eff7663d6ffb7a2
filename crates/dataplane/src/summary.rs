//! What one sync did, counted in one place for the summary log line and the
//! metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Instant;

/// Counts by kind of object (`virtual_server`, `ipset_entry`, ...).
pub type Counts = BTreeMap<&'static str, u64>;

/// A part of the dataplane that a sync programs as a whole: when it cannot
/// be synced at all, the sync is incomplete and health does not advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// IPVS virtual and real servers.
    Ipvs,
    /// The addresses bound to `kube-ipvs0`.
    Address,
    /// kube-proxy's ipsets.
    Ipset,
    /// The iptables tables.
    Iptables,
    /// Stale UDP conntrack flows.
    Conntrack,
}

impl Part {
    /// The part's name, as the `kind` label of `sync_errors_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Ipvs => "ipvs",
            Part::Address => "address",
            Part::Ipset => "ipset",
            Part::Iptables => "iptables",
            Part::Conntrack => "conntrack",
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one sync did.
#[derive(Debug, Default)]
pub struct SyncSummary {
    /// Operations applied, by kind.
    pub applied: Counts,
    /// Operations that failed, by kind.
    pub failed: Counts,
    /// Drift found and repaired, by kind.
    pub drift: Counts,
    /// Real servers draining after this sync.
    pub draining: usize,
    /// Parts of the dataplane that could not be synced at all.
    pub broken: Vec<Part>,
    /// Time spent in each part, in milliseconds (a part timed twice adds up).
    pub parts_ms: Counts,
    /// The families whose `iptables-restore` failed or could not run in this sync: once
    /// each, however many of its tables failed (kube-proxy restores a family's tables in
    /// one `iptables-restore`).
    pub restore_failed: BTreeSet<iptables::Family>,
}

fn bump(map: &mut Counts, kind: &'static str, n: u64) {
    if n > 0 {
        *map.entry(kind).or_insert(0) += n;
    }
}

impl SyncSummary {
    /// Counts `n` operations of `kind` applied.
    pub fn applied(&mut self, kind: &'static str, n: usize) {
        bump(&mut self.applied, kind, n as u64);
    }

    /// Counts one failed operation of `kind`, logging it with its object.
    pub fn failed(&mut self, kind: &'static str, error: &dyn fmt::Display) {
        tracing::error!(kind, error = %error, "dataplane operation failed");
        bump(&mut self.failed, kind, 1);
    }

    /// Counts drift found, by kind.
    pub fn drift(&mut self, counts: impl IntoIterator<Item = (&'static str, u64)>) {
        for (kind, n) in counts {
            bump(&mut self.drift, kind, n);
        }
    }

    /// Records that `part` of the dataplane could not be synced: logged with
    /// its cause, counted as one failure of that kind; the other parts go on.
    pub fn broken(&mut self, part: Part, error: &dyn fmt::Display) {
        self.failed(part.as_str(), error);
        self.broken.push(part);
    }

    /// Adds the time since `started` to `part`'s.
    pub fn timed(&mut self, part: &'static str, started: Instant) {
        *self.parts_ms.entry(part).or_insert(0) += started.elapsed().as_millis() as u64;
    }

    /// Adds what another part of the same sync, run alongside, did.
    pub fn merge(&mut self, other: SyncSummary) {
        let SyncSummary {
            applied,
            failed,
            drift,
            draining,
            mut broken,
            parts_ms,
            mut restore_failed,
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
        self.restore_failed.append(&mut restore_failed);
    }

    /// Whether every part of the dataplane was synced (some operations may
    /// still have failed): what health reports.
    pub fn complete(&self) -> bool {
        self.broken.is_empty()
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
        s.broken(Part::Iptables, &"restore failed");
        assert!(!s.complete());
        assert_eq!(s.applied, [("ipset_entry", 3)].into());
        assert_eq!(s.failed, [("iptables", 1)].into());
        assert_eq!(s.drift, [("iptables_chain", 1)].into());
        assert_eq!(s.broken, [Part::Iptables]);
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
        netfilter.broken(Part::Iptables, &"restore failed");
        netfilter.restore_failed.insert(iptables::Family::V6);
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
        assert_eq!(ipvs.restore_failed, [iptables::Family::V6].into());
        assert!(!ipvs.complete());
    }
}
