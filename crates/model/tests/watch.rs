//! The Kubernetes source against the fake API server (`testkit::apiserver`): list + watch
//! with resourceVersion, a bookmark, and a `410 Gone` that forces a relist. Services and
//! EndpointSlices are added, modified and deleted, and the model must follow. The server
//! records every (group, resource, verb) it serves, so a test can prove which API access the
//! proxy needs (RBAC). Faults: a failing, a hanging and a cut-off server.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use manifests::rbac::Permission;
use model::source::kube::{EventReporter, Watch, events};
use model::{Model, ObjectId, ProxyFilter};
use serde_json::{Value, json};
use testkit::apiserver::{FakeApiServer, Fault};

fn service(name: &str, ip: &str, port: u16) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}})
}

fn slice(name: &str, service: &str, ips: &[&str]) -> Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": name, "namespace": "default",
                        "labels": {"kubernetes.io/service-name": service}},
           "addressType": "IPv4",
           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
           "endpoints": ips.iter().map(|ip| json!({"addresses": [ip], "nodeName": "n1"})).collect::<Vec<_>>()})
}

fn node() -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
           "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}})
}

/// Applies source events until `done(model)` holds (or fails after a few seconds).
async fn until(
    stream: &mut futures::stream::BoxStream<'static, model::SourceEvent>,
    model: &mut Model,
    what: &str,
    done: impl Fn(&Model) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done(model) {
        let event = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
            .expect("stream ended");
        assert!(model.apply(event).is_empty(), "no warnings expected");
    }
}

fn endpoints_of(model: &Model, name: &str) -> Vec<String> {
    model
        .slices_of(&ObjectId::new("default", name))
        .flat_map(|s| s.endpoints.iter().map(|e| e.addr.to_string()))
        .collect()
}

/// The fake on loopback with one Service, one slice and the node.
fn serving() -> FakeApiServer {
    let api = FakeApiServer::start(std::net::TcpListener::bind("127.0.0.1:0").expect("bind"));
    api.apply(service("web", "10.96.0.1", 80));
    api.apply(slice("web-1", "web", &["10.244.1.1"]));
    api.apply(node());
    api
}

fn watch_n1() -> Watch {
    Watch {
        filter: ProxyFilter::default(),
        node_name: "n1".into(),
    }
}

/// The configuration of a client without a token that trusts the fake's CA.
fn plain_config(api: &FakeApiServer) -> kube::Config {
    let mut config = kube::Config::new(api.url().parse().expect("uri"));
    config.root_cert = Some(vec![api.ca_der()]);
    config
}

fn plain_client(api: &FakeApiServer) -> kube::Client {
    kube::Client::try_from(plain_config(api)).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_follows_the_api_server() {
    let api = serving();
    api.apply(service("broken", "10.96.0.9", 0));
    // As a ServiceAccount does: a bearer token from a kubeconfig, through the daemon's own
    // client configuration.
    api.require_token("sa-token");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig(dir.path(), Some("sa-token"));
    let client = model::source::kube::client(
        Some(&kubeconfig),
        None,
        model::source::kube::Otherwise::InCluster,
    )
    .await
    .expect("client");
    let mut stream = events(client.clone(), &watch_n1());
    let reporter = EventReporter::new(client, "n1");
    let mut model = Model::new(ProxyFilter::default(), Some("n1".into()));

    let mut warnings = Vec::new();
    while !model.is_synced() {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("first full list in time")
            .expect("stream");
        warnings.extend(model.apply(event));
    }
    assert_eq!(model.len(), (1, 1), "the invalid Service is skipped");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].problem.field, "spec.ports[0].port");
    reporter.publish(&warnings[0]).await.expect("event created");
    reporter
        .publish(&warnings[0])
        .await
        .expect("event series patched");
    let events = api.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (events[0].kind.as_str(), events[0].object.as_str()),
        ("Service", "default/broken")
    );
    assert_eq!(
        (events[0].reason.as_str(), events[0].event_type.as_str()),
        ("InvalidObject", "Warning")
    );
    assert!(events[0].note.contains("spec.ports[0].port"), "{events:?}");
    assert_eq!(model.node().map(|n| n.name.as_str()), Some("n1"));
    api.delete(service("broken", "10.96.0.9", 0));

    // Add.
    api.apply(service("api", "10.96.0.2", 443));
    until(&mut stream, &mut model, "api added", |m| m.len().0 == 2).await;

    // Modify: a new endpoint for web.
    api.apply(slice("web-1", "web", &["10.244.1.1", "10.244.2.2"]));
    until(&mut stream, &mut model, "web endpoints", |m| {
        endpoints_of(m, "web").len() == 2
    })
    .await;

    // A bookmark moves the resourceVersion on and changes nothing.
    api.bookmark();

    // Delete.
    api.delete(service("api", "10.96.0.2", 443));
    until(&mut stream, &mut model, "api deleted", |m| m.len().0 == 1).await;

    // 410 Gone: the watcher relists. A change its watch never heard of (web's port) must
    // arrive through the relist.
    let _ = model.take_changes();
    api.apply_unwatched(service("web", "10.96.0.1", 8080));
    api.compact();
    until(&mut stream, &mut model, "relist after 410", |m| {
        m.service(&ObjectId::new("default", "web"))
            .is_some_and(|s| s.ports[0].port == 8080)
    })
    .await;
    assert!(
        model
            .take_changes()
            .services
            .contains(&ObjectId::new("default", "web"))
    );

    assert!(
        api.count("list", "services") >= 2,
        "the 410 forced a relist"
    );
    // RBAC, sufficient and minimal: manifests/'s ClusterRole grants exactly
    // the (group, resource, verb) the watch and the Event publisher used.
    let grants = manifests::rbac::shipped().unwrap_or_else(|e| panic!("{e}"));
    let requests: BTreeSet<Permission> = api
        .requests()
        .iter()
        .map(|(g, r, v)| Permission::new(g, r, v))
        .collect();
    assert_eq!(
        requests, grants,
        "requests made (left) vs the ClusterRole's grants (right)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_paged_and_pages_add_up() {
    let api = serving();
    for i in 0..1_200 {
        api.apply(service(&format!("s{i}"), "10.96.1.1", 80));
    }
    let mut stream = events(plain_client(&api), &watch_n1());
    let mut model = Model::new(ProxyFilter::default(), Some("n1".into()));
    until(&mut stream, &mut model, "synced", Model::is_synced).await;
    assert_eq!(model.len().0, 1_201);
    // kube-runtime asks for pages of 500: three for 1,201 Services.
    assert_eq!(api.count("list", "services"), 3);
}

/// Applies events from `stream` for `window`, whatever they are.
async fn follow_for(
    stream: &mut futures::stream::BoxStream<'static, model::SourceEvent>,
    model: &mut Model,
    window: Duration,
) {
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, stream.next()).await {
        model.apply(event);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_against_a_failing_api_server_back_off_and_sync_once_it_answers() {
    let api = serving();
    api.set_fault(Fault::ServerError, true);
    let mut stream = events(plain_client(&api), &watch_n1());
    let mut model = Model::new(ProxyFilter::default(), Some("n1".into()));
    follow_for(&mut stream, &mut model, Duration::from_secs(10)).await;
    // client-go's reflector backoff, as kube-proxy's informers use it: 0.8 s doubling (with
    // jitter up to twice that) to 30 s. In 10 s that is 4 attempts at most per kind; a backoff
    // reset at every attempt makes 7 or more.
    let lists = api.count("list", "services");
    assert!((2..=5).contains(&lists), "{lists} list attempts in 10 s");
    assert!(!model.is_synced());
    api.set_fault(Fault::ServerError, false);
    until(
        &mut stream,
        &mut model,
        "synced once the server answers",
        Model::is_synced,
    )
    .await;
    assert_eq!(model.len(), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_list_times_out_and_a_cut_or_garbled_one_is_retried() {
    for fault in [
        Fault::HangLists,
        Fault::CutMidList,
        Fault::Garbage,
        Fault::Closed,
    ] {
        let api = serving();
        api.set_fault(fault, true);
        let mut config = plain_config(&api);
        config.read_timeout = Some(Duration::from_secs(1));
        let client = kube::Client::try_from(config).expect("client");
        let mut stream = events(client, &watch_n1());
        let mut model = Model::new(ProxyFilter::default(), Some("n1".into()));
        follow_for(&mut stream, &mut model, Duration::from_secs(2)).await;
        assert!(!model.is_synced(), "{fault:?}");
        api.set_fault(fault, false);
        until(
            &mut stream,
            &mut model,
            "synced after the fault",
            Model::is_synced,
        )
        .await;
        assert_eq!(model.len(), (1, 1), "{fault:?}");
    }
}

#[tokio::test]
async fn the_daemons_client_has_request_timeouts() {
    let api = serving();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = model::source::kube::config(
        Some(&api.kubeconfig(dir.path(), None)),
        None,
        model::source::kube::Otherwise::InCluster,
    )
    .await
    .expect("kubeconfig");
    assert_eq!(config.read_timeout, Some(model::source::kube::READ_TIMEOUT));
    assert_eq!(
        config.connect_timeout,
        Some(model::source::kube::CONNECT_TIMEOUT)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_sent_again_until_the_api_server_takes_it() {
    let api = serving();
    api.set_fault(Fault::ServerError, true);
    let reporter = EventReporter::new(plain_client(&api), "n1");
    let sending =
        tokio::spawn(async move { reporter.node_warning("ProxyModeFallback", "no IPVS").await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(api.events().is_empty());
    assert!(!sending.is_finished(), "gave up while the server failed");
    api.set_fault(Fault::ServerError, false);
    tokio::time::timeout(Duration::from_secs(40), sending)
        .await
        .expect("delivered once the server answers")
        .expect("task")
        .expect("published");
    let events = api.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (
            events[0].kind.as_str(),
            events[0].object.as_str(),
            events[0].reason.as_str(),
            events[0].event_type.as_str()
        ),
        ("Node", "n1", "ProxyModeFallback", "Warning")
    );

    // A final refusal (no RBAC) is returned, not retried.
    api.grant_only(BTreeSet::new());
    let reporter = EventReporter::new(plain_client(&api), "n1");
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        reporter.node_warning("ProxyModeFallback", "no IPVS"),
    )
    .await
    .expect("answered at once");
    assert!(refused.is_err());
}
