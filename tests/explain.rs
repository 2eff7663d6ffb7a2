//! `kube-ipvs-proxy explain` end to end: over `--from-dir examples/cluster` (text and JSON,
//! errors), and against the fake API server (`testkit::apiserver`) with a kubeconfig,
//! granting only what the shipped ClusterRole grants.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use testkit::apiserver::{Access, FakeApiServer};

fn explain(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"));
    command
        .arg("explain")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .env_remove("KUBERNETES_SERVICE_HOST");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run kube-ipvs-proxy explain")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn explain_from_a_directory_gives_kube_proxys_reasons() {
    // Topology hints for zone-b on a node of zone-a (kube-proxy's topologyModeFromHints:
    // PreferSameZone, the other endpoint unavailable for topology).
    let out = explain(&["default/zoned", "--from-dir", "examples/cluster"], &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("-a -t 10.96.80.80:80 -r 10.244.2.110:8080 -m -w 1\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "10.244.4.111:8080 node worker-4 [ready,serving]: not a real server: topology hints \
             for zone zone-b (PreferSameZone), this node's zone is zone-a"
        ),
        "{stdout}"
    );

    // JSON: the source ranges exclude the node, so the node's own traffic is dropped; the
    // ipMode Proxy ingress is left to the load balancer.
    let x = json(&explain(
        &[
            "default/api",
            "--from-dir",
            "examples/cluster",
            "--output",
            "json",
        ],
        &[],
    ));
    assert_eq!(x["service"], "default/api");
    assert_eq!(x["node"], "worker-1");
    assert_eq!(x["proxyModeIngress"], serde_json::json!(["203.0.113.9"]));
    let port = &x["families"][0]["ports"][0];
    assert_eq!(port["name"], "grpc");
    assert_eq!(
        port["outFilterDrops"],
        serde_json::json!([{"addr": "203.0.113.8", "protocol": "tcp", "port": 8443}])
    );
    let roles: Vec<&str> = port["virtualServers"]
        .as_array()
        .expect("virtual servers")
        .iter()
        .map(|v| v["role"].as_str().expect("role"))
        .collect();
    assert_eq!(roles, ["clusterIP", "loadBalancerIP"]);

    // Another proxy's Service, and the label's value named.
    let x = json(&explain(
        &[
            "default/elsewhere",
            "--from-dir",
            "examples/cluster",
            "--output",
            "json",
        ],
        &[],
    ));
    assert_eq!(x["notProxied"]["reason"], "otherProxy");
    assert!(
        x["notProxied"]["message"]
            .as_str()
            .expect("message")
            .contains("service.kubernetes.io/service-proxy-name=")
    );
    assert_eq!(x["families"], serde_json::json!([]));
}

#[test]
fn explain_errors_name_the_service_and_the_flag() {
    let out = explain(&["default/nowhere", "--from-dir", "examples/cluster"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "kube-ipvs-proxy: explain: Service default/nowhere not found in examples/cluster\n"
    );
    let out = explain(&["nowhere", "--from-dir", "examples/cluster"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("\"nowhere\" is not NAMESPACE/SERVICE"));
    let out = explain(
        &["default/web", "--from-dir", "examples/cluster", "--cleanup"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "kube-ipvs-proxy: explain: --cleanup does not apply\n"
    );
}

/// Serves every object of `examples/cluster`.
fn serve_example_cluster(api: &FakeApiServer) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/cluster")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        let yaml = std::fs::read_to_string(&file).expect("example");
        for doc in serde_norway::Deserializer::from_str(&yaml) {
            let object: serde_json::Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            match object["items"].as_array() {
                Some(items) => items.iter().for_each(|i| api.apply(i.clone())),
                None if object.is_object() => api.apply(object),
                None => {}
            }
        }
    }
}

#[test]
fn explain_reads_the_cluster_with_the_daemons_rbac_only() {
    const TOKEN: &str = "explain-sa-token";
    let api = FakeApiServer::start(std::net::TcpListener::bind("127.0.0.1:0").expect("bind"));
    api.require_token(TOKEN);
    let shipped = manifests::rbac::shipped().unwrap_or_else(|e| panic!("{e}"));
    let grants: BTreeSet<Access> = shipped.into_iter().map(Into::into).collect();
    api.grant_only(grants.clone());
    serve_example_cluster(&api);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig(dir.path(), Some(TOKEN));
    let kubeconfig = kubeconfig.to_str().expect("utf-8");

    // externalTrafficPolicy Local: the endpoint on worker-2 serves the cluster IP only.
    let x = json(&explain(
        &[
            "ingress/ingress-nginx",
            "--kubeconfig",
            kubeconfig,
            "--hostname-override",
            "worker-1",
            "--output",
            "json",
        ],
        &[("HOME", dir.path())],
    ));
    let remote = &x["families"][0]["ports"][0]["endpoints"][1];
    assert_eq!(remote["address"], "10.244.2.51");
    assert_eq!(remote["internal"], "realServer");
    assert_eq!(
        remote["external"],
        serde_json::json!({"excluded": {"reason": "otherNode", "node": "worker-2",
                                        "policy": "externalTrafficPolicy"}})
    );
    // A headless Service, which the daemon's label-selected listing never shows.
    let x = json(&explain(
        &["default/db", "--kubeconfig", kubeconfig, "--output", "json"],
        &[("HOME", dir.path())],
    ));
    assert_eq!(x["notProxied"]["reason"], "headless");

    let requests = api.requests();
    assert!(
        requests.iter().all(|r| grants.contains(r)),
        "{requests:?} outside {grants:?}"
    );
    let list = |group: &str, resource: &str| (group.into(), resource.into(), "list".into());
    let one_run = [
        list("", "services"),
        list("discovery.k8s.io", "endpointslices"),
        list("", "nodes"),
        list("", "services"),
    ];
    assert_eq!(requests, [one_run.clone(), one_run].concat());
}
