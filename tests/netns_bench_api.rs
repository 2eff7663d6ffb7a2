//! Benchmark (prints numbers, asserts no times): the same synthetic cluster, N ClusterIP
//! Services × 10 endpoints, read by the daemon from the fake API server
//! (`testkit::apiserver`) and from a `--from-dir` directory, in the same run. Both with
//! `--dry-run` in the IPVS mode, which lists the whole cluster, computes the desired state,
//! prints it (to /dev/null) and exits: wall time from start to exit, the daemon's CPU time
//! (user + system) and its peak resident set (`/usr/bin/time`'s maximum RSS). No kernel
//! state is touched, so it runs on this host.
//!
//! `tests/netns/run netns_bench_api -- --nocapture`

use std::net::TcpListener;
use std::process::Command;

use testkit::apiserver::FakeApiServer;
use testkit::cluster::Synthetic;
use testkit::daemon::ClusterDir;

const ENDPOINTS: u32 = 10;
const RUNS: usize = 3;

/// One `--dry-run` of the daemon with `source` arguments: (seconds, peak RSS in MiB, CPU
/// seconds).
fn dry_run(source: &[&str]) -> (f64, f64, f64) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "BENCH-TIME %e %M %U %S"])
        .arg(env!("CARGO_BIN_EXE_kube-ipvs-proxy"))
        .args(source)
        .args(["--dry-run", "--hostname-override", Synthetic::NODE])
        .stdout(std::process::Stdio::null())
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
        api_runs.push(dry_run(&["--kubeconfig", &kubeconfig]));
        dir_runs.push(dry_run(&["--from-dir", &dir_path]));
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
