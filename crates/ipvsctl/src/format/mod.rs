//! Text renderings of the table that ipvsadm users and scripts know:
//! `ipvsadm -Ln` and its variants ([`list`]), `ipvsadm -Sn` ([`save`]).
//! Pure functions of the table (and of the names looked up for it, see
//! [`crate::naming`]): no socket.

pub(crate) mod column;
pub(crate) mod list;
pub(crate) mod save;

use ipvs::{ForwardMethod, Protocol, ServiceKey, TunnelFlags, TunnelType};

/// The protocol whose port names a service and its real servers get
/// (none for fwmark services: ipvsadm's protocol 0).
pub(crate) fn name_protocol(key: &ServiceKey) -> Option<Protocol> {
    match key {
        ServiceKey::Inet { protocol, .. } => Some(*protocol),
        ServiceKey::Fwmark { .. } => None,
    }
}

/// A tunnel's encapsulation and its checksum mode as ipvsadm indexes its
/// name tables: 0 no checksum, 1 checksum, 2 remote checksum.
pub(crate) struct TunnelView {
    /// The encapsulation.
    pub(crate) tunnel: TunnelType,
    /// Index into ipvsadm's checksum-name tables.
    pub(crate) csum: usize,
}

impl TunnelView {
    /// The tunnel of a tunnelled real server, `None` for other methods.
    pub(crate) fn of(forward: &ForwardMethod) -> Option<Self> {
        match *forward {
            ForwardMethod::Tunnel { tunnel, flags } => Some(TunnelView {
                tunnel,
                csum: if flags.contains(TunnelFlags::REMCSUM) {
                    2
                } else {
                    usize::from(flags.contains(TunnelFlags::CSUM))
                },
            }),
            _ => None,
        }
    }

    /// `ipip`, `gue` or `gre`.
    pub(crate) fn type_name(&self) -> &'static str {
        match self.tunnel {
            TunnelType::Ipip => "ipip",
            TunnelType::Gue { .. } => "gue",
            TunnelType::Gre => "gre",
        }
    }
}

/// The persistence granularity as ipvsadm shows it, when it is not a
/// single client: a dotted mask for IPv4 (`255.255.255.0`), a prefix
/// length for IPv6 (`64`).
pub(crate) fn persistence_mask(key: &ipvs::ServiceKey, prefix_len: u8) -> Option<String> {
    match key.af() {
        ipvs::AddressFamily::Inet if prefix_len < 32 => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix_len))
                .unwrap_or(0);
            Some(std::net::Ipv4Addr::from(mask).to_string())
        }
        ipvs::AddressFamily::Inet6 if prefix_len < 128 => Some(prefix_len.to_string()),
        _ => None,
    }
}
