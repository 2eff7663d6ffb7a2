//! Set members, typed per set type, in `ipset save` syntax.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::{Family, SetSpec, SetType};

/// An address printed as `ipset` (glibc's `inet_ntop`) prints it. Rust and
/// glibc agree except on IPv4-compatible IPv6 addresses (`::a.b.c.d`, the
/// first 96 bits zero and the next 16 not), which Rust prints in hex.
struct IpText(IpAddr);

impl fmt::Display for IpText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V6(a) if a.segments()[..6] == [0; 6] && a.segments()[6] != 0 => {
                let [.., a, b, c, d] = a.octets();
                write!(f, "::{}", Ipv4Addr::new(a, b, c, d))
            }
            ip => write!(f, "{ip}"),
        }
    }
}

/// The transport protocol of a port entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (`IPPROTO_TCP`, 6).
    Tcp,
    /// UDP (`IPPROTO_UDP`, 17).
    Udp,
    /// SCTP (`IPPROTO_SCTP`, 132).
    Sctp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// The protocol with this IP protocol number, if supported.
    pub fn from_number(number: u8) -> Option<Protocol> {
        match number {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

impl FromStr for Protocol {
    type Err = EntryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(EntryError::new(s, "protocol is not tcp, udp or sctp")),
        }
    }
}

/// A network: an address with its host bits cleared and a prefix length
/// valid for its family. Printed as ipset does: without `/32` (`/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// The network containing `addr` with this prefix length (host bits are
    /// cleared, as the kernel does).
    ///
    /// # Errors
    /// When `prefix` is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, EntryError> {
        let addr = match addr {
            IpAddr::V4(a) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
            _ => {
                return Err(EntryError::new(
                    &format!("{addr}/{prefix}"),
                    "prefix too long",
                ));
            }
        };
        Ok(Net { addr, prefix })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn is_host(&self) -> bool {
        self.prefix == if self.addr.is_ipv4() { 32 } else { 128 }
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "{}", IpText(self.addr))
        } else {
            write!(f, "{}/{}", IpText(self.addr), self.prefix)
        }
    }
}

impl FromStr for Net {
    type Err = EntryError;

    /// `ADDR/PREFIX`, or a bare address for a host network.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = parse_ip(addr)?;
        let prefix = match prefix {
            Some(p) => p
                .parse()
                .map_err(|_| EntryError::new(s, "bad prefix length"))?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Net::new(addr, prefix)
    }
}

/// A member of a set, typed by set type.
///
/// `Display` prints `ipset save` syntax and `FromStr` reads it back. Text
/// alone cannot tell a `hash:net` host (`10.0.0.1`) from a `hash:ip` entry,
/// or a `hash:ip,port,net` host from a `hash:ip,port,ip` entry: `FromStr`
/// picks `Ip`/`IpPortIp`; use [`Entry::parse_for`] when the set type is known.
///
/// ```
/// use ipset::{Entry, Protocol, SetType};
/// let e: Entry = "10.96.0.10,udp:53".parse().unwrap();
/// assert_eq!(e, Entry::IpPort { ip: "10.96.0.10".parse().unwrap(), proto: Protocol::Udp, port: 53 });
/// assert_eq!(e.to_string(), "10.96.0.10,udp:53");
/// let net = Entry::parse_for(SetType::HashNet, "10.0.0.1").unwrap();
/// assert_eq!(net.set_type(), SetType::HashNet);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entry {
    /// A `hash:ip` member.
    Ip {
        /// The address.
        ip: IpAddr,
    },
    /// A `hash:ip,port` member.
    IpPort {
        /// The address.
        ip: IpAddr,
        /// The protocol.
        proto: Protocol,
        /// The port.
        port: u16,
    },
    /// A `hash:ip,port,ip` member.
    IpPortIp {
        /// The first address.
        ip: IpAddr,
        /// The protocol.
        proto: Protocol,
        /// The port.
        port: u16,
        /// The second address.
        ip2: IpAddr,
    },
    /// A `hash:ip,port,net` member.
    IpPortNet {
        /// The address.
        ip: IpAddr,
        /// The protocol.
        proto: Protocol,
        /// The port.
        port: u16,
        /// The network.
        net: Net,
    },
    /// A `hash:net` member.
    Net {
        /// The network.
        net: Net,
    },
    /// A `bitmap:port` member.
    Port {
        /// The port.
        port: u16,
    },
}

/// Text that is not an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ipset entry {text:?}: {reason}")]
pub struct EntryError {
    text: String,
    reason: &'static str,
}

impl EntryError {
    fn new(text: &str, reason: &'static str) -> Self {
        EntryError {
            text: text.into(),
            reason,
        }
    }
}

fn parse_ip(s: &str) -> Result<IpAddr, EntryError> {
    s.parse()
        .map_err(|_| EntryError::new(s, "not an IP address"))
}

fn parse_proto_port(s: &str) -> Result<(Protocol, u16), EntryError> {
    let (proto, port) = s
        .split_once(':')
        .ok_or_else(|| EntryError::new(s, "expected PROTO:PORT"))?;
    let port = port.parse().map_err(|_| EntryError::new(s, "bad port"))?;
    Ok((proto.parse()?, port))
}

impl Entry {
    /// The set type this entry belongs to.
    pub fn set_type(&self) -> SetType {
        match self {
            Entry::Ip { .. } => SetType::HashIp,
            Entry::IpPort { .. } => SetType::HashIpPort,
            Entry::IpPortIp { .. } => SetType::HashIpPortIp,
            Entry::IpPortNet { .. } => SetType::HashIpPortNet,
            Entry::Net { .. } => SetType::HashNet,
            Entry::Port { .. } => SetType::BitmapPort,
        }
    }

    /// The family of the entry's addresses; `None` for a port, or for
    /// addresses of mixed families (which no set accepts).
    pub fn family(&self) -> Option<Family> {
        let fam = |ip: &IpAddr| {
            if ip.is_ipv4() {
                Family::Inet
            } else {
                Family::Inet6
            }
        };
        let (first, second) = match self {
            Entry::Ip { ip } | Entry::IpPort { ip, .. } => (fam(ip), None),
            Entry::IpPortIp { ip, ip2, .. } => (fam(ip), Some(fam(ip2))),
            Entry::IpPortNet { ip, net, .. } => (fam(ip), Some(fam(&net.addr()))),
            Entry::Net { net } => (fam(&net.addr()), None),
            Entry::Port { .. } => return None,
        };
        second.is_none_or(|s| s == first).then_some(first)
    }

    /// True when a set created from `spec` can hold this entry: same type,
    /// same family, port within a bitmap's range.
    pub fn fits(&self, spec: &SetSpec) -> bool {
        match (self, spec.storage()) {
            (Entry::Port { port }, crate::Storage::Bitmap { range }) => range.contains(port),
            (_, crate::Storage::Hash { family, .. }) => {
                self.set_type() == spec.set_type() && self.family() == Some(*family)
            }
            _ => false,
        }
    }

    /// Parses `ipset save` text as a member of a set of type `set_type`.
    ///
    /// # Errors
    /// When the text is not such a member.
    pub fn parse_for(set_type: SetType, s: &str) -> Result<Entry, EntryError> {
        let parts: Vec<&str> = s.split(',').collect();
        let entry = match (set_type, parts.as_slice()) {
            (SetType::HashIp, [ip]) => Entry::Ip { ip: parse_ip(ip)? },
            (SetType::HashNet, [net]) => Entry::Net { net: net.parse()? },
            (SetType::BitmapPort, [port]) => Entry::Port {
                port: port.parse().map_err(|_| EntryError::new(s, "bad port"))?,
            },
            (SetType::HashIpPort, [ip, pp]) => {
                let (proto, port) = parse_proto_port(pp)?;
                Entry::IpPort {
                    ip: parse_ip(ip)?,
                    proto,
                    port,
                }
            }
            (SetType::HashIpPortIp, [ip, pp, ip2]) => {
                let (proto, port) = parse_proto_port(pp)?;
                Entry::IpPortIp {
                    ip: parse_ip(ip)?,
                    proto,
                    port,
                    ip2: parse_ip(ip2)?,
                }
            }
            (SetType::HashIpPortNet, [ip, pp, net]) => {
                let (proto, port) = parse_proto_port(pp)?;
                Entry::IpPortNet {
                    ip: parse_ip(ip)?,
                    proto,
                    port,
                    net: net.parse()?,
                }
            }
            _ => return Err(EntryError::new(s, "wrong number of parts for the set type")),
        };
        Ok(entry)
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Entry::Ip { ip } => write!(f, "{}", IpText(ip)),
            Entry::IpPort { ip, proto, port } => write!(f, "{},{proto}:{port}", IpText(ip)),
            Entry::IpPortIp {
                ip,
                proto,
                port,
                ip2,
            } => {
                write!(f, "{},{proto}:{port},{}", IpText(ip), IpText(ip2))
            }
            Entry::IpPortNet {
                ip,
                proto,
                port,
                net,
            } => {
                write!(f, "{},{proto}:{port},{net}", IpText(ip))
            }
            Entry::Net { net } => write!(f, "{net}"),
            Entry::Port { port } => write!(f, "{port}"),
        }
    }
}

impl FromStr for Entry {
    type Err = EntryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let set_type = match s.split(',').collect::<Vec<_>>().as_slice() {
            [one] if one.bytes().all(|b| b.is_ascii_digit()) => SetType::BitmapPort,
            [one] if one.contains('/') => SetType::HashNet,
            [_] => SetType::HashIp,
            [_, _] => SetType::HashIpPort,
            [_, _, third] if third.contains('/') => SetType::HashIpPortNet,
            _ => SetType::HashIpPortIp,
        };
        Entry::parse_for(set_type, s)
    }
}

/// An entry with its comment, for sets with comments.
///
/// ```
/// use ipset::Member;
/// let m = Member::new("10.0.0.1".parse().unwrap()).with_comment("dns");
/// assert_eq!(m.to_string(), r#"10.0.0.1 comment "dns""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    /// The entry.
    pub entry: Entry,
    /// Its comment (`ipset add ... comment TEXT`), at most 255 bytes.
    pub comment: Option<String>,
}

impl Member {
    /// An entry without a comment.
    pub fn new(entry: Entry) -> Self {
        Member {
            entry,
            comment: None,
        }
    }

    /// The same member with a comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
}

impl From<Entry> for Member {
    fn from(entry: Entry) -> Self {
        Member::new(entry)
    }
}

/// The member as on an `ipset save` `add` line, after the set name.
impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.entry)?;
        if let Some(c) = &self.comment {
            write!(f, " comment \"{c}\"")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_for_every_type() {
        for (t, text) in [
            (SetType::HashIp, "10.96.0.10"),
            (SetType::HashIp, "fd00::a"),
            (SetType::HashIpPort, "10.96.0.10,tcp:80"),
            (SetType::HashIpPort, "2001:db8::1,sctp:9"),
            (SetType::HashIpPortIp, "10.244.1.5,tcp:8080,10.244.1.5"),
            (SetType::HashIpPortNet, "203.0.113.7,tcp:80,192.0.2.0/24"),
            (SetType::HashIpPortNet, "203.0.113.7,udp:53,192.0.2.9"),
            (SetType::HashNet, "10.0.0.0/8"),
            (SetType::HashNet, "10.0.0.1"),
            (SetType::BitmapPort, "30080"),
        ] {
            let e = Entry::parse_for(t, text).unwrap();
            assert_eq!((e.set_type(), e.to_string()), (t, text.to_string()));
        }
    }

    #[test]
    fn from_str_guesses_by_shape() {
        for text in [
            "30080",
            "10.0.0.0/8",
            "10.0.0.1",
            "10.0.0.1,udp:53",
            "1.2.3.4,tcp:1,5.6.7.8",
            "1.2.3.4,tcp:1,5.6.0.0/16",
        ] {
            assert_eq!(text.parse::<Entry>().unwrap().to_string(), text);
        }
        assert!("10.0.0.1,icmp:8".parse::<Entry>().is_err());
        assert!("10.0.0.1,tcp:99999".parse::<Entry>().is_err());
        assert!("10.0.0.1/33".parse::<Entry>().is_err());
    }

    #[test]
    fn ipv6_prints_like_inet_ntop() {
        // What `ipset save` printed for these on kernel 6.18 / ipset 7.17.
        for (input, saved) in [
            ("::1.2.3.4", "::1.2.3.4"),
            ("::102:304", "::1.2.3.4"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("1:0:0:1:0:0:0:1", "1:0:0:1::1"),
            ("0:0:0:0:1::", "::1:0:0:0"),
        ] {
            let e: Entry = input.parse().unwrap();
            assert_eq!(e.to_string(), saved);
            assert_eq!(saved.parse::<Entry>(), Ok(e));
        }
        assert_eq!("::1".parse::<Entry>().unwrap().to_string(), "::1");
    }

    #[test]
    fn nets_are_normalised() {
        let net: Net = "10.1.2.3/16".parse().unwrap();
        assert_eq!(net.to_string(), "10.1.0.0/16");
        assert_eq!("::1/0".parse::<Net>().unwrap().to_string(), "::/0");
    }

    #[test]
    fn families_must_agree() {
        let mixed: Entry = "10.0.0.1,tcp:1,fd00::1".parse().unwrap();
        assert_eq!(mixed.family(), None);
        let v6: Entry = "fd00::1,tcp:1".parse().unwrap();
        assert_eq!(v6.family(), Some(Family::Inet6));
        let spec = SetSpec::bitmap_port("p".parse().unwrap(), 30000..=32767);
        assert!(Entry::Port { port: 30000 }.fits(&spec));
        assert!(!Entry::Port { port: 80 }.fits(&spec));
        assert!(!v6.fits(&spec));
    }
}
