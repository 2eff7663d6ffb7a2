//! The Services whose `Local` traffic policy finds no endpoint on this node although they
//! have endpoints elsewhere: kube-proxy's `kubeproxy_sync_proxy_rules_no_local_endpoints_total`.
//! Its traffic to the policy's VIPs is dropped (IPVS: the cluster endpoints stand in, kubernetes
//! PR #97081; iptables: a DROP rule), which is what an operator wants to see.
//!
//! kube-proxy's IPVS mode counts Services (a set of names per traffic policy, filled by
//! `syncEndpoint`), its iptables mode counts Service ports; both per IP family.

use model::{EndpointSlice, IpFamily, Model, ObjectId};

use crate::config::NodeInfo;
use crate::endpoints::{self, Policy};

/// kube-proxy's `traffic_policy` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrafficPolicy {
    /// `internalTrafficPolicy: Local`, for the cluster IP.
    Internal,
    /// `externalTrafficPolicy: Local`, for node ports, external and load balancer IPs.
    External,
}

impl TrafficPolicy {
    /// Both, in kube-proxy's order.
    pub const ALL: [TrafficPolicy; 2] = [TrafficPolicy::Internal, TrafficPolicy::External];

    /// The label value: `internal` or `external`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficPolicy::Internal => "internal",
            TrafficPolicy::External => "external",
        }
    }
}

/// One Service port, in one family, whose `Local` policy finds no local endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NoLocal {
    /// The Service.
    pub service: ObjectId,
    /// The port's name.
    pub port: String,
    /// The family of the cluster IP.
    pub family: IpFamily,
    /// The policy that finds nothing.
    pub policy: TrafficPolicy,
}

/// Every Service port, in each family this node proxies the Service in, with a usable
/// endpoint somewhere, a `Local` policy and no usable endpoint on this node (kube-proxy's
/// `hasAnyEndpoints && len(localEndpoints) == 0`, by `CategorizeEndpoints`).
pub fn no_local_endpoints(model: &Model, node: &NodeInfo) -> Vec<NoLocal> {
    let mut found = Vec::new();
    for svc in model.services() {
        if !svc.internal_policy_local && !svc.external_policy_local {
            continue;
        }
        let slices: Vec<&EndpointSlice> = model.slices_of(&svc.id).map(|s| &**s).collect();
        for family in node.families() {
            if svc.cluster_ip(family).is_none() {
                continue;
            }
            for port in &svc.ports {
                let policy = Policy::of(svc, port, family);
                let eps = endpoints::of_port(&slices, port, family, &node.name);
                let found_here =
                    endpoints::categorize(&eps, policy, &node.name, node.zone.as_deref());
                if !found_here.has_any || !found_here.local.is_empty() {
                    continue;
                }
                let wanted = [
                    (TrafficPolicy::Internal, policy.internal_local),
                    (
                        TrafficPolicy::External,
                        policy.external_local && policy.externally_accessible,
                    ),
                ];
                for (which, local) in wanted {
                    if local {
                        found.push(NoLocal {
                            service: svc.id.clone(),
                            port: port.name.clone(),
                            family,
                            policy: which,
                        });
                    }
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Kind, Object, ProxyFilter, SourceEvent};
    use serde_json::{Value, json};

    const NODE: &str = "node-1";

    fn service(name: &str, spec: Value) -> Object {
        let mut spec = spec;
        spec["clusterIP"] = json!("10.96.0.1");
        spec["ports"] = json!([{"name": "http", "port": 80, "nodePort": 30080}]);
        Object::Service(Box::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "d"}, "spec": spec}),
            )
            .expect("service"),
        ))
    }

    /// A slice of Service `d/SERVICE` with one ready endpoint on `node`.
    fn slice(service: &str, node: &str) -> Object {
        Object::EndpointSlice(Box::new(
            serde_json::from_value(json!({
                "metadata": {"name": format!("{service}-1"), "namespace": "d",
                             "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.244.2.5"], "nodeName": node,
                               "conditions": {"ready": true}}],
            }))
            .expect("slice"),
        ))
    }

    #[test]
    fn counts_local_policies_with_endpoints_elsewhere_only() {
        let itp_local = json!({"internalTrafficPolicy": "Local"});
        let etp_local = json!({"type": "NodePort", "externalTrafficPolicy": "Local"});
        let mut model = Model::new(ProxyFilter::default(), None);
        model.apply(SourceEvent::Listed(
            Kind::Service,
            vec![
                service("elsewhere", itp_local.clone()),
                service("nowhere", itp_local.clone()),
                service("here", itp_local),
                service("external", etp_local),
                service("cluster", json!({})),
            ],
        ));
        model.apply(SourceEvent::Listed(
            Kind::EndpointSlice,
            vec![
                slice("elsewhere", "node-2"),
                slice("here", NODE),
                slice("external", "node-2"),
                slice("cluster", "node-2"),
            ],
        ));
        let ip = "192.168.7.1".parse().expect("ip");
        let node = NodeInfo {
            name: NODE.into(),
            zone: None,
            primary_ips: vec![ip],
            addresses: [ip].into(),
        };
        let found: Vec<(String, TrafficPolicy)> = no_local_endpoints(&model, &node)
            .into_iter()
            .map(|n| {
                assert_eq!((n.family, n.port.as_str()), (IpFamily::V4, "http"));
                (n.service.name.to_string(), n.policy)
            })
            .collect();
        // kube-proxy: `hasAnyEndpoints && InternalPolicyLocal()` / `ExternalPolicyLocal()`
        // with no local endpoint; a Service with no endpoints at all is not counted.
        assert_eq!(
            found,
            vec![
                ("elsewhere".to_owned(), TrafficPolicy::Internal),
                ("external".to_owned(), TrafficPolicy::External),
            ]
        );
    }
}
