//! The validated Service: what kube-proxy's service change tracker keeps of a `v1 Service`.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1 as core;
use serde::Serialize;

use crate::exact;
use crate::net::{IpFamily, ObjectId, Protocol};
use crate::scheduler::{SchedFlags, Scheduler};
use crate::scheduling::Scheduling;
use crate::seniority::Seniority;
use crate::warning::Invalid;

/// The default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;
/// The largest affinity timeout the API accepts (1 day).
pub const MAX_AFFINITY_TIMEOUT: u32 = 86_400;

/// `spec.type`, for the types the proxy implements (ExternalName never reaches the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ServiceType {
    /// Reachable on its cluster IPs (and external IPs, if any).
    ClusterIp,
    /// Also reachable on a port of every node.
    NodePort,
    /// Also reachable on the load balancer's ingress IPs.
    LoadBalancer,
}

/// `spec.sessionAffinity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SessionAffinity {
    /// Every connection is scheduled afresh.
    None,
    /// Connections from one client IP go to one endpoint for `timeout` seconds (IPVS persistence).
    ClientIp {
        /// Seconds, 1..=86400.
        timeout: u32,
    },
}

/// One entry of `spec.ports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicePort {
    /// The port's name; EndpointSlice ports are matched to it by name (and protocol).
    pub name: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The port on the cluster IPs, external IPs and load balancer IPs.
    pub port: u16,
    /// The node port, if one is allocated.
    pub node_port: Option<u16>,
}

/// A Service the proxy implements: it has cluster IPs and is not ExternalName.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// Namespace and name.
    pub id: ObjectId,
    /// `spec.type`.
    pub service_type: ServiceType,
    /// `spec.clusterIPs`: one per family, the primary family first.
    pub cluster_ips: Vec<IpAddr>,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
    /// `spec.externalIPs`.
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip`, without those with `ipMode: Proxy`.
    pub load_balancer_ips: Vec<IpAddr>,
    /// `spec.loadBalancerSourceRanges`, normalised to network addresses.
    pub source_ranges: Vec<IpNet>,
    /// `externalTrafficPolicy: Local` on a Service that is externally reachable at all
    /// (kube-proxy's `ExternalPolicyLocal`).
    pub external_policy_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_policy_local: bool,
    /// `spec.healthCheckNodePort`, kept only where kube-proxy serves it
    /// (LoadBalancer with `externalTrafficPolicy: Local`).
    pub health_check_node_port: Option<u16>,
    /// `spec.sessionAffinity` and its timeout.
    pub session_affinity: SessionAffinity,
    /// The scheduler its annotations choose ([`crate::scheduling`]), if any.
    pub scheduler: Option<Scheduler>,
    /// The scheduler flags its annotations set, if they decide them.
    pub sched_flags: Option<SchedFlags>,
    /// How long its leaving TCP real servers may drain, when its annotation
    /// ([`crate::drain`]) sets it; otherwise the daemon-wide bound applies.
    pub drain_timeout: Option<std::time::Duration>,
    /// How old the Service is: the older wins an address two Services claim.
    #[serde(skip)]
    pub seniority: Seniority,
}

/// Why a valid Service is one no proxy implements: kube-proxy's `ShouldSkipService`
/// ("Skipping service due to Type=ExternalName", "due to cluster IP").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unproxied {
    /// `spec.type: ExternalName`: a DNS alias, nothing to program.
    ExternalName,
    /// `clusterIP: None`: clients resolve the endpoints themselves.
    Headless,
    /// No cluster IP allocated (`spec.clusterIP` empty or absent).
    NoClusterIp,
}

impl fmt::Display for Unproxied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unproxied::ExternalName => "spec.type is ExternalName (a DNS name, not proxied)",
            Unproxied::Headless => "headless (clusterIP: None): clients reach the Pods directly",
            Unproxied::NoClusterIp => "no cluster IP (spec.clusterIP is empty)",
        })
    }
}

impl Service {
    /// The cluster IP of a family, if the Service has one.
    pub fn cluster_ip(&self, family: IpFamily) -> Option<IpAddr> {
        self.cluster_ips
            .iter()
            .copied()
            .find(|ip| IpFamily::of(ip) == family)
    }

    /// Validates a `v1 Service`.
    ///
    /// Returns `Ok(None)` for Services no proxy implements (ExternalName, headless, no cluster
    /// IP). Problems that only cost a default (an unknown scheduler annotation) are pushed to
    /// `soft`.
    ///
    /// # Errors
    /// [`Invalid`] naming the first field that makes the Service unusable.
    pub fn from_kubernetes(
        svc: &core::Service,
        soft: &mut Vec<Invalid>,
    ) -> Result<Option<Service>, Invalid> {
        Ok(Service::admit(svc, soft)?.ok())
    }

    /// As [`Service::from_kubernetes`], saying why a valid Service is not proxied.
    ///
    /// # Errors
    /// [`Invalid`] naming the first field that makes the Service unusable.
    pub fn admit(
        svc: &core::Service,
        soft: &mut Vec<Invalid>,
    ) -> Result<Result<Service, Unproxied>, Invalid> {
        let meta = &svc.metadata;
        let id = ObjectId::new(
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        );
        if id.name.is_empty() {
            return Err(Invalid::new("metadata.name", "missing"));
        }
        let Some(spec) = &svc.spec else {
            return Err(Invalid::new("spec", "missing"));
        };
        let service_type = match spec.type_.as_deref() {
            None | Some("ClusterIP") => ServiceType::ClusterIp,
            Some("NodePort") => ServiceType::NodePort,
            Some("LoadBalancer") => ServiceType::LoadBalancer,
            Some("ExternalName") => return Ok(Err(Unproxied::ExternalName)),
            Some(other) => {
                return Err(Invalid::new("spec.type", format!("unknown type {other:?}")));
            }
        };
        let cluster_ips = match cluster_ips(spec)? {
            Ok(ips) => ips,
            Err(why) => return Ok(Err(why)),
        };
        let ports = spec
            .ports
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, p)| service_port(i, p))
            .collect::<Result<Vec<_>, _>>()?;
        let external_ips = parse_ips("spec.externalIPs", spec.external_ips.iter().flatten())?;
        let load_balancer_ips = load_balancer_ips(svc)?;
        let source_ranges = spec
            .load_balancer_source_ranges
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, s)| {
                s.trim().parse::<IpNet>().map(|n| n.trunc()).map_err(|_| {
                    Invalid::new(
                        format!("spec.loadBalancerSourceRanges[{i}]"),
                        format!("{s:?} is not a CIDR"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let externally_accessible = match service_type {
            ServiceType::NodePort | ServiceType::LoadBalancer => true,
            ServiceType::ClusterIp => !external_ips.is_empty(),
        };
        let external_policy_local = externally_accessible
            && traffic_policy_local(
                "spec.externalTrafficPolicy",
                spec.external_traffic_policy.as_deref(),
            )?;
        let internal_policy_local = traffic_policy_local(
            "spec.internalTrafficPolicy",
            spec.internal_traffic_policy.as_deref(),
        )?;
        let health_check_node_port =
            if service_type == ServiceType::LoadBalancer && external_policy_local {
                match spec.health_check_node_port {
                    None | Some(0) => None,
                    Some(p) => Some(port_number("spec.healthCheckNodePort", p)?),
                }
            } else {
                None
            };
        let session_affinity = session_affinity(spec)?;
        let scheduling = Scheduling::from_annotations(meta.annotations.as_ref(), soft);
        Ok(Ok(Service {
            id,
            service_type,
            cluster_ips: exact(cluster_ips),
            ports: exact(ports),
            external_ips: exact(external_ips),
            load_balancer_ips: exact(load_balancer_ips),
            source_ranges: exact(source_ranges),
            external_policy_local,
            internal_policy_local,
            health_check_node_port,
            session_affinity,
            scheduler: scheduling.scheduler,
            sched_flags: scheduling.flags,
            drain_timeout: crate::drain::drain_timeout(meta.annotations.as_ref(), soft),
            seniority: Seniority::of(meta),
        }))
    }
}

/// `spec.clusterIPs` (falling back to `spec.clusterIP`), checked against `spec.ipFamilies`;
/// [`Unproxied`] for headless and IP-less Services.
fn cluster_ips(spec: &core::ServiceSpec) -> Result<Result<Vec<IpAddr>, Unproxied>, Invalid> {
    let (field, raw): (&str, Vec<&String>) = match (&spec.cluster_ips, &spec.cluster_ip) {
        (Some(ips), _) if !ips.is_empty() => ("spec.clusterIPs", ips.iter().collect()),
        (_, Some(ip)) => ("spec.clusterIP", vec![ip]),
        _ => return Ok(Err(Unproxied::NoClusterIp)),
    };
    match raw.first().map(|ip| ip.as_str()) {
        None | Some("") => return Ok(Err(Unproxied::NoClusterIp)),
        Some("None") => return Ok(Err(Unproxied::Headless)),
        Some(_) => {}
    }
    if let (Some(single), Some(first)) = (&spec.cluster_ip, raw.first())
        && !single.is_empty()
        && single != *first
    {
        return Err(Invalid::new(
            "spec.clusterIP",
            format!("{single:?} differs from spec.clusterIPs[0] {first:?}"),
        ));
    }
    let ips = parse_ips(field, raw.into_iter()).map_err(|mut e| {
        if field == "spec.clusterIP" {
            // A single field, not a list: no index.
            e.field = field.to_owned();
        }
        e
    })?;
    if ips.len() > 2 || (ips.len() == 2 && IpFamily::of(&ips[0]) == IpFamily::of(&ips[1])) {
        return Err(Invalid::new(
            field,
            "conflicting families: at most one address per IP family",
        ));
    }
    for (i, family) in spec.ip_families.iter().flatten().enumerate() {
        let Some(family) = IpFamily::from_kubernetes(family) else {
            return Err(Invalid::new(
                format!("spec.ipFamilies[{i}]"),
                format!("unknown family {family:?}"),
            ));
        };
        if let Some(ip) = ips.get(i)
            && IpFamily::of(ip) != family
        {
            return Err(Invalid::new(
                format!("spec.ipFamilies[{i}]"),
                format!("conflicting families: {family} but {field}[{i}] is {ip}"),
            ));
        }
    }
    Ok(Ok(ips))
}

fn parse_ips<'a>(
    field: &str,
    raw: impl Iterator<Item = &'a String>,
) -> Result<Vec<IpAddr>, Invalid> {
    raw.enumerate()
        .map(|(i, s)| parse_ip(format!("{field}[{i}]"), s))
        .collect()
}

/// A protocol; absent means TCP.
pub(crate) fn parse_protocol(field: String, raw: Option<&str>) -> Result<Protocol, Invalid> {
    Protocol::from_kubernetes(raw).ok_or_else(|| {
        Invalid::new(
            field,
            format!("unknown protocol {:?}", raw.unwrap_or_default()),
        )
    })
}

/// An IP address (surrounding blanks ignored).
pub(crate) fn parse_ip(field: String, raw: &str) -> Result<IpAddr, Invalid> {
    raw.trim()
        .parse::<IpAddr>()
        .map_err(|_| Invalid::new(field, format!("{raw:?} is not an IP address")))
}

/// `status.loadBalancer.ingress`.
fn ingress(svc: &core::Service) -> impl Iterator<Item = &core::LoadBalancerIngress> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
}

fn load_balancer_ips(svc: &core::Service) -> Result<Vec<IpAddr>, Invalid> {
    let mut ips = Vec::new();
    for (i, ing) in ingress(svc).enumerate() {
        let Some(raw) = ing.ip.as_deref().filter(|ip| !ip.is_empty()) else {
            continue;
        };
        if !vip_mode(ing) {
            continue;
        }
        ips.push(parse_ip(
            format!("status.loadBalancer.ingress[{i}].ip"),
            raw,
        )?);
    }
    Ok(ips)
}

/// Like kube-proxy's `IsVIPMode`: only an absent `ipMode` or `VIP` means the node must
/// handle traffic to this address itself.
fn vip_mode(ingress: &core::LoadBalancerIngress) -> bool {
    ingress.ip_mode.as_deref().is_none_or(|m| m == "VIP")
}

/// The load balancer ingress IPs the node leaves to the load balancer (`ipMode: Proxy`, or
/// any other mode than `VIP`): not proxied, as in kube-proxy.
pub fn proxy_mode_ingress(svc: &core::Service) -> Vec<String> {
    ingress(svc)
        .filter(|ing| !vip_mode(ing))
        .filter_map(|ing| ing.ip.clone().filter(|ip| !ip.is_empty()))
        .collect()
}

fn service_port(i: usize, p: &core::ServicePort) -> Result<ServicePort, Invalid> {
    let protocol = parse_protocol(format!("spec.ports[{i}].protocol"), p.protocol.as_deref())?;
    let port = port_number(&format!("spec.ports[{i}].port"), p.port)?;
    let node_port = match p.node_port {
        None | Some(0) => None,
        Some(n) => Some(port_number(&format!("spec.ports[{i}].nodePort"), n)?),
    };
    Ok(ServicePort {
        name: p.name.clone().unwrap_or_default(),
        protocol,
        port,
        node_port,
    })
}

/// A port number, 1..=65535.
pub(crate) fn port_number(field: &str, value: i32) -> Result<u16, Invalid> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Invalid::new(field, format!("{value} is not a port number (1-65535)")))
}

fn traffic_policy_local(field: &str, value: Option<&str>) -> Result<bool, Invalid> {
    match value {
        None | Some("Cluster") => Ok(false),
        Some("Local") => Ok(true),
        Some(other) => Err(Invalid::new(field, format!("unknown policy {other:?}"))),
    }
}

fn session_affinity(spec: &core::ServiceSpec) -> Result<SessionAffinity, Invalid> {
    match spec.session_affinity.as_deref() {
        None | Some("None") => Ok(SessionAffinity::None),
        Some("ClientIP") => {
            let configured = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            let timeout = match configured {
                None => DEFAULT_AFFINITY_TIMEOUT,
                Some(t) => u32::try_from(t)
                    .ok()
                    .filter(|t| (1..=MAX_AFFINITY_TIMEOUT).contains(t))
                    .ok_or_else(|| {
                        Invalid::new(
                            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                            format!("{t} is out of range (1-{MAX_AFFINITY_TIMEOUT})"),
                        )
                    })?,
            };
            Ok(SessionAffinity::ClientIp { timeout })
        }
        Some(other) => Err(Invalid::new(
            "spec.sessionAffinity",
            format!("unknown affinity {other:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduling::SCHEDULER_ANNOTATION;
    use serde_json::json;

    fn convert(spec: serde_json::Value) -> Result<Option<Service>, Invalid> {
        let svc: core::Service = serde_json::from_value(json!({
            "metadata": {"name": "s", "namespace": "d"},
            "spec": spec,
            "status": {"loadBalancer": {"ingress": [
                {"ip": "203.0.113.1"}, {"ip": "203.0.113.2", "ipMode": "Proxy"}
            ]}},
        }))
        .expect("service json");
        Service::from_kubernetes(&svc, &mut Vec::new())
    }

    #[test]
    fn invalid_services_name_the_field() {
        let base = || json!({"clusterIP": "10.96.0.1", "ports": [{"port": 80}]});
        let cases = [
            (json!({"clusterIP": "10.96.0.999"}), "spec.clusterIP"),
            (
                json!({"clusterIPs": ["10.96.0.1", "10.96.0.2"]}),
                "spec.clusterIPs",
            ),
            (
                json!({"clusterIPs": ["10.96.0.1", "fd00::1"], "ipFamilies": ["IPv6", "IPv4"]}),
                "spec.ipFamilies[0]",
            ),
            (
                json!({"ports": [{"port": 80}, {"port": 0}]}),
                "spec.ports[1].port",
            ),
            (
                json!({"ports": [{"port": 80, "protocol": "ICMP"}]}),
                "spec.ports[0].protocol",
            ),
            (
                json!({"ports": [{"port": 80, "nodePort": 65536}]}),
                "spec.ports[0].nodePort",
            ),
            (json!({"externalIPs": ["1.2.3"]}), "spec.externalIPs[0]"),
            (
                json!({"loadBalancerSourceRanges": ["10.0.0.0/33"]}),
                "spec.loadBalancerSourceRanges[0]",
            ),
            (
                json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}}),
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            ),
            (
                json!({"type": "NodePort", "externalTrafficPolicy": "Nearby"}),
                "spec.externalTrafficPolicy",
            ),
        ];
        for (patch, field) in cases {
            let mut spec = base();
            for (k, v) in patch.as_object().expect("object") {
                spec[k] = v.clone();
            }
            let err = convert(spec).expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn not_proxied_shapes_are_none() {
        assert_eq!(
            convert(json!({"clusterIP": "None", "ports": [{"port": 80}]})),
            Ok(None)
        );
        assert_eq!(
            convert(json!({"type": "ExternalName", "externalName": "x.example"})),
            Ok(None)
        );
        assert_eq!(convert(json!({"ports": [{"port": 80}]})), Ok(None));
    }

    #[test]
    fn defaults_and_filters_follow_kube_proxy() {
        let svc = convert(json!({
            "type": "LoadBalancer", "clusterIP": "10.96.0.1", "ports": [{"port": 80, "nodePort": 30080}],
            "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
            "sessionAffinity": "ClientIP", "loadBalancerSourceRanges": [" 192.0.2.7/24 "],
        }))
        .expect("valid")
        .expect("proxied");
        assert_eq!(
            svc.session_affinity,
            SessionAffinity::ClientIp {
                timeout: DEFAULT_AFFINITY_TIMEOUT
            }
        );
        assert_eq!(
            svc.load_balancer_ips,
            vec!["203.0.113.1".parse::<IpAddr>().expect("ip")],
            "ipMode Proxy is skipped"
        );
        assert_eq!(
            svc.source_ranges[0].to_string(),
            "192.0.2.0/24",
            "normalised"
        );
        assert!(svc.external_policy_local);
        assert_eq!(svc.health_check_node_port, Some(32000));
        // externalTrafficPolicy only means something for externally reachable Services.
        let internal = convert(
            json!({"clusterIP": "10.96.0.1", "externalTrafficPolicy": "Local",
                                      "healthCheckNodePort": 32000}),
        )
        .expect("valid")
        .expect("proxied");
        assert!(!internal.external_policy_local);
        assert_eq!(internal.health_check_node_port, None);
    }

    #[test]
    fn an_unknown_scheduler_annotation_is_a_soft_warning() {
        let svc: core::Service = serde_json::from_value(json!({
            "metadata": {"name": "s", "namespace": "d", "annotations": {SCHEDULER_ANNOTATION: "best"}},
            "spec": {"clusterIP": "10.96.0.1"},
        }))
        .expect("service json");
        let mut soft = Vec::new();
        let converted = Service::from_kubernetes(&svc, &mut soft)
            .expect("valid")
            .expect("proxied");
        assert_eq!(converted.scheduler, None);
        assert_eq!(soft.len(), 1);
        assert!(soft[0].field.contains(SCHEDULER_ANNOTATION));
    }
}
