//! IPVS mode: observe what the kernel has, diff it with the desired state
//! (crate `reconcile`) and apply the result. One job per module:
//!
//! - [`table`]: modules, sysctls, and the virtual and real servers;
//! - [`addresses`]: `kube-ipvs0`'s addresses, and the node's own;
//! - [`ipsets`]: kube-proxy's ipsets;
//! - [`rules`]: kube-proxy's IPVS-mode helper chains;
//! - [`owner`]: which of the kernel's virtual servers are ours;
//! - [`preview`]: the live pre-flight, a sync that records instead of applying;
//! - [`probe`]: whether IPVS is usable here at all;
//! - [`stats`]: the traffic counters of the Services' virtual servers.
//!
//! A sync runs the parts in a safe order: virtual servers, then their
//! addresses; sets, then the rules that reference them, then the sets no
//! longer wanted; then conntrack. Each part fails alone: its error is logged
//! with its object and counted, and the others still run. Nothing is flushed
//! or recreated: what is already right is left alone, so restarts and
//! resyncs keep established connections.

mod addresses;
mod ipsets;
mod owner;
mod preview;
mod probe;
mod rules;
mod stats;
#[cfg(test)]
mod sync_tests;
mod table;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use desired::DesiredState;

use std::fmt::Debug;

use crate::conntrack::{FlowTable, Flows};
use crate::error::Error;
use crate::summary::{Part, SyncSummary};
use crate::tables::Writer;

pub(crate) use addresses::AddressTable;
pub(crate) use ipsets::SetTable;
pub use owner::Owner;
pub use preview::IpvsPreview;
pub use probe::IpvsProbe;
pub use stats::{
    BackendStats, IpvsStats, ServiceNames, StatsDetail, StatsNames, VirtualServerStats,
};
pub(crate) use table::IpvsKernel;
pub use table::IpvsOptions;

/// The clients of the kernel tables IPVS mode writes: the real ones, or in tests fakes.
pub(crate) trait Kernel {
    /// Virtual and real servers.
    type Ipvs: IpvsKernel + Debug;
    /// `kube-ipvs0`'s addresses.
    type Addresses: AddressTable + Debug;
    /// kube-proxy's ipsets.
    type Sets: SetTable + Send + Debug;
    /// The iptables writer of a family.
    type Writer: Writer + Send + Debug;
    /// The conntrack table.
    type Flows: FlowTable + Debug;
}

/// The kernel's own tables.
#[derive(Debug)]
pub(crate) struct Host;

impl Kernel for Host {
    type Ipvs = ipvs::Client;
    type Addresses = addresses::Kube0;
    type Sets = ipset::Ipset;
    type Writer = iptables::Iptables;
    type Flows = conntrack::Conntrack;
}

/// The IPVS-mode dataplane of one node (or one network namespace).
#[derive(Debug)]
pub struct IpvsDataplane {
    kernel: IpvsSync<Host>,
}

/// The clients of a node's tables, for [`IpvsSync::over`].
#[cfg(any(test, feature = "fake"))]
pub(crate) struct Tables<K: Kernel> {
    pub(crate) ipvs: K::Ipvs,
    pub(crate) addresses: K::Addresses,
    pub(crate) sets: K::Sets,
    pub(crate) writers: std::collections::BTreeMap<model::IpFamily, K::Writer>,
    pub(crate) flows: K::Flows,
}

/// What an IPVS-mode sync programs, over the tables of `K`.
#[derive(Debug)]
pub(crate) struct IpvsSync<K: Kernel> {
    ipvs: table::IpvsTable<K::Ipvs>,
    addresses: addresses::Addresses<K::Addresses>,
    sets: Option<ipsets::Sets<K::Sets>>,
    rules: rules::Rules<K::Writer>,
    flows: Flows<K::Flows>,
}

impl IpvsDataplane {
    /// Checks and loads the kernel modules, sets kube-proxy's sysctls and the
    /// IPVS timeouts, and makes sure `kube-ipvs0` exists.
    ///
    /// # Errors
    /// When IPVS cannot be used here: a missing module (named), no IPVS
    /// netlink family, or the dummy link cannot be created.
    pub fn start(options: &IpvsOptions) -> Result<Self, Error> {
        let ipvs = table::IpvsTable::start(options)?;
        let addresses = addresses::Addresses::start()?;
        let sets = ipsets::Sets::start()
            .inspect_err(|e| tracing::error!(error = %e, "no ipsets until restart"))
            .ok();
        Ok(IpvsDataplane {
            kernel: IpvsSync {
                ipvs,
                addresses,
                sets,
                rules: rules::Rules::default(),
                flows: Flows::default(),
            },
        })
    }
}

impl<K: Kernel> IpvsSync<K> {
    /// A sync over these tables (one writer per family), nothing synced yet: a daemon
    /// starting.
    #[cfg(any(test, feature = "fake"))]
    pub(crate) fn over(
        tables: Tables<K>,
        owner: Owner,
        drain_timeout: std::time::Duration,
    ) -> Self {
        IpvsSync {
            ipvs: table::IpvsTable::over(tables.ipvs, owner, drain_timeout),
            addresses: addresses::Addresses::over(tables.addresses),
            sets: Some(ipsets::Sets::over(tables.sets)),
            rules: rules::Rules::with(tables.writers),
            flows: Flows::with(tables.flows),
        }
    }

    /// Brings the kernel to `state`. A `full` sync reads the iptables tables
    /// afresh (repairing drift there) and always checks conntrack; other
    /// syncs plan iptables against what they last applied. The IPVS part
    /// (virtual servers, then their addresses) and the netfilter part (sets,
    /// then the rules that use them, then the sets no longer wanted) depend on
    /// nothing of each other's, so they run alongside, the netfilter part on a
    /// scoped thread of its own: a sync takes as long as the longer of the
    /// two, not their sum. Conntrack comes last, once the real servers are
    /// settled. Blocks on the kernel throughout.
    pub(crate) fn sync(&mut self, state: &DesiredState, full: bool) -> SyncSummary {
        let IpvsSync {
            ipvs,
            addresses,
            sets,
            rules,
            flows,
        } = self;
        let (mut summary, netfilter) = std::thread::scope(|scope| {
            let netfilter = scope.spawn(|| {
                let mut summary = SyncSummary::default();
                sync_netfilter(sets, rules, state, full, &mut summary);
                summary
            });
            let mut summary = SyncSummary::default();
            sync_ipvs(ipvs, addresses, state, full, &mut summary);
            (summary, netfilter.join())
        });
        match netfilter {
            Ok(netfilter) => summary.merge(netfilter),
            Err(_) => summary.broken(
                Part::Iptables,
                &Error::new(
                    "syncing the ipsets and iptables rules",
                    crate::Cause::Panicked,
                ),
            ),
        }
        let started = Instant::now();
        let udp = reconcile::conntrack::udp_endpoints(state.virtual_servers());
        if let Err(e) = flows.sync(udp, full, &mut summary) {
            summary.broken(Part::Conntrack, &e);
        }
        summary.timed("conntrack", started);
        summary
    }
}

impl crate::Dataplane for IpvsDataplane {
    type State = DesiredState;

    fn sync(&mut self, state: &DesiredState, full: bool) -> SyncSummary {
        self.kernel.sync(state, full)
    }

    fn node_addresses(&mut self) -> Result<BTreeSet<IpAddr>, Error> {
        self.kernel.addresses.node_addresses()
    }
}

/// kube-proxy's sets, then the rules that reference them, then the sets no
/// longer wanted (a referenced set cannot be destroyed).
fn sync_netfilter<S: SetTable, W: Writer>(
    sets: &mut Option<ipsets::Sets<S>>,
    rules: &mut rules::Rules<W>,
    state: &DesiredState,
    full: bool,
    summary: &mut SyncSummary,
) {
    let started = Instant::now();
    let unwanted = match sets {
        Some(sets) => sets
            .sync(state, full, summary)
            .inspect_err(|e| summary.broken(Part::Ipset, e))
            .ok(),
        None => {
            summary.broken(Part::Ipset, &"no ipset socket");
            None
        }
    };
    summary.timed("ipset", started);
    rules.sync(state, full, summary);
    let started = Instant::now();
    if let (Some(sets), Some(unwanted)) = (sets, &unwanted) {
        sets.destroy_unwanted(unwanted, summary);
    }
    summary.timed("ipset", started);
}

/// Virtual and real servers, then the addresses they need. The table
/// failing to be read breaks the `ipvs` part; the addresses failing to be
/// read or bound break the `address` part.
fn sync_ipvs<I: IpvsKernel, A: AddressTable>(
    ipvs: &mut table::IpvsTable<I>,
    addresses: &mut addresses::Addresses<A>,
    state: &DesiredState,
    full: bool,
    summary: &mut SyncSummary,
) {
    let started = Instant::now();
    let bound = addresses.bound(full);
    summary.timed("address", started);
    let (listed, bound) = match bound {
        Ok(bound) => bound,
        Err(e) => return summary.broken(Part::Address, &e),
    };
    let owner = ipvs.owner().ownership(
        bound.iter().copied().chain(state.addresses()).collect(),
        state.node().addresses.clone(),
    );
    let draining = match ipvs.sync(state, &owner, full, summary) {
        Ok(draining) => draining,
        Err(e) => return summary.broken(Part::Ipvs, &e),
    };
    let started = Instant::now();
    if let Err(e) = addresses.bind(state, listed, &bound, &draining, summary) {
        summary.broken(Part::Address, &e);
    }
    summary.timed("address", started);
}
