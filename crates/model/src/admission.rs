//! Whether this proxy implements a Service and, when not, why: the model keeps only the
//! Services it implements, so a tool asked about another one (`kube-ipvs-proxy explain`)
//! reads the raw object through here.

use std::fmt;

use k8s_openapi::api::core::v1 as core;

use crate::labels::{ProxyFilter, Rejection};
use crate::service::{Service, Unproxied, proxy_mode_ingress};
use crate::warning::Invalid;

/// Why a Service is not proxied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotProxied {
    /// Its labels leave it to another proxy, or to none.
    Label(Rejection),
    /// Valid, but nothing to program (ExternalName, headless, no cluster IP).
    Spec(Unproxied),
    /// Invalid: the field at fault.
    Invalid(Invalid),
}

impl fmt::Display for NotProxied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotProxied::Label(r) => r.fmt(f),
            NotProxied::Spec(u) => u.fmt(f),
            NotProxied::Invalid(i) => write!(f, "invalid: {i} (skipped)"),
        }
    }
}

/// What the model makes of one raw Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The validated Service, or why there is none.
    pub service: Result<Service, NotProxied>,
    /// Values replaced by a default (an unknown scheduler annotation).
    pub defaults_used: Vec<Invalid>,
    /// Load balancer ingress IPs left to the load balancer (`ipMode: Proxy`).
    pub proxy_mode_ingress: Vec<String>,
}

/// Admits `svc` as [`crate::Model`] would with `filter`: the same label filter, the same
/// validation.
pub fn admit(svc: &core::Service, filter: &ProxyFilter) -> Admission {
    let mut defaults_used = Vec::new();
    let service = match filter.rejection(svc.metadata.labels.as_ref()) {
        Some(rejection) => Err(NotProxied::Label(rejection)),
        None => match Service::admit(svc, &mut defaults_used) {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(why)) => Err(NotProxied::Spec(why)),
            Err(invalid) => Err(NotProxied::Invalid(invalid)),
        },
    };
    Admission {
        service,
        defaults_used,
        proxy_mode_ingress: proxy_mode_ingress(svc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn admitted(svc: serde_json::Value, filter: &ProxyFilter) -> Admission {
        let raw: core::Service = serde_json::from_value(svc).expect("service json");
        admit(&raw, filter)
    }

    /// kube-proxy's `ShouldSkipService` (pkg/proxy/util) skips ExternalName and Services
    /// whose cluster IP is None or empty; its informers' label selector
    /// (`!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless`,
    /// cmd/kube-proxy/app/server.go) never shows it the labelled ones.
    #[test]
    fn each_reason_a_service_is_not_proxied() {
        let meta =
            |labels: serde_json::Value| json!({"name": "s", "namespace": "d", "labels": labels});
        let cases = [
            (
                json!({"metadata": meta(json!({})), "spec": {"type": "ExternalName", "externalName": "x.example"}}),
                NotProxied::Spec(Unproxied::ExternalName),
            ),
            (
                json!({"metadata": meta(json!({})), "spec": {"clusterIP": "None"}}),
                NotProxied::Spec(Unproxied::Headless),
            ),
            (
                json!({"metadata": meta(json!({})), "spec": {"clusterIP": ""}}),
                NotProxied::Spec(Unproxied::NoClusterIp),
            ),
            (
                json!({"metadata": meta(json!({"service.kubernetes.io/service-proxy-name": "cilium"})),
                       "spec": {"clusterIP": "10.96.0.1"}}),
                NotProxied::Label(Rejection::OtherProxy("cilium".into())),
            ),
            (
                json!({"metadata": meta(json!({"service.kubernetes.io/headless": ""})),
                       "spec": {"clusterIP": "10.96.0.1"}}),
                NotProxied::Label(Rejection::Headless),
            ),
            (
                json!({"metadata": meta(json!({})), "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 0}]}}),
                NotProxied::Invalid(Invalid::new(
                    "spec.ports[0].port",
                    "0 is not a port number (1-65535)",
                )),
            ),
        ];
        for (svc, expected) in cases {
            let got = admitted(svc, &ProxyFilter::default()).service;
            assert_eq!(got, Err(expected.clone()), "{expected}");
        }
    }

    #[test]
    fn proxy_mode_ingress_and_defaults_are_reported_beside_the_service() {
        let a = admitted(
            json!({"metadata": {"name": "s", "namespace": "d",
                                "annotations": {crate::SCHEDULER_ANNOTATION: "best"}},
                   "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.1", "ports": [{"port": 80}]},
                   "status": {"loadBalancer": {"ingress": [
                       {"ip": "203.0.113.1"}, {"ip": "203.0.113.2", "ipMode": "Proxy"}]}}}),
            &ProxyFilter::default(),
        );
        let svc = a.service.expect("proxied");
        assert_eq!(
            svc.load_balancer_ips,
            ["203.0.113.1".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(a.proxy_mode_ingress, ["203.0.113.2"]);
        assert_eq!(a.defaults_used.len(), 1);
        // With our proxy name, a Service labelled with it is ours.
        let named = ProxyFilter {
            proxy_name: Some("ipvs".into()),
        };
        let ours = admitted(
            json!({"metadata": {"name": "s", "namespace": "d",
                                "labels": {"service.kubernetes.io/service-proxy-name": "ipvs"}},
                   "spec": {"clusterIP": "10.96.0.1"}}),
            &named,
        );
        assert!(ours.service.is_ok());
    }
}
