//! `--cleanup`: removes everything of ours, in a safe order, and nothing
//! else, like kube-proxy's `--cleanup` but without flushing foreign IPVS
//! services:
//!
//! 1. the virtual servers we own (`reconcile::Ownership`: on a `kube-ipvs0`
//!    address, or a NodePort on a node address; never in `excludeCIDRs`);
//! 2. `kube-ipvs0` with its addresses;
//! 3. our iptables chains and the jumps into them, both families, those of
//!    IPVS mode and those of the iptables mode (rules go before the sets
//!    they reference);
//! 4. kube-proxy's ipsets, both families.
//!
//! Running it again finds nothing and succeeds.

use std::path::Path;

use hostnet::dummy::DummyLink;
use hostnet::{KUBE_IPVS0, Rtnl};
use iptables::Iptables;
use model::IpFamily;

use crate::error::{Context as _, Error};
use crate::ipvs::Owner;

/// Removes everything we own; returns a one-line account of what went.
///
/// # Errors
/// The first step that failed (the later steps are not attempted, so the
/// sets referenced by rules that could not be removed stay intact).
pub fn cleanup(owner: &Owner) -> Result<String, Error> {
    let mut netlink = Rtnl::open().context("cleaning up")?;
    let link = DummyLink::find(&mut netlink, KUBE_IPVS0)
        .with_context(|| format!("looking for {KUBE_IPVS0}"))?;
    let crate::inspect::Addresses {
        bound: dummy_addresses,
        node: node_port_addresses,
    } = crate::inspect::read_addresses(&mut netlink, link.as_ref())?;
    let owner = owner.ownership(dummy_addresses, node_port_addresses);
    // Without the IPVS module loaded there is no table, hence nothing of ours.
    let virtual_servers = if Path::new("/proc/net/ip_vs").exists() {
        let mut client = ipvs::Client::new().context("connecting to the kernel's IPVS")?;
        let observed = client.list().context("reading the IPVS table")?;
        let doomed: Vec<ipvs::Change> = owner
            .owned(&observed)
            .into_iter()
            .map(ipvs::Change::DeleteService)
            .collect();
        for (change, result) in doomed.iter().zip(client.apply(&doomed)) {
            result.with_context(|| format!("{change:?}"))?;
        }
        doomed.len()
    } else {
        0
    };
    let link_removed = match link {
        Some(l) => {
            l.delete(&mut netlink)
                .with_context(|| format!("deleting {KUBE_IPVS0}"))?;
            1
        }
        None => 0,
    };
    let chains = remove_chains()?;
    // Without the ip_set module there are no sets (it has a parameter, so it
    // is listed in /sys/module even when built in).
    let sets = if Path::new("/sys/module/ip_set").exists() {
        destroy_sets()?
    } else {
        0
    };
    Ok(format!(
        "removed {virtual_servers} virtual servers, {link_removed} {KUBE_IPVS0} link, \
         {chains} iptables chains and {sets} ipsets"
    ))
}

/// Destroys kube-proxy's sets, both families; returns how many.
fn destroy_sets() -> Result<usize, Error> {
    let mut client = ipset::Ipset::open().context("opening the ipset netlink socket")?;
    let ours = reconcile::ipsets::owned_names();
    let mut sets = 0;
    for set in client.list().context("listing the ipsets")? {
        if ours.contains(&set.name) {
            client
                .destroy(&set.name)
                .with_context(|| format!("destroying set {}", set.name))?;
            sets += 1;
        }
    }
    Ok(sets)
}

/// Deletes our chains and the jumps into them in both families: IPVS mode's,
/// then the iptables mode's (left by a fallback or an earlier
/// `mode: iptables`), as kube-proxy's `--cleanup` removes both. A family
/// whose tools are missing has nothing of ours.
///
/// # Errors
/// The first table that could not be cleaned.
fn remove_chains() -> Result<usize, Error> {
    let mut removed = 0;
    for family in IpFamily::ALL {
        let mut w = match Iptables::detect(reconcile::iptables::family(family)) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(?family, error = %e, "no iptables for this family; nothing to remove");
                continue;
            }
        };
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
