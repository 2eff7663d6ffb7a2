//! The test table (`testdata/table.ipvsadm`, read with the restore parser)
//! and what the real ipvsadm prints for it (`testdata/*.txt`, captured in
//! the test VM by `tests/vm_ipvsadm_parity.rs`).

use ipvs::{
    Change, DestinationEntry, DestinationRule, Info, ServiceEntry, ServiceRules,
    ServiceWithDestinations, Stats, Version,
};

use crate::names::{Names, Source};
use crate::restore::{self, Step};
use crate::sort;

/// ipvsadm commands that build the table.
pub(crate) const TABLE: &str = include_str!("../testdata/table.ipvsadm");
/// `ipvsadm -Sn`.
pub(crate) const SAVE: &str = include_str!("../testdata/save.txt");
/// `ipvsadm -Ln`.
pub(crate) const LIST_LN: &str = include_str!("../testdata/list.txt");
/// `ipvsadm -Ln --stats`.
pub(crate) const LIST_STATS: &str = include_str!("../testdata/list-stats.txt");
/// `ipvsadm -Ln --stats --exact`.
pub(crate) const LIST_STATS_EXACT: &str = include_str!("../testdata/list-stats-exact.txt");
/// `ipvsadm -Ln --rate`.
pub(crate) const LIST_RATE: &str = include_str!("../testdata/list-rate.txt");
/// `ipvsadm -Ln --thresholds -t 10.96.0.1:443`-style listings have no
/// version line; these are full listings without it.
pub(crate) const LIST_THRESHOLDS: &str = include_str!("../testdata/list-thresholds.txt");
/// `ipvsadm -Ln --persistent-conn`, without the version line.
pub(crate) const LIST_PERSISTENT_CONN: &str = include_str!("../testdata/list-persistent-conn.txt");
/// `ipvsadm -Ln --tun-info`, without the version line.
pub(crate) const LIST_TUN_INFO: &str = include_str!("../testdata/list-tun-info.txt");
/// ipvsadm commands for a table of the cluster in `testdata/names/` (the
/// daemon's virtual servers for it, and some no Service owns).
pub(crate) const NAMES_TABLE: &str = include_str!("../testdata/names.ipvsadm");
/// `list --names testdata/names` for `NAMES_TABLE` (checked in the VM by
/// `tests/vm_names.rs`).
pub(crate) const LIST_NAMES: &str = include_str!("../testdata/list-names.txt");
/// The directory `--names` reads in the tests.
pub(crate) const NAMES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/names");
/// The first TCP service of the table.
pub(crate) const FIRST_TCP: &str = "10.96.0.1:443";

/// The VM's IPVS.
pub(crate) fn info() -> Info {
    Info {
        version: Version {
            major: 1,
            minor: 2,
            patch: 1,
        },
        connection_table_size: 4096,
    }
}

/// The names `--names testdata/names` finds.
pub(crate) fn names() -> Names {
    crate::names::load(&Source::Dir(NAMES_DIR.into())).unwrap_or_else(|e| panic!("{e}"))
}

/// The table, as the kernel holds it after `TABLE`, in ipvsadm's order.
pub(crate) fn table() -> Vec<ServiceWithDestinations> {
    table_of(TABLE)
}

/// The table as `ipvsadm -S` saves it.
pub(crate) fn rules() -> Vec<ServiceRules> {
    table()
        .into_iter()
        .map(|s| ServiceRules {
            service: s.service.service,
            destinations: s
                .destinations
                .iter()
                .map(|d| DestinationRule::from(&d.destination))
                .collect(),
        })
        .collect()
}

/// The table the kernel holds after `rules` (`-A` and `-a` lines only), in
/// ipvsadm's order.
pub(crate) fn table_of(rules: &str) -> Vec<ServiceWithDestinations> {
    let mut table: Vec<ServiceWithDestinations> = Vec::new();
    let steps = restore::parse(rules.as_bytes(), &crate::modules::KernelModules::default())
        .unwrap_or_else(|e| panic!("{e}"));
    for step in steps {
        let Step::Changes(changes) = step else {
            continue;
        };
        for (_, change) in changes {
            match change {
                Change::AddService(service) => table.push(ServiceWithDestinations {
                    service: ServiceEntry {
                        service,
                        stats: Stats::default(),
                    },
                    destinations: Vec::new(),
                }),
                Change::AddDestination(key, destination) => {
                    let svc = table
                        .iter_mut()
                        .find(|s| s.service.service.key == key)
                        .unwrap_or_else(|| panic!("no service {key}"));
                    svc.destinations.insert(
                        0,
                        DestinationEntry {
                            destination,
                            active_connections: 0,
                            inactive_connections: 0,
                            persistent_connections: 0,
                            stats: Stats::default(),
                        },
                    );
                }
                other => panic!("unexpected {other}"),
            }
        }
    }
    sort::ipvsadm_order(table)
}
