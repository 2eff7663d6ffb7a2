//! kube-proxy's IPVS-mode helper chains in the nat and filter tables of each
//! family the node proxies, applied with the one iptables helper
//! ([`crate::tables`]), with the backend (nf_tables or legacy) of the host's
//! `iptables`.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use desired::DesiredState;
use iptables::{DesiredTable, Iptables, Table};
use model::IpFamily;

use crate::error::{Context as _, Error};
use crate::summary::SyncSummary;
use crate::tables::{IptablesPart, Writer};

/// The iptables writers of this node, one per family, opened on first use.
#[derive(Debug)]
pub(super) struct Rules<W = Iptables> {
    writers: BTreeMap<IpFamily, W>,
    /// The tables the last successful sync of each applied.
    last: BTreeMap<(IpFamily, Table), DesiredTable>,
}

impl<W> Default for Rules<W> {
    fn default() -> Self {
        Rules {
            writers: BTreeMap::new(),
            last: BTreeMap::new(),
        }
    }
}

/// The writer of a family, detected on first use.
fn writer<W: Writer>(
    writers: &mut BTreeMap<IpFamily, W>,
    family: IpFamily,
) -> Result<&mut W, Error> {
    Ok(match writers.entry(family) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => {
            let w = W::detect(reconcile::iptables::family(family))
                .with_context(|| format!("finding the {family:?} iptables backend"))?;
            tracing::info!(?family, "iptables writer found");
            e.insert(w)
        }
    })
}

impl<W: Writer> Rules<W> {
    /// Rules written with these writers, one per family.
    #[cfg(any(test, feature = "fake"))]
    pub(super) fn with(writers: BTreeMap<IpFamily, W>) -> Self {
        Rules {
            writers,
            last: BTreeMap::new(),
        }
    }

    /// The writers opened so far.
    pub(super) fn writers(&self) -> impl Iterator<Item = &W> {
        self.writers.values()
    }

    /// Brings our chains of every family the node proxies to `state`: with
    /// a fresh read of each table when `full`, else against what was last
    /// applied. A table that fails breaks the iptables part of the sync;
    /// the other tables still go on.
    pub(super) fn sync(&mut self, state: &DesiredState, full: bool, summary: &mut SyncSummary) {
        let mut part = IptablesPart::new(summary, full);
        for family in state.node().families() {
            let tables = reconcile::iptables::tables(state, family)
                .with_context(|| format!("building the {family:?} IPVS-mode rules"));
            let (tables, writer) =
                match tables.and_then(|t| Ok((t, writer(&mut self.writers, family)?))) {
                    Ok(found) => found,
                    Err(e) => {
                        part.fail(e);
                        continue;
                    }
                };
            for desired in tables {
                let key = (family, desired.table);
                let unchanged = self.last.remove(&key).is_some_and(|last| last == desired);
                if part.apply(writer, &desired, unchanged) {
                    self.last.insert(key, desired);
                }
            }
        }
        part.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iptables::Family;

    use crate::fake::iptables::{Failure, FakeWriter, Kernel, lock};
    use crate::fixtures::{model, node, service, slice};
    use crate::summary::Part;

    fn state() -> DesiredState {
        let model = model(vec![
            service("web", "10.96.0.10", "TCP", 80),
            slice("web", "TCP", &["10.244.1.5"]),
        ]);
        DesiredState::new(Default::default(), node(), &model)
    }

    /// kube-proxy's IPVS mode jumps from PREROUTING into KUBE-SERVICES
    /// ("kubernetes service portals"), as its iptables mode does.
    fn portals(kernel: &Kernel) -> bool {
        let nat = lock(kernel).table(Family::V4, Table::Nat);
        nat.chain("PREROUTING").is_some_and(|c| {
            c.rules
                .iter()
                .any(|r| r.to_string().contains("kubernetes service portals"))
        })
    }

    #[test]
    fn a_failed_iptables_read_breaks_the_part_as_in_the_iptables_mode() {
        let kernel = Kernel::default();
        let mut rules = Rules::with([(IpFamily::V4, FakeWriter::new(Family::V4, &kernel))].into());
        let state = state();
        lock(&kernel).fail(Family::V4, Some(Failure::Read));
        let mut summary = SyncSummary::default();
        rules.sync(&state, true, &mut summary);
        assert_eq!(summary.broken, [Part::Iptables]);
        assert_eq!(summary.failed, [("iptables", 1)].into());
        lock(&kernel).fail(Family::V4, None);
        let mut summary = SyncSummary::default();
        rules.sync(&state, false, &mut summary);
        assert!(summary.complete(), "{summary:?}");
        assert!(portals(&kernel));
    }

    #[test]
    fn a_proxied_family_without_iptables_tools_is_broken_not_skipped() {
        let mut rules = Rules::<FakeWriter>::default();
        let mut summary = SyncSummary::default();
        rules.sync(&state(), false, &mut summary);
        assert_eq!(summary.broken, [Part::Iptables]);
    }
}
