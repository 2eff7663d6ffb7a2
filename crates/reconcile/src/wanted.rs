//! The desired virtual servers, converted once into the `ipvs` crate's values
//! so that they compare directly with what the kernel reports.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipvs::{
    Destination, ForwardMethod, Persistence, Protocol, Scheduler, Service, ServiceFlags, ServiceKey,
};

/// One virtual server as we want it, with its real servers by (address, port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedService {
    /// The virtual server's attributes.
    pub service: Service,
    /// Its real servers.
    pub destinations: BTreeMap<(IpAddr, u16), Destination>,
    /// The Service it comes from (`namespace/name:port`), for logs.
    pub origin: String,
}

/// Every virtual server we want, by key.
pub type Wanted = BTreeMap<ServiceKey, WantedService>;

/// The IPVS protocol of a Service protocol.
pub fn protocol(p: model::Protocol) -> Protocol {
    match p {
        model::Protocol::Tcp => Protocol::Tcp,
        model::Protocol::Udp => Protocol::Udp,
        model::Protocol::Sctp => Protocol::Sctp,
    }
}

/// The kernel values for one desired virtual server.
pub fn service(vs: &desired::VirtualServer) -> WantedService {
    let key = ServiceKey::inet(protocol(vs.key.protocol), vs.key.addr, vs.key.port);
    let mut service = Service::new(key, Scheduler::from(vs.scheduler.name().to_owned()));
    // The persistent flag is carried by `persistence`; the rest are scheduler flags.
    service.flags = ServiceFlags::from_bits_truncate(vs.flags() & !desired::ipvs::FLAG_PERSISTENT);
    service.persistence = vs.persistence.map(|p| Persistence {
        timeout: p.timeout,
        prefix_len: p.netmask,
    });
    let destinations = vs
        .real_servers
        .iter()
        .map(|rs| {
            let forward = match rs.forward {
                desired::Forward::Masquerade => ForwardMethod::Masquerade,
            };
            (
                (rs.addr, rs.port),
                Destination::new(rs.addr, rs.port, forward, rs.weight),
            )
        })
        .collect();
    WantedService {
        service,
        destinations,
        origin: vs.service.to_string(),
    }
}

/// Every desired virtual server, keyed for the diff.
pub fn wanted<'a>(servers: impl IntoIterator<Item = &'a desired::VirtualServer>) -> Wanted {
    servers
        .into_iter()
        .map(service)
        .map(|w| (w.service.key, w))
        .collect()
}
