//! Kubernetes names for the table (`--names FROM`): the Service port each
//! virtual server implements and the Pod behind each real server.
//!
//! The mapping is the daemon's own: the objects go through `model` (the same
//! validation and label filter) and `desired` computes which Service port
//! owns each virtual server (cluster IP, external IPs, load balancer IPs and
//! node ports on the node's addresses). Real servers are matched against that
//! Service port's endpoints (`desired::endpoints::of_port`), which name their
//! Pod when the EndpointSlice has a `targetRef` of kind Pod. Anything else has
//! no name.

#[cfg(feature = "cluster")]
mod cluster;
mod load;

use std::collections::HashMap;
use std::net::SocketAddr;

use desired::{Config, DesiredState, NodeInfo, VirtualServer, VsKey, endpoints};
use model::{Model, Protocol};

use crate::format::list::RowKey;

pub(crate) use load::{Source, load};

/// The names of a virtual server and of its real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    /// `namespace/name:port`.
    service: String,
    /// `namespace/pod` by endpoint address and port.
    pods: HashMap<SocketAddr, String>,
}

/// Which Service port and Pod each virtual and real server belongs to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    owners: HashMap<VsKey, Owner>,
}

impl Names {
    /// The names for `model`, on the node `node_name` (or the model's Node when `None`),
    /// with the node's addresses taken from its Node object as the daemon does.
    pub(crate) fn new(model: &Model, node_name: Option<&str>) -> Names {
        let name = node_name
            .or_else(|| model.node().map(|n| n.name.as_str()))
            .unwrap_or_default();
        let node = NodeInfo::from_node(name, model.node(), &[]);
        let state = DesiredState::new(Config::default(), node, model);
        let owners = state
            .virtual_servers()
            .map(|vs| (vs.key, owner(model, &state, vs)))
            .collect();
        Names { owners }
    }

    /// The Service port of a virtual server.
    pub(crate) fn service(&self, vs: &VsKey) -> Option<&str> {
        self.owners.get(vs).map(|o| o.service.as_str())
    }

    /// The Pod of a real server of a virtual server.
    pub(crate) fn pod(&self, vs: &VsKey, real: SocketAddr) -> Option<&str> {
        self.owners.get(vs)?.pods.get(&real).map(String::as_str)
    }

    /// What a listing row names: its Service port or its Pod.
    pub(crate) fn of_row(&self, row: &RowKey) -> Option<&str> {
        match row {
            RowKey::Service(key) => self.service(&vs_key(key)?),
            RowKey::Destination(key, addr, port) => {
                self.pod(&vs_key(key)?, SocketAddr::new(*addr, *port))
            }
        }
    }
}

fn owner(model: &Model, state: &DesiredState, vs: &VirtualServer) -> Owner {
    let pods = endpoints::pods(model, vs, &state.node().name)
        .into_iter()
        .map(|(endpoint, pod)| (endpoint, pod.to_string()))
        .collect();
    Owner {
        service: vs.service.to_string(),
        pods,
    }
}

/// The desired state's key of a kernel service; fwmark services have none.
pub(crate) fn vs_key(key: &ipvs::ServiceKey) -> Option<VsKey> {
    match *key {
        ipvs::ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => Some(VsKey {
            protocol: match protocol {
                ipvs::Protocol::Tcp => Protocol::Tcp,
                ipvs::Protocol::Udp => Protocol::Udp,
                ipvs::Protocol::Sctp => Protocol::Sctp,
            },
            addr,
            port,
        }),
        ipvs::ServiceKey::Fwmark { .. } => None,
    }
}

/// The key of a connection's virtual service, from the protocol name the
/// kernel prints (`TCP`, `UDP`, `SCTP`; others have no Service).
pub(crate) fn conn_vs_key(protocol: &str, vip: SocketAddr) -> Option<VsKey> {
    let protocol = Protocol::ALL
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(protocol))?;
    Some(VsKey {
        protocol,
        addr: vip.ip(),
        port: vip.port(),
    })
}

/// A cell of a name column: the name, or `-`.
pub(crate) fn cell(name: Option<&str>) -> &str {
    name.unwrap_or("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::names;

    fn vs(protocol: Protocol, addr: &str) -> VsKey {
        let addr: SocketAddr = addr.parse().unwrap();
        VsKey {
            protocol,
            addr: addr.ip(),
            port: addr.port(),
        }
    }

    #[test]
    fn virtual_servers_are_named_by_their_service_port() {
        let n = names();
        let service = |p, a| n.service(&vs(p, a));
        assert_eq!(
            service(Protocol::Tcp, "10.96.0.10:80"),
            Some("shop/web:http")
        );
        assert_eq!(
            service(Protocol::Tcp, "10.96.0.10:9100"),
            Some("shop/web:metrics")
        );
        // The only port, unnamed: kube-proxy's name has no port part.
        assert_eq!(service(Protocol::Tcp, "10.96.0.20:8080"), Some("shop/cart"));
        // A NodePort on the Node object's InternalIP.
        assert_eq!(
            service(Protocol::Tcp, "192.168.50.2:30080"),
            Some("shop/cart")
        );
        assert_eq!(
            service(Protocol::Udp, "10.96.0.53:53"),
            Some("kube-system/kube-dns:dns")
        );
        assert_eq!(
            service(Protocol::Tcp, "10.96.0.53:53"),
            Some("kube-system/kube-dns:dns-tcp")
        );
        // Unknown: another address, a protocol the port does not have, a
        // NodePort on an address that is not the node's.
        assert_eq!(service(Protocol::Tcp, "10.0.0.1:80"), None);
        assert_eq!(service(Protocol::Udp, "10.96.0.10:80"), None);
        assert_eq!(service(Protocol::Tcp, "192.168.50.3:30080"), None);
        let fwmark = ipvs::ServiceKey::fwmark(ipvs::AddressFamily::Inet, 7).unwrap();
        assert_eq!(n.of_row(&RowKey::Service(fwmark)), None);
    }

    #[test]
    fn real_servers_are_named_by_their_pod() {
        let n = names();
        let web = vs(Protocol::Tcp, "10.96.0.10:80");
        let pod = |vs: &VsKey, real: &str| n.pod(vs, real.parse().unwrap());
        // targetRef without a namespace: the slice's.
        assert_eq!(pod(&web, "10.244.1.5:8080"), Some("shop/web-7d4b9-abcde"));
        assert_eq!(pod(&web, "10.244.2.6:8080"), Some("shop/web-7d4b9-fghij"));
        // An endpoint without targetRef, and an address no endpoint has.
        assert_eq!(pod(&web, "10.244.3.7:8080"), None);
        assert_eq!(pod(&web, "10.244.9.9:8080"), None);
        // The port must be the endpoint port of that Service port.
        assert_eq!(pod(&web, "10.244.1.5:9100"), None);
        let metrics = vs(Protocol::Tcp, "10.96.0.10:9100");
        assert_eq!(
            pod(&metrics, "10.244.1.5:9100"),
            Some("shop/web-7d4b9-abcde")
        );
        // The NodePort's real servers, and a pod under a virtual server no
        // Service owns.
        let node_port = vs(Protocol::Tcp, "192.168.50.2:30080");
        assert_eq!(pod(&node_port, "10.244.1.9:8080"), Some("shop/cart-0"));
        assert_eq!(
            pod(&vs(Protocol::Tcp, "10.0.0.1:80"), "10.244.1.5:8080"),
            None
        );
    }

    #[test]
    fn connections_name_their_service_by_protocol() {
        let vip: SocketAddr = "10.96.0.53:53".parse().unwrap();
        assert_eq!(
            conn_vs_key("UDP", vip),
            Some(vs(Protocol::Udp, "10.96.0.53:53"))
        );
        assert_eq!(
            conn_vs_key("SCTP", vip),
            Some(vs(Protocol::Sctp, "10.96.0.53:53"))
        );
        assert_eq!(conn_vs_key("ICMP", vip), None);
    }
}
