//! Benchmark: the heap of the daemon's IPVS-mode pipeline over a whole sync cycle, without
//! IPVS: a synthetic cluster (default 10,000 Services x 10 endpoints) written as a directory
//! and read by the directory source into the model, as `--from-dir` does; its desired state;
//! the names of the IPVS statistics; then IPVS mode's dataplane over the in-memory tables
//! (`fake`) on its own thread (`DataplaneThread`, as the daemon runs it): a first (full)
//! sync, a periodic sync with nothing to do, and one endpoint changed (the change taken into
//! the model, the desired state and the statistics' names, then its sync). Counted exactly by a
//! counting global allocator: what each step adds to the heap and the most held during it;
//! with the process's VmHWM/VmRSS, glibc's malloc set up as the daemon sets it (one arena,
//! no huge pages, `malloc_trim` after each sync). The in-memory tables hold what the kernel
//! would: their share is printed at the end, when the dataplane is dropped and only they
//! remain. Prints numbers, asserts nothing.
//!
//! Run: `cargo run --release -p dataplane --features fake --example bench_sync_memory [SERVICES] [ENDPOINTS]`

// glibc's tuning calls, as the daemon's `main` makes them.
#![allow(unsafe_code)]

use std::sync::Arc;
use std::time::Instant;

use dataplane::DataplaneThread;
use dataplane::fake::FakeIpvsDataplane;
use dataplane::ipvs::StatsNames;
use desired::{Config, DesiredState, NodeInfo};
use model::{Model, Object, ProxyFilter, SourceEvent};
use testkit::cluster::Synthetic;
use testkit::counting::{Counting, live, peak, reset_peak};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

type Failure = Box<dyn std::error::Error + Send + Sync>;

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

/// One step: the heap before it, its peak counted from there.
struct Step {
    before: usize,
}

impl Step {
    fn start() -> Step {
        reset_peak();
        Step { before: live() }
    }

    /// What the step added to the heap, the most it held over what was there before, the
    /// heap now, VmHWM and VmRSS.
    fn print(self, name: &str) {
        println!(
            "  {name:<36} {:+7.1} MiB (peak {:+6.1})  heap {:5.1}  VmHWM {:5.1}  VmRSS {:5.1}",
            mib(live()) - mib(self.before),
            mib(peak()) - mib(self.before),
            mib(live()),
            status_mib("VmHWM:"),
            status_mib("VmRSS:"),
        );
    }
}

/// One sync of `state` on the dataplane's thread, trimmed after as the daemon does, printed
/// as a step; returns the state the thread gives back.
async fn sync(
    dataplane: &DataplaneThread<FakeIpvsDataplane>,
    state: Arc<DesiredState>,
    full: bool,
    name: &str,
) -> Result<Arc<DesiredState>, Failure> {
    let step = Step::start();
    let started = Instant::now();
    let (summary, state) = dataplane.sync(state, full).await?;
    let took = started.elapsed().as_secs_f64();
    // SAFETY: malloc_trim takes an integer and only returns free memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
    let ops: u64 = summary.applied.values().sum();
    step.print(&format!("{name} ({ops} ops, {took:.2} s)"));
    Ok(state)
}

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
    let cluster = Synthetic::from_args();
    println!(
        "heap, {} Services x {} endpoints (MiB; peak: the most held during the step):",
        cluster.services, cluster.endpoints_per_service
    );
    let dir = std::env::temp_dir().join(format!("kipx-bench-sync-memory-{}", std::process::id()));
    cluster.write_dir(&dir);

    let step = Step::start();
    let mut model = Model::new(ProxyFilter::default(), Some(Synthetic::NODE.into())).without_pods();
    let index = model::source::dir::stream(&dir, |events| {
        for event in events {
            model.apply(event);
        }
    })?;
    let _ = model.take_changes();
    let _ = model.take_pending();
    step.print("model and the directory's index");

    let step = Step::start();
    let info = NodeInfo::from_node(Synthetic::NODE, model.node(), &[]);
    let state = DesiredState::new(Config::default(), info, &model);
    step.print("desired state");
    let step = Step::start();
    let claims = state.claims().clone();
    step.print("  of which the claims (a copy)");
    drop(claims);

    let step = Step::start();
    let mut names = StatsNames::of(&state, None);
    step.print("IPVS statistics' names");

    let (fake, tables) = FakeIpvsDataplane::new();
    let dataplane = DataplaneThread::start(move || Ok::<_, Failure>(fake)).await?;
    let state = sync(&dataplane, Arc::new(state), false, "first sync").await?;
    let mut state = sync(&dataplane, state, true, "periodic sync").await?;

    // The change taken as the daemon takes it: the model, the desired state, and the
    // statistics' names when they no longer name the virtual servers.
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
    if !names.is_of(&state) {
        names = StatsNames::of(&state, None);
    }
    step.print("one endpoint, taken");
    let state = sync(&dataplane, state, false, "one endpoint, synced").await?;

    let step = Step::start();
    dataplane.stop().await;
    step.print("the dataplane dropped");
    let step = Step::start();
    drop(tables);
    step.print("the in-memory kernel dropped");
    drop((state, names, model, index));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
