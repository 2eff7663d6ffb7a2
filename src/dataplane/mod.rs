//! The kernel step of the pipeline in IPVS mode: observe what the kernel has,
//! diff it with the desired state (crate `reconcile`) and apply the result.
//! One job per module:
//!
//! - [`ipvs`]: modules, sysctls, and the virtual and real servers;
//! - [`addresses`]: `kube-ipvs0`'s addresses, and the node's own;
//! - [`ipsets`]: kube-proxy's ipsets;
//! - [`iptables`]: kube-proxy's IPVS-mode helper chains;
//! - [`conntrack`]: stale UDP conntrack flows;
//! - [`cleanup`]: `--cleanup`, removing all of it;
//! - [`summary`]: what a sync did, counted in one place.
//!
//! A sync runs the parts in a safe order: virtual servers, then their
//! addresses; sets, then the rules that reference them, then the sets no
//! longer wanted; then conntrack. Each part fails alone: its error is logged
//! with its object and counted, and the others still run. Nothing is flushed
//! or recreated: what is already right is left alone, so restarts and
//! resyncs keep established connections.

mod addresses;
mod cleanup;
mod conntrack;
mod ipsets;
mod iptables;
mod ipvs;
mod summary;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use desired::DesiredState;
use reconcile::Ownership;

pub(crate) use addresses::DUMMY_LINK;
pub(crate) use cleanup::cleanup;
pub(crate) use conntrack::Flows;
pub(crate) use ipvs::IpvsOptions;
pub(crate) use summary::SyncSummary;

/// The dataplane of one node (or one network namespace).
#[derive(Debug)]
pub(crate) struct IpvsDataplane {
    ipvs: ipvs::IpvsTable,
    addresses: addresses::Addresses,
    sets: Option<ipsets::Sets>,
    rules: iptables::Rules,
    flows: conntrack::Flows,
}

impl IpvsDataplane {
    /// Checks and loads the kernel modules, sets kube-proxy's sysctls and the
    /// IPVS timeouts, and makes sure `kube-ipvs0` exists.
    ///
    /// # Errors
    /// When IPVS cannot be used here: a missing module (named), no IPVS
    /// netlink family, or the dummy link cannot be created.
    pub(crate) async fn start(options: &IpvsOptions) -> anyhow::Result<Self> {
        let ipvs = ipvs::IpvsTable::start(options)?;
        let addresses = addresses::Addresses::start().await?;
        let sets = ipsets::Sets::start()
            .inspect_err(|e| tracing::error!(error = format!("{e:#}"), "no ipsets until restart"))
            .ok();
        Ok(IpvsDataplane {
            ipvs,
            addresses,
            sets,
            rules: iptables::Rules::default(),
            flows: conntrack::Flows::default(),
        })
    }

    /// The node's own addresses (every interface's but `kube-ipvs0`'s).
    ///
    /// # Errors
    /// When they cannot be listed.
    pub(crate) async fn node_addresses(&self) -> anyhow::Result<BTreeSet<IpAddr>> {
        self.addresses.node_addresses().await
    }

    /// Brings the kernel to `state`. A `full` sync reads the iptables tables
    /// afresh (repairing drift there) and always checks conntrack; other
    /// syncs plan iptables against what they last applied. The IPVS part
    /// (virtual servers, then their addresses) and the netfilter part (sets,
    /// then the rules that use them, then the sets no longer wanted) depend on
    /// nothing of each other's, so they run alongside, each on a thread of
    /// its own: a sync takes as long as the longer of the two, not their sum.
    /// Conntrack comes last, once the real servers are settled.
    pub(crate) async fn sync(&mut self, state: &DesiredState, full: bool) -> SyncSummary {
        let IpvsDataplane {
            ipvs,
            addresses,
            sets,
            rules,
            flows,
        } = self;
        let runtime = tokio::runtime::Handle::current();
        let (mut summary, netfilter) = tokio::task::block_in_place(|| {
            std::thread::scope(|scope| {
                let netfilter = scope.spawn(|| {
                    let mut summary = SyncSummary::default();
                    sync_netfilter(sets, rules, state, full, &mut summary);
                    summary
                });
                let mut summary = SyncSummary::default();
                if let Err(e) =
                    runtime.block_on(sync_ipvs(ipvs, addresses, state, full, &mut summary))
                {
                    summary.broken("ipvs", &e);
                }
                (summary, netfilter.join())
            })
        });
        match netfilter {
            Ok(netfilter) => summary.merge(netfilter),
            Err(_) => summary.broken(
                "iptables",
                &anyhow::anyhow!("the ipset and iptables sync panicked"),
            ),
        }
        let started = Instant::now();
        let udp = reconcile::conntrack::udp_endpoints(state.virtual_servers());
        if let Err(e) = flows.sync(udp, full, &mut summary) {
            summary.broken("conntrack", &e);
        }
        summary.timed("conntrack", started);
        summary
    }
}

/// kube-proxy's sets, then the rules that reference them, then the sets no
/// longer wanted (a referenced set cannot be destroyed).
fn sync_netfilter(
    sets: &mut Option<ipsets::Sets>,
    rules: &mut iptables::Rules,
    state: &DesiredState,
    full: bool,
    summary: &mut SyncSummary,
) {
    let started = Instant::now();
    let listed = match sets {
        Some(sets) => sets
            .sync(state, summary)
            .inspect_err(|e| summary.broken("ipset", e))
            .ok(),
        None => {
            summary.broken("ipset", &anyhow::anyhow!("no ipset socket"));
            None
        }
    };
    summary.timed("ipset", started);
    let started = Instant::now();
    rules.sync(state, full, summary);
    summary.timed("iptables", started);
    let started = Instant::now();
    if let (Some(sets), Some(listed)) = (sets, &listed) {
        sets.destroy_unwanted(listed, summary);
    }
    summary.timed("ipset", started);
}

/// Virtual and real servers, then the addresses they need.
async fn sync_ipvs(
    ipvs: &mut ipvs::IpvsTable,
    addresses: &mut addresses::Addresses,
    state: &DesiredState,
    full: bool,
    summary: &mut SyncSummary,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (listed, bound) = addresses.bound().await?;
    summary.timed("address", started);
    let owner = Ownership {
        exclude: ipvs.exclude.clone(),
        dummy_addresses: bound.into_iter().chain(state.addresses()).collect(),
        node_port_addresses: state.node().addresses.clone(),
        node_port_range: ipvs.node_port_range.clone(),
    };
    let draining = ipvs.sync(state, &owner, full, summary);
    let started = Instant::now();
    let bound = addresses.bind(state, listed, &draining?, summary).await;
    summary.timed("address", started);
    bound
}
