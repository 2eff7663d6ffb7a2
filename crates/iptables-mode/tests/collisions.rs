//! An address two Services claim, in the iptables mode: the contest of `desired::claims`
//! (an allocated ClusterIP beats a declared external IP, whatever the names and ages), kept
//! up to date incrementally.

mod common;

use desired::Config;
use iptables_mode::{Generator, Options, render};
use model::{IpFamily, Kind, Model, Object, ProxyFilter, SourceEvent};

fn service(ns: &str, name: &str, created: &str, spec: serde_json::Value) -> Object {
    Object::Service(Box::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
            "spec": spec,
        }))
        .expect("service"),
    ))
}

fn kube_dns() -> Object {
    service(
        "kube-system",
        "kube-dns",
        "2021-01-01T00:00:00Z",
        serde_json::json!({"clusterIP": "10.96.0.10",
                           "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}),
    )
}

/// Older than kube-dns, and in a namespace that sorts first.
fn intruder() -> Object {
    service(
        "aa",
        "x",
        "2020-01-01T00:00:00Z",
        serde_json::json!({"clusterIP": "10.96.0.20", "externalIPs": ["10.96.0.10"],
                           "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}),
    )
}

/// The rules that match traffic to 10.96.0.10 (both Services have no endpoints: the
/// filter table's rejections).
fn to_dns_address(generator: &Generator) -> Vec<String> {
    let tables = generator.tables(IpFamily::V4).expect("tables");
    let text = render(&tables.nat) + &render(&tables.filter);
    text.lines()
        .filter(|l| l.contains("-d 10.96.0.10 "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn an_external_ip_never_takes_a_cluster_ip_and_gets_it_once_free() {
    let mut model = Model::new(ProxyFilter::default(), None);
    model.apply(SourceEvent::Listed(
        Kind::Service,
        vec![intruder(), kube_dns()],
    ));
    let _ = model.take_changes();
    let node = common::node_info();
    let mut generator = Generator::new(Config::default(), Options::default(), node.clone(), &model);
    let rules = to_dns_address(&generator);
    assert!(!rules.is_empty());
    assert!(
        rules.iter().all(|l| l.contains("kube-system/kube-dns:dns")),
        "{rules:#?}"
    );
    let conflicts: Vec<String> = generator
        .claims()
        .conflicts()
        .flat_map(|c| {
            c.warnings()
                .map(|w| w.object.to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(conflicts, ["aa/x"]);

    // kube-dns goes: the intruder's external IP is its own now, incrementally too.
    model.apply(SourceEvent::Deleted(kube_dns()));
    let changes = model.take_changes();
    generator.update(&model, &changes, &node);
    let rules = to_dns_address(&generator);
    assert!(
        !rules.is_empty() && rules.iter().all(|l| l.contains("aa/x:dns")),
        "{rules:#?}"
    );
    // And back: kube-dns takes it again, though only kube-dns changed.
    model.apply(SourceEvent::Applied(kube_dns()));
    let changes = model.take_changes();
    generator.update(&model, &changes, &node);
    let fresh = Generator::new(Config::default(), Options::default(), node, &model);
    assert_eq!(
        generator.tables(IpFamily::V4).expect("tables"),
        fresh.tables(IpFamily::V4).expect("tables")
    );
    assert!(
        to_dns_address(&generator)
            .iter()
            .all(|l| l.contains("kube-system/kube-dns:dns"))
    );
}
