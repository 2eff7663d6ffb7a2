//! `ipvsctl-rs --names cluster` against the fake API server (`testkit::apiserver`) on
//! loopback, serving the cluster in `testdata/names/`. `conns` reads a connection table
//! from a file (`--proc-file`), so this runs without root and without IPVS. The server
//! requires the ServiceAccount's token and grants only what `manifests/`'s ClusterRole
//! grants: the command succeeds, names every connection, and asked for nothing else.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use testkit::apiserver::{Access, FakeApiServer};

const BIN: &str = env!("CARGO_BIN_EXE_ipvsctl-rs");
const TOKEN: &str = "ipvsctl-sa-token";

/// Connections (the kernel's `/proc/net/ip_vs_conn` format) through the virtual servers of
/// `testdata/names.ipvsadm`, from client 192.168.7.2.
const PROC_CONN: &str = "\
Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP C0A80702 D431 0A60000A 0050 0AF40105 1F90 ESTABLISHED     895
TCP C0A80702 D432 C0A83202 7580 0AF40109 1F90 ESTABLISHED     890
UDP C0A80702 9C40 0A600035 0035 0AF40103 0035 UDP             120
TCP C0A80702 D433 0A60000A 0050 0AF40307 1F90 TIME_WAIT        61
TCP C0A80702 D434 0A000001 0050 0AF40105 1F90 SYN_RECV         59
";

/// What `manifests/`'s ClusterRole grants, as the fake's permissions.
fn cluster_role_grants() -> BTreeSet<Access> {
    let shipped = manifests::rbac::shipped().unwrap_or_else(|e| panic!("{e}"));
    shipped.into_iter().map(Into::into).collect()
}

/// Serves every object of the YAML files in `testdata/names/`.
fn serve_testdata(api: &FakeApiServer) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/names");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata/names")
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("fixture");
        for doc in serde_norway::Deserializer::from_str(&text) {
            let object: serde_json::Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            api.apply(object);
        }
    }
}

/// Runs `ipvsctl-rs conns -n` on the table above with `args`, as node `node-a`, with
/// `$KUBECONFIG` set to `kubeconfig`.
fn conns(dir: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    let table = dir.join("ip_vs_conn");
    std::fs::write(&table, PROC_CONN).expect("write the connection table");
    Command::new(BIN)
        .args(["conns", "-n", "--proc-file"])
        .arg(&table)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", dir)
        .env("NODE_NAME", "node-a")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run ipvsctl-rs")
}

#[test]
fn names_cluster_reads_a_live_api_server() {
    let api = FakeApiServer::start(std::net::TcpListener::bind("127.0.0.1:0").expect("bind"));
    api.require_token(TOKEN);
    let grants = cluster_role_grants();
    api.grant_only(grants.clone());
    serve_testdata(&api);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig(dir.path(), Some(TOKEN));

    let out = conns(dir.path(), &kubeconfig, &["--names", "cluster"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    // Per connection: destination, Service port, Pod (the three last columns).
    let named: Vec<Vec<&str>> = stdout
        .lines()
        .skip(1)
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[words.len() - 3..].to_vec()
        })
        .collect();
    assert_eq!(
        named,
        [
            ["destination", "service", "pod"],
            ["10.244.1.5:8080", "shop/web:http", "shop/web-7d4b9-abcde"],
            // The NodePort on node-a's InternalIP, from its Node object.
            ["10.244.1.9:8080", "shop/cart", "shop/cart-0"],
            [
                "10.244.1.3:53",
                "kube-system/kube-dns:dns",
                "kube-system/coredns-5d78c-x2x4q"
            ],
            // An endpoint without targetRef; a virtual server no Service has.
            ["10.244.3.7:8080", "shop/web:http", "-"],
            ["10.244.1.5:8080", "-", "-"],
        ]
    );
    // One list of each kind, all granted; each carried the token (401 otherwise).
    let requests = api.requests();
    let access = |group: &str, resource: &str| (group.into(), resource.into(), "list".into());
    assert_eq!(
        requests,
        [
            access("", "services"),
            access("discovery.k8s.io", "endpointslices"),
            access("", "nodes"),
        ]
    );
    assert!(requests.iter().all(|r| grants.contains(r)), "{requests:?}");

    // Without the token (and `--kubeconfig` before `$KUBECONFIG`): refused, said in one
    // line naming the server, nothing printed.
    let anonymous = tempfile::tempdir().expect("tempdir");
    let no_token = api.kubeconfig(anonymous.path(), None);
    let out = conns(
        dir.path(),
        &kubeconfig,
        &[
            "--names",
            "cluster",
            "--kubeconfig",
            no_token.to_str().expect("utf-8"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    let prefix = format!(
        "ipvsctl-rs: --names cluster ({}/): listing Services: ",
        api.url()
    );
    assert!(stderr.starts_with(&prefix), "{stderr}");
    assert!(stderr.contains("Unauthorized"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
