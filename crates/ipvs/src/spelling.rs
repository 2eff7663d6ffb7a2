//! How `ipvsadm` spells a service and a real server in its save format (`-S`): the one
//! rendering of a rule's options, for `ipvsctl-rs save`/`list` and the daemon's live
//! pre-flight. Addresses and ports are written through an [`AddrPortSpelling`]: numeric
//! ([`Numeric`], `ipvsadm -Sn`) or with names the caller looked up.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::addr::{AddressFamily, Protocol};
use crate::destination::{ForwardMethod, TunnelFlags, TunnelType};
use crate::rules::DestinationRule;
use crate::scheduler::Scheduler;
use crate::service::{Service, ServiceFlags, ServiceKey};

/// How an address and port are written in a rule.
pub trait AddrPortSpelling {
    /// `addr:port` (`[addr]:port` for IPv6), the port named for `protocol` where the
    /// spelling names ports (fwmark services have no protocol).
    fn addr_port(&self, addr: &IpAddr, port: u16, protocol: Option<Protocol>) -> String;

    /// [`AddrPortSpelling::addr_port`], appended to `out`.
    fn write_addr_port(
        &self,
        out: &mut String,
        addr: &IpAddr,
        port: u16,
        protocol: Option<Protocol>,
    ) {
        out.push_str(&self.addr_port(addr, port, protocol));
    }
}

/// Numbers only, as `ipvsadm -n` writes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Numeric;

impl AddrPortSpelling for Numeric {
    fn addr_port(&self, addr: &IpAddr, port: u16, protocol: Option<Protocol>) -> String {
        let mut text = String::new();
        self.write_addr_port(&mut text, addr, port, protocol);
        text
    }

    /// Without the formatting machinery for IPv4, the common case of a
    /// large save (`Ipv4Addr`'s `Display` is several times slower).
    fn write_addr_port(
        &self,
        out: &mut String,
        addr: &IpAddr,
        port: u16,
        _protocol: Option<Protocol>,
    ) {
        match addr {
            IpAddr::V4(ip) => {
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push('.');
                    }
                    push_decimal(out, u32::from(octet));
                }
            }
            IpAddr::V6(ip) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "[{ip}]");
            }
        }
        out.push(':');
        push_decimal(out, u32::from(port));
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[start..].iter().map(|d| char::from(*d)));
}

/// The protocol whose port names a service and its real servers get (none for fwmark
/// services: ipvsadm's protocol 0).
pub fn name_protocol(key: &ServiceKey) -> Option<Protocol> {
    match key {
        ServiceKey::Inet { protocol, .. } => Some(*protocol),
        ServiceKey::Fwmark { .. } => None,
    }
}

/// The service's switch: `-t 10.0.0.1:80`, `-u [2001:db8::1]:53`, `--sctp-service …`,
/// `-f 7`, `-f 7 -6` (ipvsadm prints the mark with `%d`).
pub fn service_switch(key: &ServiceKey, spelling: &impl AddrPortSpelling) -> String {
    match key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            let switch = match protocol {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
            };
            format!(
                "{switch} {}",
                spelling.addr_port(addr, *port, Some(*protocol))
            )
        }
        ServiceKey::Fwmark { af, mark } => match af {
            AddressFamily::Inet => format!("-f {}", mark.get() as i32),
            AddressFamily::Inet6 => format!("-f {} -6", mark.get() as i32),
        },
    }
}

/// A service's options after `-A`/`-E`:
/// `-t 10.0.0.1:80 -s rr -p 300 -M 255.255.255.0 --pe sip -o -b flag-1`.
pub fn service_options(svc: &Service, spelling: &impl AddrPortSpelling) -> String {
    let mut rule = format!(
        "{} -s {}",
        service_switch(&svc.key, spelling),
        svc.scheduler
    );
    if let Some(p) = svc.persistence {
        rule.push_str(&format!(" -p {}", p.timeout));
        if let Some(mask) = persistence_mask(&svc.key, p.prefix_len) {
            rule.push_str(&format!(" -M {mask}"));
        }
    }
    if let Some(pe) = &svc.persistence_engine {
        rule.push_str(&format!(" --pe {pe}"));
    }
    if svc.flags.contains(ServiceFlags::ONE_PACKET) {
        rule.push_str(" -o");
    }
    // ipvsadm prints `-b` whenever a scheduler flag is set, with the names it has for the
    // scheduler (possibly none).
    if has_sched_flags(svc.flags) {
        rule.push_str(&format!(
            " -b {}",
            sched_flag_names(&svc.scheduler, svc.flags).join(",")
        ));
    }
    rule
}

/// A real server's options after `-a`/`-e`, given its service's switch
/// ([`service_switch`]) and the protocol its port is named for ([`name_protocol`]):
/// `-t 10.0.0.1:80 -r 10.244.1.5:8080 -m -w 1`, with the tunnel options of a tunnelled
/// real server. As in ipvsadm, thresholds are not written, a local real server is written
/// `-g`, and a cache-bypass one (which ipvsadm cannot create) gets ipvsadm's `(null)`.
pub fn destination_options(
    service_switch: &str,
    protocol: Option<Protocol>,
    d: &DestinationRule,
    spelling: &impl AddrPortSpelling,
) -> String {
    let mut rule = String::new();
    write_destination_options(&mut rule, service_switch, protocol, d, spelling);
    rule
}

/// [`destination_options`], appended to `out` (a save writes one per real server).
pub fn write_destination_options(
    out: &mut String,
    service_switch: &str,
    protocol: Option<Protocol>,
    d: &DestinationRule,
    spelling: &impl AddrPortSpelling,
) {
    const CSUM: [&str; 3] = ["--tun-nocsum", "--tun-csum", "--tun-remcsum"];
    let switch = match d.forward {
        ForwardMethod::Masquerade => " -m -w ",
        ForwardMethod::Tunnel { .. } => " -i -w ",
        ForwardMethod::DirectRoute | ForwardMethod::Local => " -g -w ",
        ForwardMethod::Bypass => " (null) -w ",
    };
    out.push_str(service_switch);
    out.push_str(" -r ");
    spelling.write_addr_port(out, &d.addr, d.port, protocol);
    out.push_str(switch);
    push_decimal(out, d.weight);
    if let Some(t) = TunnelView::of(&d.forward) {
        // Writing to a String cannot fail.
        let _ = write!(out, " --tun-type {}", t.type_name());
        let _ = match t.tunnel {
            TunnelType::Ipip => Ok(()),
            TunnelType::Gue { port } => write!(out, " --tun-port {port} {}", CSUM[t.csum]),
            TunnelType::Gre => write!(out, " {}", CSUM[t.csum]),
        };
    }
}

/// A tunnel's encapsulation and its checksum mode as ipvsadm indexes its name tables:
/// 0 no checksum, 1 checksum, 2 remote checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelView {
    /// The encapsulation.
    pub tunnel: TunnelType,
    /// Index into ipvsadm's checksum-name tables.
    pub csum: usize,
}

impl TunnelView {
    /// The tunnel of a tunnelled real server, `None` for other methods.
    pub fn of(forward: &ForwardMethod) -> Option<Self> {
        match *forward {
            ForwardMethod::Tunnel { tunnel, flags } => Some(TunnelView {
                tunnel,
                csum: if flags.contains(TunnelFlags::REMCSUM) {
                    2
                } else {
                    usize::from(flags.contains(TunnelFlags::CSUM))
                },
            }),
            _ => None,
        }
    }

    /// `ipip`, `gue` or `gre`.
    pub fn type_name(&self) -> &'static str {
        match self.tunnel {
            TunnelType::Ipip => "ipip",
            TunnelType::Gue { .. } => "gue",
            TunnelType::Gre => "gre",
        }
    }
}

/// The persistence granularity as ipvsadm shows it, when it is not a single client: a
/// dotted mask for IPv4 (`255.255.255.0`), a prefix length for IPv6 (`64`).
pub fn persistence_mask(key: &ServiceKey, prefix_len: u8) -> Option<String> {
    match key.af() {
        AddressFamily::Inet if prefix_len < 32 => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix_len))
                .unwrap_or(0);
            Some(std::net::Ipv4Addr::from(mask).to_string())
        }
        AddressFamily::Inet6 if prefix_len < 128 => Some(prefix_len.to_string()),
        _ => None,
    }
}

/// The names of a service's scheduler flags, as ipvsadm prints them:
/// `sh-fallback,sh-port` for `sh`, `mh-*` for `mh`, `flag-N` otherwise.
pub fn sched_flag_names(scheduler: &Scheduler, flags: ServiceFlags) -> Vec<&'static str> {
    let names: &[(ServiceFlags, &str)] = match scheduler {
        Scheduler::SourceHashing => &[
            (ServiceFlags::SH_FALLBACK, "sh-fallback"),
            (ServiceFlags::SH_PORT, "sh-port"),
        ],
        Scheduler::Maglev => &[
            (ServiceFlags::MH_FALLBACK, "mh-fallback"),
            (ServiceFlags::MH_PORT, "mh-port"),
        ],
        _ => &[
            (ServiceFlags::SCHED1, "flag-1"),
            (ServiceFlags::SCHED2, "flag-2"),
            (ServiceFlags::SCHED3, "flag-3"),
        ],
    };
    names
        .iter()
        .filter(|(bit, _)| flags.contains(*bit))
        .map(|(_, name)| *name)
        .collect()
}

/// Whether any scheduler flag is set (ipvsadm then prints its flag list, even when empty
/// for the scheduler).
pub fn has_sched_flags(flags: ServiceFlags) -> bool {
    flags.intersects(ServiceFlags::SCHED1 | ServiceFlags::SCHED2 | ServiceFlags::SCHED3)
}
