//! A fake Kubernetes API server for the resources the proxy reads (Services, EndpointSlices,
//! Nodes) and the Events it writes, over HTTPS on a listener the test gives it (on
//! loopback, or inside a test namespace), with a server certificate signed by a test CA
//! ([`CA`], for `127.0.0.1`, `::1` and `localhost`; `testdata/generate.sh` made them).
//!
//! It behaves like the real one where the proxy's client can tell: lists carry a
//! `resourceVersion` and are paged (`limit`, `continue`); watches replay from a
//! `resourceVersion`, send bookmarks when asked, and answer `410 Gone` for one older than the
//! last [`FakeApiServer::compact`]; label selectors (`key`, `!key`, `key=value`, `key!=value`)
//! and the `metadata.name` field selector are applied on the server; a bearer token is
//! required when one is set (401 otherwise); a request outside the granted permissions gets
//! 403; Events are accepted and recorded. [`Fault`]s make it fail as a real one can.
//! [`FakeApiServer::kubeconfig`] writes a kubeconfig like a ServiceAccount's: the server's
//! `https://` URL, the CA certificate and a bearer token.
//!
//! Not covered: set-based selectors (`in`, `notin`), which get 400.

use std::collections::{BTreeSet, HashSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// One client's connection, after the TLS handshake.
type Stream = tokio_rustls::server::TlsStream<TcpStream>;

/// A way to fail, switched on and off while the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// Every connection is closed as soon as it is accepted, before any answer (a server
    /// going down or restarting).
    Closed,
    /// Every request is answered `500 Internal Server Error` (a status kube-rs' client does
    /// not retry by itself, unlike 429, 503 and 504).
    ServerError,
    /// Lists and watches are answered `200 OK` with a body that is not JSON.
    Garbage,
    /// Lists are never answered.
    HangLists,
    /// Watches get their headers, then nothing.
    HangWatches,
    /// A list's answer stops halfway and the connection is closed.
    CutMidList,
}

/// One request as RBAC sees it: (API group, resource, verb).
pub type Access = (String, String, String);

/// An Event the proxy created or updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The kind of the object it is about (`regarding.kind`).
    pub kind: String,
    /// That object's namespace and name (`ns/name`, or `name` for a Node).
    pub object: String,
    /// `reason`.
    pub reason: String,
    /// `type` (`Normal`, `Warning`).
    pub event_type: String,
    /// `note`.
    pub note: String,
}

const RESOURCES: [&str; 3] = ["services", "endpointslices", "nodes"];

#[derive(Default)]
struct State {
    rv: u64,
    /// Objects per resource, in the order of [`RESOURCES`].
    objects: [Vec<Value>; 3],
    /// Every object change, so a watch from an older resourceVersion is replayed.
    log: Vec<(usize, u64, String)>,
    /// Watches from a resourceVersion below this get `410 Gone`.
    compacted: u64,
    requests: Vec<Access>,
    events: Vec<RecordedEvent>,
    faults: BTreeSet<Fault>,
    token: Option<String>,
    granted: Option<BTreeSet<Access>>,
}

/// The fake server; it stops when dropped.
pub struct FakeApiServer {
    state: Arc<Mutex<State>>,
    feed: broadcast::Sender<(usize, u64, String)>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeApiServer {
    /// Serves on `listener` (bound by the caller, e.g. inside a namespace with
    /// [`crate::Netns::enter`]), from a thread of its own.
    ///
    /// # Panics
    /// When the listener cannot be used.
    pub fn start(listener: std::net::TcpListener) -> FakeApiServer {
        let addr = listener.local_addr().expect("listener address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let state = Arc::new(Mutex::new(State::default()));
        let (feed, _) = broadcast::channel(1024);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let server = Server {
            state: Arc::clone(&state),
            feed: feed.clone(),
            tls: TlsAcceptor::from(Arc::new(tls_config())),
        };
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                tokio::select! {
                    () = server.accept(listener) => {}
                    _ = stopped => {}
                }
            });
        });
        FakeApiServer {
            state,
            feed,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its URL, `https://ADDR`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA certificate its server certificate is signed by, DER-encoded (for a client's
    /// root certificates).
    ///
    /// # Panics
    /// When the built-in certificate does not parse.
    pub fn ca_der(&self) -> Vec<u8> {
        CertificateDer::from_pem_slice(CA.as_bytes())
            .expect("the test CA certificate")
            .to_vec()
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Requires `Authorization: Bearer TOKEN` on every request from now on.
    pub fn require_token(&self, token: &str) {
        self.with_state(|s| s.token = Some(token.to_owned()));
    }

    /// Answers 403 to any request outside `granted` from now on.
    pub fn grant_only(&self, granted: BTreeSet<Access>) {
        self.with_state(|s| s.granted = Some(granted));
    }

    /// Switches `fault` on or off.
    pub fn set_fault(&self, fault: Fault, on: bool) {
        self.with_state(|s| {
            if on {
                s.faults.insert(fault);
            } else {
                s.faults.remove(&fault);
            }
        });
    }

    /// Stores `object` (a Service, EndpointSlice or Node, by its `kind`) with a new
    /// resourceVersion and tells watchers (`ADDED` or `MODIFIED`).
    ///
    /// # Panics
    /// For another kind.
    pub fn apply(&self, object: Value) {
        self.change(object, false, true);
    }

    /// Stores `object` like [`FakeApiServer::apply`], but no open watch hears of it (as if
    /// the watchers' connections had dropped meanwhile); a relist or a new watch does.
    ///
    /// # Panics
    /// For another kind.
    pub fn apply_unwatched(&self, object: Value) {
        self.change(object, false, false);
    }

    /// Deletes `object` (matched by kind, namespace and name) and tells watchers.
    ///
    /// # Panics
    /// For another kind.
    pub fn delete(&self, object: Value) {
        self.change(object, true, true);
    }

    /// Stores `objects` (each at most once) like [`FakeApiServer::apply`], one after the
    /// other, in one pass over what is held: for loading a large cluster (applying objects
    /// one by one costs a pass each).
    ///
    /// # Panics
    /// For another kind.
    pub fn apply_all(&self, objects: Vec<Value>) {
        self.change_all(objects, false, true);
    }

    fn change(&self, object: Value, delete: bool, notify: bool) {
        self.change_all(vec![object], delete, notify);
    }

    /// Stores or deletes `objects` in order, each with a new resourceVersion, and tells
    /// watchers when `notify`.
    fn change_all(&self, objects: Vec<Value>, delete: bool, notify: bool) {
        let resource_of = |object: &Value| match object["kind"].as_str() {
            Some("Service") => 0,
            Some("EndpointSlice") => 1,
            Some("Node") => 2,
            other => panic!("the fake API server does not serve {other:?}"),
        };
        let id = |o: &Value| {
            let part = |key: &str| o["metadata"][key].as_str().unwrap_or_default().to_owned();
            (part("namespace"), part("name"))
        };
        let events = self.with_state(|s| {
            let changed: HashSet<(usize, (String, String))> =
                objects.iter().map(|o| (resource_of(o), id(o))).collect();
            let mut held = HashSet::new();
            for (resource, list) in s.objects.iter_mut().enumerate() {
                list.retain(|o| {
                    let key = (resource, id(o));
                    let stays = !changed.contains(&key);
                    if !stays {
                        held.insert(key);
                    }
                    stays
                });
            }
            let mut events = Vec::with_capacity(objects.len());
            for mut object in objects {
                let resource = resource_of(&object);
                s.rv += 1;
                object["metadata"]["resourceVersion"] = json!(s.rv.to_string());
                let kind = match (delete, held.contains(&(resource, id(&object)))) {
                    (true, _) => "DELETED",
                    (false, true) => "MODIFIED",
                    (false, false) => "ADDED",
                };
                let line = json!({"type": kind, "object": object}).to_string();
                if !delete {
                    held.insert((resource, id(&object)));
                    s.objects[resource].push(object);
                }
                s.log.push((resource, s.rv, line.clone()));
                events.push((resource, s.rv, line));
            }
            events
        });
        if notify {
            for event in events {
                let _ = self.feed.send(event);
            }
        }
    }

    /// Sends a bookmark at the current resourceVersion to the watchers of every resource.
    pub fn bookmark(&self) {
        let rv = self.with_state(|s| s.rv);
        for (resource, kind) in [(0, "Service"), (1, "EndpointSlice"), (2, "Node")] {
            let api_version = if resource == 1 {
                "discovery.k8s.io/v1"
            } else {
                "v1"
            };
            let line = json!({"type": "BOOKMARK", "object": {"apiVersion": api_version,
                "kind": kind, "metadata": {"resourceVersion": rv.to_string()}}})
            .to_string();
            let _ = self.feed.send((resource, 0, line));
        }
    }

    /// Forgets the history: watches from an older resourceVersion get `410 Gone`, and every
    /// open watch is ended with one (the watcher must relist).
    pub fn compact(&self) {
        let rv = self.with_state(|s| {
            s.compacted = s.rv;
            s.log.clear();
            s.rv
        });
        for resource in 0..RESOURCES.len() {
            let _ = self.feed.send((resource, 0, gone(rv)));
        }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Access> {
        self.with_state(|s| s.requests.clone())
    }

    /// How many requests so far had this verb on this resource.
    pub fn count(&self, verb: &str, resource: &str) -> usize {
        self.with_state(|s| {
            s.requests
                .iter()
                .filter(|(_, r, v)| v == verb && r == resource)
                .count()
        })
    }

    /// The Events received so far (created or updated), in order.
    pub fn events(&self) -> Vec<RecordedEvent> {
        self.with_state(|s| s.events.clone())
    }

    /// Writes a kubeconfig for this server (with `token`, if any, as a ServiceAccount's
    /// bearer token, and the CA certificate that signed the server's, [`CA`], in
    /// `dir/ca.pem`) to `dir/kubeconfig` and returns its path.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn kubeconfig(&self, dir: &Path, token: Option<&str>) -> PathBuf {
        self.kubeconfig_trusting(dir, token, CA)
    }

    /// [`FakeApiServer::kubeconfig`] naming [`OTHER_CA`] instead, a CA that did not sign the
    /// server's certificate: a client using it must refuse the server.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn kubeconfig_with_other_ca(&self, dir: &Path, token: Option<&str>) -> PathBuf {
        self.kubeconfig_trusting(dir, token, OTHER_CA)
    }

    /// Writes what a Pod's ServiceAccount holds for this server into `dir`: `token`,
    /// `ca.crt` (the CA that signed the server's certificate, [`CA`]) and `namespace`
    /// (`kube-system`), the files of `/var/run/secrets/kubernetes.io/serviceaccount/`.
    ///
    /// # Panics
    /// When a file cannot be written.
    pub fn service_account(&self, dir: &Path, token: &str) {
        for (file, text) in [
            ("token", token),
            ("ca.crt", CA),
            ("namespace", "kube-system"),
        ] {
            std::fs::write(dir.join(file), text)
                .unwrap_or_else(|e| panic!("cannot write {file}: {e}"));
        }
    }

    fn kubeconfig_trusting(&self, dir: &Path, token: Option<&str>, ca_pem: &str) -> PathBuf {
        let path = dir.join("kubeconfig");
        let user = token.map_or_else(|| "{}".to_owned(), |t| format!("{{token: {t}}}"));
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_pem).expect("write the CA");
        let mut file = std::fs::File::create(&path).expect("create kubeconfig");
        write!(
            file,
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters: [{{name: fake, cluster: {{server: \"{}\", certificate-authority: \"{}\"}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: proxy}}}}]\n\
             users: [{{name: proxy, user: {user}}}]\n",
            self.url(),
            ca.display()
        )
        .expect("write kubeconfig");
        path
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The test CA's certificate, which signed the server's: what a ServiceAccount's `ca.crt`
/// is to a real API server.
pub const CA: &str = include_str!("../testdata/fake-apiserver-ca.pem");

/// A CA certificate unrelated to the server's.
pub const OTHER_CA: &str = include_str!("../testdata/other-ca.pem");

/// The server's certificate (signed by [`CA`]) and key.
const SERVER_CERTIFICATE: &str = include_str!("../testdata/fake-apiserver.pem");
const SERVER_KEY: &str = include_str!("../testdata/fake-apiserver-key.pem");

/// The server's TLS setup: its certificate, TLS 1.2 and 1.3, ring's algorithms (as the
/// proxy's client uses).
fn tls_config() -> rustls::ServerConfig {
    let certificate = CertificateDer::from_pem_slice(SERVER_CERTIFICATE.as_bytes())
        .expect("the server certificate");
    let key = PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).expect("the server key");
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![certificate], key)
        .expect("the server certificate and key")
}

fn gone(rv: u64) -> String {
    json!({"type": "ERROR", "object": {"apiVersion": "v1", "kind": "Status", "status": "Failure",
        "reason": "Expired", "code": 410,
        "message": format!("too old resource version (oldest is {rv})")}})
    .to_string()
}

/// The serving half, shared by the connections.
#[derive(Clone)]
struct Server {
    state: Arc<Mutex<State>>,
    feed: broadcast::Sender<(usize, u64, String)>,
    tls: TlsAcceptor,
}

/// One parsed request.
struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    token: Option<String>,
    body: Vec<u8>,
}

impl Request {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `HTTP/1.1 CODE` with a JSON body.
fn response(code: u16, body: &str) -> String {
    let reason = match code {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn status(code: u16, reason: &str, message: &str) -> String {
    response(
        code,
        &json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": reason,
                "code": code, "message": message})
        .to_string(),
    )
}

/// Percent-decodes a query component.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// (API group, resource, verb) of a request, as RBAC names them.
fn access(method: &str, path: &str, watching: bool) -> Access {
    let group = path
        .strip_prefix("/apis/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let segments: Vec<&str> = path.split('/').collect();
    let at = segments
        .iter()
        .position(|s| RESOURCES.contains(s) || *s == "events");
    let resource = at.map_or("other", |i| segments[i]).to_owned();
    let named = at.is_some_and(|i| i + 1 < segments.len());
    let verb = match (method, watching, named) {
        ("POST", ..) => "create",
        ("PATCH", ..) => "patch",
        ("PUT", ..) => "update",
        ("DELETE", ..) => "delete",
        (_, true, _) => "watch",
        (_, false, true) => "get",
        _ => "list",
    };
    (group, resource, verb.to_owned())
}

/// Whether `labels` match a comma-separated equality selector.
fn selected(labels: &Value, selector: &str) -> Result<bool, String> {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let ok = if let Some(k) = term.strip_prefix('!') {
            get(k).is_none()
        } else if let Some((k, v)) = term.split_once("!=") {
            get(k) != Some(v)
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            get(k) == Some(v)
        } else if term.contains(' ') || term.contains('(') {
            return Err(format!("unsupported selector term {term:?}"));
        } else {
            get(term).is_some()
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Server {
    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn fault(&self, fault: Fault) -> bool {
        self.with_state(|s| s.faults.contains(&fault))
    }

    async fn accept(self, listener: tokio::net::TcpListener) {
        while let Ok((stream, _)) = listener.accept().await {
            if self.fault(Fault::Closed) {
                drop(stream);
                continue;
            }
            let server = self.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends here.
                if let Ok(stream) = server.tls.accept(stream).await {
                    server.connection(stream).await;
                }
            });
        }
    }

    async fn read(reader: &mut BufReader<Stream>) -> Option<Request> {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let mut words = line.split_whitespace();
        let method = words.next()?.to_owned();
        let target = words.next()?.to_owned();
        let (mut length, mut token) = (0usize, None);
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.ok()? == 0 || header == "\r\n" {
                break;
            }
            let (name, value) = header.split_once(':')?;
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => {
                    token = value.trim().strip_prefix("Bearer ").map(str::to_owned);
                }
                _ => {}
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).await.ok()?;
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let query = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (decode(k), decode(v)))
            .collect();
        Some(Request {
            method,
            path: path.to_owned(),
            query,
            token,
            body,
        })
    }

    async fn connection(self, stream: Stream) {
        let mut reader = BufReader::new(stream);
        while let Some(request) = Self::read(&mut reader).await {
            let watching = request.param("watch") == Some("true");
            let access = access(&request.method, &request.path, watching);
            let (token, granted) = self.with_state(|s| {
                s.requests.push(access.clone());
                (s.token.clone(), s.granted.clone())
            });
            let stream = reader.get_mut();
            let refusal = if token.is_some() && request.token != token {
                Some(status(401, "Unauthorized", "Unauthorized"))
            } else if granted.is_some_and(|g| !g.contains(&access)) {
                Some(status(
                    403,
                    "Forbidden",
                    &format!("{access:?} is not granted"),
                ))
            } else if self.fault(Fault::ServerError) {
                Some(status(500, "InternalError", "the fake is failing"))
            } else {
                None
            };
            if let Some(refusal) = refusal {
                if send(stream, refusal.as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
            let resource = RESOURCES.iter().position(|r| *r == access.1);
            let done = match (access.2.as_str(), resource) {
                ("create" | "patch" | "update", None) if access.1 == "events" => {
                    self.record_event(&request.body);
                    let echo = String::from_utf8_lossy(&request.body).into_owned();
                    send(stream, response(201, &echo).as_bytes()).await.is_err()
                }
                ("watch", Some(r)) => {
                    self.watch(stream, r, &request).await;
                    true
                }
                ("list", Some(r)) => self.list(stream, r, &request).await,
                _ => {
                    let answer = status(404, "NotFound", "not served by the fake");
                    send(stream, answer.as_bytes()).await.is_err()
                }
            };
            if done {
                return;
            }
        }
    }

    fn record_event(&self, body: &[u8]) {
        let Ok(event) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let regarding = &event["regarding"];
        let object = match regarding["namespace"].as_str() {
            Some(ns) if !ns.is_empty() => format!("{ns}/{}", text(&regarding["name"])),
            _ => text(&regarding["name"]),
        };
        let recorded = RecordedEvent {
            kind: text(&regarding["kind"]),
            object,
            reason: text(&event["reason"]),
            event_type: text(&event["type"]),
            note: text(&event["note"]),
        };
        self.with_state(|s| s.events.push(recorded));
    }

    /// Answers a list; true when the connection is finished.
    async fn list(&self, stream: &mut Stream, resource: usize, request: &Request) -> bool {
        if self.fault(Fault::HangLists) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return true;
        }
        if self.fault(Fault::Garbage) {
            return send(
                stream,
                response(200, "{\"kind\": \"ServiceList\", \"items\": [").as_bytes(),
            )
            .await
            .is_err();
        }
        let body = match self.page(resource, request) {
            Ok(body) => body,
            Err(message) => status(400, "BadRequest", &message),
        };
        if self.fault(Fault::CutMidList) {
            let _ = send(stream, &body.as_bytes()[..body.len() / 2]).await;
            return true;
        }
        send(stream, body.as_bytes()).await.is_err()
    }

    /// One page of a list, filtered by the selectors, as a whole HTTP response.
    fn page(&self, resource: usize, request: &Request) -> Result<String, String> {
        let labels = request.param("labelSelector").unwrap_or_default();
        let name = request
            .param("fieldSelector")
            .and_then(|f| f.strip_prefix("metadata.name="));
        let offset: usize = request
            .param("continue")
            .map(|c| c.parse().map_err(|_| format!("bad continue token {c:?}")))
            .transpose()?
            .unwrap_or(0);
        let limit: usize = request
            .param("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        self.with_state(|s| {
            // Only the page's objects are copied: a large list is read in many pages.
            let (mut page, mut matched, mut more) = (Vec::new(), 0, false);
            for o in &s.objects[resource] {
                let named = name.is_none_or(|n| o["metadata"]["name"] == n);
                if !(named && selected(&o["metadata"]["labels"], labels)?) {
                    continue;
                }
                matched += 1;
                if matched <= offset {
                    continue;
                }
                if page.len() == limit {
                    more = true;
                    break;
                }
                page.push(o.clone());
            }
            let next = if more {
                json!((offset + limit).to_string())
            } else {
                json!(null)
            };
            let (kind, api_version) = match resource {
                0 => ("ServiceList", "v1"),
                1 => ("EndpointSliceList", "discovery.k8s.io/v1"),
                _ => ("NodeList", "v1"),
            };
            let body = json!({"apiVersion": api_version, "kind": kind,
                "metadata": {"resourceVersion": s.rv.to_string(), "continue": next},
                "items": page});
            Ok(response(200, &body.to_string()))
        })
    }

    async fn watch(&self, stream: &mut Stream, resource: usize, request: &Request) {
        let mut feed = self.feed.subscribe();
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        if send(stream, head.as_bytes()).await.is_err() {
            return;
        }
        if self.fault(Fault::HangWatches) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        let from: u64 = request
            .param("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let labels = request
            .param("labelSelector")
            .unwrap_or_default()
            .to_owned();
        let name = request
            .param("fieldSelector")
            .and_then(|f| f.strip_prefix("metadata.name="))
            .map(str::to_owned);
        let wanted = |line: &str| {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                return true;
            };
            let meta = &event["object"]["metadata"];
            event["type"] == "BOOKMARK"
                || event["type"] == "ERROR"
                || (name.as_deref().is_none_or(|n| meta["name"] == n)
                    && selected(&meta["labels"], &labels).unwrap_or(false))
        };
        let (replay, compacted) = self.with_state(|s| {
            let replay: Vec<(u64, String)> = s
                .log
                .iter()
                .filter(|(r, rv, _)| *r == resource && *rv > from)
                .map(|(_, rv, line)| (*rv, line.clone()))
                .collect();
            (replay, s.compacted)
        });
        if from < compacted {
            let _ = chunk(stream, &gone(compacted)).await;
            let _ = send(stream, b"0\r\n\r\n").await;
            return;
        }
        let mut sent = from;
        for (rv, line) in replay {
            sent = rv;
            if wanted(&line) && chunk(stream, &line).await.is_err() {
                return;
            }
        }
        while let Ok((r, rv, line)) = feed.recv().await {
            if r != resource || (rv != 0 && rv <= sent) || !wanted(&line) {
                continue;
            }
            if chunk(stream, &line).await.is_err() {
                return;
            }
            if line.contains("\"code\":410") {
                let _ = send(stream, b"0\r\n\r\n").await;
                return;
            }
        }
    }
}

/// Writes `bytes` and sends them on at once (TLS holds written bytes until a flush).
async fn send(stream: &mut Stream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Writes one line of a watch as an HTTP chunk.
async fn chunk(stream: &mut Stream, line: &str) -> std::io::Result<()> {
    let line = format!("{line}\n");
    send(stream, format!("{:x}\r\n{line}\r\n", line.len()).as_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_selectors_select_as_the_api_server_does() {
        let labels = json!({"kubernetes.io/service-name": "web", "tier": "a"});
        let cases = [
            ("", true),
            ("!service.kubernetes.io/headless", true),
            ("!tier", false),
            ("tier", true),
            ("tier=a", true),
            ("tier==b", false),
            ("tier!=b", true),
            ("tier!=a", false),
            ("kubernetes.io/service-name=web,!x", true),
        ];
        for (selector, expected) in cases {
            assert_eq!(selected(&labels, selector), Ok(expected), "{selector}");
        }
        assert!(selected(&labels, "tier in (a,b)").is_err());
        assert_eq!(selected(&Value::Null, "!tier"), Ok(true));
    }

    #[test]
    fn requests_are_named_as_rbac_names_them() {
        let cases = [
            ("GET", "/api/v1/services", false, ("", "services", "list")),
            ("GET", "/api/v1/services", true, ("", "services", "watch")),
            (
                "GET",
                "/apis/discovery.k8s.io/v1/endpointslices",
                false,
                ("discovery.k8s.io", "endpointslices", "list"),
            ),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/default/events",
                false,
                ("events.k8s.io", "events", "create"),
            ),
            (
                "PATCH",
                "/apis/events.k8s.io/v1/namespaces/default/events/e1",
                false,
                ("events.k8s.io", "events", "patch"),
            ),
        ];
        for (method, path, watching, (group, resource, verb)) in cases {
            assert_eq!(
                access(method, path, watching),
                (group.to_owned(), resource.to_owned(), verb.to_owned()),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(decode("%21a%2Cb%3Dc"), "!a,b=c");
        assert_eq!(decode("100%"), "100%");
    }
}
