//! Prints the IPVS table of the current network namespace the way
//! `ipvsadm -Ln` does, from one services dump and one destinations dump
//! per service.
//!
//! ```sh
//! cargo run -p ipvs --example list          # as root, with ip_vs loaded
//! cargo run -p ipvs --example list -- json  # the same as JSON
//! ```

use std::process::ExitCode;

use ipvs::{Client, Error};

fn main() -> ExitCode {
    match run(std::env::args().nth(1).as_deref() == Some("json")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("list: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(json: bool) -> Result<(), Error> {
    let mut ipvs = Client::new()?;
    let table = ipvs.list()?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&table).unwrap_or_default()
        );
        return Ok(());
    }
    let info = ipvs.info()?;
    println!(
        "IP Virtual Server version {} (size={})",
        info.version, info.connection_table_size
    );
    println!("Prot LocalAddress:Port Scheduler Flags");
    println!("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn");
    for entry in table {
        let svc = &entry.service.service;
        let mut line = format!("{} {}", svc.key, svc.scheduler);
        if let Some(p) = svc.persistence {
            line += &format!(" persistent {}", p.timeout);
        }
        println!("{line}");
        for d in entry.destinations {
            println!(
                "  -> {:<28} {:<7} {:<6} {:<10} {}",
                d.destination.to_string(),
                d.destination.forward.to_string(),
                d.destination.weight,
                d.active_connections,
                d.inactive_connections
            );
        }
    }
    Ok(())
}
