//! The validated EndpointSlice: what kube-proxy's endpoint slice cache keeps of it.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::discovery::v1 as discovery;
use serde::Serialize;

use crate::labels::SERVICE_NAME;
use crate::net::{IpFamily, ObjectId, Protocol};
use crate::service::{parse_ip, parse_protocol, port_number};
use crate::warning::Invalid;

/// One entry of `ports`: the name and protocol match it to a Service port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointPort {
    /// Matches [`crate::ServicePort::name`].
    pub name: String,
    /// Matches [`crate::ServicePort::protocol`].
    pub protocol: Protocol,
    /// The port on the endpoints (the Service's target port, resolved by the controller).
    pub port: u16,
}

/// One endpoint (one pod), with the conditions and hints kube-proxy reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// The first of `addresses` (kube-proxy ignores the others).
    pub addr: IpAddr,
    /// `conditions.ready`; absent means true.
    pub ready: bool,
    /// `conditions.serving`; absent means true.
    pub serving: bool,
    /// `conditions.terminating`; absent means false.
    pub terminating: bool,
    /// `nodeName`.
    pub node_name: Option<String>,
    /// `hints.forZones[].name`.
    pub zone_hints: Vec<String>,
    /// `hints.forNodes[].name`.
    pub node_hints: Vec<String>,
    /// The Pod behind the endpoint: `targetRef` when its kind is `Pod` (its namespace
    /// defaults to the slice's). Only for people reading names; nothing is decided by it.
    pub pod: Option<ObjectId>,
}

/// An EndpointSlice of a Service, for one address family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
            let hints = ep.hints.as_ref();
            endpoints.push(Endpoint {
                addr,
                ready,
                serving: conditions.and_then(|c| c.serving).unwrap_or(true),
                terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
                node_name: ep.node_name.clone(),
                zone_hints: hints
                    .and_then(|h| h.for_zones.as_ref())
                    .into_iter()
                    .flatten()
                    .map(|z| z.name.clone())
                    .collect(),
                node_hints: hints
                    .and_then(|h| h.for_nodes.as_ref())
                    .into_iter()
                    .flatten()
                    .map(|n| n.name.clone())
                    .collect(),
                pod: pod_of(ep.target_ref.as_ref(), &namespace),
            });
        }
        Ok(Some(EndpointSlice {
            id,
            service: ObjectId::new(namespace, service.clone()),
            family,
            ports,
            endpoints,
        }))
    }
}

/// The Pod a `targetRef` names, if it names a Pod.
fn pod_of(target: Option<&ObjectReference>, slice_namespace: &str) -> Option<ObjectId> {
    let target = target.filter(|t| t.kind.as_deref() == Some("Pod"))?;
    let name = target.name.clone().filter(|n| !n.is_empty())?;
    let namespace = target
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| slice_namespace.to_owned());
    Some(ObjectId::new(namespace, name))
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
            .map(|e| e.pod.as_ref().map(ToString::to_string))
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
