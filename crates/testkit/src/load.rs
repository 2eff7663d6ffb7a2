//! Continuous load through the proxy, small and deterministic, on std threads: new TCP
//! connections and UDP requests at a steady rate to each target, and long-lived TCP
//! connections that exchange a line every second, all from a client namespace; every
//! outcome is counted in the *phase* it started in, which the test advances
//! ([`Load::next_phase`]). The backends are [`EchoServer`]s, one per address and port, so
//! that stopping one is stopping one Pod.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Netns;

/// How long a request may take before it counts as failed. The VM runs under TCG, where
/// an echo on a loaded host has taken over 3 s; a connection the proxy broke is reset or
/// never answers, which this still catches.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The line every request and every exchange sends, echoed back.
const LINE: &[u8] = b"ping\n";

/// A TCP echo server bound to one address and port of a namespace, a thread per
/// connection, until dropped: then it stops listening and closes every connection, as a
/// Pod's process that exits.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// Listens on `addr` inside `ns`.
    ///
    /// # Panics
    /// When the address cannot be bound.
    pub fn start(ns: &Netns, addr: SocketAddr) -> Self {
        let listener = ns.enter(|| {
            TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr} in {}: {e}", ns.name()))
        });
        listener
            .set_nonblocking(true)
            .expect("make the listener non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let thread = std::thread::spawn({
            let (stop, conns) = (Arc::clone(&stop), Arc::clone(&conns));
            move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            if let Ok(copy) = stream.try_clone() {
                                lock(&conns).push(copy);
                            }
                            std::thread::spawn(move || echo(stream));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            }
        });
        EchoServer {
            addr,
            stop,
            conns,
            thread: Some(thread),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        for conn in lock(&self.conns).drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Echoes what comes in until the peer or the server closes.
fn echo(mut stream: TcpStream) {
    let mut buf = [0u8; 512];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Where the load goes.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// A new TCP connection per request: connect, send a line, read it back, close.
    Tcp(SocketAddr),
    /// A UDP request from a fresh socket (a new IPVS connection): any answer counts.
    Udp(SocketAddr),
}

/// What happened in one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseCounts {
    /// Requests started (TCP and UDP).
    pub sent: u64,
    /// Requests that got no right answer in time.
    pub failed: u64,
    /// Exchanges on the long-lived connections.
    pub exchanges: u64,
    /// Long-lived connections found broken (each is then opened again).
    pub broken: u64,
}

/// The counts of every phase, shared by the load's threads.
#[derive(Debug)]
struct Tally {
    phase: AtomicUsize,
    stop: AtomicBool,
    counts: Mutex<Vec<PhaseCounts>>,
}

impl Tally {
    fn count(&self, phase: usize, add: impl FnOnce(&mut PhaseCounts)) {
        let mut counts = lock(&self.counts);
        if counts.len() <= phase {
            counts.resize(phase + 1, PhaseCounts::default());
        }
        add(&mut counts[phase]);
    }
}

/// Load running from a client namespace.
#[derive(Debug)]
pub struct Load {
    tally: Arc<Tally>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts, from `ns`, a request every `interval` to each of `targets` and one long-lived
    /// connection to each of `long` exchanging a line every second, all counted in phase 0.
    ///
    /// # Panics
    /// When a thread cannot enter the namespace.
    pub fn start(ns: &Netns, targets: &[Target], long: &[SocketAddr], interval: Duration) -> Self {
        let tally = Arc::new(Tally {
            phase: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            counts: Mutex::new(vec![PhaseCounts::default()]),
        });
        // Threads spawned by a thread inside the namespace are inside it too.
        let threads = ns.enter(|| {
            let requests = targets.iter().map(|&target| {
                let tally = Arc::clone(&tally);
                std::thread::spawn(move || requests(&tally, target, interval))
            });
            let conns = long.iter().map(|&addr| {
                let tally = Arc::clone(&tally);
                std::thread::spawn(move || long_lived(&tally, addr))
            });
            requests.chain(conns).collect()
        });
        Load { tally, threads }
    }

    /// Counts what starts from now on in the next phase.
    pub fn next_phase(&self) {
        self.tally.phase.fetch_add(1, Ordering::SeqCst);
    }

    /// Stops the load (waiting for what is under way) and returns the counts, phase by phase.
    pub fn stop(self) -> Vec<PhaseCounts> {
        self.tally.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            let _ = thread.join();
        }
        let phases = self.tally.phase.load(Ordering::SeqCst) + 1;
        let mut counts = lock(&self.tally.counts).clone();
        counts.resize(phases, PhaseCounts::default());
        counts
    }
}

/// One request every `interval` until stopped.
fn requests(tally: &Tally, target: Target, interval: Duration) {
    while !tally.stop.load(Ordering::SeqCst) {
        let phase = tally.phase.load(Ordering::SeqCst);
        let ok = match target {
            Target::Tcp(addr) => tcp_request(addr).is_ok(),
            Target::Udp(addr) => udp_request(addr).is_ok(),
        };
        tally.count(phase, |c| {
            c.sent += 1;
            c.failed += u64::from(!ok);
        });
        std::thread::sleep(interval);
    }
}

fn tcp_request(addr: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    exchange(&mut stream)
}

/// Sends [`LINE`] and reads it back.
fn exchange(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.write_all(LINE)?;
    let mut back = [0u8; LINE.len()];
    stream.read_exact(&mut back)?;
    if back == LINE {
        Ok(())
    } else {
        Err(std::io::Error::other("a wrong echo"))
    }
}

fn udp_request(addr: SocketAddr) -> std::io::Result<()> {
    let any: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(std::io::Error::other)?;
    let socket = UdpSocket::bind(any)?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    socket.connect(addr)?;
    socket.send(LINE)?;
    let mut buf = [0u8; 1500];
    socket.recv(&mut buf).map(drop)
}

/// A connection to `addr` exchanging a line every second; when it breaks, counted and
/// opened again.
fn long_lived(tally: &Tally, addr: SocketAddr) {
    let mut conn = TcpStream::connect_timeout(&addr, TIMEOUT).ok();
    while !tally.stop.load(Ordering::SeqCst) {
        let phase = tally.phase.load(Ordering::SeqCst);
        let ok = conn.as_mut().is_some_and(|c| exchange(c).is_ok());
        tally.count(phase, |c| {
            c.exchanges += 1;
            c.broken += u64::from(!ok);
        });
        if !ok {
            conn = TcpStream::connect_timeout(&addr, TIMEOUT).ok();
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
