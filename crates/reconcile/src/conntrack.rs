//! Which UDP conntrack entries are stale, as kube-proxy decides it
//! (`pkg/proxy/conntrack/cleanup.go`): UDP has no connection to end, so a
//! flow keeps going to the endpoint it was first sent to for as long as the
//! client keeps sending. An entry is stale when its original destination is
//! a UDP virtual server that has real servers and its reply source is none
//! of them: the endpoint was removed, or the flow was tracked while the
//! Service had no endpoint at all (its reply source is then the Service IP
//! itself) and the Service has just gained its first one. This covers
//! cluster, external and load balancer IPs and NodePorts alike, since each
//! of those is a virtual server of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use conntrack::{Flow, proto};
use desired::VirtualServer;
use model::Protocol;

/// UDP virtual servers that have real servers (address and port), with the
/// addresses of those real servers.
pub type UdpEndpoints = BTreeMap<(IpAddr, u16), BTreeSet<IpAddr>>;

/// The UDP virtual servers of the desired state with their endpoints.
pub fn udp_endpoints<'a>(servers: impl IntoIterator<Item = &'a VirtualServer>) -> UdpEndpoints {
    servers
        .into_iter()
        .filter(|vs| vs.key.protocol == Protocol::Udp && !vs.real_servers.is_empty())
        .map(|vs| {
            let endpoints = vs.real_servers.iter().map(|rs| rs.addr).collect();
            ((vs.key.addr, vs.key.port), endpoints)
        })
        .collect()
}

/// The flows to delete.
pub fn stale(endpoints: &UdpEndpoints, flows: &[Flow]) -> Vec<Flow> {
    flows
        .iter()
        .filter(|f| f.protocol == proto::UDP)
        .filter(|f| {
            endpoints
                .get(&(f.orig.dst, f.orig.dst_port))
                .is_some_and(|eps| !eps.contains(&f.reply.src))
        })
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use conntrack::Tuple;
    use desired::{RealServer, VsKey};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn vs(protocol: Protocol, addr: &str, port: u16, endpoints: &[&str]) -> VirtualServer {
        VirtualServer {
            key: VsKey {
                protocol,
                addr: ip(addr),
                port,
            },
            real_servers: endpoints
                .iter()
                .map(|e| RealServer::masqueraded(ip(e), 5353))
                .collect(),
            scheduler: model::Scheduler::Rr,
            sched_flags: model::SchedFlags::empty(),
            persistence: None,
            service: desired::ServicePortName {
                service: model::ObjectId {
                    namespace: "d".into(),
                    name: "dns".into(),
                },
                port: "dns".into(),
            },
            drain_timeout: None,
        }
    }

    fn flow(protocol: u8, dst: &str, dport: u16, reply_src: &str) -> Flow {
        Flow {
            protocol,
            orig: Tuple {
                src: ip("10.244.2.9"),
                dst: ip(dst),
                src_port: 40000,
                dst_port: dport,
            },
            reply: Tuple {
                src: ip(reply_src),
                dst: ip("10.244.2.9"),
                src_port: 5353,
                dst_port: 40000,
            },
            zone: 0,
            id: Some(7),
        }
    }

    #[test]
    fn flows_to_a_removed_endpoint_or_from_before_the_first_one_are_stale() {
        let servers = [
            vs(Protocol::Udp, "10.96.0.10", 53, &["10.244.1.5"]),
            vs(Protocol::Udp, "192.168.7.1", 30053, &["10.244.1.5"]),
            vs(Protocol::Udp, "10.96.0.11", 53, &[]),
            vs(Protocol::Tcp, "10.96.0.12", 53, &["10.244.1.5"]),
        ];
        let eps = udp_endpoints(&servers);
        assert_eq!(eps.len(), 2, "UDP with endpoints only");
        let flows = [
            flow(proto::UDP, "10.96.0.10", 53, "10.244.1.5"),
            flow(proto::UDP, "10.96.0.10", 53, "10.244.1.6"),
            flow(proto::UDP, "10.96.0.10", 53, "10.96.0.10"),
            flow(proto::UDP, "192.168.7.1", 30053, "10.244.1.6"),
            flow(proto::UDP, "10.96.0.10", 54, "10.244.1.6"),
            flow(proto::UDP, "10.96.0.11", 53, "10.96.0.11"),
            flow(proto::TCP, "10.96.0.12", 53, "10.244.1.6"),
        ];
        let doomed = stale(&eps, &flows);
        assert_eq!(doomed, vec![flows[1], flows[2], flows[3]]);
    }
}
