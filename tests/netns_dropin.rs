//! Starting as kube-proxy's replacement, in a network namespace on the host: kube-proxy's
//! flags, its conntrack sysctls (per namespace) and oom_score_adj, and a healthz port still
//! held by another process (kube-proxy's terminating Pod), retried while syncing goes on or
//! fatal with --bind-address-hard-fail.

use std::net::TcpListener;
use std::path::Path;

use testkit::Netns;
use testkit::daemon::{ClusterDir, Daemon, QUICK_SYNC};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
}

fn cluster() -> ClusterDir {
    let cluster = ClusterDir::for_node("dropin", &["10.0.0.1"]);
    cluster.service(
        "web",
        "{clusterIP: 10.96.0.10, ports: [{name: http, port: 80}]}",
    );
    cluster
}

const ESTABLISHED: &str = "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established";
const UDP: &str = "/proc/sys/net/netfilter/nf_conntrack_udp_timeout";

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_conntrack_oom_and_a_held_healthz_port() {
    let ns = Netns::new("dropin");
    let host_established = std::fs::read_to_string(ESTABLISHED).unwrap_or_default();
    // Another process (kube-proxy, terminating) holds the healthz port in the namespace.
    let holder = ns.enter(|| TcpListener::bind("0.0.0.0:10256").expect("hold 10256"));
    let cluster = cluster();
    let flags = [
        QUICK_SYNC,
        &[
            "--v=4",
            // Raising needs no CAP_SYS_RESOURCE (lowering, like the default -999, does).
            "--oom-score-adj=500",
            "--conntrack-tcp-timeout-established=2h",
            "--conntrack-udp-timeout=45s",
            "--feature-gates=SomeGate=true",
        ],
    ]
    .concat();
    let daemon = Daemon::start(&ns, bin(), &cluster, &flags);
    daemon.eventually("a sync while the port is held", || daemon.syncs() > 0);
    daemon.eventually("the bind retry logged", || {
        daemon
            .log()
            .contains("cannot bind the healthz address; retrying while syncing goes on")
    });
    assert!(
        daemon
            .log()
            .contains("featureGates / --feature-gates (SomeGate=true) is not honoured"),
        "{}",
        daemon.log()
    );
    // kube-proxy's setupConntrack, inside the namespace only.
    assert_eq!(ns.run(&["cat", ESTABLISHED]).trim(), "7200");
    assert_eq!(ns.run(&["cat", UDP]).trim(), "45");
    assert_eq!(
        std::fs::read_to_string(ESTABLISHED).unwrap_or_default(),
        host_established,
        "the host's own value is untouched"
    );
    let oom = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", daemon.pid()))
        .expect("oom_score_adj");
    assert_eq!(oom.trim(), "500");
    // The old proxy goes: the endpoint comes up.
    drop(holder);
    daemon.eventually("the healthz port bound once free", || {
        ns.enter(|| std::net::TcpStream::connect("127.0.0.1:10256").is_ok())
    });
    daemon.eventually("/healthz answering 200", || {
        daemon.healthz().contains(" 200 OK")
    });
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_a_held_port_is_fatal_with_bind_address_hard_fail() {
    let ns = Netns::new("hardfail");
    let _holder = ns.enter(|| TcpListener::bind("127.0.0.1:10249").expect("hold 10249"));
    let cluster = cluster();
    let out = ns.try_run(&[
        &bin().display().to_string(),
        "--from-dir",
        &cluster.path().display().to_string(),
        "--hostname-override",
        "node-1",
        "--conntrack-max-per-core=0",
        "--bind-address-hard-fail",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .contains("binding the metrics address 127.0.0.1:10249 (bindAddressHardFail is true)"),
        "{stderr}"
    );
}

/// The kubeadm-shaped file with every field set plus an unknown one
/// (`testdata/kubeadm-kube-proxy-every-field.conf`): the daemon starts and syncs, with one
/// warning for the unknown field and one for the flags `--config` overrides.
#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_a_kubeadm_config_with_every_field_starts() {
    let ns = Netns::new("everyfield");
    let cluster = cluster();
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/kubeadm-kube-proxy-every-field.conf")
        .display()
        .to_string();
    let daemon = Daemon::start(&ns, bin(), &cluster, &["--config", &config]);
    daemon.eventually("a sync", || daemon.syncs() > 0);
    let log = daemon.log();
    assert_eq!(
        log.matches("unknown or duplicate field(s) futureField")
            .count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("--conntrack-max-per-core ignored: as in kube-proxy"),
        "{log}"
    );
}
