//! The desired virtual servers, converted once into the `ipvs` crate's values
//! so that they compare directly with what the kernel reports.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipvs::{Destination, Service, ServiceKey};

/// The real servers of one virtual server, one per (address, port), kept
/// sorted by them in one allocation: the daemon holds the whole table's
/// (100,000 at 10,000 Services) between syncs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RealServers(Vec<Destination>);

impl RealServers {
    /// The real server at this address and port.
    pub fn get(&self, addr: IpAddr, port: u16) -> Option<&Destination> {
        self.0
            .binary_search_by_key(&(addr, port), |d| (d.addr, d.port))
            .ok()
            .map(|i| &self.0[i])
    }

    /// Whether there is a real server at this address and port.
    pub fn contains(&self, addr: IpAddr, port: u16) -> bool {
        self.get(addr, port).is_some()
    }

    /// Every real server, by address and port.
    pub fn iter(&self) -> std::slice::Iter<'_, Destination> {
        self.0.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Of several real servers with the same address and port, the last counts.
impl FromIterator<Destination> for RealServers {
    fn from_iter<I: IntoIterator<Item = Destination>>(iter: I) -> Self {
        let mut all: Vec<Destination> = iter.into_iter().collect();
        all.reverse();
        // Stable: of equal keys the last given comes first, and stays.
        all.sort_by_key(|d| (d.addr, d.port));
        all.dedup_by_key(|d| (d.addr, d.port));
        all.shrink_to_fit();
        RealServers(all)
    }
}

impl<'a> IntoIterator for &'a RealServers {
    type Item = &'a Destination;
    type IntoIter = std::slice::Iter<'a, Destination>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// One virtual server as we want it, with its real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedService {
    /// The virtual server's attributes.
    pub service: Service,
    /// Its real servers.
    pub destinations: RealServers,
    /// The Service it comes from (`namespace/name:port`), for logs.
    pub origin: String,
    /// How long its leaving TCP real servers may drain, when its Service sets it
    /// ([`crate::Draining`]'s bound otherwise).
    pub drain_timeout: Option<Duration>,
}

/// Every virtual server we want, by key. Shared, so that the table a sync
/// programmed is kept for the next one, and a sync's scope picks from it,
/// without copies.
pub type Wanted = BTreeMap<ServiceKey, Arc<WantedService>>;

pub use desired::ipvs::kernel_protocol as protocol;

/// The kernel values for one desired virtual server.
pub fn service(vs: &desired::VirtualServer) -> WantedService {
    WantedService {
        service: vs.kernel_service(),
        destinations: vs
            .real_servers
            .iter()
            .map(desired::RealServer::kernel_destination)
            .collect(),
        origin: vs.service.to_string(),
        drain_timeout: vs.drain_timeout,
    }
}

/// Every desired virtual server, keyed for the diff. One equal to its entry in `previous`
/// (an earlier conversion) is that entry, shared: after a change to one Service the new
/// table holds one new virtual server, not a second copy of all of them.
pub fn wanted<'a>(
    servers: impl IntoIterator<Item = &'a desired::VirtualServer>,
    previous: &Wanted,
) -> Wanted {
    servers
        .into_iter()
        .map(|vs| {
            let fresh = service(vs);
            let key = fresh.service.key;
            match previous.get(&key) {
                Some(old) if **old == fresh => (key, Arc::clone(old)),
                _ => (key, Arc::new(fresh)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{dest, ip};

    #[test]
    fn an_unchanged_virtual_server_is_shared_with_the_previous_conversion() {
        let vs = |port: u16, endpoint: &str| desired::VirtualServer {
            key: desired::VsKey {
                protocol: model::Protocol::Tcp,
                addr: ip("10.96.0.1"),
                port,
            },
            scheduler: model::Scheduler::Rr,
            sched_flags: model::SchedFlags::empty(),
            persistence: None,
            real_servers: vec![desired::RealServer::masqueraded(ip(endpoint), 8080)],
            service: desired::ServicePortName {
                service: model::ObjectId::new("d", "a"),
                port: String::new(),
            },
            drain_timeout: None,
        };
        let before = wanted(
            &[vs(80, "10.244.0.1"), vs(81, "10.244.0.1")],
            &Wanted::new(),
        );
        let after = wanted(&[vs(80, "10.244.0.1"), vs(81, "10.244.0.2")], &before);
        let shared = |port: u16| {
            let key = ServiceKey::inet(ipvs::Protocol::Tcp, ip("10.96.0.1"), port);
            Arc::ptr_eq(&before[&key], &after[&key])
        };
        assert!(shared(80), "unchanged: the same allocation");
        assert!(!shared(81), "its real server changed");
        assert_eq!(after.len(), 2);
    }

    #[test]
    fn real_servers_are_found_by_address_and_port_and_the_last_duplicate_counts() {
        let set: RealServers = [
            dest("10.244.0.9", 80, 1),
            dest("10.244.0.1", 8080, 1),
            dest("10.244.0.1", 80, 1),
            dest("10.244.0.9", 80, 3),
        ]
        .into_iter()
        .collect();
        let order: Vec<(IpAddr, u16, u32)> =
            set.iter().map(|d| (d.addr, d.port, d.weight)).collect();
        assert_eq!(
            order,
            [
                (ip("10.244.0.1"), 80, 1),
                (ip("10.244.0.1"), 8080, 1),
                (ip("10.244.0.9"), 80, 3)
            ]
        );
        assert_eq!(set.get(ip("10.244.0.9"), 80).map(|d| d.weight), Some(3));
        assert!(set.contains(ip("10.244.0.1"), 8080));
        assert!(!set.contains(ip("10.244.0.1"), 443));
        assert_eq!(set.len(), 3);
        assert!(RealServers::default().is_empty());
    }
}
