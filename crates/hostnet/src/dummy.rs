//! The dummy interface that holds every virtual address (`kube-ipvs0`), over
//! rtnetlink. It is created if missing and left down, as kube-proxy does: a
//! down dummy link still makes its addresses local (the kernel adds `local`
//! routes to table `local`), which is all IPVS needs, and it never answers
//! traffic of its own. Only addresses on this link are ever touched.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::IpAddr;

use netlink::Transport;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};

use crate::rtnl::{
    NLM_F_CREATE, NLM_F_EXCL, RTM_DELADDR, RTM_DELLINK, RTM_GETADDR, RTM_GETLINK, RTM_NEWADDR,
    RTM_NEWLINK, Rtnl,
};

/// The name kube-proxy gives the interface.
pub const KUBE_IPVS0: &str = "kube-ipvs0";

/// Errors managing the dummy link and its addresses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The rtnetlink socket cannot be opened.
    #[error("opening an rtnetlink socket: {0}")]
    Socket(netlink::Error),
    /// A netlink request failed: the kernel refused it (its errno, and its
    /// extended-ack text when it gave one), or the exchange failed.
    #[error("{op} {object}: {cause}")]
    Netlink {
        /// What was being done (`create dummy link`, `add address`...).
        op: &'static str,
        /// On what (`kube-ipvs0`, `10.96.0.10/32 on kube-ipvs0`...).
        object: String,
        /// Why.
        cause: Cause,
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

impl LinkError {
    /// The kernel's errno (positive), if it refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LinkError::Netlink {
                cause: Cause::Refused { errno, .. },
                ..
            } => Some(*errno),
            _ => None,
        }
    }
}

/// Why a netlink request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// The kernel refused it.
    Refused {
        /// The errno, positive.
        errno: i32,
        /// The kernel's extended acknowledgement (`NLMSGERR_ATTR_MSG`).
        text: Option<String>,
    },
    /// The exchange failed (socket, lost answer, unreadable reply), as said.
    Exchange(String),
}

impl fmt::Display for Cause {
    /// `Invalid argument (kernel: <text>)`, as `ip` prints a refusal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Refused { errno, text } => {
                // strerror's text, without std's " (os error N)".
                let full = io::Error::from_raw_os_error(*errno).to_string();
                let suffix = format!(" (os error {errno})");
                f.write_str(full.strip_suffix(&suffix).unwrap_or(&full))?;
                write!(f, "{}", netlink::KernelText(text.as_deref()))
            }
            Cause::Exchange(what) => f.write_str(what),
        }
    }
}

impl From<netlink::Error> for Cause {
    fn from(e: netlink::Error) -> Self {
        match e {
            netlink::Error::Kernel(nack) => Cause::from(nack),
            other => Cause::Exchange(other.to_string()),
        }
    }
}

impl From<netlink::Nack> for Cause {
    fn from(nack: netlink::Nack) -> Self {
        Cause::Refused {
            errno: nack.errno,
            text: nack.message,
        }
    }
}

impl From<netlink::Failure> for Cause {
    fn from(f: netlink::Failure) -> Self {
        match f {
            netlink::Failure::Refused(nack) => Cause::from(nack),
            other => Cause::Exchange(other.to_string()),
        }
    }
}

/// The addresses on a link as one listing returned them, each with its
/// prefix length: enough to remove some without a second listing.
#[derive(Debug, Clone, Default)]
pub struct BoundAddresses(Vec<(IpAddr, u8)>);

impl BoundAddresses {
    /// What a listing of a link holding exactly `addresses`, each as a host prefix
    /// (`/32`, `/128`), returns.
    pub fn hosts<'a>(addresses: impl IntoIterator<Item = &'a IpAddr>) -> Self {
        BoundAddresses(
            (addresses.into_iter())
                .map(|&ip| (ip, host_prefix(ip)))
                .collect(),
        )
    }

    /// Each address with its prefix length.
    pub fn list(&self) -> &[(IpAddr, u8)] {
        &self.0
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
    /// [`LinkError::Netlink`] when reading it fails.
    pub fn find<T: Transport>(rtnl: &mut Rtnl<T>, name: &str) -> Result<Option<Self>, LinkError> {
        let mut request = LinkMessage::default();
        request
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        let link = match rtnl.request::<LinkMessage>(RTM_GETLINK, 0, &request, RTM_NEWLINK) {
            Ok(mut links) => links.pop(),
            Err(e) if e.errno() == Some(libc::ENODEV) => None,
            Err(e) => return Err(failed("get link", name.to_owned())(e)),
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
    /// # fn run() -> Result<(), hostnet::LinkError> {
    /// let mut rtnl = hostnet::Rtnl::open()?;
    /// let link = hostnet::DummyLink::ensure(&mut rtnl, hostnet::KUBE_IPVS0)?;
    /// let vips = ["10.96.0.10".parse().unwrap()].into();
    /// let changes = link.sync_addresses(&mut rtnl, &vips)?;
    /// println!("bound {:?}, unbound {:?}", changes.added, changes.removed);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`DummyLink::find`]; [`LinkError::Netlink`] when creating fails.
    pub fn ensure<T: Transport>(rtnl: &mut Rtnl<T>, name: &str) -> Result<Self, LinkError> {
        if let Some(link) = DummyLink::find(rtnl, name)? {
            return Ok(link);
        }
        let mut request = LinkMessage::default();
        request
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        request
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Dummy,
            )]));
        let flags = NLM_F_CREATE | NLM_F_EXCL;
        match rtnl.request::<LinkMessage>(RTM_NEWLINK, flags, &request, RTM_NEWLINK) {
            Ok(_) => {}
            // Created meanwhile by someone else: fine if it is a dummy link.
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            Err(e) => return Err(failed("create dummy link", name.to_owned())(e)),
        }
        DummyLink::find(rtnl, name)?.ok_or_else(|| LinkError::Vanished(name.to_owned()))
    }

    /// The addresses on this link, as read now.
    ///
    /// # Errors
    /// [`LinkError::Netlink`] when listing fails.
    pub fn addresses<T: Transport>(&self, rtnl: &mut Rtnl<T>) -> Result<BoundAddresses, LinkError> {
        addresses_where(rtnl, |index| index == self.index)
            .map(BoundAddresses)
            .map_err(failed("list addresses", self.name.clone()))
    }

    /// Binds every address of `desired` as /32 or /128 and unbinds every
    /// other address of this link (IPv6 link-local ones excepted). An address
    /// already bound, or already gone, is not an error.
    ///
    /// # Errors
    /// [`LinkError::Netlink`] naming the first address that could not be
    /// changed.
    pub fn sync_addresses<T: Transport>(
        &self,
        rtnl: &mut Rtnl<T>,
        desired: &BTreeSet<IpAddr>,
    ) -> Result<AddressChanges, LinkError> {
        let bound = self.addresses(rtnl)?;
        self.sync_bound(rtnl, bound, desired)
    }

    /// As [`DummyLink::sync_addresses`], from addresses the caller has just
    /// read with [`DummyLink::addresses`], so a sync lists them only once.
    /// The requests go pipelined, one per address, unbinding first; each
    /// refusal is matched to its address.
    ///
    /// # Errors
    /// [`LinkError::Netlink`] naming the first address that could not be
    /// changed (the others were still tried).
    pub fn sync_bound<T: Transport>(
        &self,
        rtnl: &mut Rtnl<T>,
        bound: BoundAddresses,
        desired: &BTreeSet<IpAddr>,
    ) -> Result<AddressChanges, LinkError> {
        let changes = diff_addresses(bound.list(), desired);
        let (removed, added) = (&changes.removed, &changes.added);
        let unbound = rtnl.batch(RTM_DELADDR, 0, removed.len(), |i| {
            let (ip, prefix_len) = removed[i];
            address(self.index, ip, prefix_len)
        });
        let bound = rtnl.batch(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, added.len(), |i| {
            host_address(self.index, added[i])
        });
        self.refusal(
            "remove address",
            removed.iter().copied(),
            unbound,
            libc::EADDRNOTAVAIL,
        )?;
        let host = |&ip: &IpAddr| (ip, host_prefix(ip));
        self.refusal("add address", added.iter().map(host), bound, libc::EEXIST)?;
        Ok(changes)
    }

    /// The first failure of `results` (one per address of `addresses`, with its prefix
    /// length) but for the benign `errno`, naming its address.
    fn refusal(
        &self,
        op: &'static str,
        addresses: impl Iterator<Item = (IpAddr, u8)>,
        results: Vec<Result<(), netlink::Failure>>,
        benign: i32,
    ) -> Result<(), LinkError> {
        let first = addresses
            .zip(results)
            .find_map(|(address, result)| match result {
                Err(netlink::Failure::Refused(nack)) if nack.errno == benign => None,
                Err(failure) => Some((address, failure)),
                Ok(()) => None,
            });
        match first {
            None => Ok(()),
            Some(((ip, prefix_len), failure)) => Err(LinkError::Netlink {
                op,
                object: format!("{ip}/{prefix_len} on {}", self.name),
                cause: failure.into(),
            }),
        }
    }

    /// Deletes the link (for `--cleanup`); its addresses go with it.
    ///
    /// # Errors
    /// [`LinkError::Netlink`] when deleting fails.
    pub fn delete<T: Transport>(self, rtnl: &mut Rtnl<T>) -> Result<(), LinkError> {
        let mut request = LinkMessage::default();
        request.header.index = self.index;
        rtnl.request::<LinkMessage>(RTM_DELLINK, 0, &request, RTM_NEWLINK)
            .map(drop)
            .map_err(failed("delete link", self.name))
    }
}

/// Every address, both families, with its prefix length, of the links whose index
/// `on_link` accepts; the others' are dropped as the dump arrives.
pub(crate) fn addresses_where<T: Transport>(
    rtnl: &mut Rtnl<T>,
    on_link: impl Fn(u32) -> bool,
) -> Result<Vec<(IpAddr, u8)>, netlink::Error> {
    rtnl.dump(
        RTM_GETADDR,
        &AddressMessage::default(),
        RTM_NEWADDR,
        |m: AddressMessage| {
            on_link(m.header.index).then_some((address_of(&m)?, m.header.prefix_len))
        },
    )
}

/// The error of `op` on `object` that failed with `e`.
pub(crate) fn failed(op: &'static str, object: String) -> impl FnOnce(netlink::Error) -> LinkError {
    move |e| LinkError::Netlink {
        op,
        object,
        cause: e.into(),
    }
}

/// `ip` as a host address of link `index` (`/32` or `/128`), as
/// `ip addr add IP/32 dev LINK` asks for it: `IFA_LOCAL`, then
/// `IFA_ADDRESS` with the same address.
pub(crate) fn host_address(index: u32, ip: IpAddr) -> AddressMessage {
    address(index, ip, host_prefix(ip))
}

/// `ip`/`prefix_len` on link `index`, as `ip addr add|del IP/PREFIX dev
/// LINK` asks for it: `IFA_LOCAL`, then `IFA_ADDRESS` with the same address.
fn address(index: u32, ip: IpAddr, prefix_len: u8) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    message.header.prefix_len = prefix_len;
    message.header.index = index;
    message.attributes.push(AddressAttribute::Local(ip));
    message.attributes.push(AddressAttribute::Address(ip));
    message
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

#[cfg(test)]
#[path = "dummy_tests.rs"]
mod netlink_tests;
