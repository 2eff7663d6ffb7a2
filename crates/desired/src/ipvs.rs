//! IPVS virtual and real servers, as plain values that map one to one onto the kernel's
//! service and destination attributes (protocol, address, port, scheduler, flags, timeout,
//! netmask; address, port, weight, forwarding method).

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

use model::{IpFamily, ObjectId, Protocol, SchedFlags, Scheduler};
use serde::Serialize;

/// `IP_VS_SVC_F_PERSISTENT`.
pub const FLAG_PERSISTENT: u32 = 0x0001;

/// What identifies a virtual server: protocol, address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct VsKey {
    /// The protocol.
    pub protocol: Protocol,
    /// The virtual address.
    pub addr: IpAddr,
    /// The virtual port.
    pub port: u16,
}

impl VsKey {
    /// The address family.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.addr)
    }
}

/// `tcp 10.96.0.10:80`, `udp [fd00::10]:53`.
impl fmt::Display for VsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = std::net::SocketAddr::new(self.addr, self.port);
        write!(f, "{} {addr}", self.protocol)
    }
}

/// ipvsadm's listing order: family, protocol number, address, port.
impl Ord for VsKey {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.family(), self.protocol.number(), self.addr, self.port).cmp(&(
            other.family(),
            other.protocol.number(),
            other.addr,
            other.port,
        ))
    }
}

impl PartialOrd for VsKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// ClientIP session affinity as IPVS persistence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Persistence {
    /// Seconds.
    pub timeout: u32,
    /// Persistence granularity as a prefix length: kube-proxy leaves it at a single client
    /// address (32 for IPv4, 128 for IPv6).
    pub netmask: u8,
}

/// How packets reach a real server. kube-proxy only uses masquerading (NAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    /// `IP_VS_CONN_F_MASQ` (0), ipvsadm `-m`.
    Masquerade,
}

/// A real server (IPVS destination).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RealServer {
    /// The endpoint's address.
    pub addr: IpAddr,
    /// The endpoint's port.
    pub port: u16,
    /// Always 1, as kube-proxy sets it.
    pub weight: u32,
    /// Always masquerade.
    pub forward: Forward,
}

impl RealServer {
    /// The real server as the `ipvs` crate's destination.
    pub fn kernel_destination(&self) -> ::ipvs::Destination {
        let forward = match self.forward {
            Forward::Masquerade => ::ipvs::ForwardMethod::Masquerade,
        };
        ::ipvs::Destination::new(self.addr, self.port, forward, self.weight)
    }

    /// A masqueraded real server with weight 1.
    pub fn masqueraded(addr: IpAddr, port: u16) -> RealServer {
        RealServer {
            addr,
            port,
            weight: 1,
            forward: Forward::Masquerade,
        }
    }
}

/// A virtual server with its real servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServer {
    /// Protocol, address, port.
    #[serde(flatten)]
    pub key: VsKey,
    /// The scheduler.
    pub scheduler: Scheduler,
    /// The scheduler flags.
    #[serde(skip_serializing_if = "SchedFlags::is_empty")]
    pub sched_flags: SchedFlags,
    /// Persistence, for ClientIP session affinity.
    pub persistence: Option<Persistence>,
    /// The real servers, sorted by address and port.
    pub real_servers: Vec<RealServer>,
    /// The Service port it implements (for humans and logs).
    pub service: ServicePortName,
    /// How long its leaving TCP real servers may drain, when the Service's annotation sets
    /// it (not kernel state: the dry run does not show it).
    #[serde(skip)]
    pub drain_timeout: Option<std::time::Duration>,
}

/// A Service port by name, as kube-proxy names it: `namespace/name:port`, or `namespace/name`
/// for a Service's only, unnamed port. Serialized as that string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortName {
    /// The Service.
    pub service: ObjectId,
    /// The port's name; empty for a Service's only port when it has no name.
    pub port: String,
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port.is_empty() {
            write!(f, "{}", self.service)
        } else {
            write!(f, "{}:{}", self.service, self.port)
        }
    }
}

impl Serialize for ServicePortName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl VirtualServer {
    /// The virtual server as the `ipvs` crate's service: the values the dataplane programs
    /// and the dry run prints (`ipvsadm -Sn`, [`::ipvs::spelling`]).
    pub fn kernel_service(&self) -> ::ipvs::Service {
        let key = ::ipvs::ServiceKey::inet(
            kernel_protocol(self.key.protocol),
            self.key.addr,
            self.key.port,
        );
        let scheduler = ::ipvs::Scheduler::from(self.scheduler.name().to_owned());
        let mut service = ::ipvs::Service::new(key, scheduler);
        // The persistent flag is carried by `persistence`; the rest are scheduler flags.
        service.flags = ::ipvs::ServiceFlags::from_bits_truncate(self.flags() & !FLAG_PERSISTENT);
        service.persistence = self.persistence.map(|p| ::ipvs::Persistence {
            timeout: p.timeout,
            prefix_len: p.netmask,
        });
        service
    }

    /// The kernel's service flags (`IPVS_SVC_ATTR_FLAGS`).
    pub fn flags(&self) -> u32 {
        let persistent = if self.persistence.is_some() {
            FLAG_PERSISTENT
        } else {
            0
        };
        persistent | self.sched_flags.kernel_bits()
    }
}

/// The scheduler flags kube-proxy gives a virtual server on `scheduler` when no annotation
/// sets them: `mh-port` for `mh` (its `FlagSourceHash`), none for the others.
pub fn default_sched_flags(scheduler: Scheduler) -> SchedFlags {
    match scheduler {
        Scheduler::Mh => SchedFlags::MH_PORT,
        _ => SchedFlags::empty(),
    }
}

/// The `ipvs` crate's protocol for a Service protocol.
pub fn kernel_protocol(p: Protocol) -> ::ipvs::Protocol {
    match p {
        Protocol::Tcp => ::ipvs::Protocol::Tcp,
        Protocol::Udp => ::ipvs::Protocol::Udp,
        Protocol::Sctp => ::ipvs::Protocol::Sctp,
    }
}
