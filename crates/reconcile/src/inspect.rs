//! What the kernel holds of one Service against what it should (`explain --live`): missing,
//! extra and different virtual and real servers, VIPs not bound to `kube-ipvs0`, and ipset
//! entries missing. Read-only and pure: the caller reads the kernel.

use std::collections::BTreeSet;
use std::net::IpAddr;

use desired::explain::Explanation;
use ipset::{Contents, ListedSet};
use ipvs::ServiceWithDestinations;
use serde::Serialize;

use crate::ipsets::entry;
use crate::ipvs::same_service;
use crate::wanted::service;

/// What the kernel holds, as read for one Service.
#[derive(Debug, Clone, Copy)]
pub struct Kernel<'a> {
    /// The Service's virtual servers the kernel has, with their real servers.
    pub virtual_servers: &'a [ServiceWithDestinations],
    /// The addresses bound to `kube-ipvs0`.
    pub bound: &'a BTreeSet<IpAddr>,
    /// Every ipset.
    pub sets: &'a [ListedSet],
}

/// One way the kernel differs from the desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Difference {
    /// A virtual server is not in the kernel.
    #[serde(rename_all = "camelCase")]
    MissingVirtualServer {
        /// `protocol address:port`.
        virtual_server: String,
    },
    /// A virtual server has other attributes (scheduler, flags, persistence).
    #[serde(rename_all = "camelCase")]
    VirtualServerAttributes {
        /// `protocol address:port`.
        virtual_server: String,
        /// As wanted.
        wanted: String,
        /// As the kernel has it.
        kernel: String,
    },
    /// A real server is not in the kernel.
    #[serde(rename_all = "camelCase")]
    MissingRealServer {
        /// `protocol address:port`.
        virtual_server: String,
        /// `address:port`.
        real_server: String,
    },
    /// The kernel has a real server that is not wanted (weight 0: being drained).
    #[serde(rename_all = "camelCase")]
    ExtraRealServer {
        /// `protocol address:port`.
        virtual_server: String,
        /// `address:port`.
        real_server: String,
        /// Its weight in the kernel.
        weight: u32,
    },
    /// A real server has another weight.
    #[serde(rename_all = "camelCase")]
    RealServerWeight {
        /// `protocol address:port`.
        virtual_server: String,
        /// `address:port`.
        real_server: String,
        /// As wanted.
        wanted: u32,
        /// As the kernel has it.
        kernel: u32,
    },
    /// A VIP is not bound to `kube-ipvs0`.
    UnboundAddress {
        /// The address.
        address: IpAddr,
    },
    /// An ipset entry is missing (or its set is).
    MissingSetEntry {
        /// The set's name.
        set: String,
        /// The entry as `ipset save` prints it.
        entry: String,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::MissingVirtualServer { virtual_server } => {
                write!(f, "virtual server {virtual_server} missing")
            }
            Difference::VirtualServerAttributes {
                virtual_server,
                wanted,
                kernel,
            } => write!(
                f,
                "virtual server {virtual_server}: kernel has {kernel}, wanted {wanted}"
            ),
            Difference::MissingRealServer {
                virtual_server,
                real_server,
            } => write!(
                f,
                "virtual server {virtual_server}: real server {real_server} missing"
            ),
            Difference::ExtraRealServer {
                virtual_server,
                real_server,
                weight,
            } => write!(
                f,
                "virtual server {virtual_server}: extra real server {real_server} (weight {weight}{})",
                if *weight == 0 { ", draining" } else { "" }
            ),
            Difference::RealServerWeight {
                virtual_server,
                real_server,
                wanted,
                kernel,
            } => write!(
                f,
                "virtual server {virtual_server}: real server {real_server} has weight {kernel}, wanted {wanted}"
            ),
            Difference::UnboundAddress { address } => {
                write!(f, "{address} not bound to kube-ipvs0")
            }
            Difference::MissingSetEntry { set, entry } => {
                write!(f, "ipset {set}: entry {entry} missing")
            }
        }
    }
}

/// The virtual servers `explanation` wants this Service to have (not those another Service
/// has the address of).
pub fn wanted_keys(explanation: &Explanation) -> Vec<ipvs::ServiceKey> {
    wanted(explanation)
        .map(|vs| service(vs).service.key)
        .collect()
}

fn wanted(explanation: &Explanation) -> impl Iterator<Item = &desired::VirtualServer> {
    (explanation.families.iter())
        .flat_map(|f| &f.ports)
        .flat_map(|p| &p.virtual_servers)
        .filter(|v| v.lost_to.is_none())
        .map(|v| &v.virtual_server)
}

/// Every difference between `explanation`'s desired state and `kernel`.
pub fn differences(explanation: &Explanation, kernel: Kernel<'_>) -> Vec<Difference> {
    let mut found = Vec::new();
    for vs in wanted(explanation) {
        compare_virtual_server(vs, kernel.virtual_servers, &mut found);
    }
    let ports = (explanation.families.iter()).flat_map(|f| &f.ports);
    let mut bound = BTreeSet::new();
    let mut entries = Vec::new();
    for port in ports {
        bound.extend(port.bound_addresses.iter().copied());
        entries.extend(port.ipsets.iter());
    }
    found.extend(
        (bound.into_iter())
            .filter(|a| !kernel.bound.contains(a))
            .map(|address| Difference::UnboundAddress { address }),
    );
    for e in entries {
        let name = e.set();
        let present = kernel.sets.iter().any(|s| {
            s.name.as_str() == name
                && matches!(&s.contents, Contents::Known { members, .. }
                    if members.iter().any(|m| m.entry == entry(&e.entry)))
        });
        if !present {
            found.push(Difference::MissingSetEntry {
                set: name,
                entry: e.entry.to_string(),
            });
        }
    }
    found
}

fn compare_virtual_server(
    vs: &desired::VirtualServer,
    observed: &[ServiceWithDestinations],
    found: &mut Vec<Difference>,
) {
    let want = service(vs);
    let name = vs.key.to_string();
    let Some(have) = observed
        .iter()
        .find(|o| o.service.service.key == want.service.key)
    else {
        found.push(Difference::MissingVirtualServer {
            virtual_server: name,
        });
        return;
    };
    if !same_service(&want.service, &have.service.service) {
        found.push(Difference::VirtualServerAttributes {
            virtual_server: name.clone(),
            wanted: attributes(&want.service),
            kernel: attributes(&have.service.service),
        });
    }
    let real = |addr: IpAddr, port: u16| std::net::SocketAddr::new(addr, port).to_string();
    for w in &want.destinations {
        match have
            .destinations
            .iter()
            .find(|h| (h.destination.addr, h.destination.port) == (w.addr, w.port))
        {
            None => found.push(Difference::MissingRealServer {
                virtual_server: name.clone(),
                real_server: real(w.addr, w.port),
            }),
            Some(h) if h.destination.weight != w.weight => {
                found.push(Difference::RealServerWeight {
                    virtual_server: name.clone(),
                    real_server: real(w.addr, w.port),
                    wanted: w.weight,
                    kernel: h.destination.weight,
                });
            }
            Some(_) => {}
        }
    }
    for h in &have.destinations {
        let d = &h.destination;
        if !want.destinations.contains(d.addr, d.port) {
            found.push(Difference::ExtraRealServer {
                virtual_server: name.clone(),
                real_server: real(d.addr, d.port),
                weight: d.weight,
            });
        }
    }
}

/// A virtual server's attributes as ipvsadm's options spell them.
fn attributes(s: &ipvs::Service) -> String {
    let mut text = format!("-s {}", s.scheduler);
    if let Some(p) = &s.persistence {
        text.push_str(&format!(" -p {} -M {}", p.timeout, p.prefix_len));
    }
    if !s.flags.is_empty() {
        text.push_str(&format!(" flags {:#x}", s.flags.bits()));
    }
    if let Some(pe) = &s.persistence_engine {
        text.push_str(&format!(" --pe {pe}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{dest, entry as conn, have, ip, key};
    use desired::{Config, NodeInfo, SetEntry, SetKind};
    use ipset::Member;
    use ipvs::Protocol;
    use model::source::dir;
    use model::{IpFamily, Model, ObjectId, ProxyFilter};

    /// `default/web` (cluster IP 10.96.0.20:80, `rr`) with endpoints 10.244.1.5 and
    /// 10.244.2.6 on node `n1`, explained.
    fn explanation() -> Explanation {
        let yaml = r#"
apiVersion: v1
kind: Node
metadata: {name: n1}
status: {addresses: [{type: InternalIP, address: 192.168.1.10}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.20
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.244.1.5]
- addresses: [10.244.2.6]
"#;
        let mut snapshot = dir::Snapshot::default();
        dir::parse(std::path::Path::new("web.yaml"), yaml, &mut snapshot).expect("YAML");
        let id = ObjectId::new("default", "web");
        let admission = model::admit(
            snapshot.service(&id).expect("the Service"),
            &ProxyFilter::default(),
        );
        let mut model = Model::new(ProxyFilter::default(), None);
        for event in snapshot.into_events() {
            model.apply(event);
        }
        let node = NodeInfo::from_node("n1", model.node(), &[]);
        desired::explain::of_model(&id, &admission, &model, node, Config::default())
    }

    fn listed(kind: SetKind, entries: &[SetEntry]) -> ListedSet {
        ListedSet {
            name: crate::ipsets::set_name(kind, IpFamily::V4),
            references: 1,
            contents: Contents::Known {
                spec: crate::ipsets::spec(kind, IpFamily::V4),
                members: entries.iter().map(|e| Member::new(entry(e))).collect(),
            },
        }
    }

    #[test]
    fn each_kind_of_difference_is_found_and_nothing_else() {
        let x = explanation();
        let vip = key(Protocol::Tcp, "10.96.0.20", 80);
        assert_eq!(wanted_keys(&x), [vip]);
        let sets = [
            listed(
                SetKind::ClusterIp,
                &[SetEntry::IpPort(ip("10.96.0.20"), model::Protocol::Tcp, 80)],
            ),
            listed(SetKind::IpvsIps, &[SetEntry::Ip(ip("10.96.0.20"))]),
        ];
        let bound = BTreeSet::from([ip("10.96.0.20")]);
        // As wanted: no difference.
        let right = [have(
            vip,
            "rr",
            vec![
                conn(dest("10.244.1.5", 8080, 1), 0, 0),
                conn(dest("10.244.2.6", 8080, 1), 0, 0),
            ],
        )];
        let kernel = Kernel {
            virtual_servers: &right,
            bound: &bound,
            sets: &sets,
        };
        assert_eq!(differences(&x, kernel), []);

        // Another scheduler, one real server gone, one at weight 0, one extra; the VIP
        // unbound and its sets empty.
        let wrong = [have(
            vip,
            "wlc",
            vec![
                conn(dest("10.244.1.5", 8080, 0), 0, 0),
                conn(dest("10.244.9.9", 8080, 1), 0, 0),
            ],
        )];
        let vs = || "tcp 10.96.0.20:80".to_owned();
        let found = differences(
            &x,
            Kernel {
                virtual_servers: &wrong,
                bound: &BTreeSet::new(),
                sets: &[],
            },
        );
        assert_eq!(
            found,
            [
                Difference::VirtualServerAttributes {
                    virtual_server: vs(),
                    wanted: "-s rr".into(),
                    kernel: "-s wlc".into(),
                },
                Difference::RealServerWeight {
                    virtual_server: vs(),
                    real_server: "10.244.1.5:8080".into(),
                    wanted: 1,
                    kernel: 0,
                },
                Difference::MissingRealServer {
                    virtual_server: vs(),
                    real_server: "10.244.2.6:8080".into(),
                },
                Difference::ExtraRealServer {
                    virtual_server: vs(),
                    real_server: "10.244.9.9:8080".into(),
                    weight: 1,
                },
                Difference::UnboundAddress {
                    address: ip("10.96.0.20"),
                },
                Difference::MissingSetEntry {
                    set: "KUBE-CLUSTER-IP".into(),
                    entry: "10.96.0.20,tcp:80".into(),
                },
                Difference::MissingSetEntry {
                    set: "KUBE-IPVS-IPS".into(),
                    entry: "10.96.0.20".into(),
                },
            ]
        );
        let gone = differences(
            &x,
            Kernel {
                virtual_servers: &[],
                bound: &bound,
                sets: &sets,
            },
        );
        assert_eq!(
            gone,
            [Difference::MissingVirtualServer {
                virtual_server: vs()
            }]
        );
    }
}
