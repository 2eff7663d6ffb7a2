//! Which flows to delete: kube-proxy's conntrack filters
//! (`pkg/proxy/conntrack/filter.go`), matched in userspace.

use std::net::IpAddr;

use crate::{Flow, Tuple, flow::proto};

/// Constraints on one direction of a flow; `None` matches anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TupleFilter {
    /// `--orig-src` / `--reply-src`.
    pub src: Option<IpAddr>,
    /// `--orig-dst` / `--reply-dst`.
    pub dst: Option<IpAddr>,
    /// `--orig-port-src` / `--reply-port-src`.
    pub src_port: Option<u16>,
    /// `--orig-port-dst` / `--reply-port-dst`.
    pub dst_port: Option<u16>,
}

impl TupleFilter {
    fn matches(&self, t: &Tuple) -> bool {
        self.src.is_none_or(|ip| ip == t.src)
            && self.dst.is_none_or(|ip| ip == t.dst)
            && self.src_port.is_none_or(|p| p == t.src_port)
            && self.dst_port.is_none_or(|p| p == t.dst_port)
    }

    fn is_empty(&self) -> bool {
        *self == TupleFilter::default()
    }
}

/// A `conntrack -D` filter: protocol plus constraints on the original and
/// reply tuples. An empty filter matches nothing (as in kube-proxy), so a
/// mistake never wipes the table.
///
/// ```
/// use conntrack::Filter;
/// // conntrack -D -p udp --orig-dst 10.96.0.10 --reply-src 10.244.1.5
/// let f = Filter::udp_nat("10.96.0.10".parse().unwrap(), "10.244.1.5".parse().unwrap());
/// assert_eq!(f.to_string(), "-p 17 --orig-dst 10.96.0.10 --reply-src 10.244.1.5");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Filter {
    /// `-p`: IP protocol number.
    pub protocol: Option<u8>,
    /// Original-direction constraints.
    pub orig: TupleFilter,
    /// Reply-direction constraints.
    pub reply: TupleFilter,
}

impl Filter {
    /// UDP flows to a service IP and port:
    /// `conntrack -D -p udp --orig-dst VIP --orig-port-dst PORT`.
    pub fn udp_to(vip: IpAddr, port: u16) -> Self {
        Filter {
            protocol: Some(proto::UDP),
            orig: TupleFilter {
                dst: Some(vip),
                dst_port: Some(port),
                ..TupleFilter::default()
            },
            ..Filter::default()
        }
    }

    /// UDP flows to a node port on any node address:
    /// `conntrack -D -p udp --orig-port-dst PORT`.
    pub fn udp_to_node_port(port: u16) -> Self {
        Filter {
            protocol: Some(proto::UDP),
            orig: TupleFilter {
                dst_port: Some(port),
                ..TupleFilter::default()
            },
            ..Filter::default()
        }
    }

    /// UDP flows to a service IP that were DNATed to `endpoint`: kube-proxy's
    /// `filterForNAT`, `conntrack -D -p udp --orig-dst VIP --reply-src ENDPOINT`.
    pub fn udp_nat(vip: IpAddr, endpoint: IpAddr) -> Self {
        Filter {
            protocol: Some(proto::UDP),
            orig: TupleFilter {
                dst: Some(vip),
                ..TupleFilter::default()
            },
            reply: TupleFilter {
                src: Some(endpoint),
                ..TupleFilter::default()
            },
        }
    }

    /// UDP flows to a node port that were DNATed to `endpoint`: kube-proxy's
    /// `filterForPortNAT`, `conntrack -D -p udp --orig-port-dst PORT --reply-src ENDPOINT`.
    pub fn udp_node_port_nat(port: u16, endpoint: IpAddr) -> Self {
        Filter {
            protocol: Some(proto::UDP),
            orig: TupleFilter {
                dst_port: Some(port),
                ..TupleFilter::default()
            },
            reply: TupleFilter {
                src: Some(endpoint),
                ..TupleFilter::default()
            },
        }
    }

    /// Whether `flow` matches (kube-proxy's `MatchConntrackFlow`).
    pub fn matches(&self, flow: &Flow) -> bool {
        let empty = self.protocol.is_none() && self.orig.is_empty() && self.reply.is_empty();
        !empty
            && self.protocol.is_none_or(|p| p == flow.protocol)
            && self.orig.matches(&flow.orig)
            && self.reply.matches(&flow.reply)
    }
}

/// The equivalent `conntrack` command-line options.
impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(p) = self.protocol {
            parts.push(format!("-p {p}"));
        }
        for (dir, t) in [("orig", &self.orig), ("reply", &self.reply)] {
            let ips = [("src", t.src), ("dst", t.dst)];
            let ports = [("port-src", t.src_port), ("port-dst", t.dst_port)];
            parts.extend(
                ips.iter()
                    .filter_map(|(opt, v)| v.map(|v| format!("--{dir}-{opt} {v}"))),
            );
            parts.extend(
                ports
                    .iter()
                    .filter_map(|(opt, v)| v.map(|v| format!("--{dir}-{opt} {v}"))),
            );
        }
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(protocol: u8, vip: &str, dport: u16, endpoint: &str) -> Flow {
        let client: IpAddr = "192.168.7.2".parse().unwrap();
        Flow {
            protocol,
            orig: Tuple {
                src: client,
                dst: vip.parse().unwrap(),
                src_port: 40000,
                dst_port: dport,
            },
            reply: Tuple {
                src: endpoint.parse().unwrap(),
                dst: client,
                src_port: 53,
                dst_port: 40000,
            },
            zone: 0,
            id: None,
        }
    }

    #[test]
    fn mirrors_kube_proxy_filters() {
        let vip: IpAddr = "10.96.0.10".parse().unwrap();
        let ep: IpAddr = "10.244.1.5".parse().unwrap();
        let hit = flow(proto::UDP, "10.96.0.10", 53, "10.244.1.5");
        assert!(Filter::udp_nat(vip, ep).matches(&hit));
        assert!(!Filter::udp_nat(vip, ep).matches(&flow(
            proto::UDP,
            "10.96.0.10",
            53,
            "10.244.1.6"
        )));
        assert!(!Filter::udp_nat(vip, ep).matches(&flow(
            proto::TCP,
            "10.96.0.10",
            53,
            "10.244.1.5"
        )));
        assert!(Filter::udp_to(vip, 53).matches(&hit));
        assert!(!Filter::udp_to(vip, 54).matches(&hit));
        assert!(Filter::udp_to_node_port(53).matches(&hit));
        assert!(Filter::udp_node_port_nat(53, ep).matches(&hit));
        assert!(!Filter::udp_node_port_nat(53, vip).matches(&hit));
        assert!(
            !Filter::default().matches(&hit),
            "an empty filter matches nothing"
        );
    }

    #[test]
    fn prints_conntrack_options() {
        assert_eq!(
            Filter::udp_to_node_port(30053).to_string(),
            "-p 17 --orig-port-dst 30053"
        );
    }
}
