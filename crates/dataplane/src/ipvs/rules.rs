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
use crate::tables::IptablesPart;

/// The iptables writers of this node, one per family, opened on first use.
#[derive(Debug, Default)]
pub(super) struct Rules {
    writers: BTreeMap<IpFamily, Iptables>,
    /// The tables the last successful sync of each applied.
    last: BTreeMap<(IpFamily, Table), DesiredTable>,
}

/// The writer of a family, detected on first use.
fn writer(
    writers: &mut BTreeMap<IpFamily, Iptables>,
    family: IpFamily,
) -> Result<&mut Iptables, Error> {
    Ok(match writers.entry(family) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => {
            let w = Iptables::detect(reconcile::iptables::family(family))
                .with_context(|| format!("finding the {family:?} iptables backend"))?;
            tracing::info!(?family, backend = ?w.backend(), "iptables backend");
            e.insert(w)
        }
    })
}

impl Rules {
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
