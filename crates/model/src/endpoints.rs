//! The validated EndpointSlice: what kube-proxy's endpoint slice cache keeps of it.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::discovery::v1 as discovery;

use crate::exact;
use crate::labels::SERVICE_NAME;
use crate::net::{IpFamily, ObjectId, Protocol};
use crate::service::{parse_ip, parse_protocol, port_number};
use crate::warning::Invalid;

/// One entry of `ports`: the name and protocol match it to a Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPort {
    /// Matches [`crate::ServicePort::name`].
    pub name: String,
    /// Matches [`crate::ServicePort::protocol`].
    pub protocol: Protocol,
    /// The port on the endpoints (the Service's target port, resolved by the controller).
    pub port: u16,
}

/// One endpoint (one pod), with the conditions and hints kube-proxy reads. Kept small: a
/// node holds every endpoint of the cluster (100,000 at 10,000 Services).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The first of `addresses` (kube-proxy ignores the others).
    pub addr: IpAddr,
    /// `conditions.ready`; absent means true.
    pub ready: bool,
    /// `conditions.serving`; absent means true.
    pub serving: bool,
    /// `conditions.terminating`; absent means false.
    pub terminating: bool,
    /// `nodeName`; the model shares one copy per node between endpoints.
    pub node_name: Option<Arc<str>>,
    /// `hints`, when the endpoint has any.
    pub hints: Option<Box<Hints>>,
    /// The Pod behind the endpoint: `targetRef` when its kind is `Pod`. Only for people
    /// reading names; nothing is decided by it (the daemon's model keeps none:
    /// [`crate::Model::without_pods`]).
    pub pod: Option<Box<PodRef>>,
}

/// An endpoint's topology hints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// `hints.forZones[].name`.
    pub zones: Vec<String>,
    /// `hints.forNodes[].name`.
    pub nodes: Vec<String>,
}

/// The Pod a `targetRef` names: its name, and its namespace when not the slice's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    name: Box<str>,
    namespace: Option<Box<str>>,
}

impl PodRef {
    /// The Pod's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Pod's namespace, for an endpoint of a slice in `slice_namespace`.
    pub fn namespace<'a>(&'a self, slice_namespace: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(slice_namespace)
    }
}

impl Endpoint {
    /// `hints.forZones[].name`.
    pub fn zone_hints(&self) -> &[String] {
        self.hints.as_deref().map_or(&[], |h| &h.zones)
    }

    /// `hints.forNodes[].name`.
    pub fn node_hints(&self) -> &[String] {
        self.hints.as_deref().map_or(&[], |h| &h.nodes)
    }
}

/// An EndpointSlice of a Service, for one address family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSlice {
    /// The slice's own namespace and name.
    pub id: ObjectId,
    /// The Service it belongs to (label `kubernetes.io/service-name`).
    pub service: ObjectId,
    /// `addressType`.
    pub family: IpFamily,
    /// `ports`, without entries whose port is unset (kube-proxy skips those too).
    pub ports: Vec<EndpointPort>,
    /// `endpoints`, without entries that have no address.
    pub endpoints: Vec<Endpoint>,
}

impl EndpointSlice {
    /// Validates a `discovery.k8s.io/v1 EndpointSlice`.
    ///
    /// Returns `Ok(None)` for slices no proxy uses: FQDN slices and slices without a
    /// `kubernetes.io/service-name` label.
    ///
    /// # Errors
    /// [`Invalid`] naming the first field that makes the slice unusable.
    pub fn from_kubernetes(
        slice: &discovery::EndpointSlice,
    ) -> Result<Option<EndpointSlice>, Invalid> {
        let meta = &slice.metadata;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let id = ObjectId::new(namespace.clone(), meta.name.clone().unwrap_or_default());
        if id.name.is_empty() {
            return Err(Invalid::new("metadata.name", "missing"));
        }
        let Some(service) = meta.labels.as_ref().and_then(|l| l.get(SERVICE_NAME)) else {
            return Ok(None);
        };
        let family = match slice.address_type.as_str() {
            "FQDN" => return Ok(None),
            other => IpFamily::from_kubernetes(other).ok_or_else(|| {
                Invalid::new("addressType", format!("unknown address type {other:?}"))
            })?,
        };
        let mut ports = Vec::new();
        for (i, p) in slice.ports.iter().flatten().enumerate() {
            let Some(port) = p.port else { continue };
            let protocol = parse_protocol(format!("ports[{i}].protocol"), p.protocol.as_deref())?;
            ports.push(EndpointPort {
                name: p.name.clone().unwrap_or_default(),
                protocol,
                port: port_number(&format!("ports[{i}].port"), port)?,
            });
        }
        let mut endpoints = Vec::with_capacity(slice.endpoints.len());
        for (i, ep) in slice.endpoints.iter().enumerate() {
            let Some(raw) = ep.addresses.first() else {
                continue;
            };
            let addr = parse_ip(format!("endpoints[{i}].addresses[0]"), raw)?;
            if IpFamily::of(&addr) != family {
                return Err(Invalid::new(
                    format!("endpoints[{i}].addresses[0]"),
                    format!("{addr} is not of addressType {family}"),
                ));
            }
            let conditions = ep.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let hints = ep.hints.as_ref().map(|h| Hints {
                zones: exact(
                    h.for_zones
                        .iter()
                        .flatten()
                        .map(|z| z.name.clone())
                        .collect(),
                ),
                nodes: exact(
                    h.for_nodes
                        .iter()
                        .flatten()
                        .map(|n| n.name.clone())
                        .collect(),
                ),
            });
            endpoints.push(Endpoint {
                addr,
                ready,
                serving: conditions.and_then(|c| c.serving).unwrap_or(true),
                terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
                node_name: ep.node_name.as_deref().map(Arc::from),
                hints: hints
                    .filter(|h| !h.zones.is_empty() || !h.nodes.is_empty())
                    .map(Box::new),
                pod: pod_of(ep.target_ref.as_ref(), &namespace),
            });
        }
        Ok(Some(EndpointSlice {
            id,
            service: ObjectId::new(namespace, service.clone()),
            family,
            ports: exact(ports),
            endpoints: exact(endpoints),
        }))
    }
}

/// The Pod a `targetRef` names, if it names a Pod (its namespace defaults to the slice's).
fn pod_of(target: Option<&ObjectReference>, slice_namespace: &str) -> Option<Box<PodRef>> {
    let target = target.filter(|t| t.kind.as_deref() == Some("Pod"))?;
    let name = target.name.as_deref().filter(|n| !n.is_empty())?;
    let namespace = target
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty() && *n != slice_namespace);
    Some(Box::new(PodRef {
        name: name.into(),
        namespace: namespace.map(Box::from),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(endpoints: serde_json::Value) -> EndpointSlice {
        let raw: discovery::EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-x", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": endpoints,
        }))
        .expect("slice");
        EndpointSlice::from_kubernetes(&raw)
            .expect("valid")
            .expect("used")
    }

    #[test]
    fn the_pod_comes_from_a_pod_target_ref() {
        let s = slice(serde_json::json!([
            {"addresses": ["10.244.1.5"], "targetRef": {"kind": "Pod", "name": "web-1"}},
            {"addresses": ["10.244.1.6"],
             "targetRef": {"kind": "Pod", "namespace": "other", "name": "web-2"}},
            {"addresses": ["10.244.1.7"]},
            {"addresses": ["10.244.1.8"], "targetRef": {"kind": "Node", "name": "n1"}},
            {"addresses": ["10.244.1.9"], "targetRef": {"kind": "Pod"}},
        ]));
        let pods: Vec<Option<String>> = s
            .endpoints
            .iter()
            .map(|e| {
                e.pod
                    .as_ref()
                    .map(|p| format!("{}/{}", p.namespace(&s.id.namespace), p.name()))
            })
            .collect();
        assert_eq!(
            pods,
            [
                Some("shop/web-1".to_owned()),
                Some("other/web-2".to_owned()),
                None,
                None,
                None
            ]
        );
    }
}
