//! The daemon in IPVS mode against the fake API server (`testkit::apiserver`, TLS, a
//! ServiceAccount-like kubeconfig) in the VM: it programs the kernel, follows an
//! EndpointSlice change made through the watch, keeps its programming across a `410 Gone`
//! relist, and its Events arrive. The table is read with the real `ipvsadm -Sn`.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;

use serde_json::{Value, json};
use testkit::apiserver::FakeApiServer;
use testkit::daemon::{Daemon, QUICK_SYNC};
use testkit::{Netns, modprobe};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
}

const TOKEN: &str = "proxy-sa-token";

/// Service `default/NAME` with one port (`TCP` or `UDP`) and that target port.
fn service(name: &str, ip: &str, protocol: &str, port: u16, target: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip, "ports": [{"name": "p", "port": port, "targetPort": target,
                 "protocol": protocol}]}})
}

/// The one EndpointSlice of Service `default/SERVICE`: ready endpoints on node-1.
fn slice(service: &str, protocol: &str, port: u16, addresses: &[&str]) -> Value {
    let endpoints: Vec<Value> = addresses
        .iter()
        .map(|a| json!({"addresses": [a], "nodeName": "node-1", "conditions": {"ready": true}}))
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-1"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": [{"name": "p", "port": port, "protocol": protocol}],
        "endpoints": endpoints})
}

/// The lines of `ipvsadm -Sn` in the node's namespace, as a set (its order is the
/// kernel's hash order).
fn table(node: &Netns) -> BTreeSet<String> {
    node.run(&["ipvsadm", "-Sn"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn lines(expected: &[&str]) -> BTreeSet<String> {
    expected.iter().map(|l| (*l).to_owned()).collect()
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_apiserver_programs_ipvs_follows_the_watch_and_keeps_it_across_a_relist() {
    modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
    let node = Netns::new("vmapi");
    node.run(&["ip", "addr", "add", "192.168.7.1/24", "dev", "lo"]);
    let api = FakeApiServer::start(
        node.enter(|| TcpListener::bind("127.0.0.1:0").expect("bind in the namespace")),
    );
    api.require_token(TOKEN);
    api.apply(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.7.1"}]}}),
    );
    api.apply(service("web", "10.96.0.10", "TCP", 80, 8080));
    api.apply(slice("web", "TCP", 8080, &["10.244.1.5", "10.244.1.6"]));
    api.apply(service("dns", "10.96.0.53", "UDP", 53, 5353));
    api.apply(slice("dns", "UDP", 5353, &["10.244.2.7"]));
    // Port 0: refused by the model, reported as an Event, the others unaffected.
    api.apply(service("broken", "10.96.0.99", "TCP", 0, 80));

    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig(dir.path(), Some(TOKEN));
    let daemon = Daemon::against_api(&node, bin(), &kubeconfig, QUICK_SYNC);

    // kube-proxy's IPVS mode for two ClusterIP Services: round robin, masquerading, weight 1.
    let first = lines(&[
        "-A -t 10.96.0.10:80 -s rr",
        "-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1",
        "-a -t 10.96.0.10:80 -r 10.244.1.6:8080 -m -w 1",
        "-A -u 10.96.0.53:53 -s rr",
        "-a -u 10.96.0.53:53 -r 10.244.2.7:5353 -m -w 1",
    ]);
    daemon.eventually("the first sync's table", || table(&node) == first);

    // An EndpointSlice change through the watch reaches the kernel.
    api.apply(slice("web", "TCP", 8080, &["10.244.1.6", "10.244.1.9"]));
    let changed = lines(&[
        "-A -t 10.96.0.10:80 -s rr",
        "-a -t 10.96.0.10:80 -r 10.244.1.6:8080 -m -w 1",
        "-a -t 10.96.0.10:80 -r 10.244.1.9:8080 -m -w 1",
        "-A -u 10.96.0.53:53 -s rr",
        "-a -u 10.96.0.53:53 -r 10.244.2.7:5353 -m -w 1",
    ]);
    daemon.eventually("the changed endpoints", || table(&node) == changed);

    // 410 Gone: every watch ends and relists. The table stays through it, and a change
    // made meanwhile (no open watch hears of it) arrives with the relist.
    let lists_before = api.count("list", "endpointslices");
    api.apply_unwatched(slice("dns", "UDP", 5353, &["10.244.2.8"]));
    api.compact();
    daemon.eventually("the EndpointSlices relisted", || {
        api.count("list", "endpointslices") > lists_before
    });
    let relisted = lines(&[
        "-A -t 10.96.0.10:80 -s rr",
        "-a -t 10.96.0.10:80 -r 10.244.1.6:8080 -m -w 1",
        "-a -t 10.96.0.10:80 -r 10.244.1.9:8080 -m -w 1",
        "-A -u 10.96.0.53:53 -s rr",
        "-a -u 10.96.0.53:53 -r 10.244.2.8:5353 -m -w 1",
    ]);
    daemon.eventually("the relisted endpoints", || table(&node) == relisted);
    daemon.next_sync();
    assert_eq!(table(&node), relisted, "a later sync changed the table");

    // The Events: kube-proxy's Starting on the Node, the invalid Service's.
    daemon.eventually("the Starting Event", || {
        api.events().iter().any(|e| e.reason == "Starting")
    });
    let events = api.events();
    let starting: Vec<_> = events.iter().filter(|e| e.reason == "Starting").collect();
    assert_eq!(starting.len(), 1, "{events:?}");
    assert_eq!(
        (
            starting[0].kind.as_str(),
            starting[0].object.as_str(),
            starting[0].event_type.as_str()
        ),
        ("Node", "node-1", "Normal")
    );
    daemon.eventually("the InvalidObject Event", || {
        api.events().iter().any(|e| e.reason == "InvalidObject")
    });
    let invalid = api
        .events()
        .into_iter()
        .find(|e| e.reason == "InvalidObject")
        .expect("event");
    assert_eq!(
        (
            invalid.kind.as_str(),
            invalid.object.as_str(),
            invalid.event_type.as_str()
        ),
        ("Service", "default/broken", "Warning")
    );
    assert!(invalid.note.contains("spec.ports[0].port"), "{invalid:?}");
    assert!(
        !api.events().iter().any(|e| e.reason == "ProxyModeFallback"),
        "{:?}",
        api.events()
    );
}
