//! The table as `/proc/net/ip_vs` shows it: every virtual server with its
//! real servers' forwarding method, weight and connection counts, in one
//! text file.
//!
//! Reading it costs a few `read` calls for the whole table, where netlink
//! needs one destination dump (three system calls and a service lookup)
//! per virtual server: in a VM with 10,000 services and 100,000 real
//! servers, 1.1 s against 12 s for `ipvsadm -Sn`. It shows less than
//! netlink: no thresholds, no scheduler flags but "ops", no persistence
//! engine, no tunnel settings, no counters, and a fwmark service without
//! its address family. Use it to find what may differ from what you want,
//! then read those services exactly with [`crate::Client::list_only`].
//!
//! The format (kernel `ip_vs_info_seq_show`, unchanged since 2.6):
//!
//! ```text
//! IP Virtual Server version 1.2.1 (size=4096)
//! Prot LocalAddress:Port Scheduler Flags
//!   -> RemoteAddress:Port Forward Weight ActiveConn InActConn
//! TCP  0A600001:0050 rr
//!   -> 0AF40105:1F90      Masq    1      0          0
//! UDP  [fd00:0000:0000:0000:0000:0000:0000:000a]:0035 sh persistent 10800 FFFFFFFF
//! FWM  00000007 wlc
//! ```

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;

use crate::addr::Protocol;
use crate::destination::{Destination, ForwardMethod};
use crate::error::{Error, Operation};
use crate::service::ServiceKey;

/// Where the kernel shows the table, for the calling thread's network namespace.
pub(crate) const PATH: &str = "/proc/thread-self/net/ip_vs";

/// Which virtual server an [`OverviewService`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OverviewKey {
    /// A protocol, address and port service: its full key.
    Service(ServiceKey),
    /// A fwmark service: the file does not show its address family.
    Fwmark(NonZeroU32),
}

/// One real server as the overview shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverviewDestination {
    /// Its address.
    pub addr: IpAddr,
    /// Its port.
    pub port: u16,
    /// Its forwarding method's name as ipvsadm prints it (`Masq`, `Local`,
    /// `Tunnel`, `Route`, `Bypass`).
    pub forward: &'static str,
    /// Its weight.
    pub weight: u32,
    /// Connections in an active state.
    pub active_connections: u32,
    /// Other connections (e.g. `TIME_WAIT`, UDP).
    pub inactive_connections: u32,
}

impl OverviewDestination {
    /// Whether `dest` has this address, port, forwarding method and weight:
    /// everything about a real server the overview shows (thresholds and
    /// tunnel settings it does not).
    pub fn shows(&self, dest: &Destination) -> bool {
        self.addr == dest.addr
            && self.port == dest.port
            && self.forward == dest.forward.name()
            && self.weight == dest.weight
    }
}

/// One virtual server with its real servers, in kernel order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverviewService {
    /// Which virtual server.
    pub key: OverviewKey,
    /// Its real servers.
    pub destinations: Vec<OverviewDestination>,
}

/// Reads an overview from `text`, calling `each` for every virtual server
/// in file order. One virtual server is held at a time, whatever the size
/// of the table.
///
/// # Errors
/// [`Error::Io`] when reading fails, [`Error::Decode`] naming the line the
/// parser does not understand.
pub fn read_overview(
    mut text: impl BufRead,
    mut each: impl FnMut(&OverviewService),
) -> Result<(), Error> {
    const OP: Operation = Operation::ReadOverview;
    let mut line = String::new();
    let mut current: Option<OverviewService> = None;
    let mut number = 0usize;
    loop {
        line.clear();
        if text.read_line(&mut line).map_err(Error::io(OP))? == 0 {
            break;
        }
        number += 1;
        let bad = |why: &str| Error::Decode {
            op: OP,
            reason: format!("line {number} {:?}: {why}", line.trim_end()),
        };
        if number <= 3 {
            // The three header lines.
            continue;
        }
        if let Some(dest) = line.trim_start().strip_prefix("-> ") {
            let service = current
                .as_mut()
                .ok_or_else(|| bad("a real server before any service"))?;
            service
                .destinations
                .push(destination(dest).map_err(|why| bad(&why))?);
        } else {
            let key = service_key(&line).map_err(|why| bad(&why))?;
            let destinations = match current.take() {
                Some(done) => {
                    each(&done);
                    reuse(done.destinations)
                }
                None => Vec::new(),
            };
            current = Some(OverviewService { key, destinations });
        }
    }
    if let Some(done) = current {
        each(&done);
    }
    Ok(())
}

/// An emptied vector, its allocation kept for the next service.
fn reuse<T>(mut v: Vec<T>) -> Vec<T> {
    v.clear();
    v
}

/// The key of a service line: `TCP  0A600001:0050 rr ...`,
/// `UDP  [v6]:0035 rr ...` or `FWM  00000007 rr ...`.
fn service_key(line: &str) -> Result<OverviewKey, String> {
    let mut fields = line.split_whitespace();
    let (Some(protocol), Some(address)) = (fields.next(), fields.next()) else {
        return Err("expected a protocol and an address".into());
    };
    if protocol == "FWM" {
        let mark = u32::from_str_radix(address, 16).map_err(|e| format!("fwmark: {e}"))?;
        return NonZeroU32::new(mark)
            .map(OverviewKey::Fwmark)
            .ok_or_else(|| "fwmark 0".to_owned());
    }
    let protocol: Protocol = protocol.parse().map_err(|e| format!("{e}"))?;
    let (addr, port) = socket_address(address)?;
    Ok(OverviewKey::Service(ServiceKey::inet(protocol, addr, port)))
}

/// A real server line after its `-> `:
/// `0AF40105:1F90      Masq    1      0          0`.
fn destination(fields: &str) -> Result<OverviewDestination, String> {
    let mut fields = fields.split_whitespace();
    let mut next = |what: &str| fields.next().ok_or_else(|| format!("no {what}"));
    let (addr, port) = socket_address(next("address")?)?;
    let forward = forward_name(next("forwarding method")?)?;
    let mut number = |what: &str| -> Result<u32, String> {
        let text = next(what)?;
        text.parse().map_err(|e| format!("{what} {text:?}: {e}"))
    };
    Ok(OverviewDestination {
        addr,
        port,
        forward,
        weight: number("weight")?,
        active_connections: number("active connections")?,
        inactive_connections: number("inactive connections")?,
    })
}

/// `0A600001:0050` (IPv4 in hex, host order) or `[v6 full form]:0050`.
fn socket_address(text: &str) -> Result<(IpAddr, u16), String> {
    let (addr, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not ADDRESS:PORT"))?;
    let port = u16::from_str_radix(port, 16).map_err(|e| format!("port {port:?}: {e}"))?;
    let addr = match addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        Some(v6) => IpAddr::V6(
            v6.parse::<Ipv6Addr>()
                .map_err(|e| format!("address {v6:?}: {e}"))?,
        ),
        None => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(addr, 16).map_err(|e| format!("address {addr:?}: {e}"))?,
        )),
    };
    Ok((addr, port))
}

/// The kernel's name of a forwarding method (`ip_vs_fwd_name`), as the
/// static name [`ForwardMethod::name`] gives.
fn forward_name(text: &str) -> Result<&'static str, String> {
    [
        ForwardMethod::Masquerade,
        ForwardMethod::Local,
        ForwardMethod::DirectRoute,
        ForwardMethod::Bypass,
    ]
    .iter()
    .map(|m| m.name())
    .chain(["Tunnel"])
    .find(|name| *name == text)
    .ok_or_else(|| format!("unknown forwarding method {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text as kernel 6.1 prints it (spacing included).
    const TABLE: &str = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  0A600001:0050 rr  
  -> 0AF40106:1F90      Masq    0      3          1         
  -> 0AF40105:1F90      Masq    1      0          0         
UDP  [fd00:0000:0000:0000:0000:0000:0000:000a]:0035 sh persistent 10800 FFFFFFFF
  -> [fd00:0000:0000:0000:0000:0000:0001:0002]:0035      Route   2      0          7         
TCP  0A600002:01BB wlc  
FWM  00000007 wlc 
  -> C0A80001:0000      Tunnel  1      0          0         
";

    fn read(text: &str) -> Result<Vec<OverviewService>, Error> {
        let mut out = Vec::new();
        read_overview(text.as_bytes(), |s| out.push(s.clone()))?;
        Ok(out)
    }

    #[test]
    fn every_service_with_its_real_servers() {
        let table = read(TABLE).expect("parses");
        let keys: Vec<OverviewKey> = table.iter().map(|s| s.key).collect();
        let tcp = |ip: &str, port| {
            OverviewKey::Service(ServiceKey::inet(Protocol::Tcp, ip.parse().unwrap(), port))
        };
        assert_eq!(
            keys,
            [
                tcp("10.96.0.1", 80),
                OverviewKey::Service(ServiceKey::inet(
                    Protocol::Udp,
                    "fd00::a".parse().unwrap(),
                    53
                )),
                tcp("10.96.0.2", 443),
                OverviewKey::Fwmark(NonZeroU32::new(7).unwrap()),
            ]
        );
        assert_eq!(
            table[0].destinations,
            [
                OverviewDestination {
                    addr: "10.244.1.6".parse().unwrap(),
                    port: 8080,
                    forward: "Masq",
                    weight: 0,
                    active_connections: 3,
                    inactive_connections: 1,
                },
                OverviewDestination {
                    addr: "10.244.1.5".parse().unwrap(),
                    port: 8080,
                    forward: "Masq",
                    weight: 1,
                    active_connections: 0,
                    inactive_connections: 0,
                },
            ]
        );
        let v6 = table[1].destinations[0];
        assert_eq!(v6.addr, "fd00::1:2".parse::<IpAddr>().unwrap());
        assert_eq!(
            (v6.forward, v6.weight, v6.inactive_connections),
            ("Route", 2, 7)
        );
        assert!(table[2].destinations.is_empty());
        assert_eq!(table[3].destinations[0].forward, "Tunnel");
    }

    #[test]
    fn shows_compares_what_the_file_has() {
        let table = read(TABLE).expect("parses");
        let seen = table[0].destinations[1];
        let dest = Destination::new(seen.addr, 8080, ForwardMethod::Masquerade, 1);
        assert!(seen.shows(&dest));
        assert!(!seen.shows(&Destination { weight: 2, ..dest }));
        assert!(!seen.shows(&Destination {
            forward: ForwardMethod::DirectRoute,
            ..dest
        }));
        assert!(!seen.shows(&Destination { port: 8081, ..dest }));
    }

    #[test]
    fn an_empty_table_is_only_the_header() {
        assert_eq!(read(&TABLE[..TABLE.find("TCP").unwrap()]).unwrap(), []);
    }

    #[test]
    fn a_line_it_does_not_understand_is_named() {
        let text = TABLE.replace("Masq    1", "Magic   1");
        let err = read(&text).expect_err("unknown method").to_string();
        assert!(err.contains("line 6"), "{err}");
        assert!(err.contains("Magic"), "{err}");
        let text = TABLE.replace("0A600002:01BB", "0A600002");
        assert!(read(&text).is_err());
    }
}
