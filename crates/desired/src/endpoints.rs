//! Which endpoints of a Service port become real servers: kube-proxy's
//! `CategorizeEndpoints` (readiness, terminating fallback, topology hints, traffic policies).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use model::{EndpointSlice, IpFamily, Model, Service, ServicePort};

use crate::VirtualServer;

/// One endpoint of one Service port, merged over the Service's slices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortEndpoint<'a> {
    /// Address.
    pub addr: IpAddr,
    /// Port (from the slice port matching the Service port).
    pub port: u16,
    /// Ready.
    pub ready: bool,
    /// Serving.
    pub serving: bool,
    /// Terminating.
    pub terminating: bool,
    /// On this node.
    pub local: bool,
    /// The node it is on, when the slice says.
    pub node: Option<&'a str>,
    /// Zone hints.
    pub zone_hints: &'a [String],
    /// Node hints.
    pub node_hints: &'a [String],
    /// The Pod behind it, when the slice names one.
    pub pod: Option<PodName<'a>>,
}

/// The Pod behind an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodName<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
}

/// `namespace/name`.
impl fmt::Display for PodName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The Pod behind each endpoint of the Service port that `vs` implements, by address and
/// port, where its EndpointSlice names one (`targetRef` of kind Pod); none for a model that
/// keeps no Pods ([`model::Model::without_pods`]).
pub fn pods<'a>(
    model: &'a Model,
    vs: &VirtualServer,
    node_name: &str,
) -> HashMap<SocketAddr, PodName<'a>> {
    let name = &vs.service;
    let Some(port) = model.service(&name.service).and_then(|svc| {
        svc.ports
            .iter()
            .find(|p| p.name == name.port && p.protocol == vs.key.protocol)
    }) else {
        return HashMap::new();
    };
    let slices: Vec<&EndpointSlice> = model.slices_of(&name.service).map(AsRef::as_ref).collect();
    of_port(&slices, port, vs.key.family(), node_name)
        .into_iter()
        .filter_map(|e| Some((SocketAddr::new(e.addr, e.port), e.pod?)))
        .collect()
}

/// The endpoints of `port` in `family`: slice ports are matched by name and protocol; an
/// address:port listed by several slices counts once, a ready copy winning.
pub fn of_port<'a>(
    slices: &[&'a EndpointSlice],
    port: &ServicePort,
    family: IpFamily,
    node_name: &str,
) -> Vec<PortEndpoint<'a>> {
    let mut merged: BTreeMap<(IpAddr, u16), PortEndpoint<'a>> = BTreeMap::new();
    for slice in slices.iter().filter(|s| s.family == family) {
        let Some(slice_port) = slice
            .ports
            .iter()
            .find(|p| p.name == port.name && p.protocol == port.protocol)
        else {
            continue;
        };
        for ep in &slice.endpoints {
            let candidate = PortEndpoint {
                addr: ep.addr,
                port: slice_port.port,
                ready: ep.ready,
                serving: ep.serving,
                terminating: ep.terminating,
                local: ep.node_name.as_deref() == Some(node_name),
                node: ep.node_name.as_deref(),
                zone_hints: ep.zone_hints(),
                node_hints: ep.node_hints(),
                pod: ep.pod.as_ref().map(|p| PodName {
                    namespace: p.namespace(&slice.id.namespace),
                    name: p.name(),
                }),
            };
            merged
                .entry((ep.addr, slice_port.port))
                .and_modify(|existing| {
                    if candidate.ready && !existing.ready {
                        *existing = candidate.clone();
                    }
                })
                .or_insert(candidate);
        }
    }
    merged.into_values().collect()
}

/// A Service port's traffic policies, per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `externalTrafficPolicy: Local` (on an externally reachable Service).
    pub external_local: bool,
    /// Whether the port has a node port, load balancer IPs or external IPs in this family.
    pub externally_accessible: bool,
}

impl Policy {
    /// The policies of `port` of `svc` in `family`: externally accessible when the port has
    /// a node port, or the Service external or load balancer IPs of that family.
    pub fn of(svc: &Service, port: &ServicePort, family: IpFamily) -> Policy {
        let in_family = |ips: &[IpAddr]| ips.iter().any(|ip| IpFamily::of(ip) == family);
        Policy {
            internal_local: svc.internal_policy_local,
            external_local: svc.external_policy_local,
            externally_accessible: port.node_port.is_some()
                || in_family(&svc.external_ips)
                || in_family(&svc.load_balancer_ips),
        }
    }

    /// Whether any traffic goes to cluster-wide endpoints: internal traffic with `Cluster`
    /// policy, or external traffic at all (even `Local` external policy needs them for the
    /// short-circuit of pod and node traffic). kube-proxy's `UsesClusterEndpoints`.
    pub fn uses_cluster_endpoints(self) -> bool {
        !self.internal_local || self.externally_accessible
    }

    /// Whether any traffic goes to this node's endpoints only (kube-proxy's
    /// `UsesLocalEndpoints`).
    pub fn uses_local_endpoints(self) -> bool {
        self.internal_local || (self.external_local && self.externally_accessible)
    }
}

/// The real servers for the port's internal VIP (cluster IP) and external VIPs (external,
/// load balancer and node port addresses), sorted by address and port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// For the cluster IP.
    pub internal: Vec<(IpAddr, u16)>,
    /// For external IPs, load balancer IPs and node ports.
    pub external: Vec<(IpAddr, u16)>,
}

/// Chooses real servers as kube-proxy's IPVS `syncEndpoint` does.
pub fn select(
    endpoints: &[PortEndpoint<'_>],
    policy: Policy,
    node_name: &str,
    zone: Option<&str>,
) -> Selection {
    let Categories { cluster, local, .. } = categorize(endpoints, policy, node_name, zone);
    let pick = |only_local: bool| {
        let chosen = if only_local && !local.is_empty() {
            &local
        } else {
            // With no local endpoints kube-proxy falls back to the cluster endpoints
            // (kubernetes PR #97081), which are empty when the Service never uses them.
            &cluster
        };
        chosen.iter().map(|e| (e.addr, e.port)).collect()
    };
    Selection {
        internal: pick(policy.internal_local),
        external: pick(policy.external_local),
    }
}

/// The endpoints of a Service port by the traffic that may use them: kube-proxy's
/// `CategorizeEndpoints`, shared by the IPVS and iptables modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Categories<'e, 'a> {
    /// For `Cluster` traffic policy: the ready endpoints topology admits, else the serving
    /// terminating ones; empty when the port never uses cluster endpoints.
    pub cluster: Vec<&'e PortEndpoint<'a>>,
    /// For `Local` traffic policy: this node's ready endpoints, else its serving terminating
    /// ones; empty when the port never uses local endpoints.
    pub local: Vec<&'e PortEndpoint<'a>>,
    /// Whether the port has a usable (ready, or serving and terminating) endpoint anywhere.
    pub has_any: bool,
    /// The topology mode [`Categories::cluster`] was chosen with.
    pub topology: TopologyMode,
}

impl<'e, 'a> Categories<'e, 'a> {
    /// Every endpoint some traffic may reach (`allReachableEndpoints`): the union of
    /// [`Categories::cluster`] and [`Categories::local`], in endpoint order.
    pub fn all_reachable(&self) -> Vec<&'e PortEndpoint<'a>> {
        let mut all: Vec<&'e PortEndpoint<'a>> =
            self.cluster.iter().chain(&self.local).copied().collect();
        all.sort_by_key(|e| (e.addr, e.port));
        all.dedup_by_key(|e| (e.addr, e.port));
        all
    }
}

/// Sorts `endpoints` into [`Categories`] as kube-proxy's `CategorizeEndpoints` does.
pub fn categorize<'e, 'a>(
    endpoints: &'e [PortEndpoint<'a>],
    policy: Policy,
    node_name: &str,
    zone: Option<&str>,
) -> Categories<'e, 'a> {
    let mut cluster = Vec::new();
    let mut has_any = false;
    let mut topology = TopologyMode::None;
    if policy.uses_cluster_endpoints() {
        topology = topology_mode(endpoints, node_name, zone);
        let mode = topology;
        cluster = endpoints
            .iter()
            .filter(|e| e.ready && mode.admits(e, node_name, zone))
            .collect();
        if cluster.is_empty() {
            cluster = endpoints
                .iter()
                .filter(|e| e.serving && e.terminating)
                .collect();
        }
        has_any = !cluster.is_empty();
    }
    let mut local = Vec::new();
    if policy.uses_local_endpoints() {
        has_any |= endpoints
            .iter()
            .any(|e| e.ready || (e.serving && e.terminating));
        local = endpoints.iter().filter(|e| e.local && e.ready).collect();
        if local.is_empty() {
            local = endpoints
                .iter()
                .filter(|e| e.local && e.serving && e.terminating)
                .collect();
        }
    }
    Categories {
        cluster,
        local,
        has_any,
        topology,
    }
}

/// Topology-aware routing, from the hints the EndpointSlice controller wrote (kube-proxy's
/// `topologyModeFromHints`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum TopologyMode {
    /// Hints ignored: every ready endpoint is a cluster endpoint.
    None,
    /// Only ready endpoints hinted for this node.
    PreferSameNode,
    /// Only ready endpoints hinted for this node's zone.
    PreferSameZone,
}

impl TopologyMode {
    fn admits(self, e: &PortEndpoint<'_>, node_name: &str, zone: Option<&str>) -> bool {
        match self {
            TopologyMode::None => true,
            TopologyMode::PreferSameNode => e.node_hints.iter().any(|n| n == node_name),
            TopologyMode::PreferSameZone => e.zone_hints.iter().any(|z| Some(z.as_str()) == zone),
        }
    }
}

/// kube-proxy's `topologyModeFromHints`, with `PreferSameTrafficDistribution` enabled (its
/// default since Kubernetes 1.34): same-node if every ready endpoint has node hints and one
/// names this node, else same-zone likewise, else none.
fn topology_mode(
    endpoints: &[PortEndpoint<'_>],
    node_name: &str,
    zone: Option<&str>,
) -> TopologyMode {
    let ready: Vec<_> = endpoints.iter().filter(|e| e.ready).collect();
    if ready.is_empty() {
        return TopologyMode::None;
    }
    if ready.iter().all(|e| !e.node_hints.is_empty())
        && ready
            .iter()
            .any(|e| e.node_hints.iter().any(|n| n == node_name))
    {
        return TopologyMode::PreferSameNode;
    }
    if ready.iter().all(|e| !e.zone_hints.is_empty())
        && ready
            .iter()
            .any(|e| e.zone_hints.iter().any(|z| Some(z.as_str()) == zone))
    {
        return TopologyMode::PreferSameZone;
    }
    TopologyMode::None
}
