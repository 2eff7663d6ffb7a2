//! The table as `/proc/net/ip_vs` shows it: every virtual server with its
//! real servers' forwarding method, weight and connection counts, in one
//! text file.
//!
//! Reading it costs one `read` per page of text (the kernel's `seq_file`
//! gives at most a page each time, and walks its service table from the
//! start for each), where netlink needs one destination dump (three system
//! calls and a service lookup) per virtual server: in a VM with 10,000
//! services and 100,000 real servers, 0.7 s against 5 s for a netlink read
//! of the whole table and 10 s for `ipvsadm -Sn`. It shows less than
//! netlink: no thresholds, no scheduler flags, no persistence engine, no
//! tunnel settings, no counters, the one-packet flag only for IPv4, and a
//! fwmark service without its address family. Use it to find what may
//! differ from what you want, then read those services exactly with
//! [`crate::Client::list_only`].
//!
//! The format (kernel `ip_vs_info_seq_show`, unchanged since 2.6):
//!
//! ```text
//! IP Virtual Server version 1.2.1 (size=4096)
//! Prot LocalAddress:Port Scheduler Flags
//!   -> RemoteAddress:Port Forward Weight ActiveConn InActConn
//! TCP  0A600001:0050 rr
//!   -> 0AF40105:1F90      Masq    1      0          0
//! UDP  [fd00:0000:0000:0000:0000:0000:0000:000a]:0035 sh persistent 2700000 80000000
//! FWM  00000007 wlc
//! ```

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;

use crate::addr::{AddressFamily, Protocol};
use crate::destination::{Destination, ForwardMethod};
use crate::error::{Error, Operation};
use crate::scheduler::Scheduler;
use crate::service::{Persistence, ServiceKey, netmask_from_wire};

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

/// Persistence as the overview shows it: the timeout in kernel ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShownPersistence {
    /// The timeout in kernel ticks (jiffies): seconds times the kernel's
    /// `HZ`, which the file does not say (netlink gives seconds).
    pub timeout_ticks: u32,
    /// The client prefix length. For a fwmark service, whose family the
    /// line does not show, it is read as IPv4's when it can be (an IPv6
    /// mark's may then be wrong).
    pub prefix_len: u8,
}

impl ShownPersistence {
    /// Whether this is `persistence`, for a kernel ticking `hz` times a second.
    pub fn is(&self, persistence: &Persistence, hz: u32) -> bool {
        self.prefix_len == persistence.prefix_len
            && u64::from(self.timeout_ticks) == u64::from(persistence.timeout) * u64::from(hz)
    }

    /// The kernel's `HZ` that makes this `persistence`, if a plausible one
    /// (a `CONFIG_HZ` value of some architecture) does.
    pub fn hz(&self, persistence: &Persistence) -> Option<u32> {
        const CONFIG_HZ: [u32; 14] = [
            24, 32, 48, 64, 100, 128, 200, 250, 256, 300, 500, 1000, 1024, 1200,
        ];
        CONFIG_HZ
            .into_iter()
            .find(|hz| persistence.timeout > 0 && self.is(persistence, *hz))
    }
}

/// One virtual server with its real servers, in kernel order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverviewService {
    /// Which virtual server.
    pub key: OverviewKey,
    /// Its scheduler.
    pub scheduler: Scheduler,
    /// Whether it has the one-packet flag (`ops`); `None` for IPv6 services,
    /// whose line does not show it.
    pub one_packet: Option<bool>,
    /// Its persistence, if any.
    pub persistence: Option<ShownPersistence>,
    /// Its real servers.
    pub destinations: Vec<OverviewDestination>,
}

/// Reads an overview from `text`, calling `each` for every virtual server
/// in file order. One virtual server is held at a time, whatever the size
/// of the table.
///
/// The kernel's file may leave services out when other network namespaces
/// have IPVS services too, on kernels whose service table all namespaces
/// share (the test VM's 6.1): each `read` of it starts at the position
/// where the previous one stopped, counted over this namespace's services
/// (`ip_vs_info_array`), while within a `read` the position also counts
/// the other namespaces' services it steps over (`ip_vs_info_seq_next`), so
/// the next `read` starts further on. The services it shows are whole; a
/// service it does not show may still exist (ask netlink).
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
            let mut service = service(&line).map_err(|why| bad(&why))?;
            if let Some(done) = current.take() {
                each(&done);
                service.destinations = reuse(done.destinations);
            }
            current = Some(service);
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

/// A service line, without its real servers: `TCP  0A600001:0050 rr ops
/// persistent 90000 FFFFFFFF` (IPv4: `ops` when one-packet), `UDP
/// [v6]:0035 sh persistent 2700000 80000000` (IPv6: no `ops`; the netmask is
/// the prefix length as the kernel stores it) or `FWM  00000007 rr ops`.
fn service(line: &str) -> Result<OverviewService, String> {
    let mut fields = line.split_whitespace();
    let (Some(protocol), Some(address), Some(scheduler)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Err("expected a protocol, an address and a scheduler".into());
    };
    let (key, af) = if protocol == "FWM" {
        let mark = u32::from_str_radix(address, 16).map_err(|e| format!("fwmark: {e}"))?;
        let mark = NonZeroU32::new(mark).ok_or("fwmark 0")?;
        (OverviewKey::Fwmark(mark), None)
    } else {
        let protocol: Protocol = protocol.parse().map_err(|e| format!("{e}"))?;
        let (addr, port) = socket_address(address)?;
        let key = ServiceKey::inet(protocol, addr, port);
        (OverviewKey::Service(key), Some(key.af()))
    };
    let mut one_packet = false;
    let mut persistence = None;
    while let Some(field) = fields.next() {
        match field {
            "ops" => one_packet = true,
            "persistent" => {
                let (Some(timeout), Some(mask)) = (fields.next(), fields.next()) else {
                    return Err("persistent without timeout and netmask".into());
                };
                let timeout = timeout
                    .parse()
                    .map_err(|e| format!("persistence timeout {timeout:?}: {e}"))?;
                let mask = u32::from_str_radix(mask, 16)
                    .map_err(|e| format!("persistence netmask {mask:?}: {e}"))?;
                // Printed with ntohl: its big-endian bytes are the kernel's.
                // A fwmark's family is not shown: IPv4's reading, else IPv6's.
                let raw = mask.to_be_bytes();
                let prefix_len = match af {
                    Some(af) => netmask_from_wire(af, raw),
                    None => netmask_from_wire(AddressFamily::Inet, raw)
                        .or_else(|_| netmask_from_wire(AddressFamily::Inet6, raw)),
                }
                .map_err(|e| format!("persistence netmask: {e}"))?;
                persistence = Some(ShownPersistence {
                    timeout_ticks: timeout,
                    prefix_len,
                });
            }
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    Ok(OverviewService {
        key,
        scheduler: Scheduler::from(scheduler.to_owned()),
        one_packet: (af != Some(AddressFamily::Inet6)).then_some(one_packet),
        persistence,
        destinations: Vec::new(),
    })
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

/// The forwarding methods without settings: the file's name of one of
/// them says all there is to know about it (a `Tunnel`'s settings it does
/// not show).
pub(crate) const UNTUNNELLED: [ForwardMethod; 4] = [
    ForwardMethod::Masquerade,
    ForwardMethod::Local,
    ForwardMethod::DirectRoute,
    ForwardMethod::Bypass,
];

/// The kernel's name of a forwarding method (`ip_vs_fwd_name`), as the
/// static name [`ForwardMethod::name`] gives.
fn forward_name(text: &str) -> Result<&'static str, String> {
    UNTUNNELLED
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
UDP  [fd00:0000:0000:0000:0000:0000:0000:000a]:0035 sh persistent 2700000 80000000
  -> [fd00:0000:0000:0000:0000:0000:0001:0002]:0035      Route   2      0          7         
UDP  0A600002:01BB wlc ops persistent 90000 FFFFFF00
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
                OverviewKey::Service(ServiceKey::inet(
                    Protocol::Udp,
                    "10.96.0.2".parse().unwrap(),
                    443
                )),
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
        let persistence = |timeout_ticks, prefix_len| {
            Some(ShownPersistence {
                timeout_ticks,
                prefix_len,
            })
        };
        let service = |s: &OverviewService| (s.scheduler.clone(), s.one_packet, s.persistence);
        assert_eq!(
            service(&table[0]),
            (Scheduler::RoundRobin, Some(false), None)
        );
        // IPv6 lines do not show the one-packet flag; the netmask is the prefix length.
        assert_eq!(
            service(&table[1]),
            (Scheduler::SourceHashing, None, persistence(2_700_000, 128))
        );
        assert_eq!(
            service(&table[2]),
            (
                Scheduler::WeightedLeastConnection,
                Some(true),
                persistence(90_000, 24)
            )
        );
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
    fn a_persistence_timeout_in_ticks_gives_the_kernels_hz() {
        let shown = ShownPersistence {
            timeout_ticks: 2_700_000,
            prefix_len: 32,
        };
        let p = |timeout, prefix_len| Persistence {
            timeout,
            prefix_len,
        };
        assert_eq!(shown.hz(&p(10800, 32)), Some(250));
        assert!(shown.is(&p(10800, 32), 250));
        assert!(!shown.is(&p(10800, 32), 100));
        assert_eq!(shown.hz(&p(27000, 32)), Some(100));
        assert_eq!(shown.hz(&p(10800, 24)), None, "another prefix");
        assert_eq!(shown.hz(&p(10801, 32)), None, "no HZ makes it");
        assert_eq!(shown.hz(&p(0, 32)), None);
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
        for broken in [
            TABLE.replace("0A600002:01BB", "0A600002"),
            TABLE.replace("90000 FFFFFF00", "90000 FF00FF00"),
            TABLE.replace("persistent 90000 FFFFFF00", "persistent"),
            TABLE.replace("wlc ops", "wlc sometimes"),
        ] {
            assert!(read(&broken).is_err(), "{broken}");
        }
    }
}
