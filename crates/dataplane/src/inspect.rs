//! Reads, changing nothing, what the kernel holds for some virtual servers: for
//! `kube-ipvs-proxy explain --live`, with the clients the IPVS dataplane syncs with. Unlike
//! the dataplane's start, it creates nothing and loads no module (no `kube-ipvs0`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use hostnet::dummy::DummyLink;
use hostnet::{KUBE_IPVS0, Rtnl};
use ipset::{Ipset, ListedSet};
use ipvs::{ServiceKey, ServiceWithDestinations};

use crate::error::{Context as _, Error};

/// What the kernel holds, as read.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The virtual servers asked about that exist, with their real servers.
    pub virtual_servers: Vec<ServiceWithDestinations>,
    /// The addresses bound to `kube-ipvs0` (none when it is missing).
    pub bound: BTreeSet<IpAddr>,
    /// Every ipset.
    pub sets: Vec<ListedSet>,
}

impl Observed {
    /// As [`reconcile::inspect`] compares it.
    pub fn kernel(&self) -> reconcile::inspect::Kernel<'_> {
        reconcile::inspect::Kernel {
            virtual_servers: &self.virtual_servers,
            bound: &self.bound,
            sets: &self.sets,
        }
    }
}

/// The addresses bound to `kube-ipvs0` (none when it is missing) and the node's own (every
/// other interface's, where the daemon's NodePorts listen).
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    /// On `kube-ipvs0`.
    pub bound: BTreeSet<IpAddr>,
    /// On every other interface.
    pub node: BTreeSet<IpAddr>,
}

/// Reads [`Addresses`].
///
/// # Errors
/// When the links or addresses cannot be listed.
pub fn addresses() -> Result<Addresses, Error> {
    let mut netlink = Rtnl::open().context("reading the node's addresses")?;
    let link = DummyLink::find(&mut netlink, KUBE_IPVS0)
        .with_context(|| format!("looking for {KUBE_IPVS0}"))?;
    read_addresses(&mut netlink, link.as_ref())
}

/// [`Addresses`], with `kube-ipvs0` already looked up.
pub(crate) fn read_addresses(
    netlink: &mut Rtnl,
    link: Option<&DummyLink>,
) -> Result<Addresses, Error> {
    let bound = match link {
        Some(l) => l
            .addresses(netlink)
            .with_context(|| format!("reading the addresses of {KUBE_IPVS0}"))?
            .list()
            .iter()
            .map(|(ip, _)| *ip)
            .collect(),
        None => BTreeSet::new(),
    };
    let node = hostnet::addresses::node_addresses(netlink, link.map_or(0, DummyLink::index))
        .context("reading the node's addresses")?;
    Ok(Addresses { bound, node })
}

/// The virtual servers `keys` (one netlink dump each, whatever the table's size), the
/// addresses of `kube-ipvs0` and every ipset.
///
/// # Errors
/// When one of them cannot be read (IPVS missing, no permission), naming it.
pub fn observe(keys: &[ServiceKey]) -> Result<Observed, Error> {
    let virtual_servers = ipvs::Client::new()
        .and_then(|mut c| c.list_only(keys))
        .context("reading the IPVS table")?;
    let bound = addresses()?.bound;
    let sets = Ipset::open()
        .and_then(|mut c| c.list())
        .context("reading the ipsets")?;
    Ok(Observed {
        virtual_servers,
        bound,
        sets,
    })
}
