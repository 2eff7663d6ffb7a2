//! The host namespace tier's own smoke test: ipset and iptables work inside a
//! namespace the test made, and a DNAT rule matching an ipset carries real
//! traffic from a client namespace to a backend namespace.

use testkit::{ThreeHosts, http_get, serve_http};

const VIP: &str = "10.96.0.10";

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_smoke_ipset_and_iptables_carry_traffic() {
    let hosts = ThreeHosts::new();
    let node = &hosts.node;
    let token = format!("served-by-backend-{}", std::process::id());
    serve_http(&hosts.backend, 8080, &token);

    node.run(&["ipset", "create", "KUBE-CLUSTER-IP", "hash:ip,port"]);
    let rules = format!(
        "*nat\n-A PREROUTING -p tcp -m set --match-set KUBE-CLUSTER-IP dst,dst \
         -j DNAT --to-destination {}:8080\nCOMMIT\n",
        ThreeHosts::BACKEND
    );
    node.sh(&format!("printf '{rules}' | iptables-restore --noflush"));
    assert!(
        node.run(&["iptables-save", "-t", "nat"])
            .contains("--match-set KUBE-CLUSTER-IP dst,dst")
    );

    // Not in the set yet: nothing listens at the VIP, so nothing answers.
    assert_eq!(
        http_get(&hosts.client, VIP, 80),
        None,
        "answered before the set had the entry"
    );
    node.run(&["ipset", "add", "KUBE-CLUSTER-IP", &format!("{VIP},tcp:80")]);
    let reply = http_get(&hosts.client, VIP, 80).expect("no reply through the DNAT rule");
    assert!(reply.contains(&token), "unexpected reply:\n{reply}");
}
