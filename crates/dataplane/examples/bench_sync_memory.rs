//! Benchmark: the heap of the daemon's IPVS-mode pipeline over a whole sync cycle, without
//! IPVS: a synthetic cluster (default 10,000 Services x 10 endpoints) fed to the model, its
//! desired state, the names of the IPVS statistics, then IPVS mode's dataplane over the
//! in-memory tables (`fake`) on its own thread (`DataplaneThread`, as the daemon runs it):
//! a first (full) sync, a periodic sync with nothing to do, and one endpoint changed.
//! Counted exactly by a counting global allocator: the heap held after each step and the
//! most held during it; with the process's VmHWM/VmRSS, glibc's malloc set up as the
//! daemon sets it (one arena, `malloc_trim` after each sync). The in-memory tables hold
//! what the kernel would: their share is printed at the end, when the dataplane is dropped
//! and only they remain. Prints numbers, asserts nothing.
//!
//! Run: `cargo run --release -p dataplane --features fake --example bench_sync_memory [SERVICES] [ENDPOINTS]`

// The one unsafe thing here is the global allocator wrapper the measurement needs (it only
// forwards to the system allocator and counts bytes) and glibc's tuning calls.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use dataplane::fake::FakeIpvsDataplane;
use dataplane::ipvs::StatsNames;
use dataplane::{DataplaneThread, SyncSummary};
use desired::{Config, DesiredState, NodeInfo};
use model::{Kind, Model, Object, ProxyFilter, SourceEvent};
use testkit::cluster::Synthetic;

/// The system allocator, counting the bytes live and the most live since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(live, Relaxed);
        // SAFETY: as the caller's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: as the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// A `kB` line of `/proc/self/status`, in MiB.
fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        .map_or(0.0, |kib| mib(kib * 1024))
}

/// One step's figures: what it added to the heap, the heap's peak during it over what was
/// held before, the heap now, VmHWM and VmRSS.
struct Step {
    before: usize,
}

impl Step {
    fn start() -> Step {
        let before = LIVE.load(Relaxed);
        PEAK.store(before, Relaxed);
        Step { before }
    }

    fn print(self, name: &str) {
        let (live, peak) = (LIVE.load(Relaxed), PEAK.load(Relaxed));
        println!(
            "  {name:<34} {:+7.1} MiB (peak {:+6.1})  heap {:5.1}  VmHWM {:5.1}  VmRSS {:5.1}",
            mib(live) - mib(self.before),
            mib(peak) - mib(self.before),
            mib(live),
            status_mib("VmHWM:"),
            status_mib("VmRSS:"),
        );
    }
}

fn trim() {
    // SAFETY: malloc_trim takes an integer and only returns free memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn applied(summary: &SyncSummary) -> u64 {
    summary.applied.values().sum()
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Failure> {
    // As the daemon's `main`, before any thread starts: one malloc arena, no huge pages.
    // SAFETY: mallopt and prctl take integers and only change this process's tuning.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), Failure> {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u32>().expect("a number"));
    let cluster = Synthetic {
        services: args.next().unwrap_or(10_000),
        endpoints_per_service: args.next().unwrap_or(10),
        node_port_every: None,
    };
    println!(
        "heap, {} Services x {} endpoints (MiB; peak: the most held during the step):",
        cluster.services, cluster.endpoints_per_service
    );

    let step = Step::start();
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
    step.print("model");

    let step = Step::start();
    let info = NodeInfo::from_node(Synthetic::NODE, model.node(), &[]);
    let state = DesiredState::new(Config::default(), info, &model);
    step.print("desired state");
    let step = Step::start();
    let claims = state.claims().clone();
    step.print("  of which the claims (a copy)");
    drop(claims);

    let step = Step::start();
    let names = StatsNames::of(&state, None);
    step.print("IPVS statistics' names");

    let (fake, tables) = FakeIpvsDataplane::new();
    let dataplane = DataplaneThread::start(move || Ok::<_, Failure>(fake)).await?;
    let mut state = Arc::new(state);

    let step = Step::start();
    let started = Instant::now();
    let (summary, back) = dataplane.sync(state, false).await?;
    let took = started.elapsed();
    trim();
    step.print(&format!(
        "first sync ({} ops, {:.1} s)",
        applied(&summary),
        took.as_secs_f64()
    ));
    state = back;

    let step = Step::start();
    let started = Instant::now();
    let (summary, back) = dataplane.sync(state, true).await?;
    let took = started.elapsed();
    trim();
    step.print(&format!(
        "periodic sync ({} ops, {:.2} s)",
        applied(&summary),
        took.as_secs_f64()
    ));
    state = back;

    let step = Step::start();
    let mut slice = cluster.slice(0, 0);
    let moved = cluster.slice(0, cluster.endpoints_per_service);
    slice.endpoints[0] = moved.endpoints[0].clone();
    model.apply(SourceEvent::Applied(Object::EndpointSlice(Box::new(slice))));
    let changes = model.take_changes();
    let info = state.node().clone();
    Arc::get_mut(&mut state)
        .ok_or("the dataplane gave the state back")?
        .update(&model, &changes, &info);
    let started = Instant::now();
    let (summary, back) = dataplane.sync(state, false).await?;
    let took = started.elapsed();
    trim();
    step.print(&format!(
        "one endpoint ({} ops, {:.2} s)",
        applied(&summary),
        took.as_secs_f64()
    ));
    state = back;

    let step = Step::start();
    dataplane.stop().await;
    step.print("the dataplane dropped");
    let step = Step::start();
    let kernel = tables.virtual_servers().len();
    drop(tables);
    step.print(&format!("the in-memory kernel dropped ({kernel} vs)"));
    drop((state, names, model));
    Ok(())
}
