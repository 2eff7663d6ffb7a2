//! Addresses and ports as ipvsadm prints them without `-n`: host names from
//! the system resolver (`/etc/hosts`, DNS: ipvsadm's `gethostbyaddr`) and
//! service names from `/etc/services` (`getservbyport`), each falling back
//! to the number when there is no name (ipvsadm's `addrport_to_anyname`).
//!
//! ipvsadm looks every row up in turn and waits as long as the resolver
//! does. Here the distinct addresses of a listing are looked up before it
//! is printed, [`PARALLEL_LOOKUPS`] at a time, and the listing waits at
//! most [`LOOKUP_BUDGET`] for all of them together: an address without an
//! answer by then is printed as a number, as ipvsadm prints one whose
//! lookup failed. With `-n` ([`Naming::Numeric`]) nothing is looked up.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use ipvs::spelling::AddrPortSpelling;
use ipvs::{Protocol, ServiceKey};

use crate::etc_services::ServiceNames;
use crate::sort::Row;

/// The longest wait for all of a listing's host name lookups together.
pub(crate) const LOOKUP_BUDGET: Duration = Duration::from_secs(5);
/// How many host name lookups run at once.
pub(crate) const PARALLEL_LOOKUPS: usize = 16;
/// ipvsadm formats a name into a 60-byte buffer: at most 59 bytes remain.
const NAME_MAX: usize = 59;

/// How addresses and ports are printed.
#[derive(Debug)]
pub(crate) enum Naming {
    /// `-n`: numbers only.
    Numeric,
    /// Names where the system has them, numbers elsewhere.
    Names {
        /// The host name of each address that has one.
        hosts: HashMap<IpAddr, String>,
        /// The port names.
        services: &'static ServiceNames,
    },
}

impl Naming {
    /// Names for `addrs` from the system resolver and `/etc/services`,
    /// within [`LOOKUP_BUDGET`].
    pub(crate) fn system(addrs: impl IntoIterator<Item = IpAddr>) -> Naming {
        Naming::Names {
            hosts: lookup_hosts(addrs, crate::reverse_lookup::name, LOOKUP_BUDGET),
            services: ServiceNames::system(),
        }
    }
}

impl AddrPortSpelling for Naming {
    /// `addr:port` as ipvsadm's `addrport_to_anyname` writes it: the host
    /// name or the address (`[...]` for IPv6), `:`, then the port's service
    /// name for `protocol` or its number; at most 59 bytes. Fwmark services
    /// have no protocol, so their real servers' ports stay numbers.
    fn addr_port(&self, addr: &IpAddr, port: u16, protocol: Option<Protocol>) -> String {
        let (host, service) = match self {
            Naming::Numeric => (None, None),
            Naming::Names { hosts, services } => (
                hosts.get(addr).map(String::as_str),
                protocol.and_then(|p| services.name(port, p)),
            ),
        };
        let host = host.map_or_else(|| addr.to_string(), str::to_owned);
        let port = service.map_or_else(|| port.to_string(), str::to_owned);
        let mut text = match addr {
            IpAddr::V4(_) => format!("{host}:{port}"),
            IpAddr::V6(_) => format!("[{host}]:{port}"),
        };
        truncate(&mut text, NAME_MAX);
        text
    }

    fn write_addr_port(
        &self,
        out: &mut String,
        addr: &IpAddr,
        port: u16,
        protocol: Option<Protocol>,
    ) {
        match self {
            Naming::Numeric => ipvs::spelling::Numeric.write_addr_port(out, addr, port, protocol),
            Naming::Names { .. } => out.push_str(&self.addr_port(addr, port, protocol)),
        }
    }
}

/// Every address of a table: its services' and their real servers'.
pub(crate) fn table_addrs<R: Row>(table: &[R]) -> Vec<IpAddr> {
    table
        .iter()
        .flat_map(|s| {
            let service = match *s.key() {
                ServiceKey::Inet { addr, .. } => Some(addr),
                ServiceKey::Fwmark { .. } => None,
            };
            service
                .into_iter()
                .chain(s.dests().iter().map(|d| R::endpoint(d).0))
        })
        .collect()
}

/// Cuts `text` to at most `max` bytes, as ipvsadm's fixed buffers do (at a
/// character boundary, so that the text stays UTF-8).
pub(crate) fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let end = (0..=max)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(end);
    }
}

/// The host names of `addrs` that `resolve` finds within `budget`, looked
/// up [`PARALLEL_LOOKUPS`] at a time. Lookups still running when the budget
/// is spent are left to finish on their own threads; their answers are not
/// used.
pub(crate) fn lookup_hosts(
    addrs: impl IntoIterator<Item = IpAddr>,
    resolve: fn(IpAddr) -> Option<String>,
    budget: Duration,
) -> HashMap<IpAddr, String> {
    let mut queue: Vec<IpAddr> = addrs.into_iter().collect();
    queue.sort_unstable();
    queue.dedup();
    let total = queue.len();
    let workers = PARALLEL_LOOKUPS.min(total);
    let queue = Arc::new(Mutex::new(queue));
    let (tx, rx) = mpsc::channel();
    for _ in 0..workers {
        let (queue, tx) = (Arc::clone(&queue), tx.clone());
        // A thread that cannot be started leaves its share to the others
        // (or, with none, every address numeric).
        let _ = std::thread::Builder::new()
            .name("reverse-lookup".into())
            .spawn(move || {
                while let Some(addr) = queue.lock().ok().and_then(|mut q| q.pop()) {
                    if tx.send((addr, resolve(addr))).is_err() {
                        return;
                    }
                }
            });
    }
    drop(tx);
    let deadline = Instant::now() + budget;
    let mut hosts = HashMap::new();
    for _ in 0..total {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((addr, Some(name))) => {
                hosts.insert(addr, name);
            }
            Ok((_, None)) => {}
            Err(_) => break,
        }
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(hosts: &[(&str, &str)]) -> Naming {
        static SERVICES: std::sync::OnceLock<ServiceNames> = std::sync::OnceLock::new();
        let services = SERVICES.get_or_init(|| {
            ServiceNames::parse("http 80/tcp www\nhttp 80/udp\ndomain 53/udp\nhttp-alt 80/tcp\n")
        });
        Naming::Names {
            hosts: hosts
                .iter()
                .map(|(a, n)| (a.parse().unwrap(), (*n).to_owned()))
                .collect(),
            services,
        }
    }

    #[test]
    fn names_and_their_fallbacks_like_addrport_to_anyname() {
        let n = names(&[("10.0.0.1", "web.example"), ("2001:db8::1", "v6.example")]);
        let ap = |a: &str, port, p| n.addr_port(&a.parse().unwrap(), port, p);
        assert_eq!(ap("10.0.0.1", 80, Some(Protocol::Tcp)), "web.example:http");
        assert_eq!(ap("10.0.0.1", 53, Some(Protocol::Tcp)), "web.example:53");
        assert_eq!(ap("10.0.0.2", 53, Some(Protocol::Udp)), "10.0.0.2:domain");
        assert_eq!(ap("10.0.0.2", 53, Some(Protocol::Sctp)), "10.0.0.2:53");
        assert_eq!(ap("10.0.0.1", 80, None), "web.example:80");
        assert_eq!(
            ap("2001:db8::1", 80, Some(Protocol::Udp)),
            "[v6.example]:http"
        );
        assert_eq!(
            ap("2001:db8::2", 8080, Some(Protocol::Tcp)),
            "[2001:db8::2]:8080"
        );
        let long = "a".repeat(70);
        let n = names(&[("10.0.0.1", &long)]);
        let text = n.addr_port(&"10.0.0.1".parse().unwrap(), 80, Some(Protocol::Tcp));
        assert_eq!(text, "a".repeat(59));
        let numeric = Naming::Numeric.addr_port(&"2001:db8::1".parse().unwrap(), 80, None);
        assert_eq!(numeric, "[2001:db8::1]:80");
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        let mut s = "ab\u{e9}".to_owned();
        truncate(&mut s, 3);
        assert_eq!(s, "ab");
        let mut s = "abc".to_owned();
        truncate(&mut s, 5);
        assert_eq!(s, "abc");
    }

    #[test]
    fn lookups_are_bounded_in_time() {
        fn slow_for_odd(addr: IpAddr) -> Option<String> {
            let IpAddr::V4(v4) = addr else { return None };
            if v4.octets()[3] % 2 == 1 {
                std::thread::sleep(Duration::from_secs(30));
            }
            Some(format!("host-{}", v4.octets()[3]))
        }
        let addrs = (1..=6).map(|i| IpAddr::from([10, 0, 0, i]));
        let started = Instant::now();
        let hosts = lookup_hosts(addrs, slow_for_odd, Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(10));
        let mut found: Vec<_> = hosts.values().cloned().collect();
        found.sort();
        assert_eq!(found, ["host-2", "host-4", "host-6"]);
    }
}
