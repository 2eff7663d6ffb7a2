//! kube-proxy's names: the Service port name it prints in comments and the hashed names of
//! the per-Service chains (`portProtoHash`, `servicePortEndpointChainName`), so that a node
//! programmed by us carries the very chain names a kube-proxy node would.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

use iptables::ChainName;
use model::{ObjectId, Protocol, ServicePort};
use sha2::{Digest, Sha256};

/// A Service port as kube-proxy names it (`ServicePortName.String()`): `ns/name:port`, or
/// `ns/name` for an unnamed port. It is the text of every comment and the input of every
/// chain-name hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortName {
    text: String,
    protocol: Protocol,
}

impl ServicePortName {
    /// The name of `port` of the Service `id`.
    pub fn new(id: &ObjectId, port: &ServicePort) -> ServicePortName {
        let mut text = format!("{}/{}", id.namespace, id.name);
        if !port.name.is_empty() {
            text.push(':');
            text.push_str(&port.name);
        }
        ServicePortName {
            text,
            protocol: port.protocol,
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The port's protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// One of the chains kube-proxy keeps per Service port.
    pub fn chain(&self, kind: PortChain) -> ChainName {
        chain_name(kind.prefix(), &[&self.text, self.protocol.as_str()])
    }

    /// The `KUBE-SEP-` chain of one endpoint of this port.
    pub fn endpoint_chain(&self, endpoint: SocketAddr) -> ChainName {
        chain_name(
            ENDPOINT_PREFIX,
            &[&self.text, self.protocol.as_str(), &endpoint.to_string()],
        )
    }
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The per-Service-port chains, each named by its prefix and the port's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChain {
    /// `KUBE-SVC-`: dispatch to the endpoints of `Cluster` traffic policy.
    Cluster,
    /// `KUBE-SVL-`: dispatch to the node-local endpoints of `Local` traffic policy.
    Local,
    /// `KUBE-EXT-`: external traffic (node ports, external and load balancer IPs).
    External,
    /// `KUBE-FW-`: `loadBalancerSourceRanges` of the load balancer IPs.
    Firewall,
}

impl PortChain {
    /// The chain-name prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            PortChain::Cluster => "KUBE-SVC-",
            PortChain::Local => "KUBE-SVL-",
            PortChain::External => "KUBE-EXT-",
            PortChain::Firewall => "KUBE-FW-",
        }
    }
}

/// The prefix of the per-endpoint chains.
pub const ENDPOINT_PREFIX: &str = "KUBE-SEP-";

/// Every per-Service chain prefix (kube-proxy's `isServiceChainName`).
pub const SERVICE_CHAIN_PREFIXES: [&str; 5] = [
    "KUBE-SVC-",
    "KUBE-SVL-",
    "KUBE-SEP-",
    "KUBE-FW-",
    "KUBE-EXT-",
];

/// An endpoint as kube-proxy prints it: `net.JoinHostPort`, so `[fd00::1]:80` for IPv6.
pub(crate) fn endpoint(addr: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(addr, port)
}

/// `prefix` + the first 16 characters of base32(sha256(concatenated parts)).
fn chain_name(prefix: &str, parts: &[&str]) -> ChainName {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut name = String::with_capacity(prefix.len() + HASH_CHARS);
    name.push_str(prefix);
    base32_prefix(&digest, HASH_CHARS, &mut name);
    hashed(name)
}

/// How many base32 characters of the hash a chain name keeps.
const HASH_CHARS: usize = 16;

/// Appends the first `chars` characters of the RFC 4648 base32 encoding of `bytes` (Go's
/// `base32.StdEncoding`) to `out`.
fn base32_prefix(bytes: &[u8], chars: usize, out: &mut String) {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buffer, mut bits, mut written) = (0u32, 0u32, 0);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 && written < chars {
            bits -= 5;
            let index = (buffer >> bits) & 0x1f;
            let _ = out.write_char(char::from(ALPHABET[index as usize]));
            written += 1;
        }
        buffer &= (1 << bits) - 1;
        if written == chars {
            return;
        }
    }
    // The last group, padded with zero bits.
    if bits > 0 && written < chars {
        let index = (buffer << (5 - bits)) & 0x1f;
        let _ = out.write_char(char::from(ALPHABET[index as usize]));
    }
}

/// A chain name built from a hash: a prefix of at most 9 characters and 16 base32
/// characters, 25 printable characters, is always valid.
fn hashed(name: String) -> ChainName {
    match name.parse() {
        Ok(chain) => chain,
        Err(e) => unreachable!("hashed chain name {name}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, protocol: Protocol) -> ServicePort {
        ServicePort {
            name: name.to_owned(),
            protocol,
            port: 80,
            node_port: None,
        }
    }

    fn spn(ns: &str, name: &str, port_name: &str) -> ServicePortName {
        ServicePortName::new(&ObjectId::new(ns, name), &port(port_name, Protocol::Tcp))
    }

    #[test]
    fn base32_matches_rfc4648() {
        // RFC 4648 section 10 test vectors.
        for (input, encoded) in [
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            let mut out = String::new();
            base32_prefix(input.as_bytes(), encoded.len(), &mut out);
            assert_eq!(out, encoded, "{input}");
        }
    }

    #[test]
    fn names_match_kube_proxy() {
        // Expected names from kube-proxy's pkg/proxy/iptables/proxier_test.go
        // (TestOverallIPTablesRules).
        let svc1 = spn("ns1", "svc1", "p80");
        assert_eq!(svc1.to_string(), "ns1/svc1:p80");
        assert_eq!(
            svc1.chain(PortChain::Cluster).as_str(),
            "KUBE-SVC-XPGD46QRK7WJZT7O"
        );
        assert_eq!(
            svc1.endpoint_chain(endpoint("10.180.0.1".parse().unwrap(), 80))
                .as_str(),
            "KUBE-SEP-SXIVWICOYRO3J4NJ"
        );
        let svc2 = spn("ns2", "svc2", "p80");
        assert_eq!(
            svc2.chain(PortChain::External).as_str(),
            "KUBE-EXT-GNZBNJ2PO5MGZ6GT"
        );
        let svc5 = spn("ns5", "svc5", "p80");
        assert_eq!(
            svc5.chain(PortChain::Firewall).as_str(),
            "KUBE-FW-NUKIZ6OKUXPJNT4C"
        );
        assert_eq!(
            svc5.endpoint_chain(endpoint("10.180.0.3".parse().unwrap(), 80))
                .as_str(),
            "KUBE-SEP-I77PXRDZVX7PMWMN"
        );
    }

    #[test]
    fn unnamed_ports_and_ipv6_endpoints_print_like_go() {
        assert_eq!(spn("default", "web", "").as_str(), "default/web");
        assert_eq!(
            endpoint("fd00::1".parse().unwrap(), 8080).to_string(),
            "[fd00::1]:8080"
        );
    }
}
