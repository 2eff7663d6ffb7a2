//! The HTTP servers under attack, on the host (iptables fallback mode): with the daemon's
//! file-handle limit lowered to 512, a client Pod floods the node's healthz address with
//! idle connections and holds others open with a request head sent a byte at a time, and
//! a local process floods the metrics address; `/healthz` and `/metrics` keep answering,
//! a Service written meanwhile is programmed, and the idle connections are closed. Only
//! the tests' own namespaces are touched.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use testkit::ThreeHosts;
use testkit::daemon::{ClusterDir, Daemon, QUICK_SYNC};

/// Connections of the idle flood on the healthz address (more than the daemon's handles).
const FLOOD: usize = 600;
/// Connections of the idle flood on the metrics address.
const METRICS_FLOOD: usize = 300;
/// Connections sending their request head a byte at a time.
const SLOW: usize = 10;
/// A second client address for the slow connections.
const SLOW_CLIENT: &str = "192.168.7.3";

/// `count` connections to `target` from `source` (any port), those that the kernel accepts
/// within a second each; call it inside the client's namespace.
fn open(source: IpAddr, target: SocketAddr, count: usize) -> Vec<TcpStream> {
    (0..count)
        .filter_map(|_| {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
            socket.bind(&SocketAddr::new(source, 0).into()).ok()?;
            socket
                .connect_timeout(&target.into(), Duration::from_secs(1))
                .ok()?;
            Some(socket.into())
        })
        .collect()
}

/// Whether the server has closed `stream` (EOF or reset); waits up to `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            _ => {}
        }
    }
    false
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_http_flood_and_slowloris_leave_health_metrics_and_syncs_working() {
    let hosts = ThreeHosts::new();
    hosts.client.run(&[
        "ip",
        "addr",
        "add",
        &format!("{SLOW_CLIENT}/24"),
        "dev",
        "eth0",
    ]);
    let cluster = ClusterDir::for_node("http-limits", &[ThreeHosts::NODE]);
    cluster.service(
        "first",
        "{clusterIP: 10.96.0.40, ports: [{name: http, port: 80, targetPort: 8080}]}",
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"));
    let daemon = Daemon::start(&hosts.node, bin, &cluster, QUICK_SYNC);
    let get = |port: u16, path: &str| {
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        hosts
            .node
            .enter(|| testkit::http_request(target, path))
            .unwrap_or_else(|e| format!("no answer: {e}"))
    };
    daemon.eventually("/healthz to answer 200", || {
        get(10256, "/healthz").starts_with("HTTP/1.0 200")
    });
    let pid = daemon.pid().to_string();
    testkit::run(&["prlimit", "--pid", &pid, "--nofile=512:512"]);

    let healthz = SocketAddr::new(ThreeHosts::NODE.parse().expect("address"), 10256);
    let client: IpAddr = ThreeHosts::CLIENT.parse().expect("address");
    let mut flood = hosts.client.enter(|| open(client, healthz, FLOOD));
    let local: IpAddr = "127.0.0.2".parse().expect("address");
    let metrics = SocketAddr::from(([127, 0, 0, 1], 10249));
    let metrics_flood = hosts.node.enter(|| open(local, metrics, METRICS_FLOOD));
    eprintln!(
        "{} + {} idle connections open",
        flood.len(),
        metrics_flood.len()
    );

    let slow_client: IpAddr = SLOW_CLIENT.parse().expect("address");
    let dribbling = Arc::new(AtomicBool::new(true));
    let slow = hosts.client.enter(|| open(slow_client, healthz, SLOW));
    let loris = {
        let dribbling = Arc::clone(&dribbling);
        std::thread::spawn(move || {
            let mut slow = slow;
            for stream in &mut slow {
                let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ");
            }
            // A byte per connection every half second, until told to stop or all closed.
            while dribbling.load(Ordering::Relaxed) {
                slow.retain_mut(|s| s.write_all(b"a").is_ok());
                if slow.is_empty() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            false
        })
    };

    // Probes and a sync while everything is held open.
    for probe in 0..10 {
        let health = get(10256, "/healthz");
        assert!(
            health.starts_with("HTTP/1.0 200"),
            "probe {probe}: /healthz answered {health:?}; log:\n{}",
            daemon.log()
        );
        let text = get(10249, "/metrics");
        assert!(
            text.contains("kubeproxy_proxy_healthz_total"),
            "probe {probe}: /metrics answered {text:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    cluster.service(
        "second",
        "{clusterIP: 10.96.0.41, ports: [{name: http, port: 80, targetPort: 8080}]}",
    );
    daemon.eventually(
        "the Service written during the flood to be programmed",
        || hosts.node.run(&["iptables-save"]).contains("10.96.0.41/32"),
    );

    // The idle and slow connections are let go of within the header timeout (10 s).
    let first = flood.first_mut().expect("a flood connection");
    assert!(
        closed_within(first, Duration::from_secs(15)),
        "an idle connection is still open"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !loris.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    dribbling.store(false, Ordering::Relaxed);
    assert!(
        loris.join().expect("the slow client"),
        "a connection sending its head a byte at a time is still open"
    );
    let log = daemon.log();
    assert!(
        !log.contains("Too many open files"),
        "the daemon ran out of file handles:\n{log}"
    );
    drop(metrics_flood);
}
