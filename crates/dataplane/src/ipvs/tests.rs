//! Whole syncs of the IPVS table against the in-memory kernel. Expected values are
//! kube-proxy's IPVS mode (`pkg/proxy/ipvs/proxier_test.go`): a ClusterIP port is a
//! virtual server on that address and port with the configured scheduler (`rr`), one
//! masqueraded real server of weight 1 per ready endpoint; a leaving endpoint is set to
//! weight 0 and deleted once it has no connections (its graceful termination), the
//! virtual server's address stays bound while it drains; virtual servers on addresses
//! that are not ours are never touched.

use std::collections::BTreeSet;
use std::net::IpAddr;

use desired::DesiredState;
use ipvs::{Change, Destination, ForwardMethod, Protocol, Service, ServiceKey};
use model::{Object, SourceEvent};
use proptest::prelude::*;
use reconcile::Draining;

use super::Owner;
use super::table::IpvsTable;
use crate::fake::ipvs::FakeIpvs;
use crate::fixtures::{model, node, service, slice};
use crate::summary::SyncSummary;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn key(vip: &str, port: u16) -> ServiceKey {
    ServiceKey::inet(Protocol::Tcp, ip(vip), port)
}

/// The IPVS table over the fake, and the addresses bound to `kube-ipvs0`.
struct Table {
    ipvs: IpvsTable<FakeIpvs>,
    bound: BTreeSet<IpAddr>,
}

fn table(kernel: &FakeIpvs) -> Table {
    let owner = Owner {
        exclude_cidrs: Vec::new(),
        node_port_range: 30000..=32767,
    };
    Table {
        ipvs: IpvsTable::over(kernel.clone(), owner, Draining::DEFAULT_TIMEOUT),
        bound: BTreeSet::new(),
    }
}

/// One sync as the dataplane runs it: ours are the virtual servers on addresses bound
/// or about to be; afterwards the addresses bound are the state's and those of virtual
/// servers still draining.
fn sync(table: &mut Table, state: &DesiredState, full: bool) -> SyncSummary {
    let dummy = table
        .bound
        .iter()
        .copied()
        .chain(state.addresses())
        .collect();
    let ownership = table
        .ipvs
        .owner()
        .ownership(dummy, state.node().addresses.clone());
    let mut summary = SyncSummary::default();
    let draining = table
        .ipvs
        .sync(state, &ownership, full, &mut summary)
        .expect("the table is readable");
    table.bound = reconcile::addresses::target(state.addresses(), &table.bound, &draining);
    summary
}

fn state(objects: Vec<Object>) -> DesiredState {
    DesiredState::new(Default::default(), node(), &model(objects))
}

fn web(endpoints: &[&str]) -> Vec<Object> {
    vec![
        service("web", "10.96.0.10", "TCP", 80),
        slice("web", "TCP", endpoints),
    ]
}

/// The kernel's table as (virtual server, scheduler, [(real server, port, weight)]).
type Shown = Vec<(ServiceKey, String, Vec<(IpAddr, u16, u32)>)>;

fn shown(kernel: &FakeIpvs) -> Shown {
    kernel
        .table()
        .listing()
        .into_iter()
        .map(|s| {
            let mut dests: Vec<_> = s
                .destinations
                .iter()
                .map(|d| {
                    assert_eq!(d.destination.forward, ForwardMethod::Masquerade);
                    (d.destination.addr, d.destination.port, d.destination.weight)
                })
                .collect();
            dests.sort_unstable();
            (
                s.service.service.key,
                s.service.service.scheduler.to_string(),
                dests,
            )
        })
        .collect()
}

#[test]
fn a_cluster_ip_is_a_round_robin_virtual_server_with_a_real_server_per_endpoint() {
    let kernel = FakeIpvs::default();
    let mut table = table(&kernel);
    let state = state(web(&["10.244.1.5", "10.244.2.6"]));
    let first = sync(&mut table, &state, false);
    assert_eq!(
        first.applied,
        [("real_server", 2), ("virtual_server", 1)].into()
    );
    assert_eq!(
        shown(&kernel),
        [(
            key("10.96.0.10", 80),
            "rr".to_owned(),
            vec![(ip("10.244.1.5"), 8080, 1), (ip("10.244.2.6"), 8080, 1)]
        )]
    );
    for full in [false, true] {
        let again = sync(&mut table, &state, full);
        assert!(again.applied.is_empty() && again.failed.is_empty() && again.drift.is_empty());
    }
}

#[test]
fn taking_over_a_table_already_right_costs_no_operation() {
    let kernel = FakeIpvs::default();
    let state = state(web(&["10.244.1.5"]));
    sync(&mut table(&kernel), &state, true);
    let before = kernel.table().applied;
    let summary = sync(&mut table(&kernel), &state, true);
    assert!(
        summary.applied.is_empty() && summary.drift.is_empty(),
        "{summary:?}"
    );
    assert_eq!(kernel.table().applied, before);
}

#[test]
fn drift_is_repaired_by_a_full_sync_and_counted_by_kind() {
    let kernel = FakeIpvs::default();
    let mut table = table(&kernel);
    let state = state(web(&["10.244.1.5", "10.244.2.6"]));
    sync(&mut table, &state, false);
    let right = shown(&kernel);
    let vs = key("10.96.0.10", 80);
    let edited = Destination::new(ip("10.244.1.5"), 8080, ForwardMethod::Masquerade, 7);
    kernel.table().by_hand(&Change::EditDestination(vs, edited));
    // A change-driven sync reads only what the change touched: nothing.
    let change = sync(&mut table, &state, false);
    assert!(change.applied.is_empty(), "{change:?}");
    let full = sync(&mut table, &state, true);
    assert_eq!(full.drift, [("real_server", 1)].into());
    assert_eq!(full.applied, [("real_server", 1)].into());
    assert_eq!(shown(&kernel), right);

    kernel.table().by_hand(&Change::DeleteService(vs));
    let full = sync(&mut table, &state, true);
    assert_eq!(full.drift, [("virtual_server", 1)].into());
    assert_eq!(
        full.applied,
        [("real_server", 2), ("virtual_server", 1)].into()
    );
    assert_eq!(shown(&kernel), right);
}

/// A kernel that shows its table in `/proc/net/ip_vs`, ticking 250 times a second.
fn with_overview() -> FakeIpvs {
    let kernel = FakeIpvs::default();
    kernel.table().proc_hz = Some(250);
    kernel
}

/// Virtual servers the kernel was asked for exactly (netlink) during `f`.
fn exact_reads<T>(kernel: &FakeIpvs, f: impl FnOnce() -> T) -> (T, usize) {
    let before = kernel.table().exact_reads;
    let out = f();
    (out, kernel.table().exact_reads - before)
}

#[test]
fn a_full_sync_surveys_the_overview_and_reads_exactly_only_what_differs() {
    let kernel = with_overview();
    let mut table = table(&kernel);
    let mut objects = Vec::new();
    for (name, vip) in [("a", "10.96.0.1"), ("b", "10.96.0.2"), ("c", "10.96.0.3")] {
        objects.push(service(name, vip, "TCP", 80));
        objects.push(slice(name, "TCP", &["10.244.1.5"]));
    }
    let state = state(objects);
    sync(&mut table, &state, false);
    let right = shown(&kernel);

    let (quiet, read) = exact_reads(&kernel, || sync(&mut table, &state, true));
    assert!(
        quiet.applied.is_empty() && quiet.drift.is_empty(),
        "{quiet:?}"
    );
    assert_eq!(read, 0, "a table as wanted is surveyed, not read");

    let b = key("10.96.0.2", 80);
    let heavier = Destination::new(ip("10.244.1.5"), 8080, ForwardMethod::Masquerade, 5);
    kernel.table().by_hand(&Change::EditDestination(b, heavier));
    let stray = Service::new(key("10.96.0.3", 81), "rr".parse().expect("scheduler"));
    kernel.table().by_hand(&Change::AddService(stray));
    let (full, read) = exact_reads(&kernel, || sync(&mut table, &state, true));
    // The stray serves nothing, so it is removed without counting as drift.
    assert_eq!(full.drift, [("real_server", 1)].into(), "{full:?}");
    assert_eq!(
        full.applied,
        [("real_server", 1), ("virtual_server", 1)].into()
    );
    assert_eq!(read, 2, "the virtual server that differs and the stray one");
    assert_eq!(shown(&kernel), right);

    // Without the file, a full sync reads every virtual server exactly.
    kernel.table().proc_hz = None;
    let (blind, read) = exact_reads(&kernel, || sync(&mut table, &state, true));
    assert!(
        blind.applied.is_empty() && blind.drift.is_empty(),
        "{blind:?}"
    );
    assert_eq!(read, 3);
}

/// A, B and C: three ClusterIP Services of one endpoint each.
fn three_services() -> DesiredState {
    let mut objects = Vec::new();
    for (name, vip) in [("a", "10.96.0.1"), ("b", "10.96.0.2"), ("c", "10.96.0.3")] {
        objects.push(service(name, vip, "TCP", 80));
        objects.push(slice(name, "TCP", &["10.244.1.5"]));
    }
    state(objects)
}

#[test]
fn virtual_servers_the_overview_skips_are_found_by_one_dump_of_the_virtual_servers() {
    // Linux 6.1's `/proc/net/ip_vs` skips virtual servers while another network
    // namespace has some (measured in the VM by ipvsctl's
    // `vm_ipvsctl_saves_every_service_while_another_namespace_has_services`).
    let kernel = with_overview();
    let state = three_services();
    sync(&mut table(&kernel), &state, false);
    let right = shown(&kernel);
    let a = key("10.96.0.1", 80);
    let stray = Service::new(key("10.96.0.3", 81), "rr".parse().expect("scheduler"));
    kernel.table().by_hand(&Change::AddService(stray.clone()));
    kernel.table().skipped_by_overview = [a, stray.key].into();

    // A daemon starting over this table (no sync of its own yet): the skipped wanted
    // virtual server exists and is as wanted, so it is left alone (not added again,
    // which the kernel would refuse), and the skipped stray of ours is deleted.
    let mut taking_over = table(&kernel);
    let (first, read) = exact_reads(&kernel, || sync(&mut taking_over, &state, true));
    assert!(
        first.failed.is_empty() && first.broken.is_empty(),
        "{first:?}"
    );
    assert_eq!(first.applied, [("virtual_server", 1)].into(), "{first:?}");
    assert_eq!(read, 2, "the two virtual servers the overview skipped");
    assert_eq!(shown(&kernel), right);

    // Later, a full sync: the skipped virtual server is still read, not re-added.
    let (again, read) = exact_reads(&kernel, || sync(&mut taking_over, &state, true));
    assert!(
        again.applied.is_empty() && again.failed.is_empty() && again.drift.is_empty(),
        "{again:?}"
    );
    assert_eq!(read, 1);
    // Deleted by hand, it is drift, repaired.
    kernel.table().by_hand(&Change::DeleteService(a));
    let repaired = sync(&mut taking_over, &state, true);
    assert_eq!(
        repaired.drift,
        [("virtual_server", 1)].into(),
        "{repaired:?}"
    );
    assert_eq!(shown(&kernel), right);
}

#[test]
fn persistence_shown_in_ticks_is_read_exactly_until_the_tick_rate_is_known() {
    let kernel = with_overview();
    let mut table = table(&kernel);
    // kube-proxy: sessionAffinity ClientIP is IPVS persistence of timeoutSeconds, /32.
    let sticky = Object::Service(Box::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "sticky", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.7", "sessionAffinity": "ClientIP",
                     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                     "ports": [{"name": "p", "port": 80, "protocol": "TCP", "targetPort": 8080}]},
        }))
        .expect("a Service"),
    ));
    let state = state(vec![sticky, slice("sticky", "TCP", &["10.244.1.5"])]);
    sync(&mut table, &state, false);
    let vs = key("10.96.0.7", 80);
    let persistence = kernel.table().listing()[0].service.service.persistence;
    assert_eq!(
        persistence,
        Some(ipvs::Persistence {
            timeout: 10800,
            prefix_len: 32
        })
    );

    let (_, learning) = exact_reads(&kernel, || sync(&mut table, &state, true));
    assert_eq!(
        learning, 1,
        "2,700,000 ticks are 10,800 s only at a known HZ"
    );
    let (quiet, known) = exact_reads(&kernel, || sync(&mut table, &state, true));
    assert!(
        quiet.applied.is_empty() && quiet.drift.is_empty(),
        "{quiet:?}"
    );
    assert_eq!(known, 0, "the tick rate was learned from the exact read");

    let mut shorter = kernel.table().listing()[0].service.service.clone();
    shorter.persistence = Some(ipvs::Persistence {
        timeout: 60,
        prefix_len: 32,
    });
    kernel.table().by_hand(&Change::EditService(shorter));
    let (full, read) = exact_reads(&kernel, || sync(&mut table, &state, true));
    assert_eq!(full.drift, [("virtual_server", 1)].into(), "{full:?}");
    assert_eq!(read, 1);
    assert_eq!(
        kernel.table().listing()[0].service.service.persistence,
        persistence
    );
    assert_eq!(kernel.table().listing()[0].service.service.key, vs);
}

#[test]
fn a_leaving_endpoint_drains_at_weight_zero_and_keeps_its_address_until_idle() {
    let kernel = FakeIpvs::default();
    let mut table = table(&kernel);
    let mut model = model(web(&["10.244.1.5"]));
    let mut state = DesiredState::new(Default::default(), node(), &model);
    sync(&mut table, &state, false);
    let vs = key("10.96.0.10", 80);
    kernel.table().connections(&vs, ip("10.244.1.5"), 8080, 1);
    // The Service goes with its endpoint while a connection is open.
    model.apply(SourceEvent::Deleted(service(
        "web",
        "10.96.0.10",
        "TCP",
        80,
    )));
    model.apply(SourceEvent::Deleted(slice("web", "TCP", &[])));
    let changes = model.take_changes();
    state.update(&model, &changes, &node());
    let summary = sync(&mut table, &state, false);
    assert_eq!(summary.draining, 1);
    assert_eq!(
        shown(&kernel),
        [(vs, "rr".to_owned(), vec![(ip("10.244.1.5"), 8080, 0)])]
    );
    assert_eq!(
        table.bound,
        BTreeSet::from([ip("10.96.0.10")]),
        "the draining virtual server's address was unbound"
    );
    // The connection ends: the real server, the virtual server and the address go.
    kernel.table().connections(&vs, ip("10.244.1.5"), 8080, 0);
    let summary = sync(&mut table, &state, false);
    assert_eq!(summary.draining, 0);
    assert!(shown(&kernel).is_empty(), "{:?}", shown(&kernel));
    assert!(table.bound.is_empty());
}

/// Service `web` with annotation `kube-ipvs-proxy.io/drain-timeout-seconds: seconds`.
fn web_draining_for(seconds: &str) -> Object {
    Object::Service(Box::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default",
                         "annotations": {model::DRAIN_TIMEOUT_ANNOTATION: seconds}},
            "spec": {"clusterIP": "10.96.0.10",
                     "ports": [{"name": "p", "port": 80, "protocol": "TCP", "targetPort": 8080}]},
        }))
        .expect("a Service"),
    ))
}

/// A leaving endpoint with a connection open, two syncs later: with the
/// annotation's bound of 0 s it is gone at the second sync; with the
/// daemon-wide minute, or an invalid annotation (skipped), it still drains.
#[test]
fn a_services_drain_bound_annotation_overrides_the_daemons() {
    let vs = key("10.96.0.10", 80);
    let leaving = |service: Object| {
        let kernel = FakeIpvs::default();
        let mut table = table(&kernel);
        let two = slice("web", "TCP", &["10.244.1.5", "10.244.1.6"]);
        let mut model = model(vec![service, two]);
        let mut state = DesiredState::new(Default::default(), node(), &model);
        sync(&mut table, &state, false);
        kernel.table().connections(&vs, ip("10.244.1.5"), 8080, 1);
        model.apply(SourceEvent::Applied(slice("web", "TCP", &["10.244.1.6"])));
        let changes = model.take_changes();
        state.update(&model, &changes, &node());
        assert_eq!(
            sync(&mut table, &state, false).draining,
            1,
            "weight 0 first"
        );
        sync(&mut table, &state, false);
        shown(&kernel)
    };
    let drained = [(vs, "rr".to_owned(), vec![(ip("10.244.1.6"), 8080, 1)])];
    let draining = [(
        vs,
        "rr".to_owned(),
        vec![(ip("10.244.1.5"), 8080, 0), (ip("10.244.1.6"), 8080, 1)],
    )];
    assert_eq!(leaving(web_draining_for("0")), drained);
    assert_eq!(leaving(service("web", "10.96.0.10", "TCP", 80)), draining);
    assert_eq!(leaving(web_draining_for("soon")), draining);
}

#[test]
fn virtual_servers_that_are_not_ours_are_never_touched() {
    let kernel = FakeIpvs::default();
    let foreign = Service::new(key("192.0.2.99", 80), ipvs::Scheduler::RoundRobin);
    kernel.table().by_hand(&Change::AddService(foreign.clone()));
    let mut table = table(&kernel);
    let state = state(web(&["10.244.1.5"]));
    for full in [true, false, true] {
        sync(&mut table, &state, full);
    }
    assert!(shown(&kernel).iter().any(|(k, ..)| *k == foreign.key));
}

#[test]
fn an_unreadable_table_is_an_error() {
    let kernel = FakeIpvs::default();
    kernel.table().unreadable = true;
    let state = state(web(&["10.244.1.5"]));
    let mut table = table(&kernel).ipvs;
    let ownership = table.owner().ownership(BTreeSet::new(), BTreeSet::new());
    let err = table
        .sync(&state, &ownership, true, &mut SyncSummary::default())
        .expect_err("read failed");
    assert!(
        err.to_string().starts_with("reading the IPVS table: "),
        "{err}"
    );
}

/// A change to the model or to the kernel behind our back.
#[derive(Debug, Clone)]
enum Step {
    /// Service `i` (ClusterIP 10.96.0.`i`) with these endpoints (10.244.0.`e`), or gone.
    Service(u8, Vec<u8>),
    /// Someone deletes virtual server `i`.
    DeleteVirtualServer(u8),
    /// Someone sets the weight of every real server of virtual server `i`.
    Weigh(u8, u32),
    /// Someone adds a real server to virtual server `i`.
    AddRealServer(u8, u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1..6u8, proptest::collection::vec(1..8u8, 0..4)).prop_map(|(i, e)| Step::Service(i, e)),
        (1..6u8).prop_map(Step::DeleteVirtualServer),
        (1..6u8, 0..5u32).prop_map(|(i, w)| Step::Weigh(i, w)),
        (1..6u8, 100..104u8).prop_map(|(i, e)| Step::AddRealServer(i, e)),
    ]
}

/// What the desired state asks of IPVS, in the kernel's terms.
fn wanted(state: &DesiredState) -> Shown {
    let mut wanted: Shown = state
        .virtual_servers()
        .map(|vs| {
            let mut dests: Vec<_> = vs
                .real_servers
                .iter()
                .map(|rs| (rs.addr, rs.port, 1))
                .collect();
            dests.sort_unstable();
            (
                key(&vs.key.addr.to_string(), vs.key.port),
                "rr".to_owned(),
                dests,
            )
        })
        .collect();
    wanted.sort_by_key(|(k, ..)| *k);
    wanted
}

/// The virtual and real servers that take new connections (weight above 0): what is
/// left draining is not.
fn live(mut shown: Shown) -> Shown {
    for (_, _, dests) in &mut shown {
        dests.retain(|(_, _, weight)| *weight > 0);
    }
    shown.retain(|(_, _, dests)| !dests.is_empty());
    shown
}

proptest! {
    /// Whatever the model did and whatever was changed by hand, with or without the
    /// overview to survey, and whichever virtual servers the overview skips (as Linux
    /// 6.1's does while another network namespace has some), one full sync leaves
    /// every virtual server taking new connections exactly as the desired state asks; a
    /// real server that should not be there, having no connections, is deleted by that
    /// sync, as kube-proxy deletes an idle one.
    #[test]
    fn one_full_sync_converges(
        steps in proptest::collection::vec(step(), 1..20),
        overview in any::<bool>(),
        skipped in proptest::collection::btree_set(1..6u8, 0..3),
    ) {
        let kernel = if overview { with_overview() } else { FakeIpvs::default() };
        kernel.table().skipped_by_overview =
            skipped.iter().map(|i| key(&format!("10.96.0.{i}"), 80)).collect();
        let mut table = table(&kernel);
        let mut model = model(Vec::new());
        let mut state = DesiredState::new(Default::default(), node(), &model);
        for step in steps {
            let vip = |i: u8| format!("10.96.0.{i}");
            match step {
                Step::Service(i, endpoints) => {
                    let name = format!("s{i}");
                    if endpoints.is_empty() {
                        model.apply(SourceEvent::Deleted(service(&name, &vip(i), "TCP", 80)));
                    } else {
                        let eps: Vec<String> = endpoints.iter().map(|e| format!("10.244.0.{e}")).collect();
                        let eps: Vec<&str> = eps.iter().map(String::as_str).collect();
                        model.apply(SourceEvent::Applied(service(&name, &vip(i), "TCP", 80)));
                        model.apply(SourceEvent::Applied(slice(&name, "TCP", &eps)));
                    }
                    let changes = model.take_changes();
                    state.update(&model, &changes, &node());
                    sync(&mut table, &state, false);
                }
                Step::DeleteVirtualServer(i) => {
                    let _ = kernel.table().apply_by_hand(&Change::DeleteService(key(&vip(i), 80)));
                }
                Step::Weigh(i, weight) => {
                    let vs = key(&vip(i), 80);
                    let listing = kernel.table().listing();
                    for s in listing.iter().filter(|s| s.service.service.key == vs) {
                        for d in &s.destinations {
                            let mut edited = d.destination;
                            edited.weight = weight;
                            kernel.table().by_hand(&Change::EditDestination(vs, edited));
                        }
                    }
                }
                Step::AddRealServer(i, e) => {
                    let rs = Destination::new(ip(&format!("10.244.0.{e}")), 8080, ForwardMethod::Masquerade, 1);
                    let _ = kernel.table().apply_by_hand(&Change::AddDestination(key(&vip(i), 80), rs));
                }
            }
        }
        let summary = sync(&mut table, &state, true);
        prop_assert!(summary.failed.is_empty(), "{:?}", summary);
        prop_assert_eq!(live(shown(&kernel)), wanted(&state));
        let summary = sync(&mut table, &state, true);
        prop_assert!(summary.failed.is_empty(), "{:?}", summary);
        prop_assert_eq!(shown(&kernel), wanted(&state));
    }
}
