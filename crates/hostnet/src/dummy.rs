//! The dummy interface that holds every virtual address (`kube-ipvs0`), over
//! rtnetlink. It is created if missing and left down, as kube-proxy does: a
//! down dummy link still makes its addresses local (the kernel adds `local`
//! routes to table `local`), which is all IPVS needs, and it never answers
//! traffic of its own. Only addresses on this link are ever touched.

use std::collections::BTreeSet;
use std::net::IpAddr;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::{Handle, LinkDummy};

/// Address requests in flight at once: one round trip each would make binding the
/// addresses of 10,000 Services take most of a first sync.
const IN_FLIGHT: usize = 64;

/// The name kube-proxy gives the interface.
pub const KUBE_IPVS0: &str = "kube-ipvs0";

/// Errors managing the dummy link and its addresses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The rtnetlink socket cannot be opened.
    #[error("opening an rtnetlink socket: {0}")]
    Socket(std::io::Error),
    /// A netlink request failed.
    #[error("{op} {object}: {source}")]
    Netlink {
        /// What was being done (`create link`, `add address`...).
        op: &'static str,
        /// On what (`kube-ipvs0`, `10.96.0.10/32 on kube-ipvs0`...).
        object: String,
        /// The netlink error.
        source: rtnetlink::Error,
    },
    /// A link with the name exists but is not a dummy link: we leave it alone.
    #[error("link {name} exists but is a {kind} link, not a dummy one")]
    NotDummy {
        /// The link's name.
        name: String,
        /// Its kind as the kernel names it, or `unknown`.
        kind: String,
    },
    /// The link was created but cannot be found.
    #[error("link {0} was created but is not listed")]
    Vanished(String),
}

/// The addresses on a link as one listing returned them, kept whole so that
/// removing some needs no second listing.
#[derive(Debug, Clone, Default)]
pub struct BoundAddresses(Vec<AddressMessage>);

impl BoundAddresses {
    /// Each address with its prefix length.
    pub fn list(&self) -> Vec<(IpAddr, u8)> {
        self.0
            .iter()
            .filter_map(|m| address_of(m).map(|ip| (ip, m.header.prefix_len)))
            .collect()
    }
}

/// What [`DummyLink::sync_addresses`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressChanges {
    /// Addresses bound, as /32 or /128.
    pub added: Vec<IpAddr>,
    /// Addresses unbound, with their prefix length.
    pub removed: Vec<(IpAddr, u8)>,
}

impl AddressChanges {
    /// True when nothing had to change.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// The prefix length of a host address: 32 for IPv4, 128 for IPv6.
pub fn host_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// The changes that turn the addresses on the link (`current`, with prefix
/// lengths) into exactly `desired`, each as a host prefix. An address with
/// another prefix length is replaced; IPv6 link-local addresses (which the
/// kernel adds if someone brings the link up) are kept.
///
/// ```
/// use std::collections::BTreeSet;
/// use std::net::IpAddr;
/// use hostnet::dummy::diff_addresses;
/// let ip = |s: &str| s.parse::<IpAddr>().unwrap();
/// let current = [(ip("10.96.0.10"), 32), (ip("10.96.0.11"), 32), (ip("fe80::1"), 64)];
/// let desired = BTreeSet::from([ip("10.96.0.10"), ip("fd00::10")]);
/// let changes = diff_addresses(&current, &desired);
/// assert_eq!(changes.added, [ip("fd00::10")]);
/// assert_eq!(changes.removed, [(ip("10.96.0.11"), 32)]);
/// ```
pub fn diff_addresses(current: &[(IpAddr, u8)], desired: &BTreeSet<IpAddr>) -> AddressChanges {
    let right: BTreeSet<IpAddr> = current
        .iter()
        .filter(|(ip, len)| *len == host_prefix(*ip))
        .map(|(ip, _)| *ip)
        .collect();
    AddressChanges {
        added: desired.difference(&right).copied().collect(),
        removed: current
            .iter()
            .filter(|(ip, len)| {
                !is_link_local_v6(*ip) && (*len != host_prefix(*ip) || !desired.contains(ip))
            })
            .copied()
            .collect(),
    }
}

fn is_link_local_v6(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// A dummy link, by name and index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DummyLink {
    name: String,
    index: u32,
}

impl DummyLink {
    /// The link's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The link's interface index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The dummy link `name`, if it exists.
    ///
    /// # Errors
    /// [`LinkError::NotDummy`] when a link of another kind has the name,
    /// [`LinkError::Netlink`] when listing fails.
    pub async fn find(handle: &Handle, name: &str) -> Result<Option<Self>, LinkError> {
        let request = handle.link().get().match_name(name.to_owned()).execute();
        let link = match request.try_collect::<Vec<_>>().await {
            Ok(mut links) => links.pop(),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::ENODEV => None,
            Err(source) => {
                return Err(LinkError::Netlink {
                    op: "get link",
                    object: name.to_owned(),
                    source,
                });
            }
        };
        let Some(link) = link else { return Ok(None) };
        match kind(&link) {
            Some(InfoKind::Dummy) => Ok(Some(DummyLink {
                name: name.to_owned(),
                index: link.header.index,
            })),
            other => Err(LinkError::NotDummy {
                name: name.to_owned(),
                kind: other.map_or_else(|| "unknown".to_owned(), |k| k.to_string()),
            }),
        }
    }

    /// The dummy link `name`, created (down) if missing.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), hostnet::LinkError> {
    /// let (connection, handle, _) = rtnetlink::new_connection().expect("netlink socket");
    /// tokio::spawn(connection);
    /// let link = hostnet::DummyLink::ensure(&handle, hostnet::KUBE_IPVS0).await?;
    /// let vips = ["10.96.0.10".parse().unwrap()].into();
    /// let changes = link.sync_addresses(&handle, &vips).await?;
    /// println!("bound {:?}, unbound {:?}", changes.added, changes.removed);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`DummyLink::find`]; [`LinkError::Netlink`] when creating fails.
    pub async fn ensure(handle: &Handle, name: &str) -> Result<Self, LinkError> {
        if let Some(link) = DummyLink::find(handle, name).await? {
            return Ok(link);
        }
        match handle
            .link()
            .add(LinkDummy::new(name).build())
            .execute()
            .await
        {
            Ok(()) => {}
            // Created meanwhile by someone else: fine if it is a dummy link.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::EEXIST => {}
            Err(source) => {
                return Err(LinkError::Netlink {
                    op: "create dummy link",
                    object: name.to_owned(),
                    source,
                });
            }
        }
        DummyLink::find(handle, name)
            .await?
            .ok_or_else(|| LinkError::Vanished(name.to_owned()))
    }

    /// The addresses on this link, as read now.
    ///
    /// # Errors
    /// [`LinkError::Netlink`] when listing fails.
    pub async fn addresses(&self, handle: &Handle) -> Result<BoundAddresses, LinkError> {
        Ok(BoundAddresses(self.address_messages(handle).await?))
    }

    /// Binds every address of `desired` as /32 or /128 and unbinds every
    /// other address of this link (IPv6 link-local ones excepted). An address
    /// already bound, or already gone, is not an error.
    ///
    /// # Errors
    /// [`LinkError::Netlink`] naming the address that could not be changed.
    pub async fn sync_addresses(
        &self,
        handle: &Handle,
        desired: &BTreeSet<IpAddr>,
    ) -> Result<AddressChanges, LinkError> {
        let bound = self.addresses(handle).await?;
        self.sync_bound(handle, bound, desired).await
    }

    /// As [`DummyLink::sync_addresses`], from addresses the caller has just
    /// read with [`DummyLink::addresses`], so a sync lists them only once.
    ///
    /// # Errors
    /// [`LinkError::Netlink`] naming the address that could not be changed.
    pub async fn sync_bound(
        &self,
        handle: &Handle,
        bound: BoundAddresses,
        desired: &BTreeSet<IpAddr>,
    ) -> Result<AddressChanges, LinkError> {
        let changes = diff_addresses(&bound.list(), desired);
        let unbind = bound.0.into_iter().filter(|m| {
            address_of(m).is_some_and(|ip| changes.removed.contains(&(ip, m.header.prefix_len)))
        });
        stream::iter(unbind.map(|message| self.unbind(handle, message)))
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        stream::iter(changes.added.iter().map(|ip| self.bind(handle, *ip)))
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        Ok(changes)
    }

    /// Removes one address; one already gone is not an error.
    async fn unbind(&self, handle: &Handle, message: AddressMessage) -> Result<(), LinkError> {
        let object = format!(
            "{}/{} on {}",
            address_of(&message).map_or_else(String::new, |ip| ip.to_string()),
            message.header.prefix_len,
            self.name
        );
        match handle.address().del(message).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::EADDRNOTAVAIL => {
                Ok(())
            }
            Err(source) => Err(LinkError::Netlink {
                op: "remove address",
                object,
                source,
            }),
        }
    }

    /// Adds one address as /32 or /128; one already bound is not an error.
    async fn bind(&self, handle: &Handle, ip: IpAddr) -> Result<(), LinkError> {
        let request = handle.address().add(self.index, ip, host_prefix(ip));
        match request.execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::EEXIST => Ok(()),
            Err(source) => Err(LinkError::Netlink {
                op: "add address",
                object: format!("{ip}/{} on {}", host_prefix(ip), self.name),
                source,
            }),
        }
    }

    /// Deletes the link (for `--cleanup`); its addresses go with it.
    ///
    /// # Errors
    /// [`LinkError::Netlink`] when deleting fails.
    pub async fn delete(self, handle: &Handle) -> Result<(), LinkError> {
        handle
            .link()
            .del(self.index)
            .execute()
            .await
            .map_err(|source| LinkError::Netlink {
                op: "delete link",
                object: self.name,
                source,
            })
    }

    async fn address_messages(&self, handle: &Handle) -> Result<Vec<AddressMessage>, LinkError> {
        let messages: Vec<AddressMessage> = handle
            .address()
            .get()
            .set_link_index_filter(self.index)
            .execute()
            .try_collect()
            .await
            .map_err(|source| LinkError::Netlink {
                op: "list addresses",
                object: self.name.clone(),
                source,
            })?;
        Ok(messages
            .into_iter()
            .filter(|m| m.header.index == self.index)
            .collect())
    }
}

fn kind(link: &LinkMessage) -> Option<&InfoKind> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(kind) => Some(kind),
            _ => None,
        }),
        _ => None,
    })
}

/// The address itself: `IFA_LOCAL` for IPv4 (which equals `IFA_ADDRESS`
/// except on point-to-point links), `IFA_ADDRESS` for IPv6.
pub(crate) fn address_of(message: &AddressMessage) -> Option<IpAddr> {
    let find = |local: bool| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) if local => Some(*ip),
            AddressAttribute::Address(ip) if !local => Some(*ip),
            _ => None,
        })
    };
    find(true).or_else(|| find(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn diff_replaces_wrong_prefixes_and_keeps_link_local() {
        let current = [
            (ip("10.96.0.10"), 24),
            (ip("10.96.0.11"), 32),
            (ip("fd00::1"), 128),
            (ip("fe80::8c1f:2bff:fe00:1"), 64),
        ];
        let desired = BTreeSet::from([ip("10.96.0.10"), ip("10.96.0.11"), ip("fd00::1")]);
        let changes = diff_addresses(&current, &desired);
        assert_eq!(changes.added, [ip("10.96.0.10")]);
        assert_eq!(changes.removed, [(ip("10.96.0.10"), 24)]);
        assert!(
            diff_addresses(
                &current[1..],
                &BTreeSet::from([ip("10.96.0.11"), ip("fd00::1")])
            )
            .is_empty()
        );
    }

    #[test]
    fn empty_desired_unbinds_everything_but_link_local() {
        let current = [(ip("10.96.0.10"), 32), (ip("fe80::1"), 64)];
        let changes = diff_addresses(&current, &BTreeSet::new());
        assert_eq!(changes.removed, [(ip("10.96.0.10"), 32)]);
        assert!(changes.added.is_empty());
    }
}
