//! ipvsadm's option values: service addresses, netmasks, scheduler flags
//! and numbers, with ipvsadm's ranges and error wording.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::num::NonZeroU32;

use ipvs::{Protocol, Scheduler, ServiceFlags};

use crate::etc_services::ServiceNames;

/// The longest persistence or connection timeout ipvsadm accepts (31 days).
pub(crate) const MAX_TIMEOUT: u32 = 86400 * 31;
/// ipvsadm's scheduler when `-s` is not given.
pub(crate) const DEFAULT_SCHEDULER: &str = "wlc";

/// An address with an optional port, as `-t`, `-u`, `--sctp-service` and
/// `-r` take them: `10.0.0.1:80`, `10.0.0.1`, `[2001:db8::1]:80`,
/// `2001:db8::1`, `host:http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AddrPort {
    /// The address.
    pub(crate) addr: IpAddr,
    /// The port, when one was given.
    pub(crate) port: Option<u16>,
}

/// Parses an address and optional port like ipvsadm's `parse_service`:
/// port names are looked up in `/etc/services` for `protocol`, host names
/// are resolved by the system resolver (IPv4 unless bracketed).
pub(crate) fn addr_port(s: &str, protocol: Protocol) -> Result<AddrPort, String> {
    addr_port_with(s, protocol, ServiceNames::system())
}

fn addr_port_with(s: &str, protocol: Protocol, names: &ServiceNames) -> Result<AddrPort, String> {
    let bad = || format!("illegal address[:port] `{s}'");
    if s.is_empty() || s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        (host, Some(after.strip_prefix(':').ok_or_else(bad)?))
    } else if let Ok(v6) = s.parse::<Ipv6Addr>() {
        return Ok(AddrPort {
            addr: v6.into(),
            port: None,
        });
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    let bracketed = s.starts_with('[');
    let addr = match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) if !bracketed => IpAddr::V4(v4),
        Ok(IpAddr::V6(v6)) if bracketed => IpAddr::V6(v6),
        Ok(_) => return Err(bad()),
        Err(_) => {
            resolve(host, bracketed).ok_or_else(|| format!("cannot resolve host `{host}'"))?
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .or_else(|| names.port(p, protocol))
                .ok_or_else(|| format!("unknown port or service name `{p}' in `{s}'"))?,
        ),
    };
    Ok(AddrPort { addr, port })
}

/// Resolves a host name to its first IPv6 (bracketed) or IPv4 address.
fn resolve(host: &str, ipv6: bool) -> Option<IpAddr> {
    if host.is_empty() || host.starts_with('-') {
        return None;
    }
    (host, 0)
        .to_socket_addrs()
        .ok()?
        .map(|sa| sa.ip())
        .find(|ip| ip.is_ipv6() == ipv6)
}

/// `-f`: a firewall mark from 1 to 2^32-1.
pub(crate) fn fwmark(s: &str) -> Result<NonZeroU32, String> {
    s.parse::<NonZeroU32>()
        .map_err(|_| format!("invalid fwmark value `{s}' specified"))
}

/// A decimal number within `min..=max`, like ipvsadm's `string_to_number`.
pub(crate) fn number(s: &str, min: u32, max: u32, what: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("illegal {what} `{s}' specified (expected {min} to {max})"))
}

/// `-M` for an IPv4 service: a dotted netmask, which must be contiguous
/// (the IPVS client keeps prefix lengths).
pub(crate) fn ipv4_netmask(s: &str) -> Result<u8, String> {
    let mask = u32::from(
        s.parse::<Ipv4Addr>()
            .map_err(|_| format!("illegal virtual server persistent mask `{s}' specified"))?,
    );
    let len = mask.leading_ones();
    if mask.checked_shl(len).unwrap_or(0) != 0 {
        return Err(format!(
            "non-contiguous persistent mask `{s}' is not supported"
        ));
    }
    Ok(len as u8)
}

/// `-M` for an IPv6 service: a prefix length from 1 to 128.
pub(crate) fn ipv6_prefix(s: &str) -> Result<u8, String> {
    s.parse::<u8>()
        .ok()
        .filter(|n| (1..=128).contains(n))
        .ok_or_else(|| format!("illegal ipv6 netmask `{s}' specified"))
}

/// `-b`: comma-separated scheduler flags, checked against the scheduler as
/// ipvsadm does (`sh-*` only with `sh`, `mh-*` only with `mh`).
pub(crate) fn sched_flags(scheduler: &Scheduler, s: &str) -> Result<ServiceFlags, String> {
    s.split(',').try_fold(ServiceFlags::empty(), |acc, flag| {
        let (bit, needs) = match flag {
            "flag-1" => (ServiceFlags::SCHED1, None),
            "flag-2" => (ServiceFlags::SCHED2, None),
            "flag-3" => (ServiceFlags::SCHED3, None),
            "sh-fallback" => (ServiceFlags::SH_FALLBACK, Some(Scheduler::SourceHashing)),
            "sh-port" => (ServiceFlags::SH_PORT, Some(Scheduler::SourceHashing)),
            "mh-fallback" => (ServiceFlags::MH_FALLBACK, Some(Scheduler::Maglev)),
            "mh-port" => (ServiceFlags::MH_PORT, Some(Scheduler::Maglev)),
            _ => return Err(format!("invalid scheduler flag `{flag}'")),
        };
        match needs {
            Some(sched) if sched != *scheduler => {
                Err(format!("incompatible scheduler flag `{flag}'"))
            }
            _ => Ok(acc | bit),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs::spelling::{has_sched_flags, sched_flag_names};

    fn parse(s: &str) -> Result<AddrPort, String> {
        let names = ServiceNames::parse("http 80/tcp www\ndomain 53/udp\n");
        addr_port_with(s, Protocol::Tcp, &names)
    }

    fn ap(addr: &str, port: Option<u16>) -> AddrPort {
        AddrPort {
            addr: addr.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn addresses_parse_like_ipvsadm() {
        assert_eq!(parse("10.0.0.1:80"), Ok(ap("10.0.0.1", Some(80))));
        assert_eq!(parse("10.0.0.1"), Ok(ap("10.0.0.1", None)));
        assert_eq!(parse("10.0.0.1:0"), Ok(ap("10.0.0.1", Some(0))));
        assert_eq!(parse("[2001:db8::1]:443"), Ok(ap("2001:db8::1", Some(443))));
        assert_eq!(parse("2001:db8::1"), Ok(ap("2001:db8::1", None)));
        assert_eq!(parse("10.0.0.1:http"), Ok(ap("10.0.0.1", Some(80))));
        assert_eq!(parse("10.0.0.1:www"), Ok(ap("10.0.0.1", Some(80))));
        assert_eq!(parse("localhost:http").map(|a| a.port), Ok(Some(80)));
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "80",
            "10.0.0.1:domain",
            "10.0.0.1:65536",
            "[2001:db8::1]80",
            "[2001:db8::1",
            "[10.0.0.1]:80",
            "10.0.0.1:80:80",
            "-x:80",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn netmasks_and_prefixes() {
        assert_eq!(ipv4_netmask("255.255.255.0"), Ok(24));
        assert_eq!(ipv4_netmask("255.255.255.255"), Ok(32));
        assert_eq!(ipv4_netmask("0.0.0.0"), Ok(0));
        assert!(ipv4_netmask("255.0.255.0").is_err());
        assert!(ipv4_netmask("24").is_err());
        assert_eq!(ipv6_prefix("64"), Ok(64));
        assert!(ipv6_prefix("0").is_err());
        assert!(ipv6_prefix("129").is_err());
    }

    #[test]
    fn scheduler_flags_need_their_scheduler() {
        let sh = Scheduler::SourceHashing;
        let both = sched_flags(&sh, "sh-fallback,sh-port").unwrap();
        assert_eq!(both, ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT);
        assert_eq!(sched_flag_names(&sh, both), ["sh-fallback", "sh-port"]);
        assert!(sched_flags(&Scheduler::RoundRobin, "sh-port").is_err());
        assert!(sched_flags(&sh, "mh-port").is_err());
        assert!(sched_flags(&sh, "bogus").is_err());
        let rr = sched_flags(&Scheduler::RoundRobin, "flag-1,flag-3").unwrap();
        assert_eq!(
            sched_flag_names(&Scheduler::RoundRobin, rr),
            ["flag-1", "flag-3"]
        );
        assert_eq!(sched_flag_names(&Scheduler::Maglev, rr), ["mh-fallback"]);
        assert!(has_sched_flags(ServiceFlags::SCHED3));
        assert!(!has_sched_flags(ServiceFlags::ONE_PACKET));
    }

    #[test]
    fn numbers_respect_ranges() {
        assert_eq!(number("5", 0, 65535, "weight"), Ok(5));
        assert!(number("65536", 0, 65535, "weight").is_err());
        assert!(number("-1", 0, 65535, "weight").is_err());
        assert!(number("0", 1, MAX_TIMEOUT, "timeout").is_err());
        assert_eq!(fwmark("7").map(NonZeroU32::get), Ok(7));
        assert!(fwmark("0").is_err());
        assert!(fwmark("x").is_err());
    }
}
