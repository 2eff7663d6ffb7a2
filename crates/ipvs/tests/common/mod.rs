//! Helpers for the VM tests: a fresh namespace with a client in it, and
//! rendering a table the way `ipvsadm -Sn` prints it, to compare with the
//! real tool.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipvs::{
    AddressFamily, Client, Destination, ForwardMethod, Protocol, Scheduler, Service, ServiceFlags,
    ServiceKey, TunnelFlags, TunnelType,
};
use testkit::Netns;

/// Loads `ip_vs`, the SIP persistence engine, the dummy link type and
/// every scheduler module this kernel has; returns the schedulers whose
/// module exists (Debian 12's 6.1 has no `twos`).
pub fn load_modules() -> Vec<Scheduler> {
    for m in ["ip_vs", "ip_vs_pe_sip", "dummy"] {
        testkit::run(&["modprobe", m]);
    }
    Scheduler::all()
        .filter(|s| {
            testkit::try_run(&["modprobe", &s.module()])
                .status
                .success()
        })
        .collect()
}

/// A fresh namespace (its own IPVS table) with an address on a dummy link,
/// so that real server addresses route, and a client bound to it.
pub fn fresh(tag: &str) -> (Netns, Client) {
    load_modules();
    let ns = Netns::new(tag);
    // Through `run`, not `sh`: in the guest's shell `ip` is busybox's.
    for args in [
        &["ip", "link", "add", "d0", "type", "dummy"][..],
        &["ip", "addr", "add", "10.255.0.1/16", "dev", "d0"],
        &["ip", "addr", "add", "fd00:ff::1/64", "dev", "d0", "nodad"],
        &["ip", "link", "set", "d0", "up"],
    ] {
        ns.run(args);
    }
    let client = Client::in_netns(format!("/run/netns/{}", ns.name())).expect("client in netns");
    (ns, client)
}

/// `ipvsadm -Sn` in the namespace, as a set of lines (ipvsadm sorts; we
/// compare regardless of order).
pub fn ipvsadm_save(ns: &Netns) -> BTreeSet<String> {
    ns.run(&["ipvsadm", "-Sn"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn addr_port(addr: &IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// ipvsadm's `svc_name` in save format: `-t 10.0.0.1:80`, `-f 7 -6`.
fn svc_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            let sw = match protocol {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
            };
            format!("{sw} {}", addr_port(addr, *port))
        }
        ServiceKey::Fwmark {
            af: AddressFamily::Inet,
            mark,
        } => format!("-f {mark}"),
        ServiceKey::Fwmark {
            af: AddressFamily::Inet6,
            mark,
        } => format!("-f {mark} -6"),
    }
}

/// The `-A` line ipvsadm 1.31 saves for a service.
pub fn save_service(s: &Service) -> String {
    let mut line = format!("-A {} -s {}", svc_name(&s.key), s.scheduler);
    if let Some(p) = s.persistence {
        line += &format!(" -p {}", p.timeout);
        match s.key.af() {
            AddressFamily::Inet if p.prefix_len != 32 => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(p.prefix_len))
                    .unwrap_or(0);
                line += &format!(" -M {}", std::net::Ipv4Addr::from(mask));
            }
            AddressFamily::Inet6 if p.prefix_len != 128 => line += &format!(" -M {}", p.prefix_len),
            _ => {}
        }
    }
    if let Some(pe) = &s.persistence_engine {
        line += &format!(" --pe {pe}");
    }
    if s.flags.contains(ServiceFlags::ONE_PACKET) {
        line += " -o";
    }
    // ipvsadm names scheduler flags per scheduler; sh and mh have no name
    // for the third flag and print nothing for it (but still print "-b ").
    let named = |f: ServiceFlags| match (&s.scheduler, f) {
        (Scheduler::SourceHashing, ServiceFlags::SCHED1) => Some("sh-fallback"),
        (Scheduler::SourceHashing, ServiceFlags::SCHED2) => Some("sh-port"),
        (Scheduler::Maglev, ServiceFlags::SCHED1) => Some("mh-fallback"),
        (Scheduler::Maglev, ServiceFlags::SCHED2) => Some("mh-port"),
        (Scheduler::SourceHashing | Scheduler::Maglev, _) => None,
        (_, ServiceFlags::SCHED1) => Some("flag-1"),
        (_, ServiceFlags::SCHED2) => Some("flag-2"),
        _ => Some("flag-3"),
    };
    let sched = ServiceFlags::SCHED1 | ServiceFlags::SCHED2 | ServiceFlags::SCHED3;
    if s.flags.intersects(sched) {
        let names: Vec<&str> = (s.flags & sched).iter().filter_map(named).collect();
        line += &format!(" -b {}", names.join(","));
    }
    line
}

/// The `-a` line ipvsadm 1.31 saves for a real server (thresholds are not
/// saved; Local is saved as `-g`).
pub fn save_destination(key: &ServiceKey, d: &Destination) -> String {
    let fwd = match d.forward {
        ForwardMethod::Masquerade => "-m",
        ForwardMethod::Tunnel { .. } => "-i",
        _ => "-g",
    };
    let mut line = format!(
        "-a {} -r {} {fwd} -w {}",
        svc_name(key),
        addr_port(&d.addr, d.port),
        d.weight
    );
    if let ForwardMethod::Tunnel { tunnel, flags } = d.forward {
        let csum = if flags.contains(TunnelFlags::REMCSUM) {
            "--tun-remcsum"
        } else if flags.contains(TunnelFlags::CSUM) {
            "--tun-csum"
        } else {
            "--tun-nocsum"
        };
        line += &match tunnel {
            TunnelType::Ipip => " --tun-type ipip".to_owned(),
            TunnelType::Gue { port } => format!(" --tun-type gue --tun-port {port} {csum}"),
            TunnelType::Gre => format!(" --tun-type gre {csum}"),
        };
    }
    line
}

/// What `ipvsadm -Sn` should print for the client's current table.
pub fn expected_save(client: &mut Client) -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for s in client.list().expect("list") {
        let key = s.service.service.key;
        lines.insert(save_service(&s.service.service));
        for d in &s.destinations {
            lines.insert(save_destination(&key, &d.destination));
        }
    }
    lines
}

/// Shorthand for an address literal.
pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}
