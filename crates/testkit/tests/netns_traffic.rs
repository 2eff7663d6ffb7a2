//! The traffic helpers on their own, routed by the node namespace without
//! any proxy: backends answering their name over HTTP and UDP, a long-lived
//! echo connection, and the IPv6 flavour of the three hosts.

use testkit::{EchoConn, ThreeHosts, UdpResponder, http_body, serve_echo, serve_name, udp_ask};

const SECOND: &str = "10.244.1.6";

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_traffic_backends_answer_their_names_over_both_families() {
    let hosts = ThreeHosts::dual_stack();
    hosts.add_backend(SECOND);
    let _udp = [ThreeHosts::BACKEND, SECOND, ThreeHosts::BACKEND6]
        .map(|addr| UdpResponder::answering_name(&hosts.backend, addr, 5353));
    for addr in [ThreeHosts::BACKEND, SECOND, ThreeHosts::BACKEND6] {
        serve_name(&hosts.backend, addr, 8080);
        assert_eq!(http_body(&hosts.client, addr, 8080), addr);
        assert_eq!(udp_ask(&hosts.client, addr, 5353).as_deref(), Some(addr));
    }
    // Nothing listens there: no answer, not a hang.
    assert_eq!(udp_ask(&hosts.client, ThreeHosts::BACKEND, 5354), None);

    serve_echo(&hosts.backend, 7007);
    let mut conn = EchoConn::open(&hosts.client, SECOND, 7007);
    conn.check("one\n");
    conn.check("two\n");
}
