//! Benchmark: the heap each stage of the IPVS pipeline holds for a synthetic cluster
//! (default 10,000 Services x 10 endpoints): the model, the desired state, the reconciler's
//! wanted table (kept between syncs as the last one programmed) and the plan of a first sync
//! (transient). Counted exactly by a counting global allocator; prints numbers, asserts
//! nothing. The daemon's RSS adds the runtime, the binary and the allocator's slack to these.
//!
//! Run: `cargo run --release -p reconcile --example bench_memory [SERVICES] [ENDPOINTS]`

use std::time::{Duration, Instant};

use desired::{Config, DesiredState, NodeInfo};
use model::{Kind, Model, Object, ProxyFilter, SourceEvent};
use reconcile::{Draining, Ownership};
use testkit::cluster::Synthetic;
use testkit::counting::{Counting, live, mib_since};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    let cluster = Synthetic::from_args();
    println!(
        "heap held, {} Services x {} endpoints:",
        cluster.services, cluster.endpoints_per_service
    );

    // The model, fed as the sources feed it: one object at a time.
    let base = live();
    // As the daemon keeps it: without the endpoints' Pods.
    let mut model = Model::new(ProxyFilter::default(), Some(Synthetic::NODE.into())).without_pods();
    for kind in Kind::ALL {
        model.apply(SourceEvent::Relisting(kind));
    }
    model.apply(SourceEvent::Applied(Object::Node(Box::new(cluster.node()))));
    for i in 0..cluster.services {
        model.apply(SourceEvent::Applied(Object::Service(Box::new(
            cluster.service(i),
        ))));
        model.apply(SourceEvent::Applied(Object::EndpointSlice(Box::new(
            cluster.slice(i, 0),
        ))));
    }
    for kind in Kind::ALL {
        model.apply(SourceEvent::Relisted(kind));
    }
    let _ = model.take_changes();
    // As after the first sync, which takes the changes pending for kube-proxy's metrics.
    let _ = model.take_pending();
    println!("  model:                    {:6.1} MiB", mib_since(base));

    let base = live();
    let info = NodeInfo::from_node(Synthetic::NODE, model.node(), &[]);
    let state = DesiredState::new(Config::default(), info, &model);
    println!("  desired state:            {:6.1} MiB", mib_since(base));

    // Of which each Service's plan (the rest: aggregates and indexes).
    let base = live();
    let plans: Vec<_> = model
        .services()
        .map(|svc| {
            let slices: Vec<_> = model.slices_of(&svc.id).map(AsRef::as_ref).collect();
            desired::plan::plan(svc, &slices, state.node(), state.config())
        })
        .collect();
    println!("    of which the plans:     {:6.1} MiB", mib_since(base));
    drop(plans);

    let base = live();
    let wanted = reconcile::wanted::wanted(state.virtual_servers(), &Default::default());
    println!(
        "  wanted (kept as last):    {:6.1} MiB  ({} virtual servers)",
        mib_since(base),
        wanted.len()
    );

    let base = live();
    let owner = Ownership {
        exclude: Vec::new(),
        dummy_addresses: Default::default(),
        node_port_addresses: Default::default(),
        node_port_range: Ownership::DEFAULT_NODE_PORT_RANGE,
    };
    let mut draining = Draining::new(Duration::from_secs(60));
    let plan = reconcile::ipvs::plan(&wanted, &[], &owner, &mut draining, Instant::now());
    println!(
        "  first sync's plan, whole: {:6.1} MiB  ({} operations, transient)",
        mib_since(base),
        plan.changes().count()
    );
    drop(plan);

    // As the daemon plans it: in parts of about one batch, each dropped once applied.
    let base = live();
    let (mut peak, mut parts) = (0.0_f64, 0);
    let mut planner = reconcile::ipvs::Planner::new(&wanted, &[], &owner, Instant::now());
    while let Some(part) = planner.next(&mut draining, 8192) {
        peak = peak.max(mib_since(base));
        parts += 1;
        drop(part);
    }
    planner.finish(&mut draining);
    println!("  first sync's plan, parts: {peak:6.1} MiB  (largest of {parts} parts, transient)");

    // `--from-dir` only: what the directory source keeps to read changed files alone.
    let dir = std::env::temp_dir().join(format!("kipx-bench-memory-{}", std::process::id()));
    cluster.write_dir(&dir);
    let base = live();
    let index = model::source::dir::stream(&dir, drop).expect("read the directory");
    println!("  directory source's index: {:6.1} MiB", mib_since(base));
    drop(index);
    std::fs::remove_dir_all(&dir).expect("remove the directory");
}
