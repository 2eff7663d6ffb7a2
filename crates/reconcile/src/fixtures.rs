//! Values shared by the unit tests: keys, real servers, wanted and observed
//! virtual servers, and an ownership rule.

use std::net::IpAddr;
use std::sync::Arc;

use ipvs::{
    Destination, DestinationEntry, ForwardMethod, Protocol, Scheduler, Service, ServiceEntry,
    ServiceKey, ServiceWithDestinations, Stats,
};

use crate::ownership::Ownership;
use crate::wanted::WantedService;

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) fn key(proto: Protocol, vip: &str, port: u16) -> ServiceKey {
    ServiceKey::inet(proto, ip(vip), port)
}

pub(crate) fn dest(addr: &str, port: u16, weight: u32) -> Destination {
    Destination::new(ip(addr), port, ForwardMethod::Masquerade, weight)
}

pub(crate) fn want(
    key: ServiceKey,
    sched: &str,
    dests: &[Destination],
) -> (ServiceKey, Arc<WantedService>) {
    let service = Service::new(key, Scheduler::from(sched.to_owned()));
    let destinations = dests.iter().copied().collect();
    (
        key,
        WantedService {
            service,
            destinations,
            origin: "ns/svc:port".into(),
            drain_timeout: None,
        }
        .into(),
    )
}

pub(crate) fn entry(d: Destination, active: u32, inactive: u32) -> DestinationEntry {
    DestinationEntry {
        destination: d,
        active_connections: active,
        inactive_connections: inactive,
        persistent_connections: 0,
        stats: Stats::default(),
    }
}

pub(crate) fn have(
    key: ServiceKey,
    sched: &str,
    dests: Vec<DestinationEntry>,
) -> ServiceWithDestinations {
    ServiceWithDestinations {
        service: ServiceEntry {
            service: Service::new(key, Scheduler::from(sched.to_owned())),
            stats: Stats::default(),
        },
        destinations: dests,
    }
}

pub(crate) fn owner() -> Ownership {
    Ownership {
        exclude: vec![],
        dummy_addresses: [ip("10.96.0.10"), ip("10.96.0.11"), ip("fd00::10")].into(),
        node_port_addresses: [ip("192.168.1.10")].into(),
        node_port_range: Ownership::DEFAULT_NODE_PORT_RANGE,
    }
}
