//! `ipvsadm -Sn`, byte for byte: the rules that `ipvsadm -R` (and
//! `ipvsctl-rs restore`) read back.
//!
//! As in ipvsadm, thresholds are not saved, local real servers are saved
//! as `-g`, and a cache-bypass real server (which ipvsadm cannot create)
//! is saved with ipvsadm's `(null)` switch, which restore refuses.

use ipvs::{
    DestinationRule, ForwardMethod, Service, ServiceFlags, ServiceKey, ServiceRules, TunnelType,
};

use super::{TunnelView, name_protocol, persistence_mask};
use crate::naming::Naming;
use crate::values::{has_sched_flags, sched_flag_names};

/// The rules for a table already in the wanted order, with addresses and
/// ports written as `naming` says (`-S` names them, `-Sn` does not).
pub(crate) fn render(table: &[ServiceRules], naming: &Naming) -> String {
    let mut out = String::new();
    for s in table {
        let svc = &s.service;
        out.push_str(&service_rule(svc, naming));
        out.push('\n');
        // Written once for all of the service's real servers.
        let service = service_option(&svc.key, naming);
        for d in &s.destinations {
            let protocol = name_protocol(&svc.key);
            out.push_str(&destination_rule(&service, protocol, d, naming));
            out.push('\n');
        }
    }
    out
}

/// `-t 10.0.0.1:80`, `-u [2001:db8::1]:53`, `--sctp-service ...`, `-f 7`,
/// `-f 7 -6`.
pub(crate) fn service_option(key: &ServiceKey, naming: &Naming) -> String {
    match key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            let switch = match protocol {
                ipvs::Protocol::Tcp => "-t",
                ipvs::Protocol::Udp => "-u",
                ipvs::Protocol::Sctp => "--sctp-service",
            };
            format!(
                "{switch} {}",
                naming.addr_port(addr, *port, Some(*protocol))
            )
        }
        // ipvsadm prints the mark with %d.
        ServiceKey::Fwmark { af, mark } => match af {
            ipvs::AddressFamily::Inet => format!("-f {}", mark.get() as i32),
            ipvs::AddressFamily::Inet6 => format!("-f {} -6", mark.get() as i32),
        },
    }
}

/// `-A -t 10.0.0.1:80 -s rr -p 300 -M 255.255.255.0 --pe sip -o -b flag-1`.
pub(crate) fn service_rule(svc: &Service, naming: &Naming) -> String {
    let mut rule = format!(
        "-A {} -s {}",
        service_option(&svc.key, naming),
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
    if has_sched_flags(svc.flags) {
        rule.push_str(&format!(
            " -b {}",
            sched_flag_names(&svc.scheduler, svc.flags).join(",")
        ));
    }
    rule
}

/// `-a -t 10.0.0.1:80 -r 10.244.1.5:8080 -m -w 1`, with the tunnel options
/// of a tunnelled real server: `service` is the service's option
/// ([`service_option`]), `protocol` the one its ports are named for
/// ([`name_protocol`]).
pub(crate) fn destination_rule(
    service: &str,
    protocol: Option<ipvs::Protocol>,
    d: &DestinationRule,
    naming: &Naming,
) -> String {
    const CSUM: [&str; 3] = ["--tun-nocsum", "--tun-csum", "--tun-remcsum"];
    let switch = match d.forward {
        ForwardMethod::Masquerade => "-m",
        ForwardMethod::Tunnel { .. } => "-i",
        ForwardMethod::DirectRoute | ForwardMethod::Local => "-g",
        ForwardMethod::Bypass => "(null)",
    };
    let mut rule = format!(
        "-a {service} -r {} {switch} -w {}",
        naming.addr_port(&d.addr, d.port, protocol),
        d.weight
    );
    if let Some(t) = TunnelView::of(&d.forward) {
        rule.push_str(&format!(" --tun-type {}", t.type_name()));
        match t.tunnel {
            TunnelType::Ipip => {}
            TunnelType::Gue { port } => {
                rule.push_str(&format!(" --tun-port {port} {}", CSUM[t.csum]))
            }
            TunnelType::Gre => rule.push_str(&format!(" {}", CSUM[t.csum])),
        }
    }
    rule
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn save_matches_ipvsadm() {
        assert_eq!(render(&testdata::rules(), &Naming::Numeric), testdata::SAVE);
    }

    #[test]
    fn local_and_bypass_real_servers() {
        let key = ServiceKey::inet(ipvs::Protocol::Tcp, "10.0.0.1".parse().unwrap(), 80);
        let rule = |forward| {
            let d = ipvs::Destination::new("127.0.0.1".parse().unwrap(), 80, forward, 1);
            let service = service_option(&key, &Naming::Numeric);
            let protocol = name_protocol(&key);
            destination_rule(
                &service,
                protocol,
                &DestinationRule::from(&d),
                &Naming::Numeric,
            )
        };
        assert_eq!(
            rule(ForwardMethod::Local),
            "-a -t 10.0.0.1:80 -r 127.0.0.1:80 -g -w 1"
        );
        assert_eq!(
            rule(ForwardMethod::Bypass),
            "-a -t 10.0.0.1:80 -r 127.0.0.1:80 (null) -w 1"
        );
    }
}
