//! `ipvsctl-rs`: inspect and edit the kernel's IPVS tables, a drop-in for
//! `ipvsadm` (same text formats) with JSON, filters and `watch`.
//!
//! Exit status: 0 on success, 1 when the operation failed (no IPVS in the
//! kernel, permission denied, a kernel error, a bad restore input), 2 for
//! bad arguments.

mod cli;
mod compat;
mod conns;
mod etc_services;
mod filter;
mod format;
mod json;
mod modules;
mod names;
mod naming;
mod progress;
mod restore;
mod reverse_lookup;
mod rollback;
mod run;
mod save_lines;
mod sort;
mod spec;
mod values;
mod watch;

#[cfg(test)]
mod testdata;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, ListArgs};
use crate::spec::UsageError;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Without arguments ipvsadm lists the table with names, as `-L` does.
    let args = if args.is_empty() {
        vec!["-L".to_owned()]
    } else {
        args
    };
    let args = if compat::is_ipvsadm_form(&args) {
        match compat::rewrite(&args) {
            Ok(a) => a,
            Err(e) => return usage_error(&e),
        }
    } else {
        args
    };
    let cli = Cli::try_parse_from(std::iter::once("ipvsctl-rs".to_owned()).chain(args))
        .unwrap_or_else(|e| e.exit());
    let command = cli.command.unwrap_or(Command::List(ListArgs::default()));
    let mut stdout = std::io::stdout().lock();
    match run::execute(command, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn usage_error(e: &UsageError) -> ExitCode {
    eprintln!("ipvsctl-rs: {e}\nTry 'ipvsctl-rs --help' for more information.");
    ExitCode::from(2)
}

/// Explains a failure in one line (two when a pointer helps) and picks the
/// exit status.
fn report(e: &anyhow::Error) -> ExitCode {
    if let Some(usage) = e.downcast_ref::<UsageError>() {
        return usage_error(usage);
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>()
        && io.kind() == std::io::ErrorKind::BrokenPipe
    {
        return ExitCode::SUCCESS;
    }
    match e.downcast_ref::<ipvs::Error>() {
        Some(ipvs::Error::NotAvailable) => {
            eprintln!(
                "ipvsctl-rs: IPVS is not available in this kernel (no \"IPVS\" generic netlink family: \
                 the ip_vs module is not loaded and could not be loaded)"
            );
            if kube_iptables_rules() {
                eprintln!(
                    "ipvsctl-rs: this node has kube-proxy iptables rules: services are served by \
                     iptables here, see `iptables-save -t nat`"
                );
            }
        }
        Some(err) if err.kind() == Some(ipvs::ErrorKind::PermissionDenied) => {
            eprintln!(
                "ipvsctl-rs: permission denied: IPVS needs CAP_NET_ADMIN, even to read (run as root)"
            );
        }
        _ => eprintln!("ipvsctl-rs: {e:#}"),
    }
    ExitCode::from(1)
}

/// Whether the nat table has chains of kube-proxy's (or our fallback's)
/// iptables mode. Best effort: no iptables, no pointer.
fn kube_iptables_rules() -> bool {
    std::process::Command::new("iptables-save")
        .args(["-t", "nat"])
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(":KUBE-"))
}
