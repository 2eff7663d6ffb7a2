//! Addresses: the virtual ones bound to `kube-ipvs0` (bound after their
//! virtual servers exist, unbound after they are gone), and the node's own,
//! read from its interfaces for NodePorts.

use std::collections::BTreeSet;
use std::net::IpAddr;

use desired::DesiredState;
use hostnet::dummy::{AddressChanges, BoundAddresses, DummyLink, LinkError};
use hostnet::{KUBE_IPVS0, Rtnl};

use crate::error::{Context as _, Error};
use crate::summary::SyncSummary;

/// The addresses of `kube-ipvs0`, as the dataplane uses them.
pub(crate) trait AddressTable {
    /// What one listing returned, kept so that unbinding needs no second listing.
    type Listed;

    /// The addresses a listing holds.
    fn addresses(listed: &Self::Listed) -> BTreeSet<IpAddr>;

    /// Lists the addresses bound now.
    fn list(&mut self) -> Result<Self::Listed, LinkError>;

    /// What [`AddressTable::list`] returns while exactly `bound` are bound, as the last
    /// sync binds them.
    fn left(bound: &BTreeSet<IpAddr>) -> Self::Listed;

    /// Binds exactly `target` (as host prefixes), unbinding the rest of `listed`.
    fn sync(
        &mut self,
        listed: Self::Listed,
        target: &BTreeSet<IpAddr>,
    ) -> Result<AddressChanges, LinkError>;
}

/// `kube-ipvs0` and the rtnetlink socket to reach it.
#[derive(Debug)]
pub(crate) struct Kube0 {
    netlink: Rtnl,
    link: DummyLink,
}

impl AddressTable for Kube0 {
    type Listed = BoundAddresses;

    fn addresses(listed: &BoundAddresses) -> BTreeSet<IpAddr> {
        listed.list().iter().map(|(ip, _)| *ip).collect()
    }

    fn list(&mut self) -> Result<BoundAddresses, LinkError> {
        self.link.addresses(&mut self.netlink)
    }

    fn left(bound: &BTreeSet<IpAddr>) -> BoundAddresses {
        BoundAddresses::hosts(bound)
    }

    fn sync(
        &mut self,
        listed: BoundAddresses,
        target: &BTreeSet<IpAddr>,
    ) -> Result<AddressChanges, LinkError> {
        self.link.sync_bound(&mut self.netlink, listed, target)
    }
}

/// The addresses bound to `kube-ipvs0`, and what the last sync left there.
#[derive(Debug)]
pub(super) struct Addresses<A = Kube0> {
    link: A,
    /// What the last successful sync left: to tell drift from change.
    last: Option<BTreeSet<IpAddr>>,
}

impl Addresses {
    /// Makes sure `kube-ipvs0` exists (down, as kube-proxy keeps it).
    ///
    /// # Errors
    /// When the link cannot be created.
    pub(super) fn start() -> Result<Self, Error> {
        let mut netlink = Rtnl::open().context("starting the IPVS dataplane")?;
        let link = DummyLink::ensure(&mut netlink, KUBE_IPVS0)
            .with_context(|| format!("creating {KUBE_IPVS0}"))?;
        Ok(Addresses::over(Kube0 { netlink, link }))
    }

    /// The node's own addresses: every interface's but `kube-ipvs0`'s.
    ///
    /// # Errors
    /// When they cannot be listed.
    pub(super) fn node_addresses(&mut self) -> Result<BTreeSet<IpAddr>, Error> {
        let Kube0 { netlink, link } = &mut self.link;
        hostnet::addresses::node_addresses(netlink, link.index())
            .context("reading the node's addresses")
    }
}

impl<A: AddressTable> Addresses<A> {
    /// The addresses of `link`, nothing synced yet.
    pub(super) fn over(link: A) -> Self {
        Addresses { link, last: None }
    }

    /// The link's table.
    pub(super) fn link(&self) -> &A {
        &self.link
    }

    /// The link's table, to read it.
    pub(super) fn link_mut(&mut self) -> &mut A {
        &mut self.link
    }

    /// The addresses bound now, as listed and as a set. A change-driven sync (not
    /// `full`) after one that bound every address starts from what that sync left,
    /// without a listing; drift is found by the next full sync.
    ///
    /// # Errors
    /// When they cannot be listed.
    pub(super) fn bound(&mut self, full: bool) -> Result<(A::Listed, BTreeSet<IpAddr>), Error> {
        if let Some(last) = self.last.as_ref().filter(|_| !full) {
            return Ok((A::left(last), last.clone()));
        }
        let listed = self
            .link
            .list()
            .with_context(|| format!("reading the addresses of {KUBE_IPVS0}"))?;
        let set = A::addresses(&listed);
        Ok((listed, set))
    }

    /// Binds the state's addresses plus those draining virtual servers
    /// still use, and unbinds the rest; `listed` and `bound` are what
    /// [`Addresses::bound`] returned.
    ///
    /// # Errors
    /// When an address cannot be changed (named).
    pub(super) fn bind(
        &mut self,
        state: &DesiredState,
        listed: A::Listed,
        bound: &BTreeSet<IpAddr>,
        draining: &BTreeSet<ipvs::ServiceKey>,
        summary: &mut SyncSummary,
    ) -> Result<(), Error> {
        if let Some(last) = &self.last {
            summary.drift(reconcile::drift::addresses(last, bound));
        }
        let target = reconcile::addresses::target(state.addresses(), bound, draining);
        self.last = None;
        let changes = self
            .link
            .sync(listed, &target)
            .with_context(|| format!("binding addresses to {KUBE_IPVS0}"))?;
        summary.applied("address", changes.added.len() + changes.removed.len());
        self.last = Some(target);
        Ok(())
    }
}
