use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipvs::{Protocol, ServiceEntry, Stats};
use proptest::prelude::*;

use super::*;
use crate::fixtures::*;

const T: Duration = Duration::from_secs(60);

/// The plan's operations in apply order.
fn ops(p: &Plan) -> Vec<Change> {
    p.changes().cloned().collect()
}

fn run(
    wanted: &Wanted,
    observed: &[ServiceWithDestinations],
    draining: &mut Draining,
    now: Instant,
) -> Plan {
    plan(wanted, observed, &owner(), draining, now)
}

#[test]
fn creates_virtual_servers_before_their_real_servers() {
    let k = key(Protocol::Tcp, "10.96.0.10", 80);
    let wanted: Wanted = [want(
        k,
        "rr",
        &[dest("10.244.1.5", 8080, 1), dest("10.244.2.5", 8080, 1)],
    )]
    .into();
    let p = run(&wanted, &[], &mut Draining::new(T), Instant::now());
    assert_eq!(
        ops(&p),
        vec![
            Change::AddService(wanted[&k].service.clone()),
            Change::AddDestination(k, dest("10.244.1.5", 8080, 1)),
            Change::AddDestination(k, dest("10.244.2.5", 8080, 1)),
        ]
    );
}

#[test]
fn nothing_to_do_when_the_kernel_matches() {
    let k = key(Protocol::Udp, "fd00::10", 53);
    let wanted: Wanted = [want(k, "rr", &[dest("fd00:244::5", 53, 1)])].into();
    let observed = [have(k, "rr", vec![entry(dest("fd00:244::5", 53, 1), 0, 7)])];
    assert_eq!(
        run(&wanted, &observed, &mut Draining::new(T), Instant::now()),
        Plan::default()
    );
}

#[test]
fn edits_a_changed_scheduler_in_place() {
    let k = key(Protocol::Tcp, "10.96.0.10", 80);
    let wanted: Wanted = [want(k, "mh", &[dest("10.244.1.5", 8080, 1)])].into();
    let observed = [have(
        k,
        "rr",
        vec![entry(dest("10.244.1.5", 8080, 1), 5, 0)],
    )];
    let p = run(&wanted, &observed, &mut Draining::new(T), Instant::now());
    assert_eq!(
        ops(&p),
        vec![Change::EditService(wanted[&k].service.clone())]
    );
}

/// A virtual server whose real server `old` leaves while `new` is wanted.
fn leaving() -> (ServiceKey, Destination, Destination, Wanted) {
    let k = key(Protocol::Tcp, "10.96.0.10", 80);
    let (old, new) = (dest("10.244.1.5", 8080, 1), dest("10.244.2.5", 8080, 1));
    let wanted: Wanted = [want(k, "rr", &[new])].into();
    (k, old, new, wanted)
}

#[test]
fn a_leaving_real_server_drains_then_goes_once_its_connections_end() {
    let (k, old, new, wanted) = leaving();
    let mut draining = Draining::new(T);
    let t0 = Instant::now();

    let p = run(
        &wanted,
        &[have(k, "rr", vec![entry(old, 3, 0)])],
        &mut draining,
        t0,
    );
    assert_eq!(
        ops(&p),
        vec![
            Change::AddDestination(k, new),
            Change::EditDestination(k, Destination { weight: 0, ..old })
        ],
        "the new real server is added before the old one stops taking connections"
    );
    assert_eq!((p.drain_started, draining.len()), (1, 1));

    let drained_old = Destination { weight: 0, ..old };
    let still_busy = [have(
        k,
        "rr",
        vec![entry(new, 0, 0), entry(drained_old, 2, 4)],
    )];
    assert!(run(&wanted, &still_busy, &mut draining, t0 + T / 2).is_empty());

    let idle = [have(
        k,
        "rr",
        vec![entry(new, 0, 0), entry(drained_old, 0, 4)],
    )];
    let p = run(&wanted, &idle, &mut draining, t0 + T / 2);
    assert_eq!(
        ops(&p),
        vec![Change::DeleteDestination {
            service: k,
            addr: old.addr,
            port: old.port
        }]
    );
    assert!(draining.is_empty());
}

/// kube-proxy's `GracefulDeleteRS` (`pkg/proxy/ipvs/graceful_termination.go`) and its
/// test cases: a real server that leaves with no connection at all is deleted at once
/// ("no connections results in deleting the real server immediately"); one with only
/// inactive connections is set to weight 0 and kept ("real server has in-active
/// connections, weight should be 0 but don't delete").
#[test]
fn a_leaving_real_server_without_connections_is_deleted_at_once() {
    let (k, old, new, wanted) = leaving();
    let mut draining = Draining::new(T);
    let now = Instant::now();

    let p = run(
        &wanted,
        &[have(k, "rr", vec![entry(old, 0, 0)])],
        &mut draining,
        now,
    );
    assert_eq!(
        ops(&p),
        vec![
            Change::AddDestination(k, new),
            Change::DeleteDestination {
                service: k,
                addr: old.addr,
                port: old.port
            }
        ]
    );
    assert_eq!((p.drain_started, draining.len()), (0, 0));

    let p = run(
        &wanted,
        &[have(k, "rr", vec![entry(old, 0, 2)])],
        &mut draining,
        now,
    );
    assert_eq!(
        ops(&p),
        vec![
            Change::AddDestination(k, new),
            Change::EditDestination(k, Destination { weight: 0, ..old })
        ]
    );
    assert_eq!((p.drain_started, draining.len()), (1, 1));
}

/// A virtual server's own bound (its Service's annotation) replaces the default for its
/// real servers: one with connections left goes when its bound has passed, and one whose
/// connections end goes earlier.
#[test]
fn a_virtual_servers_own_drain_bound_replaces_the_default() {
    let k = key(Protocol::Tcp, "10.96.0.10", 80);
    let (old, new) = (dest("10.244.1.5", 8080, 1), dest("10.244.2.5", 8080, 1));
    let bound = Duration::from_secs(5);
    let (_, plain) = want(k, "rr", &[new]);
    let wanted: Wanted = [(
        k,
        Arc::new(WantedService {
            drain_timeout: Some(bound),
            ..(*plain).clone()
        }),
    )]
    .into();
    let drained_old = Destination { weight: 0, ..old };
    let busy = [have(
        k,
        "rr",
        vec![entry(new, 0, 0), entry(drained_old, 2, 0)],
    )];
    let deleted = vec![Change::DeleteDestination {
        service: k,
        addr: old.addr,
        port: old.port,
    }];
    let t0 = Instant::now();

    let mut draining = Draining::new(T);
    let p = run(
        &wanted,
        &[have(k, "rr", vec![entry(old, 2, 0)])],
        &mut draining,
        t0,
    );
    assert_eq!(p.drain_started, 1);
    assert!(run(&wanted, &busy, &mut draining, t0 + bound / 2).is_empty());
    assert_eq!(
        ops(&run(&wanted, &busy, &mut draining, t0 + bound)),
        deleted
    );
    assert!(draining.is_empty());

    // Without its own bound the default (T) still holds it at that moment.
    let defaulted: Wanted = [(k, plain)].into();
    let mut draining = Draining::new(T);
    run(
        &defaulted,
        &[have(k, "rr", vec![entry(old, 2, 0)])],
        &mut draining,
        t0,
    );
    assert!(run(&defaulted, &busy, &mut draining, t0 + bound).is_empty());

    // Its connections ended before the bound: deleted at once.
    let mut draining = Draining::new(T);
    run(
        &wanted,
        &[have(k, "rr", vec![entry(old, 2, 0)])],
        &mut draining,
        t0,
    );
    let idle = [have(
        k,
        "rr",
        vec![entry(new, 0, 0), entry(drained_old, 0, 3)],
    )];
    assert_eq!(
        ops(&run(&wanted, &idle, &mut draining, t0 + bound / 5)),
        deleted
    );
}

/// kube-proxy's `IsRsGracefulTerminationNeeded` (pkg/proxy/ipvs/util/ipvs.go) is false
/// for UDP and SCTP: `graceful_termination.go` deletes such a real server at once,
/// whatever its connection counts and weight.
#[test]
fn udp_and_sctp_real_servers_are_deleted_at_once() {
    for (protocol, port) in [(Protocol::Udp, 53), (Protocol::Sctp, 3868)] {
        let k = key(protocol, "10.96.0.10", port);
        let gone = dest("10.244.1.5", port, 1);
        let wanted: Wanted = [want(k, "rr", &[])].into();
        let observed = [have(k, "rr", vec![entry(gone, 3, 2)])];
        let mut draining = Draining::new(T);
        let p = run(&wanted, &observed, &mut draining, Instant::now());
        assert_eq!(
            ops(&p),
            vec![Change::DeleteDestination {
                service: k,
                addr: gone.addr,
                port: gone.port
            }],
            "{protocol:?}"
        );
        assert_eq!((p.drain_started, draining.len()), (0, 0), "{protocol:?}");
    }
}

#[test]
fn a_real_server_that_comes_back_while_draining_is_restored() {
    let k = key(Protocol::Tcp, "10.96.0.10", 80);
    let back = dest("10.244.1.5", 8080, 1);
    let wanted: Wanted = [want(k, "rr", &[back])].into();
    let mut draining = Draining::new(T);
    let t0 = Instant::now();
    let observed = [have(
        k,
        "rr",
        vec![entry(Destination { weight: 0, ..back }, 1, 0)],
    )];
    // It was draining (weight 0, not wanted) in an earlier sync...
    run(&[want(k, "rr", &[])].into(), &observed, &mut draining, t0);
    assert_eq!(draining.len(), 1);
    // ...and is wanted again now.
    let p = run(
        &wanted,
        &observed,
        &mut draining,
        t0 + Duration::from_secs(1),
    );
    assert_eq!(ops(&p), vec![Change::EditDestination(k, back)]);
    assert!(draining.is_empty());
}

#[test]
fn a_removed_service_drains_before_it_is_deleted_and_others_are_left_alone() {
    let ours = key(Protocol::Tcp, "10.96.0.11", 443);
    let host = key(Protocol::Tcp, "192.168.1.10", 80); // a host service, not a NodePort
    let rs = dest("10.244.1.5", 8443, 1);
    let mut draining = Draining::new(T);
    let t0 = Instant::now();
    let wanted = Wanted::new();

    let first = [
        have(ours, "rr", vec![entry(rs, 1, 0)]),
        have(host, "wlc", vec![entry(rs, 1, 0)]),
    ];
    let p = run(&wanted, &first, &mut draining, t0);
    assert_eq!(
        ops(&p),
        vec![Change::EditDestination(
            ours,
            Destination { weight: 0, ..rs }
        )]
    );
    assert_eq!(p.draining_services, [ours].into());

    let idle = [have(
        ours,
        "rr",
        vec![entry(Destination { weight: 0, ..rs }, 0, 0)],
    )];
    let p = run(&wanted, &idle, &mut draining, t0);
    assert_eq!(
        ops(&p),
        vec![
            Change::DeleteDestination {
                service: ours,
                addr: rs.addr,
                port: rs.port
            },
            Change::DeleteService(ours)
        ]
    );
}

/// A simulated kernel table.
type Kernel = BTreeMap<ServiceKey, (Service, BTreeMap<(IpAddr, u16), Destination>)>;

/// Applies a plan to a simulated kernel whose connections all ended.
fn apply(kernel: &mut Kernel, changes: &[Change]) {
    for change in changes {
        match change {
            Change::AddService(s) => assert!(
                kernel.insert(s.key, (s.clone(), BTreeMap::new())).is_none(),
                "exists"
            ),
            Change::EditService(s) => {
                kernel.get_mut(&s.key).expect("edit of a missing service").0 = s.clone()
            }
            Change::DeleteService(k) => assert!(
                kernel.remove(k).expect("missing").1.is_empty(),
                "had real servers"
            ),
            Change::AddDestination(k, d) => {
                assert!(
                    kernel
                        .get_mut(k)
                        .expect("missing")
                        .1
                        .insert((d.addr, d.port), *d)
                        .is_none(),
                    "exists"
                )
            }
            Change::EditDestination(k, d) => {
                *kernel
                    .get_mut(k)
                    .expect("missing")
                    .1
                    .get_mut(&(d.addr, d.port))
                    .expect("missing") = *d
            }
            Change::DeleteDestination {
                service,
                addr,
                port,
            } => {
                kernel
                    .get_mut(service)
                    .expect("missing")
                    .1
                    .remove(&(*addr, *port))
                    .expect("missing");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn observe(kernel: &Kernel) -> Vec<ServiceWithDestinations> {
    kernel
        .values()
        .map(|(s, d)| ServiceWithDestinations {
            service: ServiceEntry {
                service: s.clone(),
                stats: Stats::default(),
            },
            destinations: d.values().map(|d| entry(*d, 0, 0)).collect(),
        })
        .collect()
}

fn arb_wanted() -> impl Strategy<Value = Wanted> {
    let vips = ["10.96.0.10", "10.96.0.11", "fd00::10"];
    let services = (
        0..3usize,
        prop::sample::select(vec![53u16, 80, 443]),
        prop::sample::select(vec!["rr", "wlc", "mh"]),
    );
    let backends =
        prop::collection::btree_set((1u8..6, prop::sample::select(vec![80u16, 8080])), 0..4);
    prop::collection::vec((services, backends), 0..5).prop_map(move |list| {
        list.into_iter()
            .map(|((vip, port, sched), backends)| {
                let k = key(Protocol::Tcp, vips[vip], port);
                let v6 = vips[vip].contains(':');
                let dests: Vec<_> = backends
                    .into_iter()
                    .map(|(host, p)| {
                        dest(
                            &if v6 {
                                format!("fd00:244::{host}")
                            } else {
                                format!("10.244.0.{host}")
                            },
                            p,
                            1,
                        )
                    })
                    .collect();
                want(k, sched, &dests)
            })
            .collect()
    })
}

proptest! {
    /// From any table of ours, two syncs (drain, then delete) reach exactly the
    /// wanted table, and a third finds nothing to do.
    #[test]
    fn converges_to_the_wanted_table(before in arb_wanted(), after in arb_wanted()) {
        let mut kernel = BTreeMap::new();
        let mut draining = Draining::new(T);
        let now = Instant::now();
        apply(&mut kernel, &ops(&run(&before, &[], &mut draining, now)));
        for _ in 0..2 {
            let p = run(&after, &observe(&kernel), &mut draining, now);
            apply(&mut kernel, &ops(&p));
        }
        let expected: BTreeMap<_, _> = after.iter().map(|(k, w)| (*k, (w.service.clone(), w.destinations.iter().map(|d| ((d.addr, d.port), *d)).collect()))).collect();
        prop_assert_eq!(&kernel, &expected);
        prop_assert!(run(&after, &observe(&kernel), &mut draining, now).is_empty());
        prop_assert!(draining.is_empty());
    }
}

/// Which virtual server an operation is about.
fn about(change: &Change) -> ServiceKey {
    match change {
        Change::AddService(s) | Change::EditService(s) => s.key,
        Change::DeleteService(k) | Change::AddDestination(k, _) | Change::EditDestination(k, _) => {
            *k
        }
        Change::DeleteDestination { service, .. } => *service,
        other => panic!("unexpected {other:?}"),
    }
}

/// Operations by virtual server, each in apply order.
fn by_service(changes: impl IntoIterator<Item = Change>) -> BTreeMap<ServiceKey, Vec<Change>> {
    let mut out: BTreeMap<ServiceKey, Vec<Change>> = BTreeMap::new();
    for c in changes {
        out.entry(about(&c)).or_default().push(c);
    }
    out
}

proptest! {
    /// Planned in parts of any budget, a sync does what the whole plan does, in the same
    /// order for each virtual server, each part within its budget but for the one
    /// virtual server that fills it, and leaves the same drain clocks.
    #[test]
    fn a_plan_in_parts_is_the_whole_plan(
        before in arb_wanted(),
        after in arb_wanted(),
        budget in 1usize..8,
    ) {
        let mut kernel = BTreeMap::new();
        let now = Instant::now();
        apply(&mut kernel, &ops(&run(&before, &[], &mut Draining::new(T), now)));
        let observed = observe(&kernel);

        let mut whole_clocks = Draining::new(T);
        let whole = run(&after, &observed, &mut whole_clocks, now);

        let mut part_clocks = Draining::new(T);
        let owner = owner();
        let mut planner = Planner::new(&after, &observed, &owner, now);
        let (mut parts, mut draining_services) = (Vec::new(), BTreeSet::new());
        while let Some(mut part) = planner.next(&mut part_clocks, budget) {
            // Virtual servers are planned in key order: the last one planned has the
            // greatest key.
            let last = part.changes().map(about).max();
            let before_last = part.changes().filter(|c| Some(about(c)) != last).count();
            prop_assert!(before_last < budget, "a part went past its budget");
            draining_services.append(&mut part.draining_services);
            parts.extend(ops(&part));
        }
        planner.finish(&mut part_clocks);

        prop_assert_eq!(by_service(parts), by_service(ops(&whole)));
        prop_assert_eq!(draining_services, whole.draining_services);
        prop_assert_eq!(part_clocks.len(), whole_clocks.len());
    }
}
