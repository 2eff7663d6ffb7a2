//! Addresses: the virtual ones bound to `kube-ipvs0` (bound after their
//! virtual servers exist, unbound after they are gone), and the node's own,
//! read from its interfaces for NodePorts.

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::Context as _;
use desired::DesiredState;
use hostnet::dummy::{BoundAddresses, DummyLink};

use super::SyncSummary;

/// The dummy interface that holds every Service address, as in kube-proxy.
pub(crate) const DUMMY_LINK: &str = "kube-ipvs0";

/// `kube-ipvs0` and the rtnetlink handle to reach it.
#[derive(Debug)]
pub(super) struct Addresses {
    netlink: rtnetlink::Handle,
    link: DummyLink,
    /// What the last successful sync left: to tell drift from change.
    last: Option<BTreeSet<IpAddr>>,
}

/// An rtnetlink handle whose connection runs on the runtime.
pub(super) fn rtnetlink() -> anyhow::Result<rtnetlink::Handle> {
    let (connection, handle, _) =
        rtnetlink::new_connection().context("opening an rtnetlink socket")?;
    tokio::spawn(connection);
    Ok(handle)
}

impl Addresses {
    /// Makes sure `kube-ipvs0` exists (down, as kube-proxy keeps it).
    ///
    /// # Errors
    /// When the link cannot be created.
    pub(super) async fn start() -> anyhow::Result<Self> {
        let netlink = rtnetlink()?;
        let link = DummyLink::ensure(&netlink, DUMMY_LINK)
            .await
            .with_context(|| format!("creating {DUMMY_LINK}"))?;
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
    pub(super) async fn bound(&self) -> anyhow::Result<(BoundAddresses, BTreeSet<IpAddr>)> {
        let listed = self
            .link
            .addresses(&self.netlink)
            .await
            .with_context(|| format!("reading the addresses of {DUMMY_LINK}"))?;
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
    ) -> anyhow::Result<()> {
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
            .with_context(|| format!("binding addresses to {DUMMY_LINK}"))?;
        summary.applied("address", changes.added.len() + changes.removed.len());
        self.last = Some(target);
        Ok(())
    }

    /// The node's own addresses: every interface's but `kube-ipvs0`'s.
    ///
    /// # Errors
    /// When they cannot be listed.
    pub(super) async fn node_addresses(&self) -> anyhow::Result<BTreeSet<IpAddr>> {
        hostnet::addresses::node_addresses(&self.netlink, self.link.index())
            .await
            .context("reading the node's addresses")
    }
}
