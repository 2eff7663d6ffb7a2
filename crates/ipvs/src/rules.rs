//! The table as `ipvsadm -S` saves it: every service's configuration and,
//! for each real server, its address, port, forwarding method and weight
//! (ipvsadm saves no thresholds and no counters).
//!
//! Read with one netlink dump for the services (exact: scheduler flags,
//! persistence engine and families, which `/proc/net/ip_vs` does not show)
//! and the real servers from the overview, `/proc/net/ip_vs` (a few `read`
//! calls for the whole table instead of one netlink dump per service).
//! Real servers the overview cannot describe are read with netlink: those
//! of fwmark services (the overview does not show a mark's family, and an
//! IPv4 and an IPv6 service may share a mark), of services with a
//! tunnelled real server (the overview does not show tunnel settings), and
//! of services the overview left out (it may skip some while other
//! namespaces have services, see [`crate::read_overview`]).

use std::collections::HashMap;
use std::net::IpAddr;

use crate::destination::{Destination, ForwardMethod};
use crate::overview::{OverviewKey, OverviewService, UNTUNNELLED};
use crate::service::{Service, ServiceKey};

/// A real server as `ipvsadm -S` saves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DestinationRule {
    /// Its address.
    pub addr: IpAddr,
    /// Its port.
    pub port: u16,
    /// How packets reach it, tunnel settings included.
    pub forward: ForwardMethod,
    /// Its weight.
    pub weight: u32,
}

impl From<&Destination> for DestinationRule {
    fn from(d: &Destination) -> Self {
        DestinationRule {
            addr: d.addr,
            port: d.port,
            forward: d.forward,
            weight: d.weight,
        }
    }
}

/// A service and its real servers (kernel order), as `ipvsadm -S` saves
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRules {
    /// The service's configuration.
    pub service: Service,
    /// Its real servers.
    pub destinations: Vec<DestinationRule>,
}

/// The real servers the overview shows completely, by service: every
/// protocol service whose real servers are all untunnelled. The first
/// showing of a service counts (a table changing while it is read may show
/// one twice).
#[derive(Debug, Default)]
pub(crate) struct Shown(HashMap<ServiceKey, Vec<DestinationRule>>);

impl Shown {
    /// Takes in one service of the overview.
    pub(crate) fn add(&mut self, service: &OverviewService) {
        let OverviewKey::Service(key) = service.key else {
            return;
        };
        let rules: Option<Vec<DestinationRule>> = service
            .destinations
            .iter()
            .map(|d| {
                Some(DestinationRule {
                    addr: d.addr,
                    port: d.port,
                    forward: untunnelled(d.forward)?,
                    weight: d.weight,
                })
            })
            .collect();
        if let Some(rules) = rules {
            self.0.entry(key).or_insert(rules);
        }
    }

    /// The real servers of `key`, if the overview showed them completely.
    pub(crate) fn take(&mut self, key: &ServiceKey) -> Option<Vec<DestinationRule>> {
        self.0.remove(key)
    }
}

/// The forwarding method the overview names `name`; `None` for `Tunnel`,
/// whose settings the overview does not show.
fn untunnelled(name: &str) -> Option<ForwardMethod> {
    UNTUNNELLED.into_iter().find(|m| m.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{AddressFamily, Protocol};
    use crate::overview::OverviewDestination;
    use crate::scheduler::Scheduler;

    fn tcp(addr: &str, port: u16) -> ServiceKey {
        ServiceKey::inet(Protocol::Tcp, addr.parse().unwrap(), port)
    }

    /// A real server as the overview shows it (the names are the kernel's).
    fn shown_dest(addr: &str, forward: &'static str, weight: u32) -> OverviewDestination {
        OverviewDestination {
            addr: addr.parse().unwrap(),
            port: 8080,
            forward,
            weight,
            active_connections: 3,
            inactive_connections: 1,
        }
    }

    fn rule(addr: &str, forward: ForwardMethod, weight: u32) -> DestinationRule {
        DestinationRule {
            addr: addr.parse().unwrap(),
            port: 8080,
            forward,
            weight,
        }
    }

    /// Services as the overview shows them: plain real servers, a tunnel,
    /// none, and a fwmark service.
    fn shown() -> Shown {
        let service = |key, destinations| OverviewService {
            key,
            scheduler: Scheduler::RoundRobin,
            one_packet: Some(false),
            persistence: None,
            destinations,
        };
        let mut shown = Shown::default();
        for s in [
            service(
                OverviewKey::Service(tcp("10.96.0.1", 80)),
                vec![
                    shown_dest("10.244.1.6", "Masq", 0),
                    shown_dest("127.0.0.1", "Local", 1),
                    shown_dest("fd00::1:2", "Route", 2),
                    shown_dest("10.244.1.7", "Bypass", 3),
                ],
            ),
            service(
                OverviewKey::Service(tcp("10.96.0.2", 443)),
                vec![
                    shown_dest("192.168.0.1", "Tunnel", 1),
                    shown_dest("192.168.0.2", "Route", 1),
                ],
            ),
            service(OverviewKey::Service(tcp("10.96.0.3", 80)), vec![]),
            service(
                OverviewKey::Fwmark(std::num::NonZeroU32::new(7).unwrap()),
                vec![shown_dest("192.168.0.1", "Route", 1)],
            ),
            // A table changing while it is read may show a service twice.
            service(
                OverviewKey::Service(tcp("10.96.0.3", 80)),
                vec![shown_dest("10.244.1.6", "Masq", 0)],
            ),
        ] {
            shown.add(&s);
        }
        shown
    }

    #[test]
    fn untunnelled_real_servers_of_protocol_services_come_from_the_overview() {
        let mut shown = shown();
        assert_eq!(
            shown.take(&tcp("10.96.0.1", 80)),
            Some(vec![
                rule("10.244.1.6", ForwardMethod::Masquerade, 0),
                rule("127.0.0.1", ForwardMethod::Local, 1),
                rule("fd00::1:2", ForwardMethod::DirectRoute, 2),
                rule("10.244.1.7", ForwardMethod::Bypass, 3),
            ])
        );
        assert_eq!(
            shown.take(&tcp("10.96.0.3", 80)),
            Some(vec![]),
            "the first showing"
        );
        // Taken once.
        assert_eq!(shown.take(&tcp("10.96.0.1", 80)), None);
    }

    #[test]
    fn tunnelled_and_fwmark_services_are_left_to_netlink() {
        let mut shown = shown();
        assert_eq!(shown.take(&tcp("10.96.0.2", 443)), None, "a tunnel");
        for af in [AddressFamily::Inet, AddressFamily::Inet6] {
            let fwmark = ServiceKey::fwmark(af, 7).unwrap();
            assert_eq!(shown.take(&fwmark), None, "a fwmark");
        }
        assert_eq!(shown.take(&tcp("10.96.0.9", 80)), None, "not shown");
    }

    #[test]
    fn a_rule_keeps_what_ipvsadm_saves() {
        let mut d = Destination::new("10.0.0.1".parse().unwrap(), 8080, ForwardMethod::Local, 3);
        d.upper_threshold = 100;
        assert_eq!(
            DestinationRule::from(&d),
            rule("10.0.0.1", ForwardMethod::Local, 3)
        );
    }
}
