//! Real UDP flows through a "node" namespace that DNATs them (as kube-proxy's
//! rules would), deleted through the crate and checked with the real
//! `conntrack -L`. Run with `tests/netns/run netns_conntrack`.

#![allow(clippy::unwrap_used)] // helpers shared by the tests below panic like the tests do

use std::collections::BTreeSet;
use std::net::{IpAddr, UdpSocket};

use conntrack::{Conntrack, Family, Filter, Flow};
use testkit::{Netns, ThreeHosts};

const VIP: &str = "10.96.0.10";
const OTHER_VIP: &str = "10.96.0.11";
const NODE: &str = "192.168.7.1";
const EP1: &str = "10.244.1.5";
const EP2: &str = "10.244.1.6";

/// One flow as both tools can describe it: client source port, original
/// destination and port, reply source (the endpoint).
type Key = (u16, String, u16, String);

/// (client source port, destination, destination port, DNAT target).
const FLOWS: [(u16, &str, u16, &str); 6] = [
    (1001, VIP, 53, EP1),
    (1002, VIP, 53, EP2),
    (1003, OTHER_VIP, 53, EP1),
    (1004, NODE, 30053, EP2),
    (1005, VIP, 54, EP1),
    (1006, NODE, 30054, EP1),
];

fn key(sport: u16) -> Key {
    let (s, dst, dport, ep) = FLOWS.iter().find(|f| f.0 == sport).unwrap();
    (*s, (*dst).to_owned(), *dport, (*ep).to_owned())
}

/// The network, the DNAT rules and one UDP packet per flow of [`FLOWS`].
fn setup() -> ThreeHosts {
    let net = ThreeHosts::new();
    net.backend
        .run(&["ip", "addr", "add", &format!("{EP2}/24"), "dev", "eth0"]);
    for (sport, dst, dport, ep) in FLOWS {
        net.node.run(&[
            "iptables",
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-p",
            "udp",
            "-d",
            dst,
            "--dport",
            &dport.to_string(),
            "--sport",
            &sport.to_string(),
            "-j",
            "DNAT",
            "--to-destination",
            &format!("{ep}:{dport}"),
        ]);
    }
    net.client.enter(|| {
        for (sport, dst, dport, _) in FLOWS {
            let socket = UdpSocket::bind(("0.0.0.0", sport)).unwrap();
            socket
                .send_to(b"ping", (dst.parse::<IpAddr>().unwrap(), dport))
                .unwrap();
        }
    });
    net
}

/// The UDP flows `conntrack -L` shows in `ns`.
fn tool_flows(ns: &Netns) -> BTreeSet<Key> {
    ns.run(&["conntrack", "-L", "-p", "udp"])
        .lines()
        .map(|line| {
            let field = |name: &str, nth: usize| {
                line.split_whitespace()
                    .filter_map(|w| w.strip_prefix(name))
                    .nth(nth)
                    .unwrap()
                    .to_owned()
            };
            (
                field("sport=", 0).parse().unwrap(),
                field("dst=", 0),
                field("dport=", 0).parse().unwrap(),
                field("src=", 1),
            )
        })
        .collect()
}

fn crate_key(f: &Flow) -> Key {
    (
        f.orig.src_port,
        f.orig.dst.to_string(),
        f.orig.dst_port,
        f.reply.src.to_string(),
    )
}

fn wait_for_flows(ns: &Netns, count: usize) {
    for _ in 0..50 {
        if tool_flows(ns).len() >= count {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "expected {count} flows, conntrack shows {:?}",
        tool_flows(ns)
    );
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_conntrack_lists_flows_like_the_conntrack_tool() {
    let net = setup();
    wait_for_flows(&net.node, FLOWS.len());
    let mut ct = net.node.enter(|| Conntrack::open().unwrap());
    let listed: BTreeSet<Key> = ct
        .list(Family::Ipv4)
        .unwrap()
        .iter()
        .filter(|f| f.protocol == conntrack::proto::UDP)
        .map(crate_key)
        .collect();
    assert_eq!(listed, tool_flows(&net.node));
    assert_eq!(listed, FLOWS.map(|f| key(f.0)).into_iter().collect());
    assert!(ct.list(Family::Ipv6).unwrap().is_empty());
}

#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_conntrack_deletes_what_kube_proxy_deletes() {
    deletes_what_kube_proxy_deletes();
}

/// The same on Debian's kernel, where ctnetlink is a module
/// (`nf_conntrack_netlink`) the kernel must load on demand.
#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_conntrack_deletes_what_kube_proxy_deletes() {
    deletes_what_kube_proxy_deletes();
}

fn deletes_what_kube_proxy_deletes() {
    let net = setup();
    wait_for_flows(&net.node, FLOWS.len());
    let mut ct = net.node.enter(|| Conntrack::open().unwrap());
    let mut left: BTreeSet<Key> = FLOWS.map(|f| key(f.0)).into_iter().collect();
    for (filter, gone) in [
        // Endpoint EP2 of the service VIP went away (filterForNAT).
        (Filter::udp_nat(ip(VIP), ip(EP2)), 1002),
        // ... and of the node port 30053 (filterForPortNAT).
        (Filter::udp_node_port_nat(30053, ip(EP2)), 1004),
        // The UDP service VIP:53 was removed.
        (Filter::udp_to(ip(VIP), 53), 1001),
        // The node port 30054 was removed.
        (Filter::udp_to_node_port(30054), 1006),
    ] {
        assert_eq!(
            ct.delete_matching(Family::Ipv4, &[filter]).unwrap(),
            1,
            "{filter}"
        );
        left.remove(&key(gone));
        assert_eq!(tool_flows(&net.node), left, "after deleting {filter}");
    }
    // What is left: the other service, and VIP:54.
    assert_eq!(left.iter().map(|k| k.0).collect::<Vec<_>>(), [1003, 1005]);
    // Deleting flows that are already gone is not an error.
    let flows = ct.list(Family::Ipv4).unwrap();
    assert_eq!(ct.delete(Family::Ipv4, &flows).unwrap(), flows.len());
    assert_eq!(ct.delete(Family::Ipv4, &flows).unwrap(), 0);
    assert!(tool_flows(&net.node).is_empty());
}

/// IPv6: two flows to one service address DNATed to two endpoints; only
/// the flow to the endpoint that went away is deleted.
#[test]
#[ignore = "netns: needs root and network namespaces; run tests/netns/run"]
fn netns_conntrack_deletes_ipv6_flows_of_a_removed_endpoint() {
    const VIP6: &str = "fd00:96::a";
    let net = ThreeHosts::new();
    for (ns, dev, addr) in [
        (&net.client, "eth0", "fd00:7::2/64"),
        (&net.node, "cli0", "fd00:7::1/64"),
        (&net.node, "pod0", "fd00:244::1/64"),
        (&net.backend, "eth0", "fd00:244::5/64"),
        (&net.backend, "eth0", "fd00:244::6/64"),
    ] {
        ns.run(&["ip", "-6", "addr", "add", addr, "dev", dev, "nodad"]);
    }
    net.client
        .run(&["ip", "-6", "route", "add", "default", "via", "fd00:7::1"]);
    net.backend
        .run(&["ip", "-6", "route", "add", "default", "via", "fd00:244::1"]);
    net.node.sysctl("net.ipv6.conf.all.forwarding", "1");
    for (sport, ep) in [(1001u16, "fd00:244::5"), (1002, "fd00:244::6")] {
        net.node.run(&[
            "ip6tables",
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-p",
            "udp",
            "-d",
            VIP6,
            "--dport",
            "53",
            "--sport",
            &sport.to_string(),
            "-j",
            "DNAT",
            "--to-destination",
            &format!("[{ep}]:53"),
        ]);
    }
    net.client.enter(|| {
        for sport in [1001u16, 1002] {
            let socket = UdpSocket::bind(("::", sport)).unwrap();
            socket.send_to(b"ping", (ip(VIP6), 53)).unwrap();
        }
    });
    let v6_flows = |ns: &Netns| -> BTreeSet<String> {
        ns.run(&["conntrack", "-L", "-f", "ipv6", "-p", "udp"])
            .lines()
            .map(|l| {
                l.split_whitespace()
                    .filter(|w| w.contains('='))
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    for _ in 0..50 {
        if v6_flows(&net.node).len() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut ct = net.node.enter(|| Conntrack::open().unwrap());
    let listed: BTreeSet<String> = ct
        .list(Family::Ipv6)
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "src={} dst={} sport={} dport={} src={}",
                f.orig.src, f.orig.dst, f.orig.src_port, f.orig.dst_port, f.reply.src
            )
        })
        .collect();
    assert_eq!(listed, v6_flows(&net.node));
    assert_eq!(listed.len(), 2, "{listed:?}");
    let gone = Filter::udp_nat(ip(VIP6), ip("fd00:244::6"));
    assert_eq!(ct.delete_matching(Family::Ipv6, &[gone]).unwrap(), 1);
    let left = v6_flows(&net.node);
    assert_eq!(left.len(), 1);
    assert!(
        left.iter().all(|l| l.ends_with("src=fd00:244::5")),
        "{left:?}"
    );
    assert!(ct.list(Family::Ipv4).unwrap().is_empty());
}
