//! Table tests of `explain` over the dry run's shapes (`testdata/shapes/`) and a few inline
//! ones. The expected values are kube-proxy's semantics, cited per case: its
//! `CategorizeEndpoints` and `topologyModeFromHints` (pkg/proxy/topology.go), its IPVS
//! `syncService`/`syncEndpoint` (pkg/proxy/ipvs/proxier.go), `ShouldSkipService`
//! (pkg/proxy/util/utils.go) and its informers' label selector (cmd/kube-proxy/app/server.go).

use std::path::{Path, PathBuf};

use desired::explain::{self, Exclusion, Explanation, Role, Use};
use desired::{Config, NodeInfo};
use model::source::dir;
use model::{IpFamily, Model, ObjectId, ProxyFilter};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// The shared node (`worker-1`, zone `zone-a`, 172.18.0.2 and fd00:18::2) and `objects`.
fn snapshot(objects: dir::Snapshot) -> dir::Snapshot {
    let mut snapshot = dir::Snapshot::default();
    let node = testdata().join("node.yaml");
    let text = std::fs::read_to_string(&node).expect("node.yaml");
    dir::parse(&node, &text, &mut snapshot).expect("node parses");
    snapshot.objects.extend(objects.objects);
    snapshot
}

/// Explains `service` (`namespace/name`) among `objects`, as the daemon would see them.
fn explain_in(objects: dir::Snapshot, service: &str) -> Explanation {
    let snapshot = snapshot(objects);
    let (ns, name) = service.split_once('/').expect("namespace/name");
    let id = ObjectId::new(ns, name);
    let admission = model::admit(
        snapshot
            .service(&id)
            .unwrap_or_else(|| panic!("{service} is in the objects")),
        &ProxyFilter::default(),
    );
    let mut model = Model::new(ProxyFilter::default(), None);
    for event in snapshot.into_events() {
        model.apply(event);
    }
    let node = model.node().expect("the node");
    let node = NodeInfo::from_node(&node.name, Some(node), &[]);
    explain::of_model(&id, &admission, &model, node, Config::default())
}

fn shape(name: &str, service: &str) -> Explanation {
    explain_in(
        dir::read(&testdata().join("shapes").join(name)).expect("shape parses"),
        service,
    )
}

fn inline(yaml: &str, service: &str) -> Explanation {
    let mut objects = dir::Snapshot::default();
    dir::parse(Path::new("inline.yaml"), yaml, &mut objects).expect("inline YAML");
    explain_in(objects, service)
}

/// Each endpoint of a port in a family: address, internal use, external use.
fn uses(x: &Explanation, family: IpFamily, port: &str) -> Vec<(String, Use, Option<Use>)> {
    port_of(x, family, port)
        .endpoints
        .iter()
        .map(|e| {
            (
                e.address.to_string(),
                e.internal.clone(),
                e.external.clone(),
            )
        })
        .collect()
}

fn port_of<'x>(
    x: &'x Explanation,
    family: IpFamily,
    port: &str,
) -> &'x desired::explain::PortExplanation {
    x.families
        .iter()
        .find(|f| f.family == family)
        .and_then(|f| f.ports.iter().find(|p| p.name == port))
        .unwrap_or_else(|| panic!("{family} port {port} in {x:#?}"))
}

fn out(e: Exclusion) -> Use {
    Use::Excluded(e)
}

const RS: Use = Use::RealServer;

/// An endpoint's expected uses: address, internal, external.
type Row = (&'static str, Use, Option<Use>);

#[test]
fn endpoint_reasons_in_kube_proxys_terms() {
    let v4 = IpFamily::V4;
    // (case, explanation, port, expected (address, internal, external))
    let cases: Vec<(&str, Explanation, &str, Vec<Row>)> = vec![
        // CategorizeEndpoints: no endpoint is ready, so the serving terminating one is used
        // ("try again using terminating endpoints"); not serving means not usable at all.
        (
            "terminating fallback",
            shape("terminating-fallback", "default/rolling"),
            "http",
            vec![
                ("10.244.1.3", out(Exclusion::NotReady), None),
                ("10.244.2.1", RS, None),
                ("10.244.2.2", out(Exclusion::NotReady), None),
            ],
        ),
        // Ready endpoints exist: the serving terminating one is not used.
        (
            "terminating while ready ones exist",
            shape("clusterip-multiport-affinity", "default/web"),
            "https",
            vec![
                ("10.244.1.20", RS, None),
                ("10.244.2.21", RS, None),
                (
                    "10.244.3.22",
                    out(Exclusion::TerminatingWhileReady { among: "cluster" }),
                    None,
                ),
            ],
        ),
        // topologyModeFromHints: every ready endpoint has zone hints and one is for zone-a:
        // PreferSameZone; availableForTopology drops the one hinted for zone-b.
        (
            "zone hints",
            shape("topology-zone-hints", "default/zoned"),
            "http",
            vec![
                ("10.244.2.110", RS, None),
                (
                    "10.244.4.111",
                    out(Exclusion::TopologyZone {
                        hints: vec!["zone-b".into()],
                        zone: Some("zone-a".into()),
                    }),
                    None,
                ),
            ],
        ),
        // internalTrafficPolicy Local: only local endpoints (syncEndpoint's
        // onlyNodeLocalEndpoints), and the Service is not externally reachable.
        (
            "internal Local",
            shape("scheduler-annotation-itp-local", "default/cache"),
            "memcache",
            vec![
                ("10.244.1.90", RS, None),
                (
                    "10.244.2.91",
                    out(Exclusion::OtherNode {
                        node: Some("worker-2".into()),
                        policy: "internalTrafficPolicy",
                    }),
                    None,
                ),
            ],
        ),
        // externalTrafficPolicy Local: external VIPs get the local endpoints, the cluster IP
        // every ready one.
        (
            "external Local",
            shape("loadbalancer-local-source-ranges", "ingress/ingress-nginx"),
            "http",
            vec![
                ("10.244.1.50", RS, Some(RS)),
                (
                    "10.244.2.51",
                    RS,
                    Some(out(Exclusion::OtherNode {
                        node: Some("worker-2".into()),
                        policy: "externalTrafficPolicy",
                    })),
                ),
            ],
        ),
        // externalTrafficPolicy Local without a local endpoint: syncEndpoint falls back to
        // the cluster endpoints (kubernetes PR #97081).
        (
            "external Local, no local endpoint",
            shape("etp-local-no-local-endpoints", "default/remote-only"),
            "http",
            vec![("10.244.2.5", RS, Some(RS)), ("10.244.3.5", RS, Some(RS))],
        ),
    ];
    for (case, x, port, expected) in cases {
        let expected: Vec<(String, Use, Option<Use>)> = expected
            .into_iter()
            .map(|(a, i, e)| (a.to_owned(), i, e))
            .collect();
        assert_eq!(uses(&x, v4, port), expected, "{case}");
    }
    let x = shape("etp-local-no-local-endpoints", "default/remote-only");
    let notes = &port_of(&x, v4, "http").notes;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("falls back to the cluster endpoints")),
        "{notes:?}"
    );
}

#[test]
fn service_level_reasons() {
    // (shape, service, reason, field): ShouldSkipService and the informers' label selector.
    let cases = [
        ("headless", "default/db", "headless", None),
        ("external-name", "default/search", "externalName", None),
        ("other-proxy-name", "default/elsewhere", "otherProxy", None),
        (
            "invalid-objects",
            "default/broken",
            "invalid",
            Some("spec.ports[0].port"),
        ),
    ];
    for (name, service, reason, field) in cases {
        let x = shape(name, service);
        let skipped = x.not_proxied.as_ref().expect(service);
        assert_eq!(skipped.reason, reason, "{service}");
        assert_eq!(skipped.field.as_deref(), field, "{service}");
        assert!(x.families.is_empty(), "{service}");
    }
    let odd = shape("invalid-objects", "default/oddsched");
    assert!(odd.not_proxied.is_none());
    assert_eq!(odd.defaults_used.len(), 1, "{odd:#?}");
    assert!(odd.defaults_used[0].contains("kube-ipvs-proxy.io/ipvs-scheduler"));
}

/// A port's ipset entries: (set, entry as `ipset save` prints it).
fn sets_of(port: &desired::explain::PortExplanation) -> Vec<(String, String)> {
    (port.ipsets.iter())
        .map(|e| (e.set(), e.entry.to_string()))
        .collect()
}

fn pair(set: &str, entry: &str) -> (String, String) {
    (set.to_owned(), entry.to_owned())
}

#[test]
fn load_balancer_source_ranges_and_ip_mode() {
    // kube-proxy's IPVS syncService: with source ranges, the LB IP goes in
    // KUBE-LOAD-BALANCER-FW, each range in KUBE-LOAD-BALANCER-SOURCE-CIDR; the node's own IP
    // is allowed by KUBE-LOAD-BALANCER-SOURCE-IP only when a range contains it, else the
    // KUBE-IPVS-OUT-FILTER rule drops it. An ipMode Proxy ingress is not a VIP (IsVIPMode).
    let x = shape("loadbalancer-no-node-access", "default/api");
    assert_eq!(x.proxy_mode_ingress, ["203.0.113.9"]);
    let port = port_of(&x, IpFamily::V4, "grpc");
    let sets = sets_of(port);
    assert!(sets.contains(&pair("KUBE-LOAD-BALANCER-FW", "203.0.113.8,tcp:8443")));
    assert!(sets.contains(&pair(
        "KUBE-LOAD-BALANCER-SOURCE-CIDR",
        "203.0.113.8,tcp:8443,198.51.100.0/24"
    )));
    assert!(
        !sets
            .iter()
            .any(|(s, _)| s == "KUBE-LOAD-BALANCER-SOURCE-IP")
    );
    let drops: Vec<String> = port
        .out_filter_drops
        .iter()
        .map(|d| format!("{} {}:{}", d.protocol, d.addr, d.port))
        .collect();
    assert_eq!(drops, ["tcp 203.0.113.8:8443"]);
    let roles: Vec<(Role, String)> = port
        .virtual_servers
        .iter()
        .map(|v| (v.role, v.virtual_server.key.to_string()))
        .collect();
    assert_eq!(
        roles,
        [
            (Role::ClusterIp, "tcp 10.96.40.40:8443".to_owned()),
            (Role::LoadBalancerIp, "tcp 203.0.113.8:8443".to_owned()),
        ]
    );

    // A range containing the node (172.18.0.0/16): the node may reach the VIP; Local policy
    // puts the VIP in KUBE-LOAD-BALANCER-LOCAL and the node port in KUBE-NODE-PORT-LOCAL-TCP.
    let x = shape("loadbalancer-local-source-ranges", "ingress/ingress-nginx");
    let port = port_of(&x, IpFamily::V4, "http");
    let sets = sets_of(port);
    for expected in [
        (
            "KUBE-LOAD-BALANCER-SOURCE-IP",
            "203.0.113.7,tcp:80,203.0.113.7",
        ),
        ("KUBE-LOAD-BALANCER-LOCAL", "203.0.113.7,tcp:80"),
        ("KUBE-NODE-PORT-LOCAL-TCP", "31080"),
        ("KUBE-HEALTH-CHECK-NODE-PORT", "32000"),
    ] {
        let expected = pair(expected.0, expected.1);
        assert!(sets.contains(&expected), "{expected:?} in {sets:?}");
    }
    assert!(port.out_filter_drops.is_empty());
    assert_eq!(
        port.node_port_addresses,
        ["172.18.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(port.external_traffic_policy, Some("Local"));
}

#[test]
fn families_wrong_family_and_unmatched_ports() {
    // Dual-stack: one proxier per family, each with its family's slices.
    let x = shape("dual-stack", "default/dual");
    assert_eq!(uses(&x, IpFamily::V4, "http")[0].0, "10.244.1.80");
    assert_eq!(uses(&x, IpFamily::V6, "http")[0].0, "fd00:244:1::80");

    // A single-stack IPv4 Service with an IPv6 slice, and a slice whose port is named
    // otherwise: kube-proxy's endpoint slice cache matches slice ports to Service ports by
    // name and protocol, and each family's proxier sees only its family's slices.
    let x = inline(
        r#"
apiVersion: v1
kind: Service
metadata: {name: mixed, namespace: default}
spec:
  clusterIP: 10.96.70.70
  ports:
  - {name: http, port: 80}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: mixed-v6, namespace: default, labels: {kubernetes.io/service-name: mixed}}
addressType: IPv6
ports:
- {name: http, port: 8080, protocol: TCP}
endpoints:
- addresses: ["fd00:244:2::7"]
  nodeName: worker-2
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: mixed-old, namespace: default, labels: {kubernetes.io/service-name: mixed}}
addressType: IPv4
ports:
- {name: web, port: 8080, protocol: TCP}
endpoints:
- addresses: [10.244.2.7]
  nodeName: worker-2
"#,
        "default/mixed",
    );
    let v6 = x
        .families
        .iter()
        .find(|f| f.family == IpFamily::V6)
        .expect("the IPv6 family is explained");
    assert_eq!(
        v6.not_proxied.as_deref(),
        Some("the Service has no IPv6 cluster IP")
    );
    assert_eq!(
        v6.unused_endpoints,
        ["fd00:244:2::7".parse::<std::net::IpAddr>().unwrap()]
    );
    let port = port_of(&x, IpFamily::V4, "http");
    assert!(port.endpoints.is_empty());
    assert_eq!(port.unmatched_slices.len(), 1);
    assert_eq!(port.unmatched_slices[0].slice, "mixed-old");
    assert_eq!(port.unmatched_slices[0].ports, ["\"web\"/tcp:8080"]);
}

#[test]
fn an_address_lost_to_an_older_service_is_named() {
    // An externalIP equal to another Service's ClusterIP (CVE-2020-8554) never takes it over:
    // the allocated address wins (crate::claims).
    let x = inline(
        r#"
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec:
  clusterIP: 10.96.0.10
  ports:
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: intruder, namespace: default}
spec:
  clusterIP: 10.96.0.20
  externalIPs: [10.96.0.10]
  ports:
  - {name: dns, port: 53, protocol: UDP}
"#,
        "default/intruder",
    );
    let port = port_of(&x, IpFamily::V4, "dns");
    let lost: Vec<(String, Option<&str>)> = port
        .virtual_servers
        .iter()
        .map(|v| (v.virtual_server.key.to_string(), v.lost_to.as_deref()))
        .collect();
    assert_eq!(
        lost,
        [
            ("udp 10.96.0.20:53".to_owned(), None),
            (
                "udp 10.96.0.10:53".to_owned(),
                Some(
                    "udp 10.96.0.10:53 is not proxied for this Service: kube-system/kube-dns \
                     has it as its spec.clusterIP (an allocated address beats a declared one)"
                )
            ),
        ]
    );
}

#[test]
fn the_text_names_every_reason() {
    let text = shape("scheduler-annotation-itp-local", "default/cache").to_string();
    assert!(
        text.starts_with("Service default/cache on node worker-1 (zone zone-a)\n"),
        "{text}"
    );
    assert!(text.contains("-A -t 10.96.60.60:11211 -s sh\n"), "{text}");
    assert!(
        text.contains("10.244.2.91:11211 node worker-2 [ready,serving]: not a real server: on node worker-2, not this one, and internalTrafficPolicy is Local"),
        "{text}"
    );
    let text = shape("headless", "default/db").to_string();
    assert!(
        text.contains("not proxied: headless (clusterIP: None)"),
        "{text}"
    );
}
