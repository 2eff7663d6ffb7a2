//! Benchmark: the desired state of 10,000 Services with 100,000 endpoints, from scratch and
//! after one EndpointSlice change. Prints times and peak memory; asserts nothing.
//!
//! Run: `cargo run --release -p desired --example bench_desired [SERVICES] [ENDPOINTS_PER_SERVICE]`

use std::time::{Duration, Instant};

use desired::{Config, DesiredState, NodeInfo};
use model::{Kind, Model, Object, ProxyFilter, SourceEvent};
use testkit::cluster::Synthetic;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u32>().expect("a number"));
    let services = args.next().unwrap_or(10_000);
    let per_service = args.next().unwrap_or(10);
    println!("desired state benchmark: {services} Services x {per_service} endpoints");
    println!("peak RSS at start: {:.1} MiB", peak_rss_mib());

    let t = Instant::now();
    let cluster = Synthetic {
        services,
        endpoints_per_service: per_service,
        node_port_every: Some(10),
    };
    let svc_objects: Vec<Object> = (0..services)
        .map(|i| Object::Service(Box::new(cluster.service(i))))
        .collect();
    let slice_objects: Vec<Object> = (0..services)
        .map(|i| Object::EndpointSlice(Box::new(cluster.slice(i, 0))))
        .collect();
    let node = Object::Node(Box::new(cluster.node()));
    println!("build API objects:             {}", ms(t.elapsed()));

    let t = Instant::now();
    let mut model = Model::new(ProxyFilter::default(), Some(Synthetic::NODE.into()));
    model.apply(SourceEvent::Listed(Kind::Node, vec![node]));
    model.apply(SourceEvent::Listed(Kind::Service, svc_objects));
    model.apply(SourceEvent::Listed(Kind::EndpointSlice, slice_objects));
    let _ = model.take_changes();
    println!("validate into the model:       {}", ms(t.elapsed()));

    let info = NodeInfo::from_node(Synthetic::NODE, model.node(), &[]);
    let t = Instant::now();
    let mut state = DesiredState::new(Config::default(), info.clone(), &model);
    let scratch = t.elapsed();
    let vs = state.virtual_servers().count();
    let rs: usize = state.virtual_servers().map(|v| v.real_servers.len()).sum();
    println!(
        "desired state from scratch:    {}  ({vs} virtual servers, {rs} real servers)",
        ms(scratch)
    );

    let t = Instant::now();
    let text = desired::render::text(&state).expect("text");
    println!(
        "render the dry-run text:       {}  ({} KiB)",
        ms(t.elapsed()),
        text.len() / 1024
    );
    println!("peak RSS after full build:     {:.1} MiB", peak_rss_mib());

    // One EndpointSlice change at a time, each to a different Service: every endpoint of the
    // slice moves to a new address (the worst case for one slice).
    let rounds = 1_000.min(services);
    let (mut apply, mut update) = (Duration::ZERO, Duration::ZERO);
    for r in 0..rounds {
        let i = r * (services / rounds);
        let changed = Object::EndpointSlice(Box::new(cluster.slice(i, 7)));
        let t = Instant::now();
        model.apply(SourceEvent::Applied(changed));
        let changes = model.take_changes();
        apply += t.elapsed();
        let t = Instant::now();
        state.update(&model, &changes, &info);
        update += t.elapsed();
        assert_eq!(changes.services.len(), 1);
    }
    println!(
        "one EndpointSlice change:      model {:.1} us + desired state {:.1} us (mean of {rounds})",
        apply.as_secs_f64() * 1e6 / f64::from(rounds),
        update.as_secs_f64() * 1e6 / f64::from(rounds),
    );
    let t = Instant::now();
    let fresh = DesiredState::new(Config::default(), info, &model);
    let again = t.elapsed();
    assert_eq!(
        desired::render::text(&fresh).expect("text"),
        desired::render::text(&state).expect("text"),
        "incremental == scratch"
    );
    println!("full recompute for comparison: {}", ms(again));
    println!("peak RSS at end:               {:.1} MiB", peak_rss_mib());
}
