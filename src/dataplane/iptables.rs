//! kube-proxy's IPVS-mode helper chains in the nat and filter tables, one
//! `iptables-restore --noflush` per table and family when something differs,
//! with the backend (nf_tables or legacy) of the host's `iptables`. Periodic
//! syncs read the tables and repair drift; change-driven syncs plan against
//! what was last applied.

use std::collections::BTreeMap;

use anyhow::Context as _;
use desired::DesiredState;
use iptables::{DesiredTable, Iptables, Table};
use model::IpFamily;

use super::SyncSummary;

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
) -> anyhow::Result<&mut Iptables> {
    Ok(match writers.entry(family) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => {
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
    /// applied. A table that fails is logged and counted; the others go on.
    pub(super) fn sync(&mut self, state: &DesiredState, full: bool, summary: &mut SyncSummary) {
        for family in state.node().families() {
            let tables = match reconcile::iptables::tables(state, family) {
                Ok(t) => t,
                Err(e) => {
                    summary.failed("iptables", &format_args!("{family:?} rules: {e}"));
                    continue;
                }
            };
            for table in tables {
                self.sync_table(family, table, full, summary);
            }
        }
    }

    fn sync_table(
        &mut self,
        family: IpFamily,
        desired: DesiredTable,
        full: bool,
        summary: &mut SyncSummary,
    ) {
        let key = (family, desired.table);
        let unchanged = self.last.remove(&key).is_some_and(|last| last == desired);
        let result = writer(&mut self.writers, family).and_then(|w| {
            tokio::task::block_in_place(|| {
                if full {
                    w.sync(&desired)
                } else {
                    w.sync_from_applied(&desired)
                }
            })
            .map_err(anyhow::Error::from)
        });
        match result {
            Ok(plan) => {
                if let Some(plan) = &plan {
                    tracing::info!(
                        ?family,
                        table = %desired.table,
                        rewritten = ?plan.rewritten,
                        deleted = ?plan.deleted,
                        jumps_inserted = plan.jumps_inserted.len(),
                        "iptables-restore applied"
                    );
                    if unchanged {
                        summary.drift(reconcile::drift::chains(plan));
                    }
                    summary.applied("iptables_chain", plan.rewritten.len() + plan.deleted.len());
                    summary.applied(
                        "iptables_jump",
                        plan.jumps_inserted.len() + plan.rules_deleted.len(),
                    );
                }
                self.last.insert(key, desired);
            }
            Err(e) => summary.failed(
                "iptables",
                &format_args!("{family:?} {} table: {e:#}", desired.table),
            ),
        }
    }
}

/// Deletes our chains and the jumps into them in both families (`--cleanup`).
/// A family whose tools are missing has nothing of ours.
///
/// # Errors
/// The first table that could not be cleaned.
pub(super) fn remove_all() -> anyhow::Result<usize> {
    let mut removed = 0;
    for family in IpFamily::ALL {
        let mut w = match Iptables::detect(reconcile::iptables::family(family)) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(?family, error = %e, "no iptables for this family; nothing to remove");
                continue;
            }
        };
        // IPVS mode's chains, then iptables mode's (left by a fallback or an
        // earlier `mode: iptables`), as kube-proxy's --cleanup removes both.
        let ipvs_mode = reconcile::iptables::nothing();
        let iptables_mode = iptables_mode::Tables::cleanup(family);
        for table in ipvs_mode.iter().chain(iptables_mode.iter()) {
            let plan = w
                .sync(table)
                .with_context(|| format!("removing our {family:?} {} chains", table.table))?;
            removed += plan.map_or(0, |p| p.deleted.len() + p.kept_referenced.len());
        }
    }
    Ok(removed)
}
