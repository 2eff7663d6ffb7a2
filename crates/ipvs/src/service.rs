//! Virtual services (`IPVS_CMD_ATTR_SERVICE`, attributes `IPVS_SVC_ATTR_*`).

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;

use netlink_packet_core::{DecodeError, DefaultNla, Nla, NlaBuffer, Parseable};
use serde::{Deserialize, Serialize};

use crate::addr::{self, AddrPort, AddressFamily, Protocol};
use crate::nla::{array, emit_nul_string, nul_string, nul_string_len, u16_be, u16_ne, u32_ne};
use crate::scheduler::Scheduler;
use crate::stats::Stats;

const IPVS_SVC_ATTR_AF: u16 = 1;
const IPVS_SVC_ATTR_PROTOCOL: u16 = 2;
const IPVS_SVC_ATTR_ADDR: u16 = 3;
const IPVS_SVC_ATTR_PORT: u16 = 4;
const IPVS_SVC_ATTR_FWMARK: u16 = 5;
const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
const IPVS_SVC_ATTR_FLAGS: u16 = 7;
const IPVS_SVC_ATTR_TIMEOUT: u16 = 8;
const IPVS_SVC_ATTR_NETMASK: u16 = 9;
const IPVS_SVC_ATTR_STATS: u16 = 10;
const IPVS_SVC_ATTR_PE_NAME: u16 = 11;
const IPVS_SVC_ATTR_STATS64: u16 = 12;

/// `IP_VS_SVC_F_PERSISTENT`: carried by [`Service::persistence`].
const IP_VS_SVC_F_PERSISTENT: u32 = 0x0001;
/// `IP_VS_SVC_F_HASHED`: kernel-internal, set on every live service.
const IP_VS_SVC_F_HASHED: u32 = 0x0002;

bitflags::bitflags! {
    /// Service flags other than persistence (which is [`Service::persistence`])
    /// and the kernel-internal "hashed" flag (dropped when reading).
    ///
    /// The scheduler flags mean different things per scheduler; the
    /// aliases name them for `sh` and `mh`.
    ///
    /// # Examples
    /// ```
    /// use ipvs::ServiceFlags;
    /// let f = ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT;
    /// assert_eq!(f.bits(), 0x18);
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
    pub struct ServiceFlags: u32 {
        /// `IP_VS_SVC_F_ONEPACKET`: schedule every packet (UDP, ipvsadm `-o`).
        const ONE_PACKET = 0x0004;
        /// `IP_VS_SVC_F_SCHED1`.
        const SCHED1 = 0x0008;
        /// `IP_VS_SVC_F_SCHED2`.
        const SCHED2 = 0x0010;
        /// `IP_VS_SVC_F_SCHED3`.
        const SCHED3 = 0x0020;
        /// `sh-fallback`: pick another server when the hashed one is unavailable.
        const SH_FALLBACK = Self::SCHED1.bits();
        /// `sh-port`: hash the source port too.
        const SH_PORT = Self::SCHED2.bits();
        /// `mh-fallback`: pick another server when the hashed one is unavailable.
        const MH_FALLBACK = Self::SCHED1.bits();
        /// `mh-port`: hash the source port too.
        const MH_PORT = Self::SCHED2.bits();
    }
}

/// What identifies a virtual service.
///
/// # Examples
/// ```
/// use ipvs::{Protocol, ServiceKey};
/// let key = ServiceKey::inet(Protocol::Tcp, "2001:db8::1".parse().unwrap(), 80);
/// assert_eq!(key.to_string(), "TCP [2001:db8::1]:80");
/// let fwm = ServiceKey::fwmark(ipvs::AddressFamily::Inet, 7).unwrap();
/// assert_eq!(fwm.to_string(), "FWM 7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKey {
    /// A protocol, address and port (the family is the address's).
    Inet {
        /// Transport protocol.
        protocol: Protocol,
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port; 0 is the catch-all "port zero" service.
        port: u16,
    },
    /// A firewall mark, per address family.
    Fwmark {
        /// Address family of the packets it matches.
        af: AddressFamily,
        /// The mark (never 0: 0 means "not a fwmark service" on the wire).
        mark: NonZeroU32,
    },
}

impl ServiceKey {
    /// An address-based key.
    pub fn inet(protocol: Protocol, addr: IpAddr, port: u16) -> Self {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        }
    }

    /// A fwmark key; `None` for mark 0.
    pub fn fwmark(af: AddressFamily, mark: u32) -> Option<Self> {
        NonZeroU32::new(mark).map(|mark| ServiceKey::Fwmark { af, mark })
    }

    /// The address family.
    pub fn af(&self) -> AddressFamily {
        match self {
            ServiceKey::Inet { addr, .. } => AddressFamily::of(addr),
            ServiceKey::Fwmark { af, .. } => *af,
        }
    }

    /// The identifying attributes, enough for DEL/GET/ZERO and as the
    /// service part of destination commands.
    pub(crate) fn to_attrs(self) -> Vec<ServiceAttr> {
        let mut attrs = vec![ServiceAttr::AddressFamily(self.af().to_raw())];
        match self {
            ServiceKey::Inet {
                protocol,
                addr,
                port,
            } => {
                attrs.push(ServiceAttr::Protocol(protocol.to_raw()));
                attrs.push(ServiceAttr::Addr(addr::to_wire(&addr)));
                attrs.push(ServiceAttr::Port(port));
            }
            ServiceKey::Fwmark { mark, .. } => attrs.push(ServiceAttr::Fwmark(mark.get())),
        }
        attrs
    }
}

/// As ipvsadm lists them: `TCP 10.0.0.1:80`, `UDP [2001:db8::1]:53`,
/// `FWM 7`, `FWM 7 IPv6`.
impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Inet {
                protocol,
                addr,
                port,
            } => {
                write!(f, "{protocol} {}", AddrPort(addr, *port))
            }
            ServiceKey::Fwmark {
                af: AddressFamily::Inet,
                mark,
            } => write!(f, "FWM {mark}"),
            ServiceKey::Fwmark {
                af: AddressFamily::Inet6,
                mark,
            } => write!(f, "FWM {mark} IPv6"),
        }
    }
}

/// Persistence: connections from one client (network) stick to one real
/// server for `timeout` seconds after the last one ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Persistence {
    /// Seconds (ipvsadm `-p`, its default 360).
    pub timeout: u32,
    /// Client prefix length grouped together: 32 (IPv4) or 128 (IPv6) for
    /// single clients (ipvsadm `-M`).
    pub prefix_len: u8,
}

/// The configuration of a virtual service: what a caller creates, edits
/// and compares. Counters are in [`ServiceEntry`].
///
/// # Examples
/// ```
/// use ipvs::{Persistence, Protocol, Scheduler, Service, ServiceKey};
/// let mut svc = Service::new(
///     ServiceKey::inet(Protocol::Tcp, "10.96.0.10".parse().unwrap(), 53),
///     Scheduler::RoundRobin,
/// );
/// svc.persistence = Some(Persistence { timeout: 10800, prefix_len: 32 });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Service {
    /// What identifies it.
    pub key: ServiceKey,
    /// Scheduling algorithm.
    pub scheduler: Scheduler,
    /// Flags (one-packet, scheduler flags).
    pub flags: ServiceFlags,
    /// Persistence, if any.
    pub persistence: Option<Persistence>,
    /// Persistence engine (e.g. `sip`), if any.
    pub persistence_engine: Option<String>,
}

impl Service {
    /// A service with no flags, no persistence and no persistence engine.
    pub fn new(key: ServiceKey, scheduler: Scheduler) -> Self {
        Service {
            key,
            scheduler,
            flags: ServiceFlags::empty(),
            persistence: None,
            persistence_engine: None,
        }
    }

    /// Why the kernel would refuse it, checked before sending (names too
    /// long, prefix length beyond the family's).
    pub(crate) fn validate(&self) -> Result<(), String> {
        check_name("scheduler", self.scheduler.name())?;
        if let Some(pe) = &self.persistence_engine {
            check_name("persistence engine", pe)?;
        }
        let max = self.key.af().max_prefix_len();
        match self.persistence {
            Some(p) if p.prefix_len > max || (p.prefix_len == 0 && max == 128) => Err(format!(
                "persistence prefix length /{} is out of range for {}",
                p.prefix_len,
                self.key.af()
            )),
            _ => Ok(()),
        }
    }

    /// The full attribute set for NEW/SET: the kernel requires scheduler,
    /// flags, timeout and netmask, and clears the persistence engine when
    /// absent.
    pub(crate) fn to_attrs(&self) -> Vec<ServiceAttr> {
        let mut attrs = self.key.to_attrs();
        attrs.push(ServiceAttr::SchedName(self.scheduler.name().to_owned()));
        if let Some(pe) = &self.persistence_engine {
            attrs.push(ServiceAttr::PeName(pe.clone()));
        }
        let af = self.key.af();
        let (persistent, timeout, prefix_len) = match self.persistence {
            Some(p) => (IP_VS_SVC_F_PERSISTENT, p.timeout, p.prefix_len),
            None => (0, 0, af.max_prefix_len()),
        };
        attrs.push(ServiceAttr::Flags {
            flags: self.flags.bits() | persistent,
            mask: u32::MAX,
        });
        attrs.push(ServiceAttr::Timeout(timeout));
        attrs.push(ServiceAttr::Netmask(netmask_to_wire(af, prefix_len)));
        attrs
    }
}

/// A live service as the kernel reports it: its configuration and counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// The configuration.
    pub service: Service,
    /// Traffic counters and rates.
    pub stats: Stats,
}

impl ServiceEntry {
    pub(crate) fn from_attrs(attrs: &[ServiceAttr]) -> Result<Self, DecodeError> {
        let mut af = None;
        let (mut protocol, mut addr, mut port, mut fwmark) = (None, None, None, None);
        let (mut sched, mut pe, mut flags, mut timeout, mut netmask) = (None, None, 0, 0, None);
        let (mut stats, mut stats64) = (None, None);
        for attr in attrs {
            match attr {
                ServiceAttr::AddressFamily(v) => af = Some(AddressFamily::from_raw(*v)?),
                ServiceAttr::Protocol(v) => protocol = Some(Protocol::from_raw(*v)?),
                ServiceAttr::Addr(v) => addr = Some(*v),
                ServiceAttr::Port(v) => port = Some(*v),
                ServiceAttr::Fwmark(v) => fwmark = NonZeroU32::new(*v),
                ServiceAttr::SchedName(v) => sched = Some(Scheduler::from(v.clone())),
                ServiceAttr::PeName(v) => pe = Some(v.clone()),
                ServiceAttr::Flags { flags: f, .. } => flags = *f,
                ServiceAttr::Timeout(v) => timeout = *v,
                ServiceAttr::Netmask(v) => netmask = Some(*v),
                ServiceAttr::Stats(s) => stats = Some(*s),
                ServiceAttr::Stats64(s) => stats64 = Some(*s),
                ServiceAttr::Other(_) => {}
            }
        }
        let af = af.ok_or("service without IPVS_SVC_ATTR_AF")?;
        let key = match (fwmark, protocol, addr, port) {
            (Some(mark), ..) => ServiceKey::Fwmark { af, mark },
            (None, Some(protocol), Some(addr), Some(port)) => ServiceKey::Inet {
                protocol,
                addr: addr::from_wire(af, &addr),
                port,
            },
            _ => return Err("service with neither fwmark nor protocol, address and port".into()),
        };
        let persistence = if flags & IP_VS_SVC_F_PERSISTENT != 0 {
            let raw = netmask.ok_or("persistent service without IPVS_SVC_ATTR_NETMASK")?;
            Some(Persistence {
                timeout,
                prefix_len: netmask_from_wire(af, raw)?,
            })
        } else {
            None
        };
        let service = Service {
            key,
            scheduler: sched.ok_or("service without IPVS_SVC_ATTR_SCHED_NAME")?,
            flags: ServiceFlags::from_bits_retain(
                flags & !(IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_HASHED),
            ),
            persistence,
            persistence_engine: pe,
        };
        Ok(ServiceEntry {
            service,
            stats: stats64.or(stats).unwrap_or_default(),
        })
    }
}

/// A scheduler or persistence engine name must fit the kernel's 16 bytes
/// with its NUL.
fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > crate::scheduler::MAX_NAME_LEN || name.contains('\0') {
        return Err(format!(
            "{what} name {name:?} must be 1 to 15 bytes without NUL"
        ));
    }
    Ok(())
}

/// The netmask attribute: for IPv4 the mask itself in network order, for
/// IPv6 the prefix length as a host-order `u32` (the kernel checks 1..=128).
fn netmask_to_wire(af: AddressFamily, prefix_len: u8) -> [u8; 4] {
    match af {
        AddressFamily::Inet => u32::MAX
            .checked_shl(32 - u32::from(prefix_len))
            .unwrap_or(0)
            .to_be_bytes(),
        AddressFamily::Inet6 => u32::from(prefix_len).to_ne_bytes(),
    }
}

pub(crate) fn netmask_from_wire(af: AddressFamily, raw: [u8; 4]) -> Result<u8, DecodeError> {
    match af {
        AddressFamily::Inet => {
            let mask = u32::from_be_bytes(raw);
            let len = mask.leading_ones();
            if mask.checked_shl(len).unwrap_or(0) != 0 {
                return Err(format!("non-contiguous IPv4 netmask {mask:#010x}").into());
            }
            Ok(len as u8)
        }
        AddressFamily::Inet6 => u8::try_from(u32::from_ne_bytes(raw))
            .ok()
            .filter(|len| *len <= 128)
            .ok_or_else(|| format!("IPv6 prefix length {raw:?} out of range").into()),
    }
}

/// One `IPVS_SVC_ATTR_*` attribute, with the wire's representation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum ServiceAttr {
    AddressFamily(u16),
    Protocol(u16),
    /// Always 16 bytes on emit; shorter input is zero-filled.
    Addr([u8; 16]),
    /// Host value; network order on the wire.
    Port(u16),
    Fwmark(u32),
    SchedName(String),
    Flags {
        flags: u32,
        mask: u32,
    },
    Timeout(u32),
    /// Raw bytes: their meaning depends on the family (see `netmask_to_wire`).
    Netmask([u8; 4]),
    /// Output only: the 32-bit statistics.
    Stats(Stats),
    PeName(String),
    /// Output only: the 64-bit statistics.
    Stats64(Stats),
    Other(DefaultNla),
}

impl Nla for ServiceAttr {
    fn value_len(&self) -> usize {
        match self {
            ServiceAttr::AddressFamily(_) | ServiceAttr::Protocol(_) | ServiceAttr::Port(_) => 2,
            ServiceAttr::Addr(_) => 16,
            ServiceAttr::Fwmark(_) | ServiceAttr::Timeout(_) | ServiceAttr::Netmask(_) => 4,
            ServiceAttr::SchedName(s) | ServiceAttr::PeName(s) => nul_string_len(s),
            ServiceAttr::Flags { .. } => 8,
            // Statistics are output only: a request never carries them.
            ServiceAttr::Stats(_) | ServiceAttr::Stats64(_) => 0,
            ServiceAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            ServiceAttr::AddressFamily(_) => IPVS_SVC_ATTR_AF,
            ServiceAttr::Protocol(_) => IPVS_SVC_ATTR_PROTOCOL,
            ServiceAttr::Addr(_) => IPVS_SVC_ATTR_ADDR,
            ServiceAttr::Port(_) => IPVS_SVC_ATTR_PORT,
            ServiceAttr::Fwmark(_) => IPVS_SVC_ATTR_FWMARK,
            ServiceAttr::SchedName(_) => IPVS_SVC_ATTR_SCHED_NAME,
            ServiceAttr::Flags { .. } => IPVS_SVC_ATTR_FLAGS,
            ServiceAttr::Timeout(_) => IPVS_SVC_ATTR_TIMEOUT,
            ServiceAttr::Netmask(_) => IPVS_SVC_ATTR_NETMASK,
            ServiceAttr::Stats(_) => IPVS_SVC_ATTR_STATS,
            ServiceAttr::PeName(_) => IPVS_SVC_ATTR_PE_NAME,
            ServiceAttr::Stats64(_) => IPVS_SVC_ATTR_STATS64,
            ServiceAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            ServiceAttr::AddressFamily(v) | ServiceAttr::Protocol(v) => {
                buffer.copy_from_slice(&v.to_ne_bytes());
            }
            ServiceAttr::Port(v) => buffer.copy_from_slice(&v.to_be_bytes()),
            ServiceAttr::Addr(a) => buffer.copy_from_slice(a),
            ServiceAttr::Fwmark(v) | ServiceAttr::Timeout(v) => {
                buffer.copy_from_slice(&v.to_ne_bytes());
            }
            ServiceAttr::Netmask(raw) => buffer.copy_from_slice(raw),
            ServiceAttr::SchedName(s) | ServiceAttr::PeName(s) => emit_nul_string(s, buffer),
            ServiceAttr::Flags { flags, mask } => {
                buffer[..4].copy_from_slice(&flags.to_ne_bytes());
                buffer[4..].copy_from_slice(&mask.to_ne_bytes());
            }
            ServiceAttr::Stats(_) | ServiceAttr::Stats64(_) => {}
            ServiceAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for ServiceAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            IPVS_SVC_ATTR_AF => ServiceAttr::AddressFamily(u16_ne(v, "IPVS_SVC_ATTR_AF")?),
            IPVS_SVC_ATTR_PROTOCOL => ServiceAttr::Protocol(u16_ne(v, "IPVS_SVC_ATTR_PROTOCOL")?),
            IPVS_SVC_ATTR_ADDR => ServiceAttr::Addr(addr::wire_from_slice(v)?),
            IPVS_SVC_ATTR_PORT => ServiceAttr::Port(u16_be(v, "IPVS_SVC_ATTR_PORT")?),
            IPVS_SVC_ATTR_FWMARK => ServiceAttr::Fwmark(u32_ne(v, "IPVS_SVC_ATTR_FWMARK")?),
            IPVS_SVC_ATTR_SCHED_NAME => {
                ServiceAttr::SchedName(nul_string(v, "IPVS_SVC_ATTR_SCHED_NAME")?)
            }
            IPVS_SVC_ATTR_FLAGS => {
                let raw: [u8; 8] = array(v, "IPVS_SVC_ATTR_FLAGS")?;
                ServiceAttr::Flags {
                    flags: u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]),
                    mask: u32::from_ne_bytes([raw[4], raw[5], raw[6], raw[7]]),
                }
            }
            IPVS_SVC_ATTR_TIMEOUT => ServiceAttr::Timeout(u32_ne(v, "IPVS_SVC_ATTR_TIMEOUT")?),
            IPVS_SVC_ATTR_NETMASK => ServiceAttr::Netmask(array(v, "IPVS_SVC_ATTR_NETMASK")?),
            IPVS_SVC_ATTR_STATS => ServiceAttr::Stats(Stats::parse_nest(v)?),
            IPVS_SVC_ATTR_PE_NAME => ServiceAttr::PeName(nul_string(v, "IPVS_SVC_ATTR_PE_NAME")?),
            IPVS_SVC_ATTR_STATS64 => ServiceAttr::Stats64(Stats::parse_nest(v)?),
            _ => ServiceAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_encode_per_family() {
        assert_eq!(netmask_to_wire(AddressFamily::Inet, 32), [0xff; 4]);
        assert_eq!(
            netmask_to_wire(AddressFamily::Inet, 24),
            [0xff, 0xff, 0xff, 0]
        );
        assert_eq!(netmask_to_wire(AddressFamily::Inet, 0), [0; 4]);
        assert_eq!(
            netmask_to_wire(AddressFamily::Inet6, 64),
            64u32.to_ne_bytes()
        );
        for len in 0..=32 {
            let raw = netmask_to_wire(AddressFamily::Inet, len);
            assert_eq!(netmask_from_wire(AddressFamily::Inet, raw).unwrap(), len);
        }
        assert!(netmask_from_wire(AddressFamily::Inet, [0xff, 0, 0xff, 0]).is_err());
        assert!(netmask_from_wire(AddressFamily::Inet6, 129u32.to_ne_bytes()).is_err());
    }

    #[test]
    fn validation_catches_what_the_kernel_would_refuse() {
        let key = ServiceKey::fwmark(AddressFamily::Inet6, 1).unwrap();
        let mut svc = Service::new(key, Scheduler::Other("a-very-long-scheduler".into()));
        assert!(svc.validate().unwrap_err().contains("scheduler name"));
        svc.scheduler = Scheduler::RoundRobin;
        svc.persistence = Some(Persistence {
            timeout: 1,
            prefix_len: 0,
        });
        assert!(svc.validate().unwrap_err().contains("prefix length"));
        svc.persistence = Some(Persistence {
            timeout: 1,
            prefix_len: 64,
        });
        assert_eq!(svc.validate(), Ok(()));
        svc.persistence_engine = Some(String::new());
        assert!(svc.validate().is_err());
    }

    #[test]
    fn reading_drops_hashed_and_splits_persistence() {
        let key = ServiceKey::inet(Protocol::Udp, "10.0.0.1".parse().unwrap(), 53);
        let mut attrs = key.to_attrs();
        attrs.extend([
            ServiceAttr::SchedName("sh".into()),
            ServiceAttr::Flags {
                flags: 0x1 | 0x2 | 0x8,
                mask: u32::MAX,
            },
            ServiceAttr::Timeout(300),
            ServiceAttr::Netmask([255, 255, 0, 0]),
        ]);
        let entry = ServiceEntry::from_attrs(&attrs).unwrap();
        assert_eq!(entry.service.flags, ServiceFlags::SH_FALLBACK);
        assert_eq!(
            entry.service.persistence,
            Some(Persistence {
                timeout: 300,
                prefix_len: 16
            })
        );
        assert_eq!(entry.service.key, key);
    }
}
