//! Connections: `/proc/net/ip_vs_conn` (and `_sync`), filtered, printed
//! as `ipvsadm -Lnc` does or as JSON.
//!
//! The kernel writes one line per connection (and per persistence
//! template, client port 0): protocol, client, virtual and real address
//! and port, state, seconds left, optional persistence engine name and
//! data. IPv4 addresses and all ports are hexadecimal, IPv6 addresses in
//! full. The `_sync` file has an `Origin` column (`LOCAL`/`SYNC`) before
//! the expiry and no persistence engine columns.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipvs::spelling::AddrPortSpelling;
use serde::Serialize;

use crate::format::column;
use crate::names::{self, Names};
use crate::naming::Naming;
use crate::spec::UsageError;
use crate::values::{self, AddrPort};

/// The connection table of the calling process's network namespace.
pub(crate) const PROC_CONN: &str = "/proc/net/ip_vs_conn";
/// The same, with each entry's origin.
pub(crate) const PROC_CONN_SYNC: &str = "/proc/net/ip_vs_conn_sync";

/// One connection entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Conn {
    /// `TCP`, `UDP`, `SCTP`...
    pub(crate) protocol: String,
    /// The client.
    pub(crate) client: SocketAddr,
    /// The virtual service.
    #[serde(rename = "virtual")]
    pub(crate) virtual_addr: SocketAddr,
    /// The real server.
    pub(crate) real: SocketAddr,
    /// `ESTABLISHED`, `SYN_RECV`, `TIME_WAIT`, `NONE`...
    pub(crate) state: String,
    /// Seconds until it expires.
    pub(crate) expires: u32,
    /// `LOCAL` or `SYNC` (from the `_sync` file only).
    pub(crate) origin: Option<String>,
    /// Persistence engine name.
    pub(crate) pe_name: Option<String>,
    /// Persistence engine data.
    pub(crate) pe_data: Option<String>,
}

/// A malformed line of the connection table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} line {line}: cannot parse {text:?}")]
pub(crate) struct ConnParseError {
    file: String,
    line: usize,
    text: String,
}

/// Parses the whole file (its header line is skipped); `sync` for the
/// `_sync` flavour.
pub(crate) fn parse(file: &str, text: &str, sync: bool) -> Result<Vec<Conn>, ConnParseError> {
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            parse_line(l, sync).ok_or_else(|| ConnParseError {
                file: file.to_owned(),
                line: i + 1,
                text: l.to_owned(),
            })
        })
        .collect()
}

fn parse_line(line: &str, sync: bool) -> Option<Conn> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let endpoint = |a: usize| -> Option<SocketAddr> {
        Some(SocketAddr::new(
            address(f.get(a)?)?,
            u16::from_str_radix(f.get(a + 1)?, 16).ok()?,
        ))
    };
    let (origin, expires_at) = if sync {
        (Some(f.get(8)?.to_string()), 9)
    } else {
        (None, 8)
    };
    Some(Conn {
        protocol: f.first()?.to_string(),
        client: endpoint(1)?,
        virtual_addr: endpoint(3)?,
        real: endpoint(5)?,
        state: f.get(7)?.to_string(),
        expires: f.get(expires_at)?.parse().ok()?,
        origin,
        pe_name: f.get(expires_at + 1).map(|s| s.to_string()),
        pe_data: (f.len() > expires_at + 2).then(|| f[expires_at + 2..].join(" ")),
    })
}

/// An address as the kernel prints it: 8 hex digits (IPv4, host order of
/// the network value) or a full IPv6 address.
fn address(s: &str) -> Option<IpAddr> {
    if s.contains(':') {
        s.parse().ok()
    } else if s.len() == 8 {
        Some(IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(s, 16).ok()?)))
    } else {
        None
    }
}

/// Which connections to show; all conditions must hold.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnFilter {
    /// The virtual service's protocol, address and port.
    pub(crate) service: Option<(ipvs::Protocol, IpAddr, u16)>,
    /// The real server's address and optional port.
    pub(crate) real: Option<AddrPort>,
    /// The client's address and optional port.
    pub(crate) client: Option<AddrPort>,
    /// The state, case-insensitive.
    pub(crate) state: Option<String>,
}

impl ConnFilter {
    /// Builds the filter from option values.
    pub(crate) fn new(
        service: Option<ipvs::ServiceKey>,
        real: Option<&str>,
        client: Option<&str>,
        state: Option<String>,
    ) -> Result<Self, UsageError> {
        let service = match service {
            None => None,
            Some(ipvs::ServiceKey::Inet {
                protocol,
                addr,
                port,
            }) => Some((protocol, addr, port)),
            Some(ipvs::ServiceKey::Fwmark { .. }) => {
                return Err(UsageError(
                    "connections do not record firewall marks: filter by --real or --client".into(),
                ));
            }
        };
        let ap = |s: Option<&str>| {
            s.map(|s| values::addr_port(s, ipvs::Protocol::Tcp))
                .transpose()
        };
        Ok(ConnFilter {
            service,
            real: ap(real)?,
            client: ap(client)?,
            state,
        })
    }

    /// Whether a connection passes.
    pub(crate) fn matches(&self, c: &Conn) -> bool {
        let endpoint = |want: &Option<AddrPort>, have: &SocketAddr| {
            want.is_none_or(|w| w.addr == have.ip() && w.port.is_none_or(|p| p == have.port()))
        };
        self.service.is_none_or(|(proto, addr, port)| {
            c.protocol.eq_ignore_ascii_case(&proto.to_string())
                && c.virtual_addr == SocketAddr::new(addr, port)
        }) && endpoint(&self.real, &c.real)
            && endpoint(&self.client, &c.client)
            && self
                .state
                .as_ref()
                .is_none_or(|s| s.eq_ignore_ascii_case(&c.state))
    }
}

/// The `ipvsadm -Lnc` rendering (`persistent` adds the persistence
/// engine columns, as `--persistent-conn` does; `_sync` entries get an
/// origin column after the state); with `names`, two last columns name the
/// virtual service's Service port and the real server's Pod. Addresses and
/// ports are written as `naming` says (`-Lc` names them, `-Lnc` does not).
pub(crate) fn render(
    conns: &[Conn],
    persistent: bool,
    names: Option<&Names>,
    naming: &Naming,
) -> String {
    let origin = conns.iter().any(|c| c.origin.is_some());
    let state_col = if origin {
        "state       origin"
    } else {
        "state"
    };
    let title = if persistent {
        format!(
            "pro expire {state_col:<11} {:<18} {:<18} {:<18} {:<16} {}",
            "source", "virtual", "destination", "pe name", "pe_data"
        )
    } else {
        format!(
            "pro expire {state_col:<11} {:<18} {:<18} {}",
            "source", "virtual", "destination"
        )
    };
    let mut lines = vec![title];
    for c in conns {
        let expire = format!("{:02}:{:02}", c.expires / 60, c.expires % 60);
        let state = match &c.origin {
            Some(o) => format!("{:<11} {o:<6}", c.state),
            None => c.state.clone(),
        };
        // ipvsadm names ports of the protocols it knows, by exact name.
        let protocol = match c.protocol.as_str() {
            "TCP" => Some(ipvs::Protocol::Tcp),
            "UDP" => Some(ipvs::Protocol::Udp),
            "SCTP" => Some(ipvs::Protocol::Sctp),
            _ => None,
        };
        let name = |a: SocketAddr| naming.addr_port(&a.ip(), a.port(), protocol);
        let (client, virt, real) = (name(c.client), name(c.virtual_addr), name(c.real));
        lines.push(match (&c.pe_name, &c.pe_data) {
            (Some(name), Some(data)) if persistent => format!(
                "{:<3} {expire:<6} {state:<11} {client:<18} {virt:<18} {real:<16} {name:<18} {data}",
                c.protocol
            ),
            _ => format!(
                "{:<3} {expire:<6} {state:<11} {client:<18} {virt:<18} {real}",
                c.protocol
            ),
        });
    }
    if let Some(names) = names {
        let keys: Vec<_> = conns
            .iter()
            .map(|c| names::conn_vs_key(&c.protocol, c.virtual_addr))
            .collect();
        let services = keys
            .iter()
            .map(|k| names::cell(k.as_ref().and_then(|k| names.service(k))));
        lines = column::append(
            lines
                .into_iter()
                .zip(std::iter::once("service").chain(services)),
        );
        let pods = keys
            .iter()
            .zip(conns)
            .map(|(k, c)| names::cell(k.as_ref().and_then(|k| names.pod(k, c.real))));
        lines = column::append(lines.into_iter().zip(std::iter::once("pod").chain(pods)));
    }
    let mut out = String::from("IPVS connection entries\n");
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONN: &str = "\
Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP C0A80702 D431 0A60000A 0050 0AF40105 1F90 ESTABLISHED     895
TCP C0A80702 D433 0A60000A 0050 0AF40106 1F90 TIME_WAIT        61
UDP C0A80702 0000 0A60000A 13C4 0AF40105 13C4 NONE          358 sip 1234abcd
TCP 2001:0db8:0000:0000:0000:0000:0000:0002 D431 2001:0db8:0000:0000:0000:0000:0000:0001 0050 2001:0db8:0000:0000:0000:0000:0000:0010 0050 SYN_RECV         59
";

    const SYNC: &str = "\
Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires
TCP C0A80702 D431 0A60000A 0050 0AF40105 1F90 ESTABLISHED LOCAL      895
";

    #[test]
    fn proc_lines_parse() {
        let conns = parse("c", CONN, false).unwrap();
        assert_eq!(conns.len(), 4);
        assert_eq!(conns[0].client, "192.168.7.2:54321".parse().unwrap());
        assert_eq!(conns[0].virtual_addr, "10.96.0.10:80".parse().unwrap());
        assert_eq!(conns[0].real, "10.244.1.5:8080".parse().unwrap());
        assert_eq!(conns[2].pe_name.as_deref(), Some("sip"));
        assert_eq!(conns[2].pe_data.as_deref(), Some("1234abcd"));
        assert_eq!(conns[3].real, "[2001:db8::10]:80".parse().unwrap());
        let sync = parse("s", SYNC, true).unwrap();
        assert_eq!(sync[0].origin.as_deref(), Some("LOCAL"));
        assert_eq!(sync[0].expires, 895);
        let err = parse("f", "header\nTCP zz\n", false).unwrap_err();
        assert!(err.to_string().contains("f line 2"), "{err}");
    }

    #[test]
    fn renders_like_ipvsadm_lnc() {
        let conns = parse("c", CONN, false).unwrap();
        let expected = "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:55  ESTABLISHED 192.168.7.2:54321  10.96.0.10:80      10.244.1.5:8080
TCP 01:01  TIME_WAIT   192.168.7.2:54323  10.96.0.10:80      10.244.1.6:8080
UDP 05:58  NONE        192.168.7.2:0      10.96.0.10:5060    10.244.1.5:5060
TCP 00:59  SYN_RECV    [2001:db8::2]:54321 [2001:db8::1]:80   [2001:db8::10]:80
";
        assert_eq!(render(&conns, false, None, &Naming::Numeric), expected);
        let pe = render(&conns[2..3], true, None, &Naming::Numeric);
        assert_eq!(
            pe,
            "IPVS connection entries\n\
pro expire state       source             virtual            destination        pe name          pe_data\n\
UDP 05:58  NONE        192.168.7.2:0      10.96.0.10:5060    10.244.1.5:5060  sip                1234abcd\n"
        );
    }

    #[test]
    fn names_are_two_last_columns() {
        let conns = parse("c", CONN, false).unwrap();
        let names = crate::testdata::names();
        let out = render(&conns, false, Some(&names), &Naming::Numeric);
        let expected = "\
IPVS connection entries
pro expire state       source             virtual            destination        service       pod
TCP 14:55  ESTABLISHED 192.168.7.2:54321  10.96.0.10:80      10.244.1.5:8080    shop/web:http shop/web-7d4b9-abcde
TCP 01:01  TIME_WAIT   192.168.7.2:54323  10.96.0.10:80      10.244.1.6:8080    shop/web:http -
UDP 05:58  NONE        192.168.7.2:0      10.96.0.10:5060    10.244.1.5:5060    -             -
TCP 00:59  SYN_RECV    [2001:db8::2]:54321 [2001:db8::1]:80   [2001:db8::10]:80 -             -
";
        assert_eq!(out, expected);
    }

    #[test]
    fn filters_select_connections() {
        let conns = parse("c", CONN, false).unwrap();
        let n = |f: ConnFilter| conns.iter().filter(|c| f.matches(c)).count();
        let svc = ipvs::ServiceKey::inet(ipvs::Protocol::Tcp, "10.96.0.10".parse().unwrap(), 80);
        assert_eq!(n(ConnFilter::new(Some(svc), None, None, None).unwrap()), 2);
        assert_eq!(
            n(ConnFilter::new(None, Some("10.244.1.5"), None, None).unwrap()),
            2
        );
        assert_eq!(
            n(ConnFilter::new(None, Some("10.244.1.5:8080"), None, None).unwrap()),
            1
        );
        assert_eq!(
            n(ConnFilter::new(None, None, Some("192.168.7.2:54323"), None).unwrap()),
            1
        );
        assert_eq!(
            n(ConnFilter::new(None, None, None, Some("established".into())).unwrap()),
            1
        );
        let fwm = ipvs::ServiceKey::fwmark(ipvs::AddressFamily::Inet, 1);
        assert!(ConnFilter::new(fwm, None, None, None).is_err());
    }
}
