//! A node as kube-proxy's IPVS mode leaves it, for the takeover tests:
//! `tests/fixtures/kube-proxy-node/` (written from kube-proxy's source and tests; see its
//! README) loaded with the real tools, and the cluster those Services come from.

use std::path::Path;

use crate::daemon::{ClusterDir, NODE_NAME};
use crate::{Netns, ThreeHosts};

/// A fixture file without its comment lines.
fn fixture(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
}

/// Feeds `text` (comments removed) to `tool` on its standard input, in `node`.
fn restore(node: &Netns, tool: &str, args: &str, name: &str, text: &str) {
    let file = std::env::temp_dir().join(format!("{}-kube-proxy.{name}", node.name()));
    let body: String = fixture(text).map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, body).expect("write the fixture");
    node.sh(&format!(
        "{} {args} < {}",
        crate::tool(tool).display(),
        file.display()
    ));
}

/// Programs `node` as kube-proxy leaves it for the Services of [`cluster`].
pub fn kube_proxy_node(node: &Netns) {
    for line in fixture(include_str!(
        "../../../tests/fixtures/kube-proxy-node/sysctls"
    )) {
        let (key, value) = line.split_once('=').expect("KEY=VALUE");
        node.sysctl(key, value);
    }
    restore(
        node,
        "ipvsadm",
        "-R",
        "ipvs",
        include_str!("../../../tests/fixtures/kube-proxy-node/ipvsadm.rules"),
    );
    node.run(&["ip", "link", "add", "kube-ipvs0", "type", "dummy"]);
    for address in fixture(include_str!(
        "../../../tests/fixtures/kube-proxy-node/addresses"
    )) {
        node.run(&["ip", "addr", "add", address, "dev", "kube-ipvs0"]);
    }
    restore(
        node,
        "ipset",
        "restore",
        "ipset",
        include_str!("../../../tests/fixtures/kube-proxy-node/ipset.restore"),
    );
    restore(
        node,
        "iptables-restore",
        "--noflush",
        "iptables",
        include_str!("../../../tests/fixtures/kube-proxy-node/iptables.restore"),
    );
    let iptables = crate::tool("iptables");
    for jump in fixture(include_str!(
        "../../../tests/fixtures/kube-proxy-node/jumps"
    )) {
        node.sh(&format!("{} {jump}", iptables.display()));
    }
}

/// The cluster of the fixture (its README): Services `web`, `np`, `lb` and `dns`, each with
/// the one endpoint 10.244.1.5 on this node.
pub fn cluster(tag: &str) -> ClusterDir {
    let cluster = ClusterDir::for_node(tag, &[ThreeHosts::NODE]);
    cluster.write(
        "services.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n\
         spec: {type: ClusterIP, clusterIP: 10.96.0.10, ports: [{name: http, port: 80, targetPort: 8080}]}\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {name: np, namespace: default}\n\
         spec: {type: NodePort, clusterIP: 10.96.0.20, ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]}\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {name: lb, namespace: default}\n\
         spec: {type: LoadBalancer, clusterIP: 10.96.0.30, externalTrafficPolicy: Local, \
         healthCheckNodePort: 32000, loadBalancerSourceRanges: [192.168.7.0/24], \
         ports: [{name: https, port: 443, targetPort: 8443, nodePort: 30443}]}\n\
         status: {loadBalancer: {ingress: [{ip: 203.0.113.7}]}}\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {name: dns, namespace: default}\n\
         spec: {type: ClusterIP, clusterIP: 10.96.0.53, ports: [{name: dns, port: 53, targetPort: 5353, protocol: UDP}]}\n",
    );
    for (service, port, target, protocol) in [
        ("web", "http", 8080, "TCP"),
        ("np", "http", 8080, "TCP"),
        ("lb", "https", 8443, "TCP"),
        ("dns", "dns", 5353, "UDP"),
    ] {
        let ports = [crate::daemon::SlicePort {
            name: port,
            port: target,
            protocol,
        }];
        cluster.local_endpoints(service, &ports, &[ThreeHosts::BACKEND]);
    }
    cluster
}

/// What the live pre-flight said.
#[derive(Debug)]
pub struct Preflight {
    /// Its exit code: 0 nothing to change, 1 changes, 2 an error.
    pub code: Option<i32>,
    /// The operations, as printed.
    pub stdout: String,
    /// Its log.
    pub stderr: String,
}

/// Runs the daemon `bin`'s live pre-flight (`--dry-run --diff`) in `node` against `cluster`.
pub fn preflight(node: &Netns, bin: &Path, cluster: &ClusterDir) -> Preflight {
    let out = node.try_run(&[
        &bin.display().to_string(),
        "--from-dir",
        &cluster.path().display().to_string(),
        "--hostname-override",
        NODE_NAME,
        "--dry-run",
        "--diff",
    ]);
    Preflight {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
