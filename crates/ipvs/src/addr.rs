//! Address families, protocols and the 16-byte address encoding shared by
//! services and destinations.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use netlink_packet_core::DecodeError;
use serde::{Deserialize, Serialize};

/// `AF_INET`.
const AF_INET: u16 = 2;
/// `AF_INET6`.
const AF_INET6: u16 = 10;

/// `IPPROTO_TCP`.
const IPPROTO_TCP: u16 = 6;
/// `IPPROTO_UDP`.
const IPPROTO_UDP: u16 = 17;
/// `IPPROTO_SCTP`.
const IPPROTO_SCTP: u16 = 132;

/// An address family, as IPVS knows them.
///
/// # Examples
/// ```
/// use ipvs::AddressFamily;
/// assert_eq!(AddressFamily::of(&"2001:db8::1".parse().unwrap()), AddressFamily::Inet6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    /// IPv4 (`AF_INET`).
    Inet,
    /// IPv6 (`AF_INET6`).
    Inet6,
}

impl AddressFamily {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        }
    }

    /// The kernel's `AF_*` value.
    pub fn to_raw(self) -> u16 {
        match self {
            AddressFamily::Inet => AF_INET,
            AddressFamily::Inet6 => AF_INET6,
        }
    }

    pub(crate) fn from_raw(raw: u16) -> Result<Self, DecodeError> {
        match raw {
            AF_INET => Ok(AddressFamily::Inet),
            AF_INET6 => Ok(AddressFamily::Inet6),
            other => Err(format!("unknown address family {other}").into()),
        }
    }

    /// The longest prefix length of the family (32 or 128).
    pub fn max_prefix_len(self) -> u8 {
        match self {
            AddressFamily::Inet => 32,
            AddressFamily::Inet6 => 128,
        }
    }
}

impl fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressFamily::Inet => "IPv4",
            AddressFamily::Inet6 => "IPv6",
        })
    }
}

/// The transport protocol of an address-based virtual service.
///
/// Displays as ipvsadm does (`TCP`, `UDP`, `SCTP`); parses case-insensitively.
///
/// # Examples
/// ```
/// use ipvs::Protocol;
/// assert_eq!("udp".parse::<Protocol>(), Ok(Protocol::Udp));
/// assert_eq!(Protocol::Sctp.to_string(), "SCTP");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (`IPPROTO_TCP`).
    Tcp,
    /// UDP (`IPPROTO_UDP`).
    Udp,
    /// SCTP (`IPPROTO_SCTP`).
    Sctp,
}

impl Protocol {
    /// The kernel's `IPPROTO_*` value.
    pub fn to_raw(self) -> u16 {
        match self {
            Protocol::Tcp => IPPROTO_TCP,
            Protocol::Udp => IPPROTO_UDP,
            Protocol::Sctp => IPPROTO_SCTP,
        }
    }

    pub(crate) fn from_raw(raw: u16) -> Result<Self, DecodeError> {
        match raw {
            IPPROTO_TCP => Ok(Protocol::Tcp),
            IPPROTO_UDP => Ok(Protocol::Udp),
            IPPROTO_SCTP => Ok(Protocol::Sctp),
            other => Err(format!("unknown protocol {other}").into()),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// The error of parsing a [`Protocol`] from an unknown name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?} (expected tcp, udp or sctp)")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(UnknownProtocol(s.to_owned())),
        }
    }
}

/// The wire form of an address: always 16 bytes (`union nf_inet_addr`),
/// IPv4 in the first four, as the kernel sends it and ipvsadm sends it.
pub(crate) fn to_wire(addr: &IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => {
            let mut raw = [0; 16];
            raw[..4].copy_from_slice(&v4.octets());
            raw
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Reads an address attribute: up to 16 bytes, zero-filled as the kernel's
/// `nla_memcpy` does.
pub(crate) fn wire_from_slice(value: &[u8]) -> Result<[u8; 16], DecodeError> {
    if value.len() > 16 {
        return Err(format!("address attribute of {} bytes (max 16)", value.len()).into());
    }
    let mut raw = [0; 16];
    raw[..value.len()].copy_from_slice(value);
    Ok(raw)
}

/// Interprets a wire address in the given family.
pub(crate) fn from_wire(af: AddressFamily, raw: &[u8; 16]) -> IpAddr {
    match af {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::from(*raw)),
    }
}

/// Formats `addr:port` as ipvsadm does with `-n`: `10.0.0.1:80`, `[2001:db8::1]:80`.
pub(crate) struct AddrPort<'a>(pub(crate) &'a IpAddr, pub(crate) u16);

impl fmt::Display for AddrPort<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}:{}", self.1),
            IpAddr::V6(v6) => write!(f, "[{v6}]:{}", self.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_the_16_byte_form() {
        for s in ["10.1.2.3", "0.0.0.0", "2001:db8::1", "::"] {
            let addr: IpAddr = s.parse().unwrap();
            let wire = to_wire(&addr);
            assert_eq!(from_wire(AddressFamily::of(&addr), &wire), addr);
        }
        assert_eq!(
            to_wire(&"10.1.2.3".parse().unwrap())[..6],
            [10, 1, 2, 3, 0, 0]
        );
    }

    #[test]
    fn short_addresses_are_zero_filled_and_long_ones_refused() {
        assert_eq!(
            wire_from_slice(&[10, 0, 0, 1]).unwrap()[..5],
            [10, 0, 0, 1, 0]
        );
        assert!(wire_from_slice(&[0; 17]).is_err());
    }

    #[test]
    fn addr_port_formats_like_ipvsadm() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(AddrPort(&v6, 80).to_string(), "[2001:db8::1]:80");
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(AddrPort(&v4, 0).to_string(), "10.0.0.1:0");
    }

    #[test]
    fn protocols_parse_and_display() {
        for p in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
            assert_eq!(p.to_string().parse::<Protocol>(), Ok(p));
            assert_eq!(Protocol::from_raw(p.to_raw()).unwrap(), p);
        }
        assert!("icmp".parse::<Protocol>().is_err());
        assert!(Protocol::from_raw(1).is_err());
    }
}
