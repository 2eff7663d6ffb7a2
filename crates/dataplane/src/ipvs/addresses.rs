//! Addresses: the virtual ones bound to `kube-ipvs0` (bound after their
//! virtual servers exist, unbound after they are gone), and the node's own,
//! read from its interfaces for NodePorts.

use std::collections::BTreeSet;
use std::net::IpAddr;

use desired::DesiredState;
use hostnet::KUBE_IPVS0;
use hostnet::dummy::{BoundAddresses, DummyLink};

use crate::error::{Context as _, Error};
use crate::summary::SyncSummary;

/// `kube-ipvs0` and the rtnetlink handle to reach it.
#[derive(Debug)]
pub(super) struct Addresses {
    netlink: rtnetlink::Handle,
    link: DummyLink,
    /// What the last successful sync left: to tell drift from change.
    last: Option<BTreeSet<IpAddr>>,
}

impl Addresses {
    /// Makes sure `kube-ipvs0` exists (down, as kube-proxy keeps it).
    ///
    /// # Errors
    /// When the link cannot be created.
    pub(super) async fn start() -> Result<Self, Error> {
        let netlink = hostnet::netlink::connect().context("starting the IPVS dataplane")?;
        let link = DummyLink::ensure(&netlink, KUBE_IPVS0)
            .await
            .with_context(|| format!("creating {KUBE_IPVS0}"))?;
        Ok(Addresses {
            netlink,
            link,
            last: None,
        })
    }

    /// The addresses bound now, as listed and as a set.
    ///
    /// # Errors
    /// When they cannot be listed.
    pub(super) async fn bound(&self) -> Result<(BoundAddresses, BTreeSet<IpAddr>), Error> {
        let listed = self
            .link
            .addresses(&self.netlink)
            .await
            .with_context(|| format!("reading the addresses of {KUBE_IPVS0}"))?;
        let set = listed.list().into_iter().map(|(ip, _)| ip).collect();
        Ok((listed, set))
    }

    /// Binds the state's addresses plus those draining virtual servers
    /// still use, and unbinds the rest.
    ///
    /// # Errors
    /// When an address cannot be changed (named).
    pub(super) async fn bind(
        &mut self,
        state: &DesiredState,
        listed: BoundAddresses,
        draining: &BTreeSet<ipvs::ServiceKey>,
        summary: &mut SyncSummary,
    ) -> Result<(), Error> {
        let bound: BTreeSet<IpAddr> = listed.list().into_iter().map(|(ip, _)| ip).collect();
        if let Some(last) = &self.last {
            summary.drift(reconcile::drift::addresses(last, &bound));
        }
        let target = reconcile::addresses::target(state.addresses(), &bound, draining);
        self.last = None;
        let changes = self
            .link
            .sync_bound(&self.netlink, listed, &target)
            .await
            .with_context(|| format!("binding addresses to {KUBE_IPVS0}"))?;
        summary.applied("address", changes.added.len() + changes.removed.len());
        self.last = Some(target);
        Ok(())
    }

    /// The node's own addresses: every interface's but `kube-ipvs0`'s.
    ///
    /// # Errors
    /// When they cannot be listed.
    pub(super) async fn node_addresses(&self) -> Result<BTreeSet<IpAddr>, Error> {
        hostnet::addresses::node_addresses(&self.netlink, self.link.index())
            .await
            .context("reading the node's addresses")
    }
}
