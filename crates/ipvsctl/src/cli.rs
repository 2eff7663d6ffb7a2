//! The command line: subcommands, and the ipvsadm options they share.
//!
//! ipvsadm's own form (`-Ln`, `-A -t ... -s rr`, `--set ...`) is rewritten
//! onto these subcommands by [`crate::compat`] before clap sees it, so both
//! forms have the same options with the same names.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::names;
use crate::spec::UsageError;

/// Inspect and edit the kernel's IPVS tables: an ipvsadm replacement.
///
/// Every ipvsadm command line works as well (`ipvsctl-rs -Ln --stats`,
/// `ipvsctl-rs -A -t 10.0.0.1:80 -s rr`, `ipvsctl-rs -Sn`, `ipvsctl-rs -R`):
/// it is mapped onto these subcommands. Subcommands print numbers
/// (`--resolve` for names); ipvsadm's form prints names unless `-n`, as
/// ipvsadm does.
#[derive(Debug, Parser)]
#[command(name = "ipvsctl-rs", version, about, long_about)]
pub(crate) struct Cli {
    /// What to do (default: list).
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the virtual servers (`ipvsadm -Ln`).
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show connections from /proc/net/ip_vs_conn (`ipvsadm -Lnc`).
    Conns(ConnsArgs),
    /// Print the table as ipvsadm rules (`ipvsadm -Sn`).
    Save(SaveArgs),
    /// Read ipvsadm rules from standard input and apply them (`ipvsadm -R`).
    Restore(RestoreArgs),
    /// Show the IPVS version, connection table size and table totals.
    Info(JsonArgs),
    /// Show or set the connection timeouts (`ipvsadm -L --timeout`, `--set`).
    Timeouts(TimeoutsArgs),
    /// Zero the counters of one virtual service or of all (`ipvsadm -Z`).
    Zero(VirtualService),
    /// Delete every virtual service (`ipvsadm -C`).
    #[command(visible_alias = "clear")]
    Flush,
    /// Add a virtual service (`ipvsadm -A`).
    AddService(ServiceArgs),
    /// Edit a virtual service (`ipvsadm -E`).
    EditService(ServiceArgs),
    /// Delete a virtual service (`ipvsadm -D`).
    DeleteService(VirtualService),
    /// Add a real server to a virtual service (`ipvsadm -a`).
    AddServer(ServerArgs),
    /// Edit a real server (`ipvsadm -e`).
    EditServer(ServerArgs),
    /// Remove a real server (`ipvsadm -d`).
    DeleteServer(ServerKey),
    /// Redraw the listing every few seconds, highlighting changed rows.
    Watch(WatchArgs),
}

/// A virtual service: `-t`, `-u`, `--sctp-service` or `-f` (with `-6`).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct VirtualService {
    /// TCP virtual service ADDR[:PORT].
    #[arg(short = 't', long = "tcp-service", value_name = "ADDR:PORT",
          conflicts_with_all = ["udp", "sctp", "fwmark"])]
    pub(crate) tcp: Option<String>,
    /// UDP virtual service ADDR[:PORT].
    #[arg(short = 'u', long = "udp-service", value_name = "ADDR:PORT",
          conflicts_with_all = ["sctp", "fwmark"])]
    pub(crate) udp: Option<String>,
    /// SCTP virtual service ADDR[:PORT].
    #[arg(
        long = "sctp-service",
        value_name = "ADDR:PORT",
        conflicts_with = "fwmark"
    )]
    pub(crate) sctp: Option<String>,
    /// Firewall-mark virtual service.
    #[arg(short = 'f', long = "fwmark-service", value_name = "FWMARK")]
    pub(crate) fwmark: Option<String>,
    /// The fwmark service is IPv6.
    #[arg(short = '6', long = "ipv6", requires = "fwmark")]
    pub(crate) ipv6: bool,
}

/// `-A` and `-E`: a virtual service and its settings.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServiceArgs {
    #[command(flatten)]
    pub(crate) service: VirtualService,
    /// Scheduler (rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos).
    #[arg(short = 's', long = "scheduler", default_value = crate::values::DEFAULT_SCHEDULER)]
    pub(crate) scheduler: String,
    /// Persistent service, with a timeout in seconds (default 360).
    #[arg(short = 'p', long = "persistent", value_name = "TIMEOUT", num_args = 0..=1,
          default_missing_value = "360")]
    pub(crate) persistent: Option<String>,
    /// Persistence granularity: a netmask (IPv4) or prefix length (IPv6).
    #[arg(short = 'M', long = "netmask")]
    pub(crate) netmask: Option<String>,
    /// Persistence engine (sip).
    #[arg(long = "pe", value_name = "ENGINE")]
    pub(crate) pe: Option<String>,
    /// Scheduler flags, comma-separated (flag-1..3, sh-fallback, sh-port, mh-fallback, mh-port).
    #[arg(short = 'b', long = "sched-flags", value_name = "FLAGS")]
    pub(crate) sched_flags: Option<String>,
    /// One-packet scheduling (UDP and fwmark services).
    #[arg(short = 'o', long = "ops")]
    pub(crate) ops: bool,
}

/// A real server of a virtual service (`-d`).
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerKey {
    #[command(flatten)]
    pub(crate) service: VirtualService,
    /// Real server ADDR[:PORT] (the port defaults to the service's).
    #[arg(short = 'r', long = "real-server", value_name = "ADDR:PORT")]
    pub(crate) real_server: Option<String>,
}

/// Forwarding methods.
#[derive(Debug, Clone, Copy, Default, Args)]
#[group(id = "forwarding-method", multiple = false)]
pub(crate) struct Forwarding {
    /// Direct routing (default).
    #[arg(short = 'g', long = "gatewaying")]
    pub(crate) gatewaying: bool,
    /// IP-in-IP (or GUE/GRE) tunnelling.
    #[arg(short = 'i', long = "ipip")]
    pub(crate) ipip: bool,
    /// Masquerading (NAT).
    #[arg(short = 'm', long = "masquerading")]
    pub(crate) masquerading: bool,
}

/// Tunnel encapsulations (`--tun-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TunType {
    /// IP in IP.
    Ipip,
    /// Generic UDP encapsulation.
    Gue,
    /// GRE.
    Gre,
}

/// Tunnel checksum modes.
#[derive(Debug, Clone, Copy, Default, Args)]
#[group(id = "tunnel-checksum", multiple = false)]
pub(crate) struct TunnelChecksum {
    /// No checksum.
    #[arg(long = "tun-nocsum")]
    pub(crate) nocsum: bool,
    /// Checksum.
    #[arg(long = "tun-csum")]
    pub(crate) csum: bool,
    /// Remote checksum offload.
    #[arg(long = "tun-remcsum")]
    pub(crate) remcsum: bool,
}

/// `-a` and `-e`: a real server and its settings.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    #[command(flatten)]
    pub(crate) key: ServerKey,
    #[command(flatten)]
    pub(crate) forwarding: Forwarding,
    /// Weight, 0 to 65535.
    #[arg(short = 'w', long = "weight", default_value = "1")]
    pub(crate) weight: String,
    /// Upper connection threshold (0: none).
    #[arg(short = 'x', long = "u-threshold", default_value = "0")]
    pub(crate) u_threshold: String,
    /// Lower connection threshold (0: none).
    #[arg(short = 'y', long = "l-threshold", default_value = "0")]
    pub(crate) l_threshold: String,
    /// Tunnel encapsulation (with -i).
    #[arg(long = "tun-type", value_enum)]
    pub(crate) tun_type: Option<TunType>,
    /// GUE destination port.
    #[arg(long = "tun-port")]
    pub(crate) tun_port: Option<String>,
    #[command(flatten)]
    pub(crate) checksum: TunnelChecksum,
}

/// `--json`.
#[derive(Debug, Clone, Copy, Default, Args)]
pub(crate) struct JsonArgs {
    /// Print JSON (see docs/ipvsctl.md for the schema).
    #[arg(long)]
    pub(crate) json: bool,
}

/// `--names`: Kubernetes names for the rows.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct NamesArgs {
    /// Name the Service port of each virtual server and the Pod of each real
    /// server, reading FROM once: a directory of Service, EndpointSlice and
    /// Node manifests (kube-ipvs-proxy's --from-dir format), or `cluster` for
    /// the API server. See docs/ipvsctl.md.
    #[arg(long, value_name = "DIR|cluster")]
    pub(crate) names: Option<PathBuf>,
    /// kubeconfig for `--names cluster` (default: $KUBECONFIG, else
    /// ~/.kube/config, else the in-cluster configuration).
    #[arg(long, value_name = "FILE", requires = "names")]
    pub(crate) kubeconfig: Option<PathBuf>,
}

impl NamesArgs {
    /// Where to read the names from, if they were asked for.
    pub(crate) fn source(&self) -> Result<Option<names::Source>, UsageError> {
        let Some(from) = &self.names else {
            return Ok(None);
        };
        if from.as_os_str() == "cluster" {
            return Ok(Some(names::Source::Cluster {
                kubeconfig: self.kubeconfig.clone(),
            }));
        }
        if self.kubeconfig.is_some() {
            return Err(UsageError(format!(
                "--kubeconfig goes with --names cluster, not with a directory ({})",
                from.display()
            )));
        }
        Ok(Some(names::Source::Dir(from.clone())))
    }
}

/// The listing's columns and numbers.
#[derive(Debug, Clone, Copy, Default, Args)]
pub(crate) struct ViewArgs {
    /// Traffic counters.
    #[arg(long)]
    pub(crate) stats: bool,
    /// Traffic rates.
    #[arg(long)]
    pub(crate) rate: bool,
    /// Connection thresholds.
    #[arg(long)]
    pub(crate) thresholds: bool,
    /// Persistence templates per real server.
    #[arg(long = "persistent-conn")]
    pub(crate) persistent_conn: bool,
    /// Tunnel encapsulation per real server.
    #[arg(long = "tun-info")]
    pub(crate) tun_info: bool,
    /// Exact numbers instead of K/M/G/T units.
    #[arg(short = 'X', long)]
    pub(crate) exact: bool,
    #[command(flatten)]
    pub(crate) naming: NamingArgs,
    /// Sorted output (the default; accepted for ipvsadm compatibility).
    #[arg(long, conflicts_with = "nosort")]
    pub(crate) sort: bool,
    /// Kernel order instead of ipvsadm's sorted order.
    #[arg(long)]
    pub(crate) nosort: bool,
}

/// Which virtual services to show.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct Filters {
    #[command(flatten)]
    pub(crate) service: VirtualService,
    /// Only services of this protocol (tcp, udp, sctp, fwm).
    #[arg(long = "proto", value_name = "PROTOCOL")]
    pub(crate) protocol: Option<String>,
    /// Only services on this virtual address.
    #[arg(long = "vip", value_name = "ADDR")]
    pub(crate) address: Option<std::net::IpAddr>,
    /// Only services on this port.
    #[arg(long = "vport", value_name = "PORT")]
    pub(crate) port: Option<u16>,
    /// Only services with this scheduler.
    #[arg(long = "sched", value_name = "SCHEDULER")]
    pub(crate) scheduler: Option<String>,
}

/// `list`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) filters: Filters,
    #[command(flatten)]
    pub(crate) view: ViewArgs,
    #[command(flatten)]
    pub(crate) json: JsonArgs,
    #[command(flatten)]
    pub(crate) names: NamesArgs,
}

/// `conns`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ConnsArgs {
    #[command(flatten)]
    pub(crate) service: VirtualService,
    /// Only connections to this real server, ADDR[:PORT].
    #[arg(long = "real", value_name = "ADDR:PORT")]
    pub(crate) real: Option<String>,
    /// Only connections from this client, ADDR[:PORT].
    #[arg(long = "client", value_name = "ADDR:PORT")]
    pub(crate) client: Option<String>,
    /// Only connections in this state (ESTABLISHED, SYN_RECV, TIME_WAIT, ...).
    #[arg(long = "state")]
    pub(crate) state: Option<String>,
    /// Read /proc/net/ip_vs_conn_sync (with the origin of each entry).
    #[arg(long)]
    pub(crate) sync: bool,
    /// Show persistence engine columns.
    #[arg(long = "persistent-conn")]
    pub(crate) persistent_conn: bool,
    #[command(flatten)]
    pub(crate) naming: NamingArgs,
    /// Read this file instead of /proc/net/ip_vs_conn.
    #[arg(long, value_name = "PATH", hide = true)]
    pub(crate) proc_file: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) json: JsonArgs,
    #[command(flatten)]
    pub(crate) names: NamesArgs,
}

/// `save`.
#[derive(Debug, Clone, Copy, Default, Args)]
pub(crate) struct SaveArgs {
    #[command(flatten)]
    pub(crate) naming: NamingArgs,
}

/// `-n` and `--resolve`: numbers or names for addresses and ports.
#[derive(Debug, Clone, Copy, Default, Args)]
pub(crate) struct NamingArgs {
    /// Numeric addresses and ports (the default of subcommands).
    #[arg(short = 'n', long)]
    pub(crate) numeric: bool,
    /// Host and service names for addresses and ports, as ipvsadm prints
    /// them without -n (what ipvsadm's form does unless -n is given).
    #[arg(long, conflicts_with = "numeric")]
    pub(crate) resolve: bool,
}

/// `restore`.
#[derive(Debug, Clone, Copy, Default, Args)]
pub(crate) struct RestoreArgs {
    /// Delete every virtual service before applying.
    #[arg(long)]
    pub(crate) flush: bool,
    /// Parse and print the changes without applying them.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Keep applying after the kernel refuses a line, as ipvsadm does,
    /// instead of undoing everything applied from the input.
    #[arg(long)]
    pub(crate) no_rollback: bool,
}

/// `timeouts`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct TimeoutsArgs {
    /// Set the TCP, TCP FIN and UDP timeouts in seconds (0 leaves one unchanged).
    #[arg(long, num_args = 3, value_names = ["TCP", "TCPFIN", "UDP"])]
    pub(crate) set: Option<Vec<String>>,
    #[command(flatten)]
    pub(crate) json: JsonArgs,
}

/// `watch`.
#[derive(Debug, Clone, Args)]
pub(crate) struct WatchArgs {
    /// Seconds between refreshes.
    #[arg(short = 'i', long, default_value = "2")]
    pub(crate) interval: f64,
    /// Stop after this many refreshes.
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Print one JSON document per refresh instead of redrawing.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) filters: Filters,
    #[command(flatten)]
    pub(crate) names: NamesArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(args: &[&str]) -> Result<Option<names::Source>, UsageError> {
        let cli = Cli::try_parse_from(["ipvsctl-rs", "list"].iter().chain(args)).unwrap();
        let Some(Command::List(list)) = cli.command else {
            panic!("not a listing");
        };
        list.names.source()
    }

    #[test]
    fn names_come_from_a_directory_or_the_cluster() {
        assert_eq!(source(&[]).unwrap(), None);
        assert_eq!(
            source(&["--names", "examples/cluster"]).unwrap(),
            Some(names::Source::Dir("examples/cluster".into()))
        );
        assert_eq!(
            source(&["--names", "cluster"]).unwrap(),
            Some(names::Source::Cluster { kubeconfig: None })
        );
        assert_eq!(
            source(&["--names", "cluster", "--kubeconfig", "/k"]).unwrap(),
            Some(names::Source::Cluster {
                kubeconfig: Some("/k".into())
            })
        );
        // A directory called `cluster` is `./cluster`.
        assert_eq!(
            source(&["--names", "./cluster"]).unwrap(),
            Some(names::Source::Dir("./cluster".into()))
        );
        assert!(source(&["--names", "d", "--kubeconfig", "/k"]).is_err());
        assert!(Cli::try_parse_from(["ipvsctl-rs", "list", "--kubeconfig", "/k"]).is_err());
    }
}
