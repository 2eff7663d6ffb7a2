//! The daemon against the fake API server (`testkit::apiserver`) instead of a directory, in
//! the iptables fallback on this host (no IPVS here): it starts while the API server fails,
//! backs off, reports a node that has never synced on `/healthz`, syncs once the server
//! answers, delivers the Event it could not send at start, and asks for nothing its
//! ClusterRole does not grant. The API server listens inside the test's node namespace and
//! serves TLS; a kubeconfig naming another CA, or a wrong token, is refused and retried.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use testkit::Netns;
use testkit::apiserver::{FakeApiServer, Fault};
use testkit::daemon::{Daemon, SHORT_SYNC};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
}

/// What `manifests/`'s ClusterRole grants, as the fake's permissions.
fn cluster_role_grants() -> BTreeSet<(String, String, String)> {
    let shipped = manifests::rbac::shipped().unwrap_or_else(|e| panic!("{e}"));
    shipped.into_iter().map(Into::into).collect()
}

/// The fake API server, listening in `ns`, with node `node-1` (192.168.7.1, bound to the
/// namespace's loopback) and Service `default/web` with one ready endpoint.
fn api_with_one_service(ns: &Netns) -> FakeApiServer {
    ns.run(&["ip", "addr", "add", "192.168.7.1/24", "dev", "lo"]);
    let api = FakeApiServer::start(
        ns.enter(|| TcpListener::bind("127.0.0.1:0").expect("bind in the namespace")),
    );
    api.require_token("proxy-sa-token");
    api.grant_only(cluster_role_grants());
    api.apply(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.7.1"}]}}),
    );
    api.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80,
                 "targetPort": 8080, "protocol": "TCP"}]}}));
    api.apply(
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": "node-1",
                       "conditions": {"ready": true}}]}),
    );
    api
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_apiserver_failing_at_start_then_synced_with_events_delivered() {
    let ns = Netns::new("apiserver");
    let api = api_with_one_service(&ns);
    api.set_fault(Fault::ServerError, true);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig(dir.path(), Some("proxy-sa-token"));
    let daemon = Daemon::against_api(&ns, bin(), &kubeconfig, SHORT_SYNC);

    // Failing: the three watches back off (0.8 s doubling): a handful of attempts in 6 s,
    // one log line each; no sync, and once 2 x syncPeriod has passed, /healthz says so.
    std::thread::sleep(Duration::from_secs(6));
    let attempts = daemon.log().matches("watch failed; retrying").count();
    assert!(
        (3..=15).contains(&attempts),
        "{attempts} failed attempts logged in 6 s"
    );
    assert_eq!(daemon.syncs(), 0);
    let reply = daemon.healthz();
    assert!(reply.contains(" 503 "), "never synced, yet: {reply}");
    assert!(reply.contains("\"lastUpdated\":null"), "{reply}");
    assert!(api.events().is_empty());

    // Answering: the first sync programs the Service, /healthz turns 200.
    api.set_fault(Fault::ServerError, false);
    daemon.eventually_within(Duration::from_secs(60), "the first sync", || {
        daemon.syncs() > 0
    });
    let nat = ns.run(&["iptables-save", "-t", "nat"]);
    assert!(nat.contains("10.96.0.10/32"), "{nat}");
    daemon.eventually("/healthz 200", || daemon.healthz().contains(" 200 OK"));

    // The fallback's Event, which could not be sent at start, arrives.
    daemon.eventually_within(
        Duration::from_secs(60),
        "the ProxyModeFallback Event",
        || api.events().iter().any(|e| e.reason == "ProxyModeFallback"),
    );
    let event = api
        .events()
        .into_iter()
        .find(|e| e.reason == "ProxyModeFallback")
        .expect("event");
    assert_eq!(
        (
            event.kind.as_str(),
            event.object.as_str(),
            event.event_type.as_str()
        ),
        ("Node", "node-1", "Warning")
    );
    // kube-proxy's birth cry, before it: Normal, reason Starting, on the Node.
    let starting: Vec<_> = api
        .events()
        .into_iter()
        .filter(|e| e.reason == "Starting")
        .collect();
    assert_eq!(starting.len(), 1, "{starting:?}");
    assert_eq!(
        (
            starting[0].kind.as_str(),
            starting[0].object.as_str(),
            starting[0].event_type.as_str()
        ),
        ("Node", "node-1", "Normal")
    );

    // Every request was one the ClusterRole grants (the fake answers 403 otherwise) and
    // carried the token (401 otherwise).
    let grants = cluster_role_grants();
    let refused: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| !grants.contains(r))
        .collect();
    assert!(refused.is_empty(), "outside the ClusterRole: {refused:?}");
    assert!(!daemon.log().contains("Unauthorized"), "{}", daemon.log());
}

/// In a Pod: no kubeconfig, no `--master`; the API server from `KUBERNETES_SERVICE_HOST`
/// and `_PORT`, trusted by the ServiceAccount's `ca.crt`, with its token (the fake answers
/// 401 without it), as kube-proxy's `rest.InClusterConfig`.
#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_apiserver_in_cluster_with_the_service_accounts_token() {
    let host_secrets = Path::new("/var/run/secrets").exists();
    let ns = Netns::new("apiincluster");
    let api = api_with_one_service(&ns);
    let secrets = tempfile::tempdir().expect("tempdir");
    api.service_account(secrets.path(), "proxy-sa-token");
    let daemon = Daemon::in_cluster(&ns, bin(), &api, secrets.path(), SHORT_SYNC);
    daemon.eventually_within(Duration::from_secs(60), "the first sync", || {
        daemon.syncs() > 0
    });
    let nat = ns.run(&["iptables-save", "-t", "nat"]);
    assert!(nat.contains("10.96.0.10/32"), "{nat}");
    let log = daemon.log();
    let server = format!("server={}/", api.url());
    assert!(log.contains(&server), "{server} not in {log}");
    assert!(!log.contains("kubeconfig="), "{log}");
    assert!(!log.contains("Unauthorized"), "{log}");
    assert!(api.count("list", "services") > 0);
    assert_eq!(
        Path::new("/var/run/secrets").exists(),
        host_secrets,
        "the host's /var/run/secrets was left alone"
    );
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_apiserver_drift_repaired_gives_one_node_event_per_window() {
    let ns = Netns::new("apidrift");
    let api = api_with_one_service(&ns);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig(dir.path(), Some("proxy-sa-token"));
    let daemon = Daemon::against_api(&ns, bin(), &kubeconfig, SHORT_SYNC);
    daemon.eventually("the first sync", || daemon.syncs() > 0);
    let repaired = || {
        daemon
            .metric(r#"kube_ipvs_proxy_drift_repaired_total{kind="iptables_chain"}"#)
            .unwrap_or(0.0)
    };
    let drift_events = || {
        api.events()
            .into_iter()
            .filter(|e| e.reason == "DriftRepaired")
            .collect::<Vec<_>>()
    };

    // Behind the daemon's back: its Service dispatch chain emptied. The next periodic sync
    // puts it back and says so on the Node.
    ns.run(&["iptables", "-t", "nat", "-F", "KUBE-SERVICES"]);
    daemon.eventually("the chain repaired", || repaired() >= 1.0);
    assert!(
        ns.run(&["iptables-save", "-t", "nat"])
            .contains("-A KUBE-SERVICES -d 10.96.0.10/32"),
        "KUBE-SERVICES not repaired"
    );
    daemon.eventually("the DriftRepaired Event", || !drift_events().is_empty());
    let event = drift_events().remove(0);
    assert_eq!(
        (
            event.kind.as_str(),
            event.object.as_str(),
            event.event_type.as_str()
        ),
        ("Node", "node-1", "Warning")
    );
    assert!(event.note.contains("iptables_chain 1"), "{}", event.note);

    // Drift again, within the window: repaired and counted, but no second Event.
    ns.run(&["iptables", "-t", "nat", "-F", "KUBE-SERVICES"]);
    daemon.eventually("the chain repaired again", || repaired() >= 2.0);
    daemon.next_sync();
    assert_eq!(drift_events().len(), 1, "{:?}", drift_events());
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_apiserver_a_held_healthz_port_gives_kube_proxys_event() {
    let ns = Netns::new("apiheld");
    let api = api_with_one_service(&ns);
    // The terminating kube-proxy still holds the healthz port.
    let holder = ns.enter(|| TcpListener::bind("0.0.0.0:10256").expect("hold 10256"));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig(dir.path(), Some("proxy-sa-token"));
    let daemon = Daemon::against_api(&ns, bin(), &kubeconfig, SHORT_SYNC);
    daemon.eventually("the first sync while the port is held", || {
        daemon.syncs() > 0
    });
    let failed = || {
        api.events()
            .into_iter()
            .filter(|e| e.reason == "FailedToStartProxierHealthcheck")
            .collect::<Vec<_>>()
    };
    daemon.eventually("kube-proxy's FailedToStartProxierHealthcheck Event", || {
        !failed().is_empty()
    });
    let event = &failed()[0];
    assert_eq!(
        (
            event.kind.as_str(),
            event.object.as_str(),
            event.event_type.as_str()
        ),
        ("Node", "node-1", "Warning")
    );
    assert!(
        event
            .note
            .starts_with("serving healthz on 0.0.0.0:10256 failed: "),
        "{event:?}"
    );
    drop(holder);
    daemon.eventually("the healthz port bound once free", || {
        ns.enter(|| std::net::TcpStream::connect("127.0.0.1:10256").is_ok())
    });
    assert!(daemon.healthz().contains(" 200 OK"));
    assert_eq!(failed().len(), 1, "one Event, however many tries failed");
}

/// Waits 8 s while the daemon's requests are refused, checks that it still runs and has
/// never synced, and returns its `watch failed; retrying` lines.
fn refused_for_a_while(daemon: &Daemon<'_>) -> Vec<String> {
    std::thread::sleep(Duration::from_secs(8));
    assert!(daemon.running(), "exited:\n{}", daemon.log());
    assert_eq!(daemon.syncs(), 0);
    daemon
        .log()
        .lines()
        .filter(|l| l.contains("watch failed; retrying"))
        .map(str::to_owned)
        .collect()
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_apiserver_a_kubeconfig_naming_another_ca_is_refused_and_retried() {
    let ns = Netns::new("apica");
    let api = api_with_one_service(&ns);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig_with_other_ca(dir.path(), Some("proxy-sa-token"));
    let daemon = Daemon::against_api(&ns, bin(), &kubeconfig, SHORT_SYNC);

    let failed = refused_for_a_while(&daemon);
    // Which server, from which kubeconfig, once; then why, once per attempt, with backoff.
    let log = daemon.log();
    let named = log
        .lines()
        .filter(|l| l.contains("API server") && l.contains(&api.url()))
        .collect::<Vec<_>>();
    assert_eq!(named.len(), 1, "{log}");
    assert!(
        named[0].contains(&kubeconfig.display().to_string()),
        "{log}"
    );
    assert!((3..=18).contains(&failed.len()), "{log}");
    assert!(
        failed.iter().all(|l| l.contains("UnknownIssuer")),
        "{failed:#?}"
    );
    // Nothing reached the HTTP layer: no request was made.
    assert!(api.requests().is_empty(), "{:?}", api.requests());
    assert!(daemon.healthz().contains(" 503 "));
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_apiserver_a_wrong_token_gets_401_logged_and_retried() {
    let ns = Netns::new("apitoken");
    let api = api_with_one_service(&ns);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig(dir.path(), Some("not-the-sa-token"));
    let daemon = Daemon::against_api(&ns, bin(), &kubeconfig, SHORT_SYNC);

    let failed = refused_for_a_while(&daemon);
    // One line per refused attempt, saying 401, each a list the fake refused.
    let lists: usize = ["services", "endpointslices", "nodes"]
        .iter()
        .map(|r| api.count("list", r))
        .sum();
    assert_eq!(failed.len(), lists, "{failed:#?}");
    assert!((3..=18).contains(&lists), "{lists} refused lists in 8 s");
    assert!(
        failed
            .iter()
            .all(|l| l.contains("Unauthorized") && l.contains("code: 401")),
        "{failed:#?}"
    );

    // The right token (the kubeconfig is read at start): synced.
    api.kubeconfig(dir.path(), Some("proxy-sa-token"));
    let mut daemon = daemon;
    daemon.restart();
    daemon.eventually("a sync with the right token", || daemon.syncs() > 0);
}
