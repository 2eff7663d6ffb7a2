//! Real servers (`IPVS_CMD_ATTR_DEST`, attributes `IPVS_DEST_ATTR_*`).

use std::fmt;
use std::net::IpAddr;

use netlink_packet_core::{DecodeError, DefaultNla, Nla, NlaBuffer, Parseable};
use serde::{Deserialize, Serialize};

use crate::addr::{self, AddrPort, AddressFamily};
use crate::nla::{array, u16_be, u16_ne, u32_ne};
use crate::stats::Stats;

const IPVS_DEST_ATTR_ADDR: u16 = 1;
const IPVS_DEST_ATTR_PORT: u16 = 2;
const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
const IPVS_DEST_ATTR_U_THRESH: u16 = 5;
const IPVS_DEST_ATTR_L_THRESH: u16 = 6;
const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7;
const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8;
const IPVS_DEST_ATTR_PERSIST_CONNS: u16 = 9;
const IPVS_DEST_ATTR_STATS: u16 = 10;
const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;
const IPVS_DEST_ATTR_STATS64: u16 = 12;
const IPVS_DEST_ATTR_TUN_TYPE: u16 = 13;
const IPVS_DEST_ATTR_TUN_PORT: u16 = 14;
const IPVS_DEST_ATTR_TUN_FLAGS: u16 = 15;

/// `IP_VS_CONN_F_*` forwarding methods (the low 3 bits of conn_flags).
const IP_VS_CONN_F_MASQ: u32 = 0;
const IP_VS_CONN_F_LOCALNODE: u32 = 1;
const IP_VS_CONN_F_TUNNEL: u32 = 2;
const IP_VS_CONN_F_DROUTE: u32 = 3;
const IP_VS_CONN_F_BYPASS: u32 = 4;
const IP_VS_CONN_F_FWD_MASK: u32 = 7;

/// `IP_VS_CONN_F_TUNNEL_TYPE_*`.
const TUNNEL_TYPE_IPIP: u8 = 0;
const TUNNEL_TYPE_GUE: u8 = 1;
const TUNNEL_TYPE_GRE: u8 = 2;

bitflags::bitflags! {
    /// Tunnel encapsulation flags (`IP_VS_TUNNEL_ENCAP_FLAG_*`); empty is
    /// ipvsadm's `--tun-nocsum`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub struct TunnelFlags: u16 {
        /// `--tun-csum`: checksum the outer header.
        const CSUM = 1 << 0;
        /// `--tun-remcsum`: remote checksum offload.
        const REMCSUM = 1 << 1;
    }
}

/// The encapsulation of a tunnelled real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelType {
    /// IP in IP (the default).
    Ipip,
    /// Generic UDP encapsulation to a UDP port (Linux 5.2+).
    Gue {
        /// Destination UDP port of the encapsulation (must not be 0).
        port: u16,
    },
    /// GRE (Linux 5.3+).
    Gre,
}

/// How packets reach a real server.
///
/// # Examples
/// ```
/// use ipvs::{ForwardMethod, TunnelFlags, TunnelType};
/// let gue = ForwardMethod::Tunnel { tunnel: TunnelType::Gue { port: 6080 }, flags: TunnelFlags::CSUM };
/// assert_eq!(gue.to_string(), "Tunnel");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMethod {
    /// NAT (ipvsadm `-m`, `Masq`).
    Masquerade,
    /// Deliver locally (`Local`).
    Local,
    /// Encapsulate (ipvsadm `-i`, `Tunnel`).
    Tunnel {
        /// Encapsulation.
        tunnel: TunnelType,
        /// Checksum flags.
        flags: TunnelFlags,
    },
    /// Direct routing (ipvsadm `-g`, `Route`; ipvsadm's default).
    DirectRoute,
    /// Cache bypass (not settable with ipvsadm).
    Bypass,
}

/// As ipvsadm's listing names them.
impl fmt::Display for ForwardMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl ForwardMethod {
    /// The name ipvsadm and `/proc/net/ip_vs` print: `Masq`, `Local`,
    /// `Tunnel`, `Route` or `Bypass`.
    pub fn name(self) -> &'static str {
        match self {
            ForwardMethod::Masquerade => "Masq",
            ForwardMethod::Local => "Local",
            ForwardMethod::Tunnel { .. } => "Tunnel",
            ForwardMethod::DirectRoute => "Route",
            ForwardMethod::Bypass => "Bypass",
        }
    }

    fn to_raw(self) -> u32 {
        match self {
            ForwardMethod::Masquerade => IP_VS_CONN_F_MASQ,
            ForwardMethod::Local => IP_VS_CONN_F_LOCALNODE,
            ForwardMethod::Tunnel { .. } => IP_VS_CONN_F_TUNNEL,
            ForwardMethod::DirectRoute => IP_VS_CONN_F_DROUTE,
            ForwardMethod::Bypass => IP_VS_CONN_F_BYPASS,
        }
    }

    fn from_raw(raw: u32, tunnel: TunnelType, flags: TunnelFlags) -> Result<Self, DecodeError> {
        Ok(match raw & IP_VS_CONN_F_FWD_MASK {
            IP_VS_CONN_F_MASQ => ForwardMethod::Masquerade,
            IP_VS_CONN_F_LOCALNODE => ForwardMethod::Local,
            IP_VS_CONN_F_TUNNEL => ForwardMethod::Tunnel { tunnel, flags },
            IP_VS_CONN_F_DROUTE => ForwardMethod::DirectRoute,
            IP_VS_CONN_F_BYPASS => ForwardMethod::Bypass,
            other => return Err(format!("unknown forwarding method {other}").into()),
        })
    }
}

/// The configuration of a real server within a service: what a caller
/// creates, edits and compares. Counters are in [`DestinationEntry`].
///
/// Its address family may differ from the service's only with
/// [`ForwardMethod::Tunnel`] (a kernel rule).
///
/// # Examples
/// ```
/// use ipvs::{Destination, ForwardMethod};
/// let d = Destination::new("10.244.1.5".parse().unwrap(), 8080, ForwardMethod::Masquerade, 1);
/// assert_eq!(d.to_string(), "10.244.1.5:8080");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Destination {
    /// Real server address.
    pub addr: IpAddr,
    /// Real server port.
    pub port: u16,
    /// Forwarding method.
    pub forward: ForwardMethod,
    /// Weight; 0 takes no new connections (quiesced). The kernel refuses
    /// values above `i32::MAX`.
    pub weight: u32,
    /// Upper connection threshold, 0 for none.
    pub upper_threshold: u32,
    /// Lower connection threshold, 0 for none (must not exceed the upper).
    pub lower_threshold: u32,
}

impl Destination {
    /// A destination without thresholds.
    pub fn new(addr: IpAddr, port: u16, forward: ForwardMethod, weight: u32) -> Self {
        Destination {
            addr,
            port,
            forward,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    /// The identifying attributes (address, port, family), enough for DEL.
    pub(crate) fn key_attrs(addr: IpAddr, port: u16) -> Vec<DestAttr> {
        vec![
            DestAttr::Addr(addr::to_wire(&addr)),
            DestAttr::Port(port),
            DestAttr::AddressFamily(AddressFamily::of(&addr).to_raw()),
        ]
    }

    /// The full attribute set for NEW/SET.
    pub(crate) fn to_attrs(self) -> Vec<DestAttr> {
        let mut attrs = Self::key_attrs(self.addr, self.port);
        attrs.extend([
            DestAttr::FwdMethod(self.forward.to_raw()),
            DestAttr::Weight(self.weight),
            DestAttr::UpperThreshold(self.upper_threshold),
            DestAttr::LowerThreshold(self.lower_threshold),
        ]);
        if let ForwardMethod::Tunnel { tunnel, flags } = self.forward {
            let (kind, port) = match tunnel {
                TunnelType::Ipip => (TUNNEL_TYPE_IPIP, 0),
                TunnelType::Gue { port } => (TUNNEL_TYPE_GUE, port),
                TunnelType::Gre => (TUNNEL_TYPE_GRE, 0),
            };
            attrs.push(DestAttr::TunType(kind));
            attrs.push(DestAttr::TunPort(port));
            attrs.push(DestAttr::TunFlags(flags.bits()));
        }
        attrs
    }
}

/// `addr:port` as ipvsadm formats it (`[v6]:port`).
impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        AddrPort(&self.addr, self.port).fmt(f)
    }
}

/// A live real server as the kernel reports it: configuration, connection
/// counts and traffic counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DestinationEntry {
    /// The configuration.
    pub destination: Destination,
    /// Established connections.
    pub active_connections: u32,
    /// Other connections.
    pub inactive_connections: u32,
    /// Persistence templates pointing at it.
    pub persistent_connections: u32,
    /// Traffic counters and rates.
    pub stats: Stats,
}

impl DestinationEntry {
    /// Decodes a destination of a service of family `service_af` (the
    /// fallback for kernels before 3.18, which do not send the family).
    #[cfg(test)]
    pub(crate) fn from_attrs(
        attrs: &[DestAttr],
        service_af: AddressFamily,
    ) -> Result<Self, DecodeError> {
        Self::decode(attrs.iter().cloned().map(Ok), service_af)
    }

    /// Decodes the payload of an `IPVS_CMD_ATTR_DEST` nest in place, without
    /// building the attribute list first: the hot path of a table dump.
    pub(crate) fn parse_nest(nest: &[u8], service_af: AddressFamily) -> Result<Self, DecodeError> {
        let attrs = crate::nla::iter(nest).filter_map(|attr| {
            attr.and_then(|(kind, value)| DestAttr::decode(kind, value))
                .transpose()
        });
        Self::decode(attrs, service_af)
    }

    fn decode(
        attrs: impl IntoIterator<Item = Result<DestAttr, DecodeError>>,
        service_af: AddressFamily,
    ) -> Result<Self, DecodeError> {
        let (mut addr, mut port, mut af, mut fwd) = (None, None, None, None);
        let (mut weight, mut upper, mut lower) = (0, 0, 0);
        let (mut active, mut inactive, mut persistent) = (0, 0, 0);
        let (mut tun_type, mut tun_port, mut tun_flags) = (TUNNEL_TYPE_IPIP, 0, 0);
        let (mut stats, mut stats64) = (None, None);
        for attr in attrs {
            match attr? {
                DestAttr::Addr(v) => addr = Some(v),
                DestAttr::Port(v) => port = Some(v),
                DestAttr::FwdMethod(v) => fwd = Some(v),
                DestAttr::Weight(v) => weight = v,
                DestAttr::UpperThreshold(v) => upper = v,
                DestAttr::LowerThreshold(v) => lower = v,
                DestAttr::ActiveConns(v) => active = v,
                DestAttr::InactiveConns(v) => inactive = v,
                DestAttr::PersistConns(v) => persistent = v,
                DestAttr::Stats(s) => stats = Some(s),
                DestAttr::AddressFamily(v) => af = Some(AddressFamily::from_raw(v)?),
                DestAttr::Stats64(s) => stats64 = Some(s),
                DestAttr::TunType(v) => tun_type = v,
                DestAttr::TunPort(v) => tun_port = v,
                DestAttr::TunFlags(v) => tun_flags = v,
                DestAttr::Other(_) => {}
            }
        }
        let tunnel = match tun_type {
            TUNNEL_TYPE_IPIP => TunnelType::Ipip,
            TUNNEL_TYPE_GUE => TunnelType::Gue { port: tun_port },
            TUNNEL_TYPE_GRE => TunnelType::Gre,
            other => return Err(format!("unknown tunnel type {other}").into()),
        };
        let addr = addr.ok_or("destination without IPVS_DEST_ATTR_ADDR")?;
        let destination = Destination {
            addr: addr::from_wire(af.unwrap_or(service_af), &addr),
            port: port.ok_or("destination without IPVS_DEST_ATTR_PORT")?,
            forward: ForwardMethod::from_raw(
                fwd.ok_or("destination without IPVS_DEST_ATTR_FWD_METHOD")?,
                tunnel,
                TunnelFlags::from_bits_retain(tun_flags),
            )?,
            weight,
            upper_threshold: upper,
            lower_threshold: lower,
        };
        Ok(DestinationEntry {
            destination,
            active_connections: active,
            inactive_connections: inactive,
            persistent_connections: persistent,
            stats: stats64.or(stats).unwrap_or_default(),
        })
    }
}

/// One `IPVS_DEST_ATTR_*` attribute, with the wire's representation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum DestAttr {
    /// Always 16 bytes on emit.
    Addr([u8; 16]),
    /// Host value; network order on the wire.
    Port(u16),
    FwdMethod(u32),
    Weight(u32),
    UpperThreshold(u32),
    LowerThreshold(u32),
    ActiveConns(u32),
    InactiveConns(u32),
    PersistConns(u32),
    /// Output only.
    Stats(Stats),
    AddressFamily(u16),
    /// Output only.
    Stats64(Stats),
    TunType(u8),
    /// Host value; network order on the wire.
    TunPort(u16),
    TunFlags(u16),
    Other(DefaultNla),
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        match self {
            DestAttr::Addr(_) => 16,
            DestAttr::Port(_)
            | DestAttr::AddressFamily(_)
            | DestAttr::TunPort(_)
            | DestAttr::TunFlags(_) => 2,
            DestAttr::TunType(_) => 1,
            DestAttr::FwdMethod(_)
            | DestAttr::Weight(_)
            | DestAttr::UpperThreshold(_)
            | DestAttr::LowerThreshold(_)
            | DestAttr::ActiveConns(_)
            | DestAttr::InactiveConns(_)
            | DestAttr::PersistConns(_) => 4,
            // Statistics are output only: a request never carries them.
            DestAttr::Stats(_) | DestAttr::Stats64(_) => 0,
            DestAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            DestAttr::Addr(_) => IPVS_DEST_ATTR_ADDR,
            DestAttr::Port(_) => IPVS_DEST_ATTR_PORT,
            DestAttr::FwdMethod(_) => IPVS_DEST_ATTR_FWD_METHOD,
            DestAttr::Weight(_) => IPVS_DEST_ATTR_WEIGHT,
            DestAttr::UpperThreshold(_) => IPVS_DEST_ATTR_U_THRESH,
            DestAttr::LowerThreshold(_) => IPVS_DEST_ATTR_L_THRESH,
            DestAttr::ActiveConns(_) => IPVS_DEST_ATTR_ACTIVE_CONNS,
            DestAttr::InactiveConns(_) => IPVS_DEST_ATTR_INACT_CONNS,
            DestAttr::PersistConns(_) => IPVS_DEST_ATTR_PERSIST_CONNS,
            DestAttr::Stats(_) => IPVS_DEST_ATTR_STATS,
            DestAttr::AddressFamily(_) => IPVS_DEST_ATTR_ADDR_FAMILY,
            DestAttr::Stats64(_) => IPVS_DEST_ATTR_STATS64,
            DestAttr::TunType(_) => IPVS_DEST_ATTR_TUN_TYPE,
            DestAttr::TunPort(_) => IPVS_DEST_ATTR_TUN_PORT,
            DestAttr::TunFlags(_) => IPVS_DEST_ATTR_TUN_FLAGS,
            DestAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            DestAttr::Addr(a) => buffer.copy_from_slice(a),
            DestAttr::Port(v) | DestAttr::TunPort(v) => buffer.copy_from_slice(&v.to_be_bytes()),
            DestAttr::AddressFamily(v) | DestAttr::TunFlags(v) => {
                buffer.copy_from_slice(&v.to_ne_bytes());
            }
            DestAttr::TunType(v) => buffer[0] = *v,
            DestAttr::FwdMethod(v)
            | DestAttr::Weight(v)
            | DestAttr::UpperThreshold(v)
            | DestAttr::LowerThreshold(v)
            | DestAttr::ActiveConns(v)
            | DestAttr::InactiveConns(v)
            | DestAttr::PersistConns(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            DestAttr::Stats(_) | DestAttr::Stats64(_) => {}
            DestAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for DestAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<Self, DecodeError> {
        match DestAttr::decode(buf.kind(), buf.value())? {
            Some(attr) => Ok(attr),
            None => Ok(DestAttr::Other(DefaultNla::parse(buf)?)),
        }
    }
}

impl DestAttr {
    /// The attribute of type `kind` (flag bits removed) with value `v`;
    /// `None` for a type this crate does not know.
    fn decode(kind: u16, v: &[u8]) -> Result<Option<Self>, DecodeError> {
        Ok(Some(match kind {
            IPVS_DEST_ATTR_ADDR => DestAttr::Addr(addr::wire_from_slice(v)?),
            IPVS_DEST_ATTR_PORT => DestAttr::Port(u16_be(v, "IPVS_DEST_ATTR_PORT")?),
            IPVS_DEST_ATTR_FWD_METHOD => {
                DestAttr::FwdMethod(u32_ne(v, "IPVS_DEST_ATTR_FWD_METHOD")?)
            }
            IPVS_DEST_ATTR_WEIGHT => DestAttr::Weight(u32_ne(v, "IPVS_DEST_ATTR_WEIGHT")?),
            IPVS_DEST_ATTR_U_THRESH => {
                DestAttr::UpperThreshold(u32_ne(v, "IPVS_DEST_ATTR_U_THRESH")?)
            }
            IPVS_DEST_ATTR_L_THRESH => {
                DestAttr::LowerThreshold(u32_ne(v, "IPVS_DEST_ATTR_L_THRESH")?)
            }
            IPVS_DEST_ATTR_ACTIVE_CONNS => {
                DestAttr::ActiveConns(u32_ne(v, "IPVS_DEST_ATTR_ACTIVE_CONNS")?)
            }
            IPVS_DEST_ATTR_INACT_CONNS => {
                DestAttr::InactiveConns(u32_ne(v, "IPVS_DEST_ATTR_INACT_CONNS")?)
            }
            IPVS_DEST_ATTR_PERSIST_CONNS => {
                DestAttr::PersistConns(u32_ne(v, "IPVS_DEST_ATTR_PERSIST_CONNS")?)
            }
            IPVS_DEST_ATTR_STATS => DestAttr::Stats(Stats::parse_nest(v)?),
            IPVS_DEST_ATTR_ADDR_FAMILY => {
                DestAttr::AddressFamily(u16_ne(v, "IPVS_DEST_ATTR_ADDR_FAMILY")?)
            }
            IPVS_DEST_ATTR_STATS64 => DestAttr::Stats64(Stats::parse_nest(v)?),
            IPVS_DEST_ATTR_TUN_TYPE => {
                DestAttr::TunType(array::<1>(v, "IPVS_DEST_ATTR_TUN_TYPE")?[0])
            }
            IPVS_DEST_ATTR_TUN_PORT => DestAttr::TunPort(u16_be(v, "IPVS_DEST_ATTR_TUN_PORT")?),
            IPVS_DEST_ATTR_TUN_FLAGS => DestAttr::TunFlags(u16_ne(v, "IPVS_DEST_ATTR_TUN_FLAGS")?),
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_round_trip_through_attributes() {
        let forwards = [
            ForwardMethod::Masquerade,
            ForwardMethod::Local,
            ForwardMethod::DirectRoute,
            ForwardMethod::Bypass,
            ForwardMethod::Tunnel {
                tunnel: TunnelType::Ipip,
                flags: TunnelFlags::empty(),
            },
            ForwardMethod::Tunnel {
                tunnel: TunnelType::Gue { port: 6080 },
                flags: TunnelFlags::CSUM,
            },
            ForwardMethod::Tunnel {
                tunnel: TunnelType::Gre,
                flags: TunnelFlags::REMCSUM,
            },
        ];
        for forward in forwards {
            let mut d = Destination::new("2001:db8::7".parse().unwrap(), 443, forward, 3);
            d.upper_threshold = 100;
            d.lower_threshold = 10;
            let entry = DestinationEntry::from_attrs(&d.to_attrs(), AddressFamily::Inet).unwrap();
            assert_eq!(entry.destination, d);
        }
    }

    #[test]
    fn family_falls_back_to_the_service_family() {
        let attrs = [
            DestAttr::Addr(addr::to_wire(&"10.0.0.9".parse().unwrap())),
            DestAttr::Port(80),
            DestAttr::FwdMethod(IP_VS_CONN_F_DROUTE),
        ];
        let entry = DestinationEntry::from_attrs(&attrs, AddressFamily::Inet).unwrap();
        assert_eq!(
            entry.destination.addr,
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
        assert!(DestinationEntry::from_attrs(&attrs[..2], AddressFamily::Inet).is_err());
    }
}
