//! `ipvsctl-rs`: the IPVS inspection CLI.

use clap::Parser;

/// Command-line interface of `ipvsctl-rs`.
#[derive(Debug, Parser)]
#[command(name = "ipvsctl-rs", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!("ipvsctl-rs: no commands yet");
    std::process::exit(1);
}
