//! The Kubernetes source against a small fake API server: list + watch with resourceVersion,
//! a bookmark, and a `410 Gone` that forces a relist. Services and EndpointSlices are added,
//! modified and deleted, and the model must follow. The server records every (verb, resource)
//! it serves, so a test can prove which API access the proxy needs (RBAC).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use manifests::Bundle;
use manifests::rbac::{Permission, granted};
use model::source::kube::{EventReporter, Watch, events};
use model::{Model, ObjectId, ProxyFilter};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// One scripted watch event for one resource.
#[derive(Clone, Debug)]
struct Scripted {
    resource: &'static str,
    /// The resourceVersion the event carries (0 for bookmarks and errors, never replayed).
    rv: u64,
    line: String,
}

/// The fake API server's state: objects per resource, a resourceVersion counter, the live
/// watch event feed and the request log.
#[derive(Default)]
struct State {
    rv: u64,
    services: Vec<Value>,
    slices: Vec<Value>,
    nodes: Vec<Value>,
    /// Every object event, so a watch from an older resourceVersion is replayed like the real
    /// API server does.
    log: Vec<Scripted>,
    /// Every request as (API group, resource, verb), the terms RBAC grants in.
    requests: Vec<(String, String, String)>,
    /// Fault: every request is answered `500 Internal Server Error` (a status kube-rs' client
    /// does not retry by itself, unlike 429, 503 and 504).
    failing: bool,
    /// Fault: this many list requests are never answered.
    hung_lists: usize,
}

#[derive(Clone)]
struct FakeApi {
    state: Arc<Mutex<State>>,
    feed: broadcast::Sender<Scripted>,
}

/// The API group of a request path: `/apis/GROUP/...`, or `""` for `/api/v1/...`.
fn group_of(path: &str) -> String {
    path.strip_prefix("/apis/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned()
}

fn resource_of(path: &str) -> &'static str {
    if path.contains("/events") {
        "events"
    } else if path.contains("endpointslices") {
        "endpointslices"
    } else if path.contains("services") {
        "services"
    } else if path.contains("nodes") {
        "nodes"
    } else {
        "other"
    }
}

impl FakeApi {
    fn new() -> FakeApi {
        let (feed, _) = broadcast::channel(64);
        FakeApi {
            state: Arc::new(Mutex::new(State::default())),
            feed,
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("state lock"))
    }

    /// Stores an object with a fresh resourceVersion and streams the event to watchers.
    fn emit(&self, resource: &'static str, kind: &str, mut object: Value) {
        let event = self.with_state(|s| {
            s.rv += 1;
            object["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            let list = match resource {
                "services" => &mut s.services,
                "endpointslices" => &mut s.slices,
                _ => &mut s.nodes,
            };
            let name = object["metadata"]["name"].clone();
            list.retain(|o| o["metadata"]["name"] != name);
            if kind != "DELETED" {
                list.push(object.clone());
            }
            let event = Scripted {
                resource,
                rv: s.rv,
                line: json!({"type": kind, "object": object}).to_string(),
            };
            s.log.push(event.clone());
            event
        });
        let _ = self.feed.send(event);
    }

    /// Sends a raw event line (a bookmark or an error) to watchers of a resource.
    fn raw(&self, resource: &'static str, line: Value) {
        let _ = self.feed.send(Scripted {
            resource,
            rv: 0,
            line: line.to_string(),
        });
    }

    fn count(&self, verb: &str, resource: &str) -> usize {
        self.with_state(|s| {
            s.requests
                .iter()
                .filter(|(_, r, v)| v == verb && r == resource)
                .count()
        })
    }

    fn requests(&self) -> BTreeSet<Permission> {
        self.with_state(|s| {
            s.requests
                .iter()
                .map(|(g, r, v)| Permission::new(g, r, v))
                .collect()
        })
    }

    async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let api = self.clone();
            tokio::spawn(async move { api.handle(stream).await });
        }
    }

    async fn handle(self, stream: TcpStream) {
        let mut reader = BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                return;
            }
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).await.unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut words = request_line.split_whitespace();
            let method = words.next().unwrap_or("GET").to_owned();
            let target = words.next().unwrap_or("/").to_owned();
            let resource = resource_of(&target);
            let watching = target.contains("watch=true");
            let verb = match (method.as_str(), watching) {
                ("POST", _) => "create",
                ("PATCH", _) => "patch",
                (_, true) => "watch",
                _ => "list",
            };
            let group = group_of(&target);
            self.with_state(|s| s.requests.push((group, resource.into(), verb.into())));
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).await.is_err() {
                return;
            }
            let stream = reader.get_mut();
            let (failing, hang) = self.with_state(|s| {
                let hang = verb == "list" && s.hung_lists > 0;
                if hang {
                    s.hung_lists -= 1;
                }
                (s.failing, hang)
            });
            if hang {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            if failing {
                let status = json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                    "reason": "InternalError", "code": 500, "message": "down"})
                .to_string();
                let response = format!(
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{status}",
                    status.len()
                );
                if stream.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
            if verb == "create" || verb == "patch" {
                // Echo the object back, as the API server returns the stored object.
                let head = format!(
                    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                if stream.write_all(head.as_bytes()).await.is_err()
                    || stream.write_all(&body).await.is_err()
                {
                    return;
                }
                continue;
            }
            if watching {
                let from: u64 = target
                    .split(['?', '&'])
                    .find_map(|kv| kv.strip_prefix("resourceVersion="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                self.stream_watch(stream, resource, from).await;
                return;
            }
            let body = self.with_state(|s| {
                let (items, kind, api_version) = match resource {
                    "services" => (&s.services, "ServiceList", "v1"),
                    "endpointslices" => (&s.slices, "EndpointSliceList", "discovery.k8s.io/v1"),
                    _ => (&s.nodes, "NodeList", "v1"),
                };
                json!({"apiVersion": api_version, "kind": kind,
                       "metadata": {"resourceVersion": s.rv.to_string()}, "items": items})
                .to_string()
            });
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    async fn stream_watch(&self, stream: &mut TcpStream, resource: &'static str, from: u64) {
        let mut feed = self.feed.subscribe();
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let replay: Vec<Scripted> = self.with_state(|s| {
            s.log
                .iter()
                .filter(|e| e.resource == resource && e.rv > from)
                .cloned()
                .collect()
        });
        let mut sent = from;
        for event in replay {
            sent = event.rv;
            let line = format!("{}\n", event.line);
            if stream
                .write_all(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
        while let Ok(event) = feed.recv().await {
            if event.resource != resource || (event.rv != 0 && event.rv <= sent) {
                continue;
            }
            let gone = event.line.contains("\"code\":410");
            let line = format!("{}\n", event.line);
            let chunk = format!("{:x}\r\n{line}\r\n", line.len());
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
            if gone {
                let _ = stream.write_all(b"0\r\n\r\n").await;
                return;
            }
        }
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_follows_the_api_server() {
    let api = FakeApi::new();
    api.emit("services", "ADDED", service("web", "10.96.0.1", 80));
    api.emit(
        "endpointslices",
        "ADDED",
        slice("web-1", "web", &["10.244.1.1"]),
    );
    api.emit("nodes", "ADDED", node());
    api.emit("services", "ADDED", service("broken", "10.96.0.9", 0));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(api.clone().serve(listener));

    let config = kube::Config::new(format!("http://{addr}").parse().expect("uri"));
    let client = kube::Client::try_from(config).expect("client");
    let watch = Watch {
        filter: ProxyFilter::default(),
        node_name: "n1".into(),
    };
    let mut stream = events(client.clone(), &watch);
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
    assert_eq!(model.node().map(|n| n.name.as_str()), Some("n1"));

    // Add.
    api.emit("services", "ADDED", service("api", "10.96.0.2", 443));
    until(&mut stream, &mut model, "api added", |m| m.len().0 == 2).await;

    // Modify: a new endpoint for web.
    api.emit(
        "endpointslices",
        "MODIFIED",
        slice("web-1", "web", &["10.244.1.1", "10.244.2.2"]),
    );
    until(&mut stream, &mut model, "web endpoints", |m| {
        endpoints_of(m, "web").len() == 2
    })
    .await;

    // A bookmark moves the resourceVersion on and changes nothing.
    api.raw(
        "services",
        json!({"type": "BOOKMARK", "object": {"apiVersion": "v1", "kind": "Service",
        "metadata": {"resourceVersion": "100"}}}),
    );

    // Delete.
    api.emit("services", "DELETED", service("api", "10.96.0.2", 443));
    until(&mut stream, &mut model, "api deleted", |m| m.len().0 == 1).await;

    // 410 Gone: the watcher relists. A change made while it was cut off (web's port) must
    // arrive through the relist.
    let _ = model.take_changes();
    api.with_state(|s| {
        s.rv += 1;
        let mut changed = service("web", "10.96.0.1", 8080);
        changed["metadata"]["resourceVersion"] = json!(s.rv.to_string());
        s.services = vec![changed];
    });
    api.raw("services", json!({"type": "ERROR", "object": {"apiVersion": "v1", "kind": "Status",
        "status": "Failure", "reason": "Expired", "code": 410, "message": "too old resource version"}}));
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
    let roles = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/base");
    let bundle = Bundle::load(&roles).unwrap_or_else(|e| panic!("{e}"));
    let grants = granted(&bundle.cluster_role).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        api.requests(),
        grants,
        "requests made (left) vs the ClusterRole's grants (right)"
    );
}

/// The fake with the cluster of one Service, one slice and the node, serving on loopback.
async fn serving() -> (FakeApi, String) {
    let api = FakeApi::new();
    api.emit("services", "ADDED", service("web", "10.96.0.1", 80));
    api.emit(
        "endpointslices",
        "ADDED",
        slice("web-1", "web", &["10.244.1.1"]),
    );
    api.emit("nodes", "ADDED", node());
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(api.clone().serve(listener));
    (api, format!("http://{addr}"))
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

fn watch_n1() -> Watch {
    Watch {
        filter: ProxyFilter::default(),
        node_name: "n1".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_against_a_failing_api_server_back_off_and_sync_once_it_answers() {
    let (api, uri) = serving().await;
    api.with_state(|s| s.failing = true);
    let client =
        kube::Client::try_from(kube::Config::new(uri.parse().expect("uri"))).expect("client");
    let mut stream = events(client, &watch_n1());
    let mut model = Model::new(ProxyFilter::default(), Some("n1".into()));
    follow_for(&mut stream, &mut model, Duration::from_secs(10)).await;
    // client-go's reflector backoff, as kube-proxy's informers use it: 0.8 s doubling (with
    // jitter up to twice that) to 30 s. In 10 s that is 4 attempts at most per kind; a backoff
    // reset at every attempt makes 7 or more.
    let lists = api.count("list", "services");
    assert!((2..=5).contains(&lists), "{lists} list attempts in 10 s");
    assert!(!model.is_synced());
    api.with_state(|s| s.failing = false);
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
async fn a_list_that_hangs_times_out_and_is_retried() {
    let (api, uri) = serving().await;
    api.with_state(|s| s.hung_lists = 1);
    let mut config = kube::Config::new(uri.parse().expect("uri"));
    config.read_timeout = Some(Duration::from_secs(2));
    let client = kube::Client::try_from(config).expect("client");
    let mut stream = events(client, &watch_n1());
    let mut model = Model::new(ProxyFilter::default(), Some("n1".into()));
    until(
        &mut stream,
        &mut model,
        "synced after the hung list",
        Model::is_synced,
    )
    .await;
    assert_eq!(model.len(), (1, 1));
    let lists: usize = ["services", "endpointslices", "nodes"]
        .iter()
        .map(|r| api.count("list", r))
        .sum();
    assert_eq!(lists, 4, "one list hung and was retried");
}

#[tokio::test]
async fn the_daemons_client_has_request_timeouts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
         clusters: [{name: k, cluster: {server: \"http://127.0.0.1:1\"}}]\n\
         contexts: [{name: c, context: {cluster: k, user: u}}]\n\
         users: [{name: u, user: {token: t}}]\n",
    )
    .expect("write kubeconfig");
    let config = model::source::kube::config(Some(&path))
        .await
        .expect("kubeconfig");
    assert_eq!(config.read_timeout, Some(model::source::kube::READ_TIMEOUT));
    assert_eq!(
        config.connect_timeout,
        Some(model::source::kube::CONNECT_TIMEOUT)
    );
}
