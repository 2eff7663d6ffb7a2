//! `--cleanup` on the host, in a network namespace: kube-proxy's IPVS-mode
//! and iptables-mode chains, jumps and sets go, everything else (kubelet's
//! KUBE-FIREWALL, other programs' chains and sets) stays, and a second run is
//! harmless. (No IPVS and no dummy links on the host: the VM test
//! `vm_nodeport` covers those parts.)

use std::path::Path;

use testkit::Netns;

fn bin() -> String {
    Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
        .display()
        .to_string()
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_cleanup_removes_our_chains_and_sets_only() {
    let ns = Netns::new("cleanup");
    ns.sh(
        "ipset create KUBE-CLUSTER-IP hash:ip,port && \
         ipset create KUBE-6-CLUSTER-IP hash:ip,port family inet6 && \
         ipset create my-set hash:ip && \
         iptables -t nat -N KUBE-SERVICES && \
         iptables -t nat -A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT && \
         iptables -t nat -I PREROUTING -m comment --comment 'kubernetes service portals' -j KUBE-SERVICES && \
         iptables -t nat -N KUBE-SVC-ABCDEF && \
         iptables -t nat -N KUBE-SEP-ABCDEF && \
         iptables -t nat -A KUBE-SVC-ABCDEF -j KUBE-SEP-ABCDEF && \
         iptables -t nat -A KUBE-SERVICES -j KUBE-SVC-ABCDEF && \
         iptables -t nat -N DOCKER && \
         iptables -t nat -A PREROUTING -j DOCKER && \
         iptables -t filter -N KUBE-FORWARD && \
         iptables -t filter -A FORWARD -j KUBE-FORWARD && \
         iptables -t filter -N KUBE-FIREWALL && \
         iptables -t filter -A INPUT -j KUBE-FIREWALL && \
         ip6tables -t nat -N KUBE-POSTROUTING",
    );
    for _ in 0..2 {
        ns.run(&[&bin(), "--cleanup"]);
    }
    let nat = ns.run(&["iptables-save", "-t", "nat"]);
    for gone in [
        "KUBE-SERVICES",
        "kubernetes service portals",
        "KUBE-SVC-ABCDEF",
        "KUBE-SEP-ABCDEF",
    ] {
        assert!(!nat.contains(gone), "{gone} left in\n{nat}");
    }
    for kept in [":DOCKER", "-A PREROUTING -j DOCKER"] {
        assert!(nat.contains(kept), "{kept} removed from\n{nat}");
    }
    let filter = ns.run(&["iptables-save", "-t", "filter"]);
    assert!(!filter.contains("KUBE-FORWARD"), "{filter}");
    assert!(
        filter.contains("-A INPUT -j KUBE-FIREWALL"),
        "kubelet's chain is not ours:\n{filter}"
    );
    let nat6 = ns.run(&["ip6tables-save", "-t", "nat"]);
    assert!(!nat6.contains("KUBE-POSTROUTING"), "{nat6}");
    let sets = ns.run(&["ipset", "list", "-n"]);
    assert_eq!(sets.trim(), "my-set");
}
