//! `kube-ipvs0`'s addresses in memory.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use hostnet::dummy::{AddressChanges, LinkError};

use crate::ipvs::AddressTable;

/// The addresses bound, shared by the dataplane and the test.
#[derive(Debug, Default)]
pub(crate) struct Link {
    /// The addresses bound now.
    pub(crate) bound: BTreeSet<IpAddr>,
    /// Whether listing and binding fail (the link was deleted).
    pub(crate) gone: bool,
    /// How many times the addresses were listed.
    pub(crate) listings: usize,
}

/// A handle on the shared link.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeLink(Arc<Mutex<Link>>);

impl FakeLink {
    /// The link.
    pub(crate) fn link(&self) -> MutexGuard<'_, Link> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn usable(&self) -> Result<MutexGuard<'_, Link>, LinkError> {
        let link = self.link();
        if link.gone {
            return Err(LinkError::Vanished(hostnet::KUBE_IPVS0.into()));
        }
        Ok(link)
    }
}

impl AddressTable for FakeLink {
    type Listed = BTreeSet<IpAddr>;

    fn addresses(listed: &BTreeSet<IpAddr>) -> BTreeSet<IpAddr> {
        listed.clone()
    }

    fn list(&mut self) -> Result<BTreeSet<IpAddr>, LinkError> {
        let mut link = self.usable()?;
        link.listings += 1;
        Ok(link.bound.clone())
    }

    fn left(bound: &BTreeSet<IpAddr>) -> BTreeSet<IpAddr> {
        bound.clone()
    }

    fn sync(
        &mut self,
        listed: BTreeSet<IpAddr>,
        target: &BTreeSet<IpAddr>,
    ) -> Result<AddressChanges, LinkError> {
        let mut link = self.usable()?;
        let changes = AddressChanges {
            added: target.difference(&listed).copied().collect(),
            removed: listed
                .difference(target)
                .map(|&ip| (ip, hostnet::dummy::host_prefix(ip)))
                .collect(),
        };
        link.bound.clone_from(target);
        Ok(changes)
    }
}
