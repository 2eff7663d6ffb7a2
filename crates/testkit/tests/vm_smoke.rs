//! The VM harness's own smoke test: proves that the guest built by
//! `tests/vm/run` has a working IPVS, dummy links, ipsets and namespaces, and
//! that IPVS really forwards a TCP connection between namespaces.

use testkit::{Netns, ThreeHosts, http_get, modprobe, serve_http};

const VIP: &str = "10.96.0.10";

/// The `Conns` counter of a TCP virtual server, from `ipvsadm -Ln --stats`.
fn service_conns(node: &Netns, svc: &str) -> u64 {
    let stats = node.run(&["ipvsadm", "-Ln", "--stats", "--exact"]);
    stats
        .lines()
        .find(|l| l.starts_with("TCP") && l.contains(svc))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no line for {svc} in:\n{stats}"))
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_smoke_ipvs_forwards_a_tcp_connection() {
    modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
    let hosts = ThreeHosts::new();
    let node = &hosts.node;

    // The virtual server's address lives on a dummy interface, kept down like kube-proxy's.
    node.add_dummy("kube-ipvs0", &format!("{VIP}/32"));
    assert!(
        node.run(&["ip", "-o", "addr", "show", "dev", "kube-ipvs0"])
            .contains(VIP)
    );

    let svc = format!("{VIP}:80");
    let real = format!("{}:8080", ThreeHosts::BACKEND);
    node.run(&["ipvsadm", "-A", "-t", &svc, "-s", "rr"]);
    node.run(&["ipvsadm", "-a", "-t", &svc, "-r", &real, "-m", "-w", "1"]);
    assert_eq!(
        node.run(&["ipvsadm", "-Sn"]),
        format!("-A -t {svc} -s rr\n-a -t {svc} -r {real} -m -w 1\n"),
        "ipvsadm -Sn shows the table"
    );

    node.run(&["ipset", "create", "KUBE-CLUSTER-IP", "hash:ip,port"]);
    node.run(&["ipset", "add", "KUBE-CLUSTER-IP", &format!("{VIP},tcp:80")]);
    let set = node.run(&["ipset", "list", "KUBE-CLUSTER-IP"]);
    assert!(
        set.contains(&format!("{VIP},tcp:80")),
        "ipset list shows the entry:\n{set}"
    );

    let token = format!("served-by-backend-{}", std::process::id());
    serve_http(&hosts.backend, 8080, &token);

    // Only IPVS can carry this: the VIP has no listener and the backend
    // listens on another port at another address.
    let reply = http_get(&hosts.client, VIP, 80).expect("no reply through the IPVS virtual server");
    assert!(
        reply.contains(&token),
        "unexpected reply through IPVS:\n{reply}"
    );
    // The kernel folds its per-CPU counters into what it reports every 2 s.
    let counted = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        service_conns(node, &svc) >= 1
    });
    assert!(counted, "IPVS counted no connection for {svc}");

    // A port with no virtual server is not forwarded.
    assert_eq!(
        http_get(&hosts.client, VIP, 81),
        None,
        "a port without a virtual server answered"
    );
}
