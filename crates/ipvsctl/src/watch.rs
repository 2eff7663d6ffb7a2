//! `watch`: the listing redrawn every few seconds, with rates computed
//! from the counters' change since the previous refresh, and the rows that
//! changed marked (`*`, and in reverse video on a terminal).

use std::collections::HashMap;

use ipvs::{ServiceWithDestinations, Stats};

use crate::format::column;
use crate::format::list::{self, ListFormat, RowKey};
use crate::names::Names;
use crate::naming::Naming;

/// Clears a terminal and moves the cursor home.
pub(crate) const CLEAR: &str = "\x1b[H\x1b[2J";

/// One reading of the table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    rows: Vec<(RowKey, String)>,
    stats: HashMap<RowKey, Stats>,
}

impl Sample {
    /// The rows and counters of a table (in display order).
    pub(crate) fn new(table: &[ServiceWithDestinations]) -> Self {
        let mut stats = HashMap::new();
        for s in table {
            let key = s.service.service.key;
            stats.insert(RowKey::Service(key), s.service.stats);
            for d in &s.destinations {
                let rs = &d.destination;
                stats.insert(RowKey::Destination(key, rs.addr, rs.port), d.stats);
            }
        }
        Sample {
            rows: list::rows(table, ListFormat::default(), &Naming::Numeric),
            stats,
        }
    }
}

/// Width of the listing part of a row before the rate columns.
const WIDTH: usize = 72;

/// Renders one refresh: the titles, then every row marked when it differs
/// from `prev` (or is new), followed by connections, packets and bytes per
/// second since `prev` (`elapsed` seconds ago); with `names`, a last column
/// names each row's Service port or Pod.
pub(crate) fn frame(
    prev: Option<&Sample>,
    cur: &Sample,
    elapsed: f64,
    terminal: bool,
    names: Option<&Names>,
) -> String {
    let title = list::title(list::View::Default);
    let mut titles = title.lines();
    let first = titles.next().unwrap_or_default();
    let mut lines = vec![format!(
        "  {first:<WIDTH$}{:>9}{:>9}{:>11}",
        "CPS", "PPS", "BPS"
    )];
    lines.extend(titles.map(|line| format!("  {line}")));
    let mut changed_rows = Vec::with_capacity(cur.rows.len());
    for (key, text) in &cur.rows {
        let before = prev.and_then(|p| p.rows.iter().find(|(k, _)| k == key));
        let changed = prev.is_some() && before.is_none_or(|(_, t)| t != text);
        let rates = match (prev.and_then(|p| p.stats.get(key)), cur.stats.get(key)) {
            (Some(a), Some(b)) if elapsed > 0.0 => {
                let per_s = |x: u64, y: u64| (y.saturating_sub(x) as f64 / elapsed).round() as u64;
                format!(
                    "{:>9}{:>9}{:>11}",
                    per_s(a.connections, b.connections),
                    per_s(a.packets_in + a.packets_out, b.packets_in + b.packets_out),
                    per_s(a.bytes_in + a.bytes_out, b.bytes_in + b.bytes_out)
                )
            }
            _ => format!("{:>9}{:>9}{:>11}", "-", "-", "-"),
        };
        lines.push(format!(
            "{} {text:<WIDTH$}{rates}",
            if changed { '*' } else { ' ' }
        ));
        changed_rows.push(changed);
    }
    let titles = lines.len() - cur.rows.len();
    if let Some(names) = names {
        let cells = list::NAME_TITLES.into_iter().chain(
            cur.rows
                .iter()
                .map(|(key, _)| crate::names::cell(names.of_row(key))),
        );
        lines = column::append(lines.into_iter().zip(cells));
    }
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let changed = i >= titles && changed_rows[i - titles];
        if changed && terminal {
            out.push_str(&format!("\x1b[7m{line}\x1b[0m\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn first_frame_marks_nothing_and_has_no_rates() {
        let cur = Sample::new(&testdata::table());
        let f = frame(None, &cur, 0.0, false, None);
        assert!(
            f.lines()
                .skip(2)
                .all(|l| l.starts_with("  ") && l.ends_with('-')),
            "{f}"
        );
    }

    #[test]
    fn names_follow_the_rates_and_highlighting_covers_them() {
        let before = testdata::table_of(testdata::NAMES_TABLE);
        let mut after = before.clone();
        after[0].destinations[0].active_connections += 1;
        let names = testdata::names();
        let (a, b) = (Sample::new(&before), Sample::new(&after));
        let plain = frame(Some(&a), &b, 1.0, false, None);
        let named = frame(Some(&a), &b, 1.0, false, Some(&names));
        for (n, p) in named.lines().zip(plain.lines()) {
            assert!(n.starts_with(p), "{n:?} does not extend {p:?}");
        }
        let lines: Vec<&str> = named.lines().collect();
        assert!(lines[0].ends_with("BPS Service"), "{named}");
        assert!(lines[1].ends_with(" Pod"), "{named}");
        assert!(lines[2].ends_with(" shop/cart"), "{named}");
        assert!(lines[3].starts_with("* ") && lines[3].ends_with(" shop/cart-0"));
        let tty = frame(Some(&a), &b, 1.0, true, Some(&names));
        assert!(tty.contains("shop/cart-0\x1b[0m\n"), "{tty}");
    }

    #[test]
    fn changed_rows_are_marked_and_rates_computed() {
        let before = testdata::table();
        let mut after = before.clone();
        let i = before
            .iter()
            .position(|s| !s.destinations.is_empty())
            .unwrap();
        after[i].service.stats.connections += 20;
        after[i].service.stats.bytes_in += 4000;
        after[i].destinations[0].active_connections += 1;
        let first = before[..i]
            .iter()
            .map(|s| 1 + s.destinations.len())
            .sum::<usize>();
        let (a, b) = (Sample::new(&before), Sample::new(&after));
        let f = frame(Some(&a), &b, 2.0, false, None);
        let rows: Vec<&str> = f.lines().skip(2).collect();
        let (svc, dest) = (rows[first], rows[first + 1]);
        assert!(
            svc.starts_with("  ") && svc.ends_with("       10        0       2000"),
            "{svc}"
        );
        assert!(dest.starts_with("* "), "{dest}");
        assert_eq!(rows.iter().filter(|r| r.starts_with('*')).count(), 1);
        let tty = frame(Some(&a), &b, 2.0, true, None);
        assert!(tty.contains("\x1b[7m* "));
    }
}
