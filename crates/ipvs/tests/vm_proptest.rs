//! Property test against the real kernel: random tables applied through
//! the crate read back identically through the crate and through
//! `ipvsadm -Sn`. Few cases: the VM runs under TCG.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::{fresh, ipvsadm_save, save_destination, save_service};
use ipvs::{
    AddressFamily, Change, Destination, ForwardMethod, OverviewKey, Persistence, Protocol,
    Scheduler, Service, ServiceFlags, ServiceKey, TunnelFlags, TunnelType,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// One service of a random table and its real servers.
type Entry = (Service, Vec<Destination>);

fn scheduler() -> impl Strategy<Value = Scheduler> {
    // Every scheduler with a module in the guest's kernel (not twos).
    let all: Vec<Scheduler> = Scheduler::all()
        .filter(|s| *s != Scheduler::TwoChoice)
        .collect();
    proptest::sample::select(all)
}

fn forward() -> impl Strategy<Value = ForwardMethod> {
    let flags = prop_oneof![
        Just(TunnelFlags::empty()),
        Just(TunnelFlags::CSUM),
        Just(TunnelFlags::REMCSUM)
    ];
    prop_oneof![
        Just(ForwardMethod::Masquerade),
        Just(ForwardMethod::DirectRoute),
        Just(ForwardMethod::Tunnel {
            tunnel: TunnelType::Ipip,
            flags: TunnelFlags::empty()
        }),
        (1u16.., flags.clone()).prop_map(|(port, flags)| ForwardMethod::Tunnel {
            tunnel: TunnelType::Gue { port },
            flags
        }),
        flags.prop_map(|flags| ForwardMethod::Tunnel {
            tunnel: TunnelType::Gre,
            flags
        }),
    ]
}

/// The key of service number `i`: unique per table by construction.
fn key(i: u16, kind: u8) -> ServiceKey {
    let v4 = IpAddr::V4(Ipv4Addr::new(10, 1, (i >> 8) as u8, i as u8));
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, i));
    match kind {
        0 => ServiceKey::inet(Protocol::Tcp, v4, 1000 + i),
        1 => ServiceKey::inet(Protocol::Udp, v6, 53),
        2 => ServiceKey::inet(Protocol::Sctp, v4, 3868),
        3 => ServiceKey::fwmark(AddressFamily::Inet, u32::from(i) + 1).expect("non-zero"),
        _ => ServiceKey::fwmark(AddressFamily::Inet6, u32::from(i) + 1).expect("non-zero"),
    }
}

/// Real server number `j` of service `i`, in the service's family.
fn dest_addr(af: AddressFamily, i: u16, j: u16) -> IpAddr {
    match af {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::new(10, 255, i as u8, j as u8 + 1)),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::new(0xfd00, 0xff, 0, 0, 0, 0, i, j + 1)),
    }
}

fn entry(i: u16) -> impl Strategy<Value = Entry> {
    let persistence = proptest::option::of((0u32..100_000, 0u8..=32));
    let dests = proptest::collection::vec((forward(), 0u32..1000, any::<u16>(), 0u32..100), 0..4);
    (0u8..5, scheduler(), 0u32..64, persistence, dests).prop_map(
        move |(kind, sched, flags, persistence, dests)| {
            let key = key(i, kind);
            let af = key.af();
            let service = Service {
                // Only the bits ipvsadm can show: one-packet and the scheduler flags.
                flags: ServiceFlags::from_bits_truncate(flags),
                persistence: persistence.map(|(timeout, len)| Persistence {
                    timeout,
                    prefix_len: match af {
                        AddressFamily::Inet => len,
                        AddressFamily::Inet6 => 96 + len,
                    },
                }),
                ..Service::new(key, sched)
            };
            let dests = dests
                .into_iter()
                .enumerate()
                .map(|(j, (forward, weight, port, upper))| Destination {
                    upper_threshold: upper,
                    lower_threshold: upper / 2,
                    ..Destination::new(dest_addr(af, i, j as u16), port, forward, weight)
                })
                .collect();
            (service, dests)
        },
    )
}

/// What the overview shows of one virtual server: its key, scheduler,
/// one-packet flag and persistence prefix length, and its real servers'
/// address, port, forwarding method and weight, sorted.
type Shown = (
    OverviewKey,
    (Scheduler, Option<bool>, Option<u8>),
    Vec<(IpAddr, u16, &'static str, u32)>,
);

fn overview_entry(
    key: OverviewKey,
    service: (Scheduler, Option<bool>, Option<u8>),
    dests: impl Iterator<Item = (IpAddr, u16, &'static str, u32)>,
) -> Shown {
    let mut dests: Vec<_> = dests.collect();
    dests.sort();
    (key, service, dests)
}

/// A fwmark service's persistence prefix as the overview reads it: the
/// prefix length of an IPv6 mark, stored in host order and printed with
/// `ntohl`, reads as an IPv4 netmask when its byte-swapped value is one.
fn fwmark_prefix(p: Persistence, af: AddressFamily) -> u8 {
    let as_ipv4 = match af {
        AddressFamily::Inet => Some(p.prefix_len),
        AddressFamily::Inet6 => {
            let mask = u32::from(p.prefix_len).swap_bytes();
            (mask.checked_shl(mask.leading_ones()).unwrap_or(0) == 0)
                .then(|| mask.leading_ones() as u8)
        }
    };
    as_ipv4.unwrap_or(p.prefix_len)
}

fn sorted(mut v: Vec<Shown>) -> Vec<Shown> {
    v.sort_by_key(|s| s.0);
    v
}

fn table() -> impl Strategy<Value = Vec<Entry>> {
    (1u16..8).prop_flat_map(|n| (0..n).map(entry).collect::<Vec<_>>())
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vm_ipvs_random_tables_match_ipvsadm() {
    let (ns, c) = fresh("prop");
    // The runner wants a `Fn`; the client needs `&mut`.
    let c = std::cell::RefCell::new(c);
    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&table(), |table| {
            let mut c = c.borrow_mut();
            c.flush().expect("flush");
            let mut changes: Vec<Change> = table
                .iter()
                .map(|(s, _)| Change::AddService(s.clone()))
                .collect();
            for (s, dests) in &table {
                changes.extend(dests.iter().map(|d| Change::AddDestination(s.key, *d)));
            }
            for (change, result) in changes.iter().zip(c.apply(&changes)) {
                prop_assert!(result.is_ok(), "{change}: {result:?}");
            }

            let mut want: BTreeSet<String> = BTreeSet::new();
            for (s, dests) in &table {
                want.insert(save_service(s));
                want.extend(dests.iter().map(|d| save_destination(&s.key, d)));
            }
            prop_assert_eq!(ipvsadm_save(&ns), want);

            let listed = c.list().expect("list");
            // The overview (/proc/net/ip_vs of the client's namespace, not
            // this process's) shows what netlink lists, in what it shows;
            // persistence timeouts in kernel ticks, one HZ for them all.
            let mut shown = Vec::new();
            let mut ticks = Vec::new();
            c.overview(|s| {
                let dests = s
                    .destinations
                    .iter()
                    .map(|d| (d.addr, d.port, d.forward, d.weight));
                let prefix = s.persistence.map(|p| p.prefix_len);
                shown.push(overview_entry(
                    s.key,
                    (s.scheduler.clone(), s.one_packet, prefix),
                    dests,
                ));
                ticks.extend(s.persistence.map(|p| (s.key, p)));
            })
            .expect("overview");
            let key_of = |key: ServiceKey| match key {
                ServiceKey::Fwmark { mark, .. } => OverviewKey::Fwmark(mark),
                key => OverviewKey::Service(key),
            };
            let expected: Vec<_> = listed
                .iter()
                .map(|s| {
                    let svc = &s.service.service;
                    let (one_packet, prefix) = match svc.key {
                        // Marks: no family shown, the prefix read as IPv4's.
                        ServiceKey::Fwmark { .. } => (
                            Some(svc.flags.contains(ServiceFlags::ONE_PACKET)),
                            svc.persistence.map(|p| fwmark_prefix(p, svc.key.af())),
                        ),
                        key => (
                            (key.af() == AddressFamily::Inet)
                                .then(|| svc.flags.contains(ServiceFlags::ONE_PACKET)),
                            svc.persistence.map(|p| p.prefix_len),
                        ),
                    };
                    let dests = s.destinations.iter().map(|e| e.destination);
                    overview_entry(
                        key_of(svc.key),
                        (svc.scheduler.clone(), one_packet, prefix),
                        dests.map(|d| (d.addr, d.port, d.forward.name(), d.weight)),
                    )
                })
                .collect();
            let hz: BTreeSet<Option<u32>> = ticks
                .iter()
                .filter_map(|(key, shown)| {
                    let listed = listed
                        .iter()
                        .find(|s| key_of(s.service.service.key) == *key)?;
                    let p = listed.service.service.persistence?;
                    (p.timeout > 0).then(|| {
                        shown.hz(&Persistence {
                            prefix_len: shown.prefix_len,
                            ..p
                        })
                    })
                })
                .collect();
            prop_assert!(
                hz.len() <= 1 && !hz.contains(&None),
                "timeouts in ticks: {ticks:?}, HZ {hz:?}"
            );
            prop_assert_eq!(sorted(shown), sorted(expected));
            let got: HashSet<Entry> = listed
                .into_iter()
                .map(|s| {
                    let mut dests: Vec<Destination> =
                        s.destinations.iter().map(|d| d.destination).collect();
                    dests.sort_by_key(|d| d.addr);
                    (s.service.service, dests)
                })
                .collect();
            prop_assert_eq!(got, table.into_iter().collect::<HashSet<Entry>>());
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
