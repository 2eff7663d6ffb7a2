//! Benchmark: the IPVS mode's iptables planning input (kube-proxy's chains as the writer's
//! desired tables, built on every sync) and the dry-run text, for a synthetic cluster of
//! 10,000 Services x 10 endpoints, every tenth a NodePort. Prints times; asserts nothing.
//!
//! Run: `cargo run --release -p reconcile --example bench_rules [ROUNDS]`

use std::time::Instant;

use desired::{Config, DesiredState, NodeInfo};
use model::{IpFamily, Kind, Model, Object, ProxyFilter, SourceEvent};
use testkit::cluster::Synthetic;

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .map_or(10_000, |a| a.parse().expect("a number"));
    let cluster = Synthetic {
        services: 10_000,
        endpoints_per_service: 10,
        node_port_every: Some(10),
    };
    let mut model = Model::new(ProxyFilter::default(), Some(Synthetic::NODE.into()));
    model.apply(SourceEvent::Listed(
        Kind::Node,
        vec![Object::Node(Box::new(cluster.node()))],
    ));
    model.apply(SourceEvent::Listed(
        Kind::Service,
        (0..cluster.services)
            .map(|i| Object::Service(Box::new(cluster.service(i))))
            .collect(),
    ));
    model.apply(SourceEvent::Listed(
        Kind::EndpointSlice,
        (0..cluster.services)
            .map(|i| Object::EndpointSlice(Box::new(cluster.slice(i, 0))))
            .collect(),
    ));
    let info = NodeInfo::from_node(Synthetic::NODE, model.node(), &[]);
    let state = DesiredState::new(Config::default(), info, &model);
    println!(
        "{} Services x {} endpoints",
        cluster.services, cluster.endpoints_per_service
    );

    let t = Instant::now();
    let mut rules = 0;
    for _ in 0..rounds {
        let tables = reconcile::iptables::tables(&state, IpFamily::V4).expect("tables");
        rules += tables
            .iter()
            .flat_map(|t| &t.chains)
            .map(|c| c.rules.len())
            .sum::<usize>();
    }
    println!(
        "IPVS-mode iptables tables (IPv4, nat + filter, {} rules): {:.2} us each (mean of {rounds})",
        rules / rounds as usize,
        t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
    );

    let renders = 5;
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..renders {
        bytes = desired::render::text(&state).expect("text").len();
    }
    println!(
        "dry-run text ({} KiB): {:.1} ms each (mean of {renders})",
        bytes / 1024,
        t.elapsed().as_secs_f64() * 1e3 / f64::from(renders)
    );
}
