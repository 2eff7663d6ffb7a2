//! The generator kept up to date by `update` gives the same tables as one built from
//! scratch, including when the cluster crosses kube-proxy's large-cluster threshold.

mod common;

use desired::Config;
use iptables_mode::{Generator, LARGE_CLUSTER_ENDPOINTS, Options, render};
use model::{IpFamily, Model, SourceEvent};

fn fresh(model: &Model) -> Generator {
    Generator::new(
        Config::default(),
        Options::default(),
        common::node_info(),
        model,
    )
}

fn assert_same(updated: &Generator, model: &Model) {
    let expected = fresh(model).tables(IpFamily::V4).expect("tables");
    let actual = updated.tables(IpFamily::V4).expect("tables");
    assert_eq!(actual, expected);
}

#[test]
fn updates_match_a_fresh_generator() {
    let mut model = common::model(20, 3);
    let mut generator = fresh(&model);
    let node = common::node_info();
    // An endpoint goes, a Service goes, a Service and its slice come.
    model.apply(SourceEvent::Applied(common::slice(3, 1, 2)));
    model.apply(SourceEvent::Deleted(common::service(5)));
    model.apply(SourceEvent::Applied(common::service(20)));
    model.apply(SourceEvent::Applied(common::slice(20, 0, 2)));
    let changes = model.take_changes();
    assert_eq!(changes.services.len(), 3);
    generator.update(&model, &changes, &node);
    assert_same(&generator, &model);
    let nat = render(&generator.tables(IpFamily::V4).expect("tables").nat);
    assert!(
        !nat.contains("bench/svc-5:http"),
        "deleted Service left rules"
    );
    assert!(nat.contains("bench/svc-20:http cluster IP"));
}

#[test]
fn crossing_the_large_cluster_threshold_recomputes_everything() {
    let per_service = 4;
    let services = LARGE_CLUSTER_ENDPOINTS / per_service;
    let mut model = common::model(services, per_service);
    let mut generator = fresh(&model);
    assert!(
        !generator.large_cluster(IpFamily::V4),
        "exactly at the threshold"
    );
    let node = common::node_info();

    // One more endpoint: every endpoint rule loses its comment.
    model.apply(SourceEvent::Applied(common::slice(0, 0, per_service + 1)));
    let changes = model.take_changes();
    generator.update(&model, &changes, &node);
    assert!(generator.large_cluster(IpFamily::V4));
    assert_same(&generator, &model);
    let nat = render(&generator.tables(IpFamily::V4).expect("tables").nat);
    let sep = nat
        .lines()
        .find(|l| l.starts_with("-A KUBE-SEP-") && l.contains("bench/svc-7:"));
    assert_eq!(
        sep, None,
        "no comments on endpoint rules in large-cluster mode"
    );
    assert!(nat.contains("--comment \"bench/svc-7:http cluster IP\""));

    // And back.
    model.apply(SourceEvent::Applied(common::slice(0, 0, per_service)));
    let changes = model.take_changes();
    generator.update(&model, &changes, &node);
    assert!(!generator.large_cluster(IpFamily::V4));
    assert_same(&generator, &model);
}
