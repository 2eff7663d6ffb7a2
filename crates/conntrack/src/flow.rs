//! Conntrack entries: two tuples (original and reply direction).

use std::fmt;
use std::net::IpAddr;

/// IP protocol numbers used in filters.
pub mod proto {
    /// `IPPROTO_TCP`.
    pub const TCP: u8 = 6;
    /// `IPPROTO_UDP`.
    pub const UDP: u8 = 17;
    /// `IPPROTO_SCTP`.
    pub const SCTP: u8 = 132;
}

/// Address family of a conntrack table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (`AF_INET`).
    #[doc(alias = "AF_INET")]
    Ipv4,
    /// IPv6 (`AF_INET6`).
    #[doc(alias = "AF_INET6")]
    Ipv6,
}

impl Family {
    pub(crate) fn af(self) -> u8 {
        match self {
            Family::Ipv4 => 2,
            Family::Ipv6 => 10,
        }
    }

    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        })
    }
}

/// One direction of a flow. Ports are 0 for protocols without ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

/// A conntrack entry, as `conntrack -L` shows it: the original tuple (what
/// the client sent) and the reply tuple (what the answer looks like: after
/// DNAT, its source is the endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// IP protocol number (see [`proto`]).
    pub protocol: u8,
    /// Original direction.
    pub orig: Tuple,
    /// Reply direction.
    pub reply: Tuple,
    /// Conntrack zone (`CTA_ZONE`), 0 by default.
    pub zone: u16,
    /// The kernel's id of the entry (`CTA_ID`): a delete carrying it only
    /// removes this very entry, not a newer one with the same tuple.
    pub id: Option<u32>,
}

/// `conntrack -L` style: `udp src=… dst=… sport=… dport=… src=… dst=… sport=… dport=…`.
impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.protocol {
            proto::TCP => f.write_str("tcp")?,
            proto::UDP => f.write_str("udp")?,
            proto::SCTP => f.write_str("sctp")?,
            other => write!(f, "proto {other}")?,
        }
        for t in [&self.orig, &self.reply] {
            write!(
                f,
                " src={} dst={} sport={} dport={}",
                t.src, t.dst, t.src_port, t.dst_port
            )?;
        }
        if self.zone != 0 {
            write!(f, " zone={}", self.zone)?;
        }
        Ok(())
    }
}
