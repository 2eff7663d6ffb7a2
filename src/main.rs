//! `kube-ipvs-proxy`: a Kubernetes service proxy that programs the kernel's IPVS.
//!
//! The daemon's pipeline (sources → model → desired state → diff → kernel) is
//! built up by the issues that follow the foundation; see `docs/architecture.md`.

#[allow(dead_code)] // wired into the sync loop when the dataplane lands
mod health;
#[allow(dead_code)]
mod metrics;
#[allow(dead_code)]
mod runner;
#[allow(dead_code)]
mod server;

use clap::Parser;

/// Command-line interface of the daemon.
#[derive(Debug, Parser)]
#[command(name = "kube-ipvs-proxy", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    tracing::error!("the daemon has no dataplane yet; see the project's issues");
    std::process::exit(1);
}
