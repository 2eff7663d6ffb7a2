//! Real traffic for the end-to-end tiers: backends that answer (HTTP, a UDP
//! responder, a TCP echo) and the clients that talk to them through the proxy.
//!
//! Backends that answer *their own address* let a test tell which real server
//! IPVS picked: [`serve_name`] over HTTP, [`UdpResponder`] over UDP.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Netns, busybox};

/// How long a client waits for an answer. Generous: the VM runs under TCG.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// `addr` as an IP address.
///
/// # Panics
/// When it is not one.
fn parse_ip(addr: &str) -> IpAddr {
    addr.parse()
        .unwrap_or_else(|e| panic!("{addr:?} is not an IP address: {e}"))
}

/// Waits until something in `ns` listens on TCP `port` (on `addr`, when
/// given).
///
/// # Panics
/// When nothing listens within 5 seconds.
fn wait_listening(ns: &Netns, addr: Option<&str>, port: u16) {
    let local = format!("{}:{port} ", addr.unwrap_or(""));
    let probe = format!("{} netstat -ltn | grep -qF '{local}'", busybox().display());
    for _ in 0..50 {
        if ns.try_run(&["sh", "-c", &probe]).status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing in {} listens on {local}", ns.name());
}

/// Serves `body` over HTTP (busybox httpd) from `ns`, on `addr:port` or on
/// every address, and waits until it listens.
fn serve_http_on(ns: &Netns, addr: Option<&str>, port: u16, body: &str) {
    let tag = addr.unwrap_or("any").replace(':', "_");
    let dir = std::env::temp_dir().join(format!("{}-www-{tag}-{port}", ns.name()));
    std::fs::create_dir_all(&dir).expect("create the web root");
    std::fs::write(dir.join("index.html"), body).expect("write the page");
    let listen = match addr {
        Some(a) if a.contains(':') => format!("[{a}]:{port}"),
        Some(a) => format!("{a}:{port}"),
        None => port.to_string(),
    };
    let bb = busybox().display().to_string();
    ns.spawn(&[
        &bb,
        "httpd",
        "-f",
        "-p",
        &listen,
        "-h",
        &dir.display().to_string(),
    ]);
    wait_listening(ns, addr, port);
}

/// Serves `body` over HTTP on `port` (every address) from `ns` (busybox
/// httpd) and waits until it listens.
///
/// # Panics
/// When the server does not listen within 5 seconds.
pub fn serve_http(ns: &Netns, port: u16, body: &str) {
    serve_http_on(ns, None, port, body);
}

/// A backend answering its own name: serves `addr` itself as the page on
/// `addr:port`, so [`http_body`] tells which real server answered.
///
/// # Panics
/// When the server does not listen within 5 seconds.
pub fn serve_name(ns: &Netns, addr: &str, port: u16) {
    serve_http_on(ns, Some(addr), port, addr);
}

/// Sends `GET /` from `ns` to `addr:port` (3 s timeout) and returns the whole
/// response, or `None` when the connection failed or nothing came back.
pub fn http_get(ns: &Netns, addr: &str, port: u16) -> Option<String> {
    let script = format!(
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | {} nc -w 3 {addr} {port}",
        busybox().display()
    );
    let out = ns.try_run(&["sh", "-c", &script]);
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && !body.is_empty()).then_some(body)
}

/// `GET path` over a new connection to `target` from the calling thread's
/// namespace (run it in [`Netns::enter`]), with 3 s timeouts: the whole
/// response, or the error of the connection (e.g. `ConnectionRefused`) or of
/// the exchange.
pub fn http_request(target: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&target, ANSWER_TIMEOUT)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

/// The body of `GET /` from `ns` to `addr:port`, e.g. the address of the
/// [`serve_name`] backend that answered.
///
/// # Panics
/// When no response comes back.
pub fn http_body(ns: &Netns, addr: &str, port: u16) -> String {
    let reply =
        http_get(ns, addr, port).unwrap_or_else(|| panic!("no HTTP reply from {addr}:{port}"));
    let (_, body) = reply
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {reply:?}"));
    body.trim().to_owned()
}

/// A UDP backend in a namespace that answers every datagram with a fixed
/// reply (e.g. its own address), until dropped.
#[derive(Debug)]
pub struct UdpResponder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpResponder {
    /// Binds `addr:port` inside `ns` and answers with `addr` itself, so
    /// [`udp_ask`] tells which real server answered. Bound to the address,
    /// not the wildcard, so replies leave from the address that was asked.
    ///
    /// # Panics
    /// When `addr` is not an IP address or cannot be bound.
    pub fn answering_name(ns: &Netns, addr: &str, port: u16) -> Self {
        let ip = parse_ip(addr);
        let socket = ns.enter(|| {
            UdpSocket::bind((ip, port))
                .unwrap_or_else(|e| panic!("bind UDP {addr}:{port} in {}: {e}", ns.name()))
        });
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set the responder's read timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let reply = addr.to_owned();
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                        let _ = socket.send_to(reply.as_bytes(), peer);
                    }
                }
            }
        });
        UdpResponder {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for UdpResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends one datagram from `ns` to `addr:port` from a fresh socket (so a
/// fresh source port: a new IPVS connection) and returns the reply, or `None`
/// when none came from `addr:port` within 3 seconds.
///
/// # Panics
/// When `addr` is not an IP address or no socket can be opened.
pub fn udp_ask(ns: &Netns, addr: &str, port: u16) -> Option<String> {
    let ip = parse_ip(addr);
    let any: IpAddr = match ip {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    ns.enter(|| {
        let socket = UdpSocket::bind((any, 0)).expect("bind a UDP client socket");
        socket
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .expect("set the client's read timeout");
        // Connected: only a reply from `addr:port` itself is taken, so a
        // proxy's reply proves it translated the source back.
        socket
            .connect(SocketAddr::new(ip, port))
            .unwrap_or_else(|e| panic!("connect to {addr}:{port}: {e}"));
        socket
            .send(b"who?")
            .unwrap_or_else(|e| panic!("send to {addr}:{port}: {e}"));
        let mut buf = [0u8; 1500];
        let n = socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
}

/// Serves a TCP echo (busybox `nc -ll -e cat`) on `port` of every address of
/// `ns`, one process per connection, and waits until it listens.
///
/// # Panics
/// When the server does not listen within 5 seconds.
pub fn serve_echo(ns: &Netns, port: u16) {
    let bb = busybox().display().to_string();
    ns.spawn(&[&bb, "nc", "-ll", "-p", &port.to_string(), "-e", "cat"]);
    wait_listening(ns, None, port);
}

/// A long-lived TCP connection to a [`serve_echo`] backend, opened from a
/// client namespace through the proxy; [`EchoConn::check`] proves it still
/// carries data. Closed when dropped.
#[derive(Debug)]
pub struct EchoConn {
    stream: TcpStream,
    target: String,
}

impl EchoConn {
    /// Connects from `ns` to `addr:port`.
    ///
    /// # Panics
    /// When the connection cannot be made.
    pub fn open(ns: &Netns, addr: &str, port: u16) -> Self {
        let ip = parse_ip(addr);
        let stream = ns.enter(|| {
            TcpStream::connect_timeout(&SocketAddr::new(ip, port), ANSWER_TIMEOUT)
                .unwrap_or_else(|e| panic!("connect to {addr}:{port} from {}: {e}", ns.name()))
        });
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set the connection's read timeout");
        EchoConn {
            stream,
            target: format!("{addr}:{port}"),
        }
    }

    /// Sends `msg` and reads it back.
    ///
    /// # Panics
    /// When the connection broke (error, timeout or a different answer).
    pub fn check(&mut self, msg: &str) {
        let target = &self.target;
        self.stream
            .write_all(msg.as_bytes())
            .unwrap_or_else(|e| panic!("the connection to {target} broke ({msg:?}): {e}"));
        let mut buf = vec![0; msg.len()];
        self.stream
            .read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("the connection to {target} broke ({msg:?}): {e}"));
        assert_eq!(
            String::from_utf8_lossy(&buf),
            msg,
            "wrong echo from {target}"
        );
    }
}
