//! `kube-ipvs-proxy`: a Kubernetes service proxy that programs the kernel's IPVS (or, where
//! IPVS is missing, kube-proxy's iptables mode).
//!
//! The pipeline: sources → model (crate `model`) → desired state (crate `desired`) → diff →
//! kernel. This binary parses its settings, builds the source and runs the loop ([`run`]).

mod explain;
mod node_info;
mod run;

mod drift_events;
mod iptables_mode;
mod ipvs_mode;
mod memory;
mod node_setup;
mod preflight;
mod proxier;
mod runner;
mod server;
mod sync_report;

fn main() -> std::process::ExitCode {
    memory::one_arena();
    let cli = match settings::cli::Cli::try_parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let settings = match settings::Settings::resolve(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kube-ipvs-proxy: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(settings.log_filter())),
        )
        .init();
    memory::no_huge_pages();
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let explain = cli
        .command
        .as_ref()
        .map(|settings::cli::Command::Explain(args)| args);
    if explain.is_some()
        && let Some(flag) = settings::cli::conflicting_flag(&cli)
    {
        eprintln!("kube-ipvs-proxy: explain: {flag} does not apply");
        return std::process::ExitCode::from(2);
    }
    if let Some(path) = &cli.always.write_config_to {
        return match std::fs::write(path, settings::write_config::render(&settings)) {
            Ok(()) => {
                tracing::info!(file = %path.display(), "wrote the configuration");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kube-ipvs-proxy: writing {}: {e}", path.display());
                std::process::ExitCode::FAILURE
            }
        };
    }
    if cli.init_only {
        return match node_setup::conntrack(&settings.conntrack) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kube-ipvs-proxy: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    // Two workers whatever the node's size: syncs run one at a time, and
    // every further thread costs memory (a stack and a malloc arena).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kube-ipvs-proxy: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let (result, what) = match explain {
        Some(args) => (
            runtime
                .block_on(explain::run(&cli, &settings, args))
                .map(|()| std::process::ExitCode::SUCCESS),
            "explain: ",
        ),
        None => (runtime.block_on(run::run(&cli, &settings)), ""),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kube-ipvs-proxy: {what}{e:#}");
            // The pre-flight's 1 means "differences": its errors need a code of their own.
            if cli.diff {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
