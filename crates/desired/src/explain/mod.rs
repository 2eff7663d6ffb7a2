//! Why a Service does or does not reach an endpoint: for each family and port, the virtual
//! servers with their real servers, every endpoint left out with kube-proxy's reason, and the
//! ipset entries and filter rules that admit or drop traffic.
//!
//! Nothing is decided twice: the virtual servers and their real servers are [`plan::port_plan`]'s
//! (the daemon's own computation), and the reasons read the same [`endpoints::categorize`]
//! the selection used. [`text`] renders an explanation for people; its JSON (serde) is the
//! stable shape documented in `docs/operations.md`.

pub mod text;

use std::net::IpAddr;

use model::{
    Admission, EndpointSlice, IpFamily, Model, NotProxied, ObjectId, Protocol, Rejection, Service,
    ServicePort, Unproxied,
};
use serde::Serialize;

use crate::endpoints::{self, Categories, Policy, PortEndpoint, TopologyMode};
use crate::ipset::{SetEntry, SetKind};
use crate::ipvs::VirtualServer;
use crate::plan::{self, OutFilterDrop};
use crate::state::DesiredState;

/// The whole answer for one Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// `namespace/name`.
    #[serde(serialize_with = "as_text")]
    pub service: ObjectId,
    /// This node's name, which decides which endpoints are local.
    pub node: String,
    /// This node's zone, for topology hints.
    pub zone: Option<String>,
    /// Why the Service is not proxied at all; `None` when it is.
    pub not_proxied: Option<Skipped>,
    /// Values replaced by a default (`field: message`).
    pub defaults_used: Vec<String>,
    /// Load balancer ingress IPs left to the load balancer (`ipMode: Proxy`).
    pub proxy_mode_ingress: Vec<String>,
    /// Per address family.
    pub families: Vec<FamilyExplanation>,
}

fn as_text<S: serde::Serializer>(id: &ObjectId, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(id)
}

/// A Service-level reason, as a stable code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// `externalName`, `headless`, `noClusterIP`, `headlessLabel`, `otherProxy`, `invalid`.
    pub reason: &'static str,
    /// The field at fault, for `invalid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The sentence.
    pub message: String,
}

impl Skipped {
    fn of(why: &NotProxied) -> Skipped {
        let (reason, field) = match why {
            NotProxied::Spec(Unproxied::ExternalName) => ("externalName", None),
            NotProxied::Spec(Unproxied::Headless) => ("headless", None),
            NotProxied::Spec(Unproxied::NoClusterIp) => ("noClusterIP", None),
            NotProxied::Label(Rejection::Headless) => ("headlessLabel", None),
            NotProxied::Label(Rejection::OtherProxy(_)) => ("otherProxy", None),
            NotProxied::Invalid(i) => ("invalid", Some(i.field.clone())),
        };
        Skipped {
            reason,
            field,
            message: why.to_string(),
        }
    }
}

/// One address family of the Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FamilyExplanation {
    /// The family.
    pub family: IpFamily,
    /// The Service's cluster IP in it.
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<IpAddr>,
    /// Why nothing is programmed in this family; `None` when it is proxied.
    pub not_proxied: Option<String>,
    /// The endpoints of this family's slices, unused when the family is not proxied.
    pub unused_endpoints: Vec<IpAddr>,
    /// Per Service port, when proxied.
    pub ports: Vec<PortExplanation>,
}

/// One Service port in one family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortExplanation {
    /// The port's name.
    pub name: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// Its port.
    pub port: u16,
    /// Its node port.
    pub node_port: Option<u16>,
    /// `Cluster` or `Local`.
    pub internal_traffic_policy: &'static str,
    /// `Cluster` or `Local`; `None` when nothing external reaches the port.
    pub external_traffic_policy: Option<&'static str>,
    /// The topology mode its cluster endpoints were chosen with.
    pub topology: TopologyMode,
    /// Its virtual servers and their real servers.
    pub virtual_servers: Vec<VirtualServerExplanation>,
    /// Its endpoints in this family, and which virtual servers use each.
    pub endpoints: Vec<EndpointExplanation>,
    /// Slices of this family without a port matching this one by name and protocol.
    pub unmatched_slices: Vec<UnmatchedSlice>,
    /// The node addresses its node port listens on.
    pub node_port_addresses: Vec<IpAddr>,
    /// The addresses it binds to `kube-ipvs0`.
    pub bound_addresses: Vec<IpAddr>,
    /// Its ipset entries.
    pub ipsets: Vec<IpsetEntry>,
    /// Load balancer VIPs the node itself may not reach (`KUBE-IPVS-OUT-FILTER` drops).
    pub out_filter_drops: Vec<OutFilterDrop>,
    /// Remarks on the choice of real servers (fallbacks, none at all).
    pub notes: Vec<String>,
}

/// What a virtual server's address is to the Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// The cluster IP: internal traffic.
    #[serde(rename = "clusterIP")]
    ClusterIp,
    /// One of `spec.externalIPs`.
    #[serde(rename = "externalIP")]
    ExternalIp,
    /// A load balancer ingress IP.
    #[serde(rename = "loadBalancerIP")]
    LoadBalancerIp,
    /// A node address with the node port.
    NodePort,
}

impl Role {
    /// Whether external traffic (and its policy) uses it.
    pub fn external(self) -> bool {
        self != Role::ClusterIp
    }
}

/// One virtual server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServerExplanation {
    /// What its address is.
    pub role: Role,
    /// It, as the daemon programs it.
    #[serde(flatten)]
    pub virtual_server: VirtualServer,
    /// When another Service has this address: who, and why.
    pub lost_to: Option<String>,
}

/// Whether an endpoint is a real server of some virtual servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Use {
    /// It is a real server of them.
    RealServer,
    /// It is not, for this reason.
    Excluded(Exclusion),
}

/// Why an endpoint is not a real server, in kube-proxy's terms (`CategorizeEndpoints`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Exclusion {
    /// Not ready, and not serving while terminating.
    NotReady,
    /// Serving and terminating: used only when no endpoint is ready (`cluster`: none in the
    /// cluster; `node`: none on this node), and there are.
    TerminatingWhileReady {
        /// `cluster` or `node`.
        among: &'static str,
    },
    /// On another node, and the traffic policy is `Local`.
    OtherNode {
        /// The node it is on.
        node: Option<String>,
        /// `internalTrafficPolicy` or `externalTrafficPolicy`.
        policy: &'static str,
    },
    /// Topology hints for other zones (`PreferSameZone`).
    TopologyZone {
        /// The zones it is hinted for.
        hints: Vec<String>,
        /// This node's zone.
        zone: Option<String>,
    },
    /// Topology hints for other nodes (`PreferSameNode`).
    TopologyNode {
        /// The nodes it is hinted for.
        hints: Vec<String>,
    },
}

/// One endpoint of the port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointExplanation {
    /// Its address.
    pub address: IpAddr,
    /// Its port.
    pub port: u16,
    /// The Pod behind it.
    pub pod: Option<String>,
    /// The node it is on.
    pub node: Option<String>,
    /// Its conditions.
    pub ready: bool,
    /// Its conditions.
    pub serving: bool,
    /// Its conditions.
    pub terminating: bool,
    /// For the cluster IP's virtual server.
    pub internal: Use,
    /// For the external, load balancer and node port virtual servers, if any.
    pub external: Option<Use>,
}

/// A slice whose endpoints the port cannot use: no slice port has its name and protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnmatchedSlice {
    /// The slice's name.
    pub slice: String,
    /// Its ports, as `name/PROTOCOL:port` (`""` for an unnamed one).
    pub ports: Vec<String>,
    /// Its endpoints' addresses.
    pub endpoints: Vec<IpAddr>,
}

/// One ipset entry the port contributes; serialized as `{"set", "entry", "purpose"}`: the
/// set's name, the entry as `ipset save` prints it, and kube-proxy's comment on the set's
/// rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsetEntry {
    /// The family of the set.
    pub family: IpFamily,
    /// The set.
    pub kind: SetKind,
    /// The entry.
    pub entry: SetEntry,
}

impl IpsetEntry {
    /// The set's name.
    pub fn set(&self) -> String {
        self.kind.name(self.family)
    }
}

impl Serialize for IpsetEntry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut s = serializer.serialize_struct("IpsetEntry", 3)?;
        s.serialize_field("set", &self.set())?;
        s.serialize_field("entry", &self.entry.to_string())?;
        s.serialize_field("purpose", self.kind.comment())?;
        s.end()
    }
}

/// Explains the Service `id`: `admission` is what [`model::admit`] made of its raw object
/// (`None`: no such Service), `slices` its EndpointSlices and `state` the desired state of
/// the whole cluster (its node, configuration and address claims).
pub fn explain(
    id: &ObjectId,
    admission: &Admission,
    slices: &[&EndpointSlice],
    state: &DesiredState,
) -> Explanation {
    let node = state.node();
    let mut explanation = Explanation {
        service: id.clone(),
        node: node.name.clone(),
        zone: node.zone.clone(),
        not_proxied: None,
        defaults_used: admission
            .defaults_used
            .iter()
            .map(ToString::to_string)
            .collect(),
        proxy_mode_ingress: admission.proxy_mode_ingress.clone(),
        families: Vec::new(),
    };
    match &admission.service {
        Err(why) => explanation.not_proxied = Some(Skipped::of(why)),
        Ok(svc) => {
            explanation.families = IpFamily::ALL
                .into_iter()
                .filter_map(|family| explain_family(svc, slices, state, family))
                .collect();
        }
    }
    explanation
}

/// [`explain`] over a whole model, as the daemon would see it with this node and
/// configuration.
pub fn of_model(
    id: &ObjectId,
    admission: &Admission,
    model: &Model,
    node: crate::NodeInfo,
    config: crate::Config,
) -> Explanation {
    let state = DesiredState::new(config, node, model);
    let slices: Vec<&EndpointSlice> = model.slices_of(id).map(AsRef::as_ref).collect();
    explain(id, admission, &slices, &state)
}

fn explain_family(
    svc: &Service,
    slices: &[&EndpointSlice],
    state: &DesiredState,
    family: IpFamily,
) -> Option<FamilyExplanation> {
    let cluster_ip = svc.cluster_ip(family);
    let of_family: Vec<&EndpointSlice> = slices
        .iter()
        .copied()
        .filter(|s| s.family == family)
        .collect();
    if cluster_ip.is_none() && of_family.is_empty() {
        return None;
    }
    let not_proxied = match cluster_ip {
        None => Some(format!("the Service has no {family} cluster IP")),
        Some(_) if !state.node().families().contains(&family) => Some(format!(
            "this node has no {family} address: kube-proxy runs no {family} proxier here"
        )),
        Some(_) => None,
    };
    let (unused_endpoints, ports) = if not_proxied.is_some() {
        let mut unused: Vec<IpAddr> = of_family
            .iter()
            .flat_map(|s| s.endpoints.iter().map(|e| e.addr))
            .collect();
        unused.sort();
        unused.dedup();
        (unused, Vec::new())
    } else {
        let ports = svc
            .ports
            .iter()
            .filter_map(|port| explain_port(svc, &of_family, state, family, port))
            .collect();
        (Vec::new(), ports)
    };
    Some(FamilyExplanation {
        family,
        cluster_ip,
        not_proxied,
        unused_endpoints,
        ports,
    })
}

fn policy_name(local: bool) -> &'static str {
    if local { "Local" } else { "Cluster" }
}

fn explain_port(
    svc: &Service,
    slices: &[&EndpointSlice],
    state: &DesiredState,
    family: IpFamily,
    port: &ServicePort,
) -> Option<PortExplanation> {
    let node = state.node();
    let planned = plan::port_plan(svc, slices, node, state.config(), family, port)?;
    let categories = endpoints::categorize(
        &planned.endpoints,
        planned.policy,
        &node.name,
        node.zone.as_deref(),
    );
    let virtual_servers: Vec<VirtualServerExplanation> = planned
        .plan
        .virtual_servers
        .iter()
        .map(|vs| VirtualServerExplanation {
            role: role(svc, vs, port),
            virtual_server: vs.clone(),
            lost_to: lost_to(state, &svc.id, vs),
        })
        .collect();
    let member = |v: &VirtualServerExplanation, e: &PortEndpoint<'_>| {
        (v.virtual_server.real_servers.iter()).any(|rs| rs.addr == e.addr && rs.port == e.port)
    };
    let has_external = virtual_servers.iter().any(|v| v.role.external());
    let judge = |external: bool, e: &PortEndpoint<'_>| {
        let used = (virtual_servers.iter())
            .filter(|v| v.role.external() == external)
            .any(|v| member(v, e));
        if used {
            Use::RealServer
        } else {
            Use::Excluded(exclusion(e, external, planned.policy, &categories, node))
        }
    };
    let endpoints = planned
        .endpoints
        .iter()
        .map(|e| EndpointExplanation {
            address: e.addr,
            port: e.port,
            pod: e.pod.map(|p| p.to_string()),
            node: e.node.map(str::to_owned),
            ready: e.ready,
            serving: e.serving,
            terminating: e.terminating,
            internal: judge(false, e),
            external: has_external.then(|| judge(true, e)),
        })
        .collect();
    Some(PortExplanation {
        name: port.name.clone(),
        protocol: port.protocol,
        port: port.port,
        node_port: port.node_port,
        internal_traffic_policy: policy_name(planned.policy.internal_local),
        external_traffic_policy: planned
            .policy
            .externally_accessible
            .then_some(policy_name(planned.policy.external_local)),
        topology: categories.topology,
        notes: notes(planned.policy, &categories),
        virtual_servers,
        endpoints,
        unmatched_slices: unmatched(slices, port, &planned.endpoints),
        node_port_addresses: if port.node_port.is_some() {
            planned.node_port_ips.clone()
        } else {
            Vec::new()
        },
        bound_addresses: planned.plan.addresses.clone(),
        ipsets: planned
            .plan
            .entries
            .iter()
            .map(|(family, kind, entry)| IpsetEntry {
                family: *family,
                kind: *kind,
                entry: entry.clone(),
            })
            .collect(),
        out_filter_drops: planned.plan.out_filter.clone(),
    })
}

/// What `vs`'s address is to `svc`.
fn role(svc: &Service, vs: &VirtualServer, port: &ServicePort) -> Role {
    let addr = vs.key.addr;
    if svc.cluster_ips.contains(&addr) {
        Role::ClusterIp
    } else if svc.external_ips.contains(&addr) && vs.key.port == port.port {
        Role::ExternalIp
    } else if svc.load_balancer_ips.contains(&addr) && vs.key.port == port.port {
        Role::LoadBalancerIp
    } else {
        Role::NodePort
    }
}

/// Who has `vs`'s address instead of `id`, and why ([`crate::claims`]).
fn lost_to(state: &DesiredState, id: &ObjectId, vs: &VirtualServer) -> Option<String> {
    let conflict = state.conflicts().find(|c| *c.key == vs.key)?;
    let loser = conflict.losers.iter().find(|l| l.service == *id)?;
    Some(conflict.note(loser))
}

/// Why `e` is not a real server of the internal (`external == false`) or external virtual
/// servers: read from the categories kube-proxy's `CategorizeEndpoints` made, in the order
/// its IPVS `syncEndpoint` picks between them.
fn exclusion(
    e: &PortEndpoint<'_>,
    external: bool,
    policy: Policy,
    categories: &Categories<'_, '_>,
    node: &crate::NodeInfo,
) -> Exclusion {
    let (local_policy, name) = if external {
        (policy.external_local, "externalTrafficPolicy")
    } else {
        (policy.internal_local, "internalTrafficPolicy")
    };
    // With a Local policy the local endpoints are used, unless there are none and the
    // cluster endpoints are there to fall back to (kubernetes PR #97081).
    let only_local =
        local_policy && (!categories.local.is_empty() || categories.cluster.is_empty());
    if only_local && !e.local {
        return Exclusion::OtherNode {
            node: e.node.map(str::to_owned),
            policy: name,
        };
    }
    if !(e.ready || (e.serving && e.terminating)) {
        return Exclusion::NotReady;
    }
    if !e.ready {
        return Exclusion::TerminatingWhileReady {
            among: if only_local { "node" } else { "cluster" },
        };
    }
    // A ready endpoint is left out of the cluster endpoints only by topology.
    match categories.topology {
        TopologyMode::PreferSameNode => Exclusion::TopologyNode {
            hints: e.node_hints.to_vec(),
        },
        TopologyMode::PreferSameZone | TopologyMode::None => Exclusion::TopologyZone {
            hints: e.zone_hints.to_vec(),
            zone: node.zone.clone(),
        },
    }
}

/// Remarks on the choice: a Local policy without local endpoints.
fn notes(policy: Policy, categories: &Categories<'_, '_>) -> Vec<String> {
    let mut notes = Vec::new();
    let mut local = |on: bool, name: &str, what: &str| {
        if on && categories.local.is_empty() {
            notes.push(if categories.cluster.is_empty() {
                format!(
                    "{name}: Local and no usable endpoint on this node: {what} has no real server"
                )
            } else {
                format!(
                    "{name}: Local but no usable endpoint on this node: {what} falls back to the \
                     cluster endpoints, as kube-proxy's IPVS mode does (kubernetes PR #97081)"
                )
            });
        }
    };
    local(
        policy.internal_local,
        "internalTrafficPolicy",
        "the cluster IP",
    );
    local(
        policy.external_local && policy.externally_accessible,
        "externalTrafficPolicy",
        "external traffic",
    );
    if !categories.has_any {
        notes.push("no ready or serving-terminating endpoint anywhere".to_owned());
    }
    notes
}

/// The slices that have no port matching `port` by name and protocol, with the endpoints
/// the port therefore does not get from them.
fn unmatched(
    slices: &[&EndpointSlice],
    port: &ServicePort,
    used: &[PortEndpoint<'_>],
) -> Vec<UnmatchedSlice> {
    slices
        .iter()
        .filter(|s| {
            !s.ports
                .iter()
                .any(|p| p.name == port.name && p.protocol == port.protocol)
        })
        .map(|s| UnmatchedSlice {
            slice: s.id.name.to_string(),
            ports: s
                .ports
                .iter()
                .map(|p| format!("{:?}/{}:{}", p.name, p.protocol, p.port))
                .collect(),
            endpoints: s
                .endpoints
                .iter()
                .map(|e| e.addr)
                .filter(|a| !used.iter().any(|u| u.addr == *a))
                .collect(),
        })
        .collect()
}
