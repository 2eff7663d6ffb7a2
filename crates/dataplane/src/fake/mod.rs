//! In-memory kernel tables that behave like the kernel where the dataplane
//! depends on it, for whole syncs in unit tests; and, with the cargo feature
//! `fake`, IPVS mode's dataplane over them for the daemon's own tests
//! ([`FakeIpvsDataplane`]).

pub(crate) mod addresses;
pub(crate) mod conntrack;
pub(crate) mod ipset;
pub(crate) mod iptables;
pub(crate) mod ipvs;

use std::collections::BTreeSet;
use std::net::IpAddr;

use desired::DesiredState;
use model::IpFamily;
use reconcile::Draining;
use tokio::sync::oneshot;

use self::addresses::FakeLink;
use self::conntrack::FakeFlows;
use self::ipset::FakeSets;
use self::iptables::{FakeWriter, Kernel as Netfilter};
use self::ipvs::{FakeIpvs, Hold};
use crate::ipvs::{IpvsSync, Kernel, Owner};
use crate::{Dataplane, Error, SyncSummary};

/// IPVS mode's tables, all in memory.
#[derive(Debug)]
pub(crate) struct Fake;

impl Kernel for Fake {
    type Ipvs = FakeIpvs;
    type Addresses = FakeLink;
    type Sets = FakeSets;
    type Writer = FakeWriter;
    type Flows = FakeFlows;
}

/// Every table of one node.
#[derive(Debug, Default, Clone)]
pub(crate) struct Node {
    pub(crate) ipvs: FakeIpvs,
    pub(crate) link: FakeLink,
    pub(crate) rules: Netfilter,
    pub(crate) flows: FakeFlows,
}

impl Node {
    /// The node's ipsets (they see the rules that reference them).
    pub(crate) fn sets(&self) -> FakeSets {
        FakeSets::new(&self.rules)
    }

    /// A dataplane (a daemon starting) over the node's tables, sharing `sets`.
    pub(crate) fn dataplane(&self, sets: &FakeSets) -> IpvsSync<Fake> {
        let owner = Owner {
            exclude_cidrs: Vec::new(),
            node_port_range: 30000..=32767,
        };
        IpvsSync::over(
            crate::ipvs::Tables {
                ipvs: self.ipvs.clone(),
                addresses: self.link.clone(),
                sets: sets.clone(),
                writers: [(
                    IpFamily::V4,
                    FakeWriter::new(::iptables::Family::V4, &self.rules),
                )]
                .into(),
                flows: self.flows.clone(),
            },
            owner,
            Draining::DEFAULT_TIMEOUT,
        )
    }
}

/// IPVS mode's dataplane over the in-memory tables of one node (IPv4), for tests of
/// the sync loop.
#[derive(Debug)]
pub struct FakeIpvsDataplane(IpvsSync<Fake>);

/// The test's side of a [`FakeIpvsDataplane`]'s tables.
#[derive(Debug, Clone)]
pub struct FakeTables(Node);

impl FakeIpvsDataplane {
    /// A dataplane over empty tables, and the test's side of them. The IPVS table has
    /// its overview (`/proc/net/ip_vs`, at 250 ticks a second), as every kernel with IPVS
    /// has.
    pub fn new() -> (Self, FakeTables) {
        let node = Node::default();
        node.ipvs.table().proc_hz = Some(250);
        let dataplane = node.dataplane(&node.sets());
        (FakeIpvsDataplane(dataplane), FakeTables(node))
    }
}

impl Dataplane for FakeIpvsDataplane {
    type State = DesiredState;

    fn sync(&mut self, state: &DesiredState, full: bool) -> SyncSummary {
        self.0.sync(state, full)
    }

    /// A node without interface addresses.
    fn node_addresses(&mut self) -> Result<BTreeSet<IpAddr>, Error> {
        Ok(BTreeSet::new())
    }
}

impl FakeTables {
    /// The virtual servers in the IPVS table.
    pub fn virtual_servers(&self) -> Vec<::ipvs::ServiceKey> {
        let table = self.0.ipvs.table();
        table
            .listing()
            .iter()
            .map(|s| s.service.service.key)
            .collect()
    }

    /// Makes the next application of IPVS operations wait inside the kernel: the
    /// receiver hears when it is waiting, and the sender lets it go on (a message, or
    /// the sender dropped).
    pub fn hold_next_apply(&self) -> (oneshot::Receiver<()>, std::sync::mpsc::Sender<()>) {
        let (entered, waiting) = oneshot::channel();
        let (release, released) = std::sync::mpsc::channel();
        self.0.ipvs.table().hold = Some(Hold { entered, released });
        (waiting, release)
    }
}
