//! `ipvsadm -Ln` and its variants (`--stats`, `--rate`, `--exact`,
//! `--thresholds`, `--persistent-conn`, `--tun-info`), byte for byte.
//!
//! The formats are ipvsadm 1.31's `print_title` and `print_service_entry`.
//! Two deliberate differences: real servers with the cache-bypass method
//! (which ipvsadm cannot create) show `Bypass` where ipvsadm prints
//! `(null)`; and real servers' 64-bit counters are shown in full, where
//! ipvsadm reads only their low 32 bits (a libipvs bug).

use std::net::IpAddr;

use ipvs::{
    DestinationEntry, ForwardMethod, Info, Rates, ServiceEntry, ServiceKey,
    ServiceWithDestinations, Stats, TunnelType,
};

use ipvs::spelling::{
    AddrPortSpelling, TunnelView, has_sched_flags, name_protocol, persistence_mask,
    sched_flag_names,
};

use super::column;
use crate::names::{self, Names};
use crate::naming::{self, Naming};

/// Which columns a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum View {
    /// Scheduler and flags; forwarding, weight and connection counts.
    #[default]
    Default,
    /// `--stats`: traffic counters.
    Stats,
    /// `--rate`: traffic rates.
    Rate,
    /// `--thresholds`: connection thresholds.
    Thresholds,
    /// `--persistent-conn`: persistence templates.
    PersistentConn,
    /// `--tun-info`: tunnel encapsulation.
    TunInfo,
}

/// How a listing is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ListFormat {
    /// The columns.
    pub(crate) view: View,
    /// `--exact`: full numbers instead of K/M/G/T units.
    pub(crate) exact: bool,
}

/// What a line of a listing shows, so that two listings can be compared
/// row by row (`watch` highlights changed rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RowKey {
    /// A virtual service.
    Service(ServiceKey),
    /// One of its real servers.
    Destination(ServiceKey, IpAddr, u16),
}

/// The first line of a full listing.
pub(crate) fn version_line(info: &Info) -> String {
    format!(
        "IP Virtual Server version {} (size={})\n",
        info.version, info.connection_table_size
    )
}

/// The column titles (two lines) for a view.
pub(crate) fn title(view: View) -> String {
    let stats_title = |cols: [&str; 5]| {
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", cols[0], cols[1], cols[2], cols[3], cols[4]
        )
    };
    match view {
        View::Stats => stats_title(["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"]),
        View::Rate => stats_title(["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"]),
        View::Thresholds => format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ),
        View::PersistentConn => format!(
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        ),
        View::TunInfo => "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".to_owned(),
        View::Default => "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".to_owned(),
    }
}

/// The titles of the `--names` column, for the two title lines.
pub(crate) const NAME_TITLES: [&str; 2] = ["Service", "Pod"];

/// A whole listing: the version line (when `info` is given: ipvsadm omits
/// it when listing one service), the titles and every row; with `names`, a
/// last column names each row's Service port or Pod. Addresses and ports are
/// written as `naming` says. `table` must already be in the wanted order.
pub(crate) fn render(
    info: Option<&Info>,
    table: &[ServiceWithDestinations],
    fmt: ListFormat,
    names: Option<&Names>,
    naming: &Naming,
) -> String {
    let mut out = info.map(version_line).unwrap_or_default();
    let title = title(fmt.view);
    let rows = rows(table, fmt, naming);
    let lines = match names {
        None => title
            .lines()
            .map(str::to_owned)
            .chain(rows.into_iter().map(|(_, line)| line))
            .collect(),
        Some(names) => column::append(
            title.lines().map(str::to_owned).zip(NAME_TITLES).chain(
                rows.into_iter()
                    .map(|(key, line)| (line, names::cell(names.of_row(&key)))),
            ),
        ),
    };
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The rows of a listing, without their newlines, with what each shows.
pub(crate) fn rows(
    table: &[ServiceWithDestinations],
    fmt: ListFormat,
    naming: &Naming,
) -> Vec<(RowKey, String)> {
    table
        .iter()
        .flat_map(|s| {
            let key = s.service.service.key;
            let service = (RowKey::Service(key), service_line(&s.service, fmt, naming));
            let dests = s.destinations.iter().map(move |d| {
                let rs = &d.destination;
                (
                    RowKey::Destination(key, rs.addr, rs.port),
                    destination_line(d, name_protocol(&key), fmt, naming),
                )
            });
            std::iter::once(service).chain(dests)
        })
        .collect()
}

/// `TCP  10.0.0.1:80`, `FWM  7`, `FWM  7 IPv6`; like ipvsadm, cut to 33
/// bytes unless IPv6.
pub(crate) fn service_name(key: &ServiceKey, naming: &Naming) -> String {
    match key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            let mut name = format!(
                "{:<4} {}",
                protocol.to_string(),
                naming.addr_port(addr, *port, Some(*protocol))
            );
            if addr.is_ipv4() {
                naming::truncate(&mut name, 33);
            }
            name
        }
        // ipvsadm prints the mark with %d.
        ServiceKey::Fwmark { af, mark } => match af {
            ipvs::AddressFamily::Inet => format!("FWM  {}", mark.get() as i32),
            ipvs::AddressFamily::Inet6 => format!("FWM  {} IPv6", mark.get() as i32),
        },
    }
}

fn service_line(entry: &ServiceEntry, fmt: ListFormat, naming: &Naming) -> String {
    let svc = &entry.service;
    let name = service_name(&svc.key, naming);
    match fmt.view {
        View::Stats => format!("{name:<33}{}", counters(&entry.stats, fmt.exact)),
        View::Rate => format!("{name:<33}{}", rates(&entry.stats.rates, fmt.exact)),
        _ => {
            let mut line = format!("{name} {}", svc.scheduler);
            if has_sched_flags(svc.flags) {
                line.push_str(&format!(
                    " ({})",
                    sched_flag_names(&svc.scheduler, svc.flags).join(",")
                ));
            }
            if let Some(p) = svc.persistence {
                line.push_str(&format!(" persistent {}", p.timeout));
                if let Some(mask) = persistence_mask(&svc.key, p.prefix_len) {
                    line.push_str(&format!(" mask {mask}"));
                }
                if let Some(pe) = &svc.persistence_engine {
                    line.push_str(&format!(" pe {pe}"));
                }
            }
            if svc.flags.contains(ipvs::ServiceFlags::ONE_PACKET) {
                line.push_str(" ops");
            }
            line
        }
    }
}

/// A real server's row; `protocol` names its port (its service's).
fn destination_line(
    entry: &DestinationEntry,
    protocol: Option<ipvs::Protocol>,
    fmt: ListFormat,
    naming: &Naming,
) -> String {
    let d = &entry.destination;
    // Like ipvsadm, cut to 28 bytes unless IPv6.
    let mut name = naming.addr_port(&d.addr, d.port, protocol);
    if d.addr.is_ipv4() {
        naming::truncate(&mut name, 28);
    }
    let (active, inactive) = (entry.active_connections, entry.inactive_connections);
    match fmt.view {
        View::Stats => format!("  -> {name:<28}{}", counters(&entry.stats, fmt.exact)),
        View::Rate => {
            let r = &entry.stats.rates;
            format!(
                "  -> {name:<28} {:>8} {:>8} {:>8}{}{}",
                r.connections,
                r.packets_in,
                r.packets_out,
                largenum(r.bytes_in, fmt.exact),
                largenum(r.bytes_out, fmt.exact)
            )
        }
        View::Thresholds => format!(
            "  -> {name:<28} {:<10} {:<10} {active:<10} {inactive:<10}",
            d.upper_threshold, d.lower_threshold
        ),
        View::PersistentConn => format!(
            "  -> {name:<28} {:<9} {:<11} {active:<10} {inactive:<10}",
            d.weight, entry.persistent_connections
        ),
        View::TunInfo => format!(
            "  -> {name:<28} {:<7} {:<13} {:<6} {active:<10} {inactive:<10}",
            d.forward.to_string(),
            tunnel_info(&d.forward),
            d.weight
        ),
        View::Default => format!(
            "  -> {name:<28} {:<7} {:<6} {active:<10} {inactive:<10}",
            d.forward.to_string(),
            d.weight
        ),
    }
}

/// `--tun-info`'s column: `ipip`, `gue:PORT:CSUM`, `gre:CSUM`, else `n/a`.
fn tunnel_info(forward: &ForwardMethod) -> String {
    const CSUM: [&str; 3] = ["-c", "+c", "r+c"];
    match TunnelView::of(forward) {
        None => "n/a".to_owned(),
        Some(t) => match t.tunnel {
            TunnelType::Ipip => t.type_name().to_owned(),
            TunnelType::Gue { port } => format!("{}:{port}:{}", t.type_name(), CSUM[t.csum]),
            TunnelType::Gre => format!("{}:{}", t.type_name(), CSUM[t.csum]),
        },
    }
}

fn counters(s: &Stats, exact: bool) -> String {
    [
        s.connections,
        s.packets_in,
        s.packets_out,
        s.bytes_in,
        s.bytes_out,
    ]
    .map(|n| largenum(n, exact))
    .concat()
}

fn rates(r: &Rates, exact: bool) -> String {
    [
        r.connections,
        r.packets_in,
        r.packets_out,
        r.bytes_in,
        r.bytes_out,
    ]
    .map(|n| largenum(n, exact))
    .concat()
}

/// ipvsadm's `print_largenum`: 9 characters, with a K/M/G/T unit when the
/// number has more than 8 digits; with `--exact`, the full number after one
/// space (still at least 9 characters).
pub(crate) fn largenum(n: u64, exact: bool) -> String {
    const UNITS: [(u64, u64, char); 4] = [
        (1_000_000_000, 1_000, 'K'),
        (100_000_000_000, 1_000_000, 'M'),
        (100_000_000_000_000, 1_000_000_000, 'G'),
        (u64::MAX, 1_000_000_000_000, 'T'),
    ];
    if exact || n < 100_000_000 {
        return format!(" {n:>8}");
    }
    let (_, div, unit) = UNITS
        .iter()
        .find(|(limit, _, _)| n < *limit)
        .unwrap_or(&UNITS[3]);
    format!("{:>8}{unit}", n / div)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn largenum_units_and_exact() {
        assert_eq!(largenum(0, false), "        0");
        assert_eq!(largenum(99_999_999, false), " 99999999");
        assert_eq!(largenum(100_000_000, false), "  100000K");
        assert_eq!(largenum(999_999_999, false), "  999999K");
        assert_eq!(largenum(1_000_000_000, false), "    1000M");
        assert_eq!(largenum(99_999_999_999, false), "   99999M");
        assert_eq!(largenum(100_000_000_000, false), "     100G");
        assert_eq!(largenum(100_000_000_000_000, false), "     100T");
        assert_eq!(largenum(u64::MAX, false), "18446744T");
        assert_eq!(largenum(12, true), "       12");
        assert_eq!(largenum(123_456_789, true), " 123456789");
        assert_eq!(largenum(u64::MAX, true), " 18446744073709551615");
    }

    #[test]
    fn every_listing_matches_ipvsadm() {
        let (info, table) = (testdata::info(), testdata::table());
        let cases = [
            (View::Default, false, true, testdata::LIST_LN),
            (View::Stats, false, true, testdata::LIST_STATS),
            (View::Stats, true, true, testdata::LIST_STATS_EXACT),
            (View::Rate, false, true, testdata::LIST_RATE),
            (View::Thresholds, false, false, testdata::LIST_THRESHOLDS),
            (
                View::PersistentConn,
                false,
                false,
                testdata::LIST_PERSISTENT_CONN,
            ),
            (View::TunInfo, false, false, testdata::LIST_TUN_INFO),
        ];
        for (view, exact, with_version, expected) in cases {
            let fmt = ListFormat { view, exact };
            let out = render(
                with_version.then_some(&info),
                &table,
                fmt,
                None,
                &Naming::Numeric,
            );
            assert_eq!(out, expected, "{fmt:?}");
        }
    }

    #[test]
    fn large_counters_use_units_unless_exact() {
        let mut table = testdata::table();
        table.truncate(1);
        let s = &mut table[0].service.stats;
        (s.connections, s.packets_in, s.packets_out) = (123, 100_000_000, 2_500_000_000);
        (s.bytes_in, s.bytes_out) = (150_000_000_000, 7_000_000_000_000_000);
        let stats = |exact| {
            render(
                None,
                &table,
                ListFormat {
                    view: View::Stats,
                    exact,
                },
                None,
                &Naming::Numeric,
            )
        };
        let line = |text: String| text.lines().nth(2).unwrap_or_default().to_owned();
        assert_eq!(
            line(stats(false)),
            "TCP  172.16.0.1:8443                   123  100000K    2500M     150G    7000T"
        );
        assert_eq!(
            line(stats(true)),
            "TCP  172.16.0.1:8443                   123 100000000 2500000000 150000000000 7000000000000000"
        );
    }

    #[test]
    fn local_real_servers_are_listed_as_local() {
        let mut table = testdata::table();
        table.retain(|s| !s.destinations.is_empty());
        table.truncate(1);
        table[0].destinations.truncate(1);
        table[0].destinations[0].destination.forward = ipvs::ForwardMethod::Local;
        let out = render(None, &table, ListFormat::default(), None, &Naming::Numeric);
        let line = out.lines().nth(3).unwrap_or_default();
        assert!(
            line.ends_with(" Local   1      0          0         "),
            "{line:?}"
        );
    }

    #[test]
    fn names_are_a_last_column() {
        let table = testdata::table_of(testdata::NAMES_TABLE);
        let names = testdata::names();
        let info = testdata::info();
        let fmt = ListFormat::default();
        let named = render(Some(&info), &table, fmt, Some(&names), &Naming::Numeric);
        assert_eq!(named, testdata::LIST_NAMES);
        // Without the column, every line is ipvsadm's (trailing blanks aside).
        let plain = render(Some(&info), &table, fmt, None, &Naming::Numeric);
        let cut: Vec<String> = named
            .lines()
            .map(|l| l.get(..70).unwrap_or(l).trim_end().to_owned())
            .collect();
        let plain: Vec<&str> = plain.lines().map(str::trim_end).collect();
        assert_eq!(cut, plain);
        // The stats view keeps its columns too; the names start after them.
        let stats = ListFormat {
            view: View::Stats,
            exact: false,
        };
        let named = render(None, &table, stats, Some(&names), &Naming::Numeric);
        for (n, p) in named
            .lines()
            .zip(render(None, &table, stats, None, &Naming::Numeric).lines())
        {
            assert!(n.starts_with(p), "{n:?} does not extend {p:?}");
        }
        assert!(
            named.lines().nth(3).unwrap().ends_with(" 0 shop/cart-0"),
            "{named}"
        );
    }

    #[test]
    fn rows_are_keyed_by_what_they_show() {
        let rows = rows(&testdata::table(), ListFormat::default(), &Naming::Numeric);
        let services = rows
            .iter()
            .filter(|(k, _)| matches!(k, RowKey::Service(_)))
            .count();
        assert_eq!(services, testdata::table().len());
        let first_dest = rows
            .iter()
            .position(|(k, _)| matches!(k, RowKey::Destination(..)));
        assert!(
            matches!(first_dest, Some(i) if matches!(rows[i - 1].0, RowKey::Service(_) | RowKey::Destination(..)))
        );
    }
}
