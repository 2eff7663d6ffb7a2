//! Benchmark of the daemon's IPVS sync (prints numbers, asserts no times):
//! N ClusterIP Services × 10 endpoints, from a `--from-dir` cluster
//! directory, in the VM. For each N, in a fresh network namespace:
//!
//! 1. full sync from empty: the daemon's first `sync done` (its `took_ms`),
//!    against `ipvsadm -R` of the same table (taken with `ipvsadm -Sn` from
//!    the daemon's namespace) into another fresh namespace;
//! 2. a no-op resync (the first periodic sync, nothing to do);
//! 3. one endpoint of one Service replaced: operations issued and sync time;
//! 4. the daemon's memory (`VmHWM`, `VmRSS`) at that scale;
//! 5. `/metrics` with the IPVS statistics per Service (the default): the
//!    time and size of a scrape that reads the kernel and of one right after
//!    it that shares that read; then, after the table reads below, the same
//!    with a daemon started with `--ipvs-stats=backends` on the same table.
//!
//! `tests/vm/run vmbench_daemon` runs N = 1,000 then 10,000 in one boot;
//! `tests/vm/run vmbench_daemon_1k` only the first.
//!
//! `vmbench_api_*` (`tests/vm/run vmbench_api_10k`) measure the same cluster served by the fake API server
//! (`testkit::apiserver`, listening in the daemon's namespace) beside the directory, in
//! the same boot: start to the first `sync done`, memory, and one EndpointSlice change to
//! the sync that applied it. The table is checked
//! to be complete after each step. Rate estimation is off in both
//! namespaces (`net.ipv4.vs.run_estimation=0`), as in `vmbench_ipvs`:
//! Linux 6.1's estimator timer walks every real server every 2 s, which
//! under TCG would measure the emulator.

use std::path::Path;
use std::time::{Duration, Instant};

use testkit::Netns;
use testkit::apiserver::FakeApiServer;
use testkit::cluster::Synthetic;
use testkit::daemon::{ClusterDir, Daemon, SyncDone};

const ENDPOINTS: u32 = 10;

/// Patience for one step at 10,000 Services under TCG.
const PATIENCE: Duration = Duration::from_secs(3600);

/// Waits for the first sync after the `skip` first ones that `accept`s;
/// returns its index and the sync.
fn wait_sync(
    daemon: &Daemon<'_>,
    what: &str,
    skip: usize,
    accept: impl Fn(&SyncDone) -> bool,
) -> (usize, SyncDone) {
    let found = || {
        daemon
            .sync_lines()
            .into_iter()
            .enumerate()
            .skip(skip)
            .find(|(_, s)| accept(s))
    };
    daemon.eventually_within(PATIENCE, what, || found().is_some());
    found().expect("seen a moment ago")
}

/// A namespace with its own, empty IPVS table.
fn namespace(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.sysctl("net.ipv4.vs.run_estimation", "0");
    ns
}

/// `ipvsadm -Sn` in `ns`, with its line counts: (virtual, real) servers.
fn saved(ns: &Netns) -> (String, usize, usize) {
    let text = ns.run(&[&testkit::tool("ipvsadm").display().to_string(), "-Sn"]);
    let virtual_servers = text.lines().filter(|l| l.starts_with("-A ")).count();
    let real_servers = text.lines().filter(|l| l.starts_with("-a ")).count();
    (text, virtual_servers, real_servers)
}

/// `GET /metrics` from the daemon in `node`, waiting up to 10 minutes for
/// the answer (a scrape that reads 100,000 real servers takes seconds).
fn scrape(node: &Netns) -> String {
    node.sh(&format!(
        "printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' | {} nc -w 600 127.0.0.1 10249",
        testkit::busybox().display()
    ))
}

/// Two scrapes of `/metrics` back to back (the first reads the kernel's
/// statistics, the second shares that read): their times, the first's body
/// size, and its number of IPVS statistics series.
fn scrapes(node: &Netns) -> (Duration, Duration, usize, usize) {
    let t = Instant::now();
    let first = scrape(node);
    let reading = t.elapsed();
    let t = Instant::now();
    scrape(node);
    let sharing = t.elapsed();
    let body = first.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let series = body
        .lines()
        .filter(|l| {
            l.starts_with("kube_ipvs_proxy_service_") || l.starts_with("kube_ipvs_proxy_backend_")
        })
        .count();
    (reading, sharing, body.len(), series)
}

fn scrape_line(
    detail: &str,
    (reading, sharing, bytes, series): (Duration, Duration, usize, usize),
) -> String {
    format!(
        "{detail}: {:.2} s reading, {:.3} s sharing, {:.1} MiB, {series} series",
        reading.as_secs_f64(),
        sharing.as_secs_f64(),
        bytes as f64 / (1024.0 * 1024.0)
    )
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn bench(services: u32) {
    testkit::modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
    let cluster = Synthetic {
        services,
        endpoints_per_service: ENDPOINTS,
        node_port_every: None,
    };
    let (vs, rs) = (services as usize, (services * ENDPOINTS) as usize);
    let dir = ClusterDir::new(&format!("bench-{services}"));
    let t = Instant::now();
    cluster.write_dir(dir.path());
    eprintln!(
        "BENCH daemon: {services} services x {ENDPOINTS} endpoints written in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // 1. Full sync from empty. The period is long enough that the periodic
    //    sync comes after the first one has settled.
    let node = namespace("bench-node");
    let started = Instant::now();
    let daemon = Daemon::start(
        &node,
        Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy")),
        &dir,
        &["--ipvs-sync-period", "20s", "--ipvs-min-sync-period", "0s"],
    );
    let (first_i, full) = wait_sync(&daemon, "the first sync", 0, |_| true);
    let startup = started.elapsed();
    eprintln!("BENCH daemon:   full sync {full:?}, {startup:.1?} after start");
    assert_eq!(
        full.applied.get("virtual_server").copied(),
        Some(vs as u64),
        "{full:?}"
    );
    assert_eq!(full.applied.get("real_server").copied(), Some(rs as u64));
    let (table, v, r) = saved(&node);
    assert_eq!((v, r), (vs, rs), "the table is incomplete");
    let after_full = daemon.memory_mib();

    // 2. The first periodic resync: nothing to do.
    let (noop_i, noop) = wait_sync(&daemon, "a periodic sync", first_i + 1, |s| {
        s.reason == "Periodic"
    });
    eprintln!("BENCH daemon:   no-op resync {noop:?}");
    assert_eq!(noop.ops(), 0, "a resync of an unchanged table changed it");
    let after_noop = daemon.memory_mib();

    // 3. One endpoint replaced: generation 1 shifts the slice's addresses by
    //    one, so one endpoint leaves and one arrives.
    let changed_at = Instant::now();
    cluster.write_slice(dir.path(), services / 2, 1);
    let (_, change) = wait_sync(&daemon, "the change's sync", noop_i + 1, |s| s.ops() > 0);
    let change_wall = changed_at.elapsed();
    eprintln!("BENCH daemon:   one endpoint change {change:?}, seen after {change_wall:.1?}");
    let (_, v, r) = saved(&node);
    // The leaving endpoint has no connection: deleted at once, as kube-proxy's
    // GracefulDeleteRS does.
    assert_eq!((v, r), (vs, rs), "one added, one deleted");

    // 4. Memory at that scale: VmHWM and VmRSS after each step, and the
    //    heap the daemon's allocator says it holds after each of those syncs.
    let (hwm, rss) = daemon.memory_mib();
    eprintln!(
        "BENCH daemon:   memory (VmHWM, VmRSS) MiB: after the full sync {after_full:.1?}, \
         the no-op resync {after_noop:.1?}, the change {:.1?}; heap in use after them \
         {:?}, {:?}, {:?} MiB",
        (hwm, rss),
        full.heap_mib,
        noop.heap_mib,
        change.heap_mib,
    );

    // 5. Scrapes with the statistics per Service.
    let per_service = scrapes(&node);
    assert_eq!(per_service.3, 5 * vs, "five counters per virtual server");
    daemon.stop();

    // Reading the whole table without the daemon: every virtual server
    // exactly with the crate (one dump each), the overview (what a periodic
    // sync reads, with one service dump), and `ipvsadm -Sn`.
    let t = Instant::now();
    let listed = node.enter(|| ipvs::Client::new().and_then(|mut c| c.list()));
    let crate_list = t.elapsed();
    assert_eq!(listed.expect("list the table").len(), vs);
    let t = Instant::now();
    let mut shown = 0;
    let overview = node.enter(|| ipvs::Client::new().and_then(|mut c| c.overview(|_| shown += 1)));
    let crate_overview = t.elapsed();
    overview.expect("read the overview");
    assert_eq!(shown, vs);
    // The kernel's share of the overview: the same file read and thrown away.
    let t = Instant::now();
    node.sh("cat /proc/net/ip_vs > /dev/null");
    let kernel_overview = t.elapsed();
    let t = Instant::now();
    let (_, v, _) = saved(&node);
    let ipvsadm_save = t.elapsed();
    assert_eq!(v, vs);

    // 5. The same table taken over by a daemon exporting every backend.
    let daemon = Daemon::start(
        &node,
        Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy")),
        &dir,
        &["--ipvs-sync-period", "600s", "--ipvs-stats=backends"],
    );
    wait_sync(&daemon, "the takeover's sync", 0, |_| true);
    let per_backend = scrapes(&node);
    let (_, v, r) = saved(&node);
    assert_eq!(v, vs);
    assert_eq!(
        per_backend.3,
        5 * vs + 7 * r,
        "five counters and two gauges per backend"
    );
    daemon.stop();

    // The same table with ipvsadm -R into a fresh namespace.
    let restore = dir.path().join("table.restore");
    std::fs::write(&restore, &table).expect("write the restore input");
    let tool_ns = namespace("bench-tool");
    let t = Instant::now();
    tool_ns.sh(&format!(
        "{} -R < {}",
        testkit::tool("ipvsadm").display(),
        restore.display()
    ));
    let ipvsadm = t.elapsed();
    assert_eq!(saved(&tool_ns).0, table, "ipvsadm -R made another table");

    let ratio = secs(full.took_ms) / ipvsadm.as_secs_f64();
    println!(
        "BENCH daemon: | {services:>6} | full sync {:8.2} s | ipvsadm -R {:8.2} s | ratio {ratio:.2} \
         | no-op resync {:7.2} s ({:.1}% of full) | one endpoint: {} ops {:?} in {:6.2} s \
         | VmHWM {hwm:.1} MiB, VmRSS {rss:.1} MiB | daemon start to first sync done {:.1} s \
         | table read: crate list {:.2} s, overview {:.2} s (cat: {:.2} s), ipvsadm -Sn {:.2} s \
         | scrape {}; {} |",
        secs(full.took_ms),
        ipvsadm.as_secs_f64(),
        secs(noop.took_ms),
        100.0 * noop.took_ms as f64 / full.took_ms.max(1) as f64,
        change.ops(),
        change.applied,
        secs(change.took_ms),
        startup.as_secs_f64(),
        crate_list.as_secs_f64(),
        crate_overview.as_secs_f64(),
        kernel_overview.as_secs_f64(),
        ipvsadm_save.as_secs_f64(),
        scrape_line("services", per_service),
        scrape_line("backends", per_backend),
    );
}

/// What one source cost the daemon: start to the first sync, that sync, memory after it,
/// one EndpointSlice change (wall time from the change to the sync that applied it, and
/// that sync) and memory after it.
#[derive(Debug)]
struct SourceRun {
    startup: Duration,
    full: SyncDone,
    after_full: (f64, f64),
    change_wall: Duration,
    change: SyncDone,
    after_change: (f64, f64),
}

/// Runs the daemon in a fresh namespace with `start`, waits for the first sync, then makes
/// one endpoint change with `change` and waits for its sync.
fn source_run<'n>(
    node: &'n Netns,
    start: impl FnOnce(&'n Netns) -> Daemon<'n>,
    change: impl FnOnce(),
) -> SourceRun {
    let started = Instant::now();
    let daemon = start(node);
    let (first_i, full) = wait_sync(&daemon, "the first sync", 0, |_| true);
    let startup = started.elapsed();
    let after_full = daemon.memory_mib();
    let changed_at = Instant::now();
    change();
    let (_, change) = wait_sync(&daemon, "the change's sync", first_i + 1, |s| s.ops() > 0);
    let change_wall = changed_at.elapsed();
    let after_change = daemon.memory_mib();
    daemon.stop();
    SourceRun {
        startup,
        full,
        after_full,
        change_wall,
        change,
        after_change,
    }
}

fn bench_api(services: u32) {
    testkit::modprobe(&["ip_vs", "ip_vs_rr", "dummy"]);
    let cluster = Synthetic {
        services,
        endpoints_per_service: ENDPOINTS,
        node_port_every: None,
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_kube-ipvs-proxy"));
    let periods = ["--ipvs-sync-period", "60s", "--ipvs-min-sync-period", "0s"];
    let changed = services / 2;

    let dir = ClusterDir::new(&format!("bench-api-{services}"));
    cluster.write_dir(dir.path());
    let dir_ns = namespace("bench-dir");
    let from_dir = source_run(
        &dir_ns,
        |ns| Daemon::start(ns, bin, &dir, &periods),
        || cluster.write_slice(dir.path(), changed, 1),
    );
    eprintln!("BENCH daemon api: directory {from_dir:?}");

    let api_ns = namespace("bench-api");
    let api = FakeApiServer::start(
        api_ns.enter(|| std::net::TcpListener::bind("127.0.0.1:0").expect("bind")),
    );
    cluster.serve(&api);
    let config = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig(config.path(), None);
    let from_api = source_run(
        &api_ns,
        |ns| Daemon::against_api(ns, bin, &kubeconfig, &periods),
        || cluster.serve_slice(&api, changed, 1),
    );
    eprintln!("BENCH daemon api: API server {from_api:?}");
    // The endpoint that left had no connection: deleted at once (kube-proxy's
    // GracefulDeleteRS), so the table holds exactly the new slice's.
    let (_, v, r) = saved(&api_ns);
    assert_eq!((v, r), (services as usize, (services * ENDPOINTS) as usize));

    for (source, run) in [("directory", &from_dir), ("API server", &from_api)] {
        println!(
            "BENCH daemon api: | {services:>6} | {source:<10} | start to first sync done {:7.2} s \
             (its took_ms {:7.2} s) | VmHWM, VmRSS after it {:.1?} MiB | one endpoint: seen \
             and applied after {:6.2} s (sync {:5.2} s) | after it {:.1?} MiB |",
            run.startup.as_secs_f64(),
            secs(run.full.took_ms),
            run.after_full,
            run.change_wall.as_secs_f64(),
            secs(run.change.took_ms),
            run.after_change,
        );
    }
    println!(
        "BENCH daemon api: | {services:>6} | API server / directory: start to first sync {:.2} |",
        from_api.startup.as_secs_f64() / from_dir.startup.as_secs_f64()
    );
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vmbench_api_1k_services() {
    bench_api(1_000);
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vmbench_api_10k_services() {
    bench_api(10_000);
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vmbench_daemon_1k_services() {
    bench(1_000);
}

#[test]
#[ignore = "vm: needs a kernel with IPVS; run tests/vm/run"]
fn vmbench_daemon_10k_services() {
    bench(10_000);
}
