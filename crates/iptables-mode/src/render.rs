//! Printing desired tables in `iptables-save` format, for golden tests, dry runs and people.

use std::fmt::Write as _;

use iptables::DesiredTable;

use crate::chains::{EXTERNAL_SERVICES, NODE_PORTS, SERVICES};

/// `table` as `iptables-save` would print it once applied to empty built-in chains, in the
/// order kube-proxy's own tests print tables: built-in chains with our jumps first (in
/// `iptables-save`'s order), then
/// `KUBE-NODEPORTS`, `KUBE-SERVICES`, `KUBE-EXTERNAL-SERVICES` and the other chains by
/// name; rules chain by chain in their order. The text is valid `iptables-restore` input.
///
/// ```
/// use iptables::{DesiredTable, Ownership, Table};
/// let empty = DesiredTable::new(Table::Nat, Ownership::default());
/// assert_eq!(iptables_mode::render(&empty), "*nat\nCOMMIT\n");
/// ```
pub fn render(table: &DesiredTable) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "*{}", table.table);
    let builtins: Vec<&str> = BUILTINS
        .into_iter()
        .filter(|b| table.jumps.iter().any(|j| j.from.as_str() == *b))
        .collect();
    for chain in &builtins {
        let _ = writeln!(out, ":{chain} ACCEPT [0:0]");
    }
    let mut chains: Vec<_> = table.chains.iter().collect();
    chains.sort_by_key(|c| (rank(c.name.as_str()), c.name.as_str()));
    for chain in &chains {
        let _ = writeln!(out, ":{} - [0:0]", chain.name);
    }
    for chain in &builtins {
        for jump in table.jumps.iter().filter(|j| j.from.as_str() == *chain) {
            let _ = writeln!(out, "-A {chain} {}", jump.rule);
        }
    }
    for chain in &chains {
        for rule in &chain.rules {
            let _ = writeln!(out, "-A {} {rule}", chain.name);
        }
    }
    out.push_str("COMMIT\n");
    out
}

/// The built-in chains, in `iptables-save`'s order.
const BUILTINS: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// kube-proxy's test order: these three first, the rest by name.
fn rank(chain: &str) -> usize {
    [NODE_PORTS, SERVICES, EXTERNAL_SERVICES]
        .iter()
        .position(|c| *c == chain)
        .unwrap_or(3)
}
