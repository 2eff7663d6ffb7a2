//! Benchmark (prints numbers, asserts no times): the same synthetic cluster, N ClusterIP
//! Services × 10 endpoints, read by the daemon from the fake API server
//! (`testkit::apiserver`) and from a `--from-dir` directory, in the same run. Both with
//! `--dry-run` in the IPVS mode, which lists the whole cluster, computes the desired state,
//! prints it (to /dev/null) and exits: wall time from start to exit, the daemon's CPU time
//! (user + system) and its peak resident set (`/usr/bin/time`'s maximum RSS). No kernel
//! state is touched, so it runs on this host.
//!
//! Also the dry run of one JSON List file in `kubectl get svc,endpointslices -A -o json`'s
//! shape, its peak RSS against the file's size; with `KIPX_BASELINE_BIN=PATH` (another
//! build of the daemon) the same file is read by that build too, alternated, for a
//! before/after in one run.
//!
//! `tests/netns/run netns_bench_api -- --nocapture`

use std::net::TcpListener;
use std::process::Command;

use testkit::apiserver::FakeApiServer;
use testkit::cluster::Synthetic;
use testkit::daemon::ClusterDir;

const ENDPOINTS: u32 = 10;
const RUNS: usize = 3;

const DAEMON: &str = env!("CARGO_BIN_EXE_kube-ipvs-proxy");

/// One `--dry-run` of the daemon with `source` arguments, which must program one virtual
/// server per Service: (seconds, peak RSS in MiB, CPU seconds).
fn dry_run(source: &[&str], services: u32) -> (f64, f64, f64) {
    dry_run_of(DAEMON, source, services)
}

/// [`dry_run`] of the daemon at `bin`, which must program `services` virtual servers.
fn dry_run_of(bin: &str, source: &[&str], services: u32) -> (f64, f64, f64) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "BENCH-TIME %e %M %U %S"])
        .arg(bin)
        .args(source)
        .args(["--dry-run", "--hostname-override", Synthetic::NODE])
        .output()
        .expect("run the daemon under /usr/bin/time");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dry run failed: {stderr}");
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("BENCH-TIME "))
        .unwrap_or_else(|| panic!("no time in {stderr}"));
    let figures: Vec<f64> = line
        .split_whitespace()
        .map(|f| f.parse().expect("a number"))
        .collect();
    let [wall, kib, user, system] = figures[..] else {
        panic!("four figures expected: {line}")
    };
    // Every Service read: one virtual server each in the dry run's ipvsadm -Sn block.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let virtual_servers = stdout.lines().filter(|l| l.starts_with("-A -t ")).count();
    assert_eq!(virtual_servers, services as usize, "{bin}: {stderr}");
    (wall, kib / 1024.0, user + system)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(services: u32) {
    let cluster = Synthetic {
        services,
        endpoints_per_service: ENDPOINTS,
        node_port_every: None,
    };
    let dir = ClusterDir::new(&format!("bench-api-{services}"));
    cluster.write_dir(dir.path());
    let api = FakeApiServer::start(TcpListener::bind("127.0.0.1:0").expect("bind"));
    cluster.serve(&api);
    let config = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.kubeconfig(config.path(), None);
    let kubeconfig = kubeconfig.display().to_string();
    let dir_path = dir.path().display().to_string();
    let (mut api_runs, mut dir_runs) = (Vec::new(), Vec::new());
    // Alternated, so that the host's load weighs on both alike.
    for _ in 0..RUNS {
        api_runs.push(dry_run(&["--kubeconfig", &kubeconfig], services));
        dir_runs.push(dry_run(&["--from-dir", &dir_path], services));
    }
    let secs = |runs: &[(f64, f64, f64)]| median(runs.iter().map(|r| r.0).collect());
    let rss = |runs: &[(f64, f64, f64)]| median(runs.iter().map(|r| r.1).collect());
    let cpu = |runs: &[(f64, f64, f64)]| median(runs.iter().map(|r| r.2).collect());
    let (a, d) = (secs(&api_runs), secs(&dir_runs));
    println!(
        "BENCH api: | {services:>6} x {ENDPOINTS} | dry run, API server {a:6.2} s, directory {d:6.2} s, \
         ratio {:.2} | daemon CPU, API server {:6.2} s, directory {:6.2} s | peak RSS, API server \
         {:6.1} MiB, directory {:6.1} MiB | runs (wall, RSS, CPU) {api_runs:?} / {dir_runs:?} |",
        a / d,
        cpu(&api_runs),
        cpu(&dir_runs),
        rss(&api_runs),
        rss(&dir_runs),
    );
    println!(
        "BENCH api: fake API server requests: {} lists of Services, {} of EndpointSlices",
        api.count("list", "services"),
        api.count("list", "endpointslices")
    );
}

#[test]
#[ignore = "netns: benchmark; run tests/netns/run netns_bench_api"]
fn netns_bench_api_1k_services() {
    bench(1_000);
}

#[test]
#[ignore = "netns: benchmark; run tests/netns/run netns_bench_api"]
fn netns_bench_api_10k_services() {
    bench(10_000);
}

/// The dry run of one JSON List file of `cluster` (indented by `indent`), by this build
/// and, when given, by `baseline` too, alternated: the median (seconds, peak RSS in MiB) of
/// each, printed beside the file's size.
fn bench_list(cluster: &Synthetic, indent: &str, baseline: Option<&str>) {
    let dir = ClusterDir::new("bench-list");
    let bytes = cluster.write_list(&dir.path().join("cluster.json"), indent);
    let mib = bytes as f64 / f64::from(1 << 20);
    let dir_path = dir.path().display().to_string();
    let source = ["--from-dir", dir_path.as_str()];
    let (mut runs, mut baseline_runs) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        runs.push(dry_run(&source, cluster.services));
        if let Some(bin) = baseline {
            baseline_runs.push(dry_run_of(bin, &source, cluster.services));
        }
    }
    let shape = if indent.is_empty() {
        "on one line".to_owned()
    } else {
        format!("indented by {}", indent.len())
    };
    let report = |who: &str, runs: &[(f64, f64, f64)]| {
        let secs = median(runs.iter().map(|r| r.0).collect());
        let rss = median(runs.iter().map(|r| r.1).collect());
        let cpu = median(runs.iter().map(|r| r.2).collect());
        println!(
            "BENCH list: {who}: one JSON List of {mib:.1} MiB ({} x {ENDPOINTS}, {shape}): \
             dry run {secs:.2} s, CPU {cpu:.2} s, peak RSS {rss:.1} MiB = {:.2} x the file | \
             runs (wall, RSS, CPU) {runs:?}",
            cluster.services,
            rss / mib
        );
        (secs, cpu, rss)
    };
    let (secs, cpu, rss) = report("this build", &runs);
    if let Some(bin) = baseline {
        let (base_secs, base_cpu, base_rss) = report(bin, &baseline_runs);
        println!(
            "BENCH list: this build / baseline: time {:.2}, CPU {:.2}, peak RSS {:.2}",
            secs / base_secs,
            cpu / base_cpu,
            rss / base_rss
        );
    }
}

/// 6,500 Services in kubectl's four-space indentation (30 MiB), then 10,000 on one line
/// (17 MiB) and indented (47 MiB); each beside `KIPX_BASELINE_BIN` when given.
#[test]
#[ignore = "netns: benchmark; run tests/netns/run netns_bench_api"]
fn netns_bench_api_json_list() {
    let cluster = |services| Synthetic {
        services,
        endpoints_per_service: ENDPOINTS,
        node_port_every: None,
    };
    let baseline = std::env::var("KIPX_BASELINE_BIN").ok();
    bench_list(&cluster(6_500), "    ", baseline.as_deref());
    bench_list(&cluster(10_000), "", baseline.as_deref());
    bench_list(&cluster(10_000), "    ", baseline.as_deref());
}
