//! Putting a family's tables together: the fixed chains with their rules, every Service's
//! rules in the shared chains (in Service order), every Service's own chains, the jumps.

use iptables::{Chain, ChainName, DesiredTable, Family, Rule, Table};
use model::IpFamily;

use crate::chains::{Fixed, KUBELET_FIREWALL, SERVICES, fixed_chains, ownership};
use crate::part::{ServicePart, Shared};

/// One family's desired nat and filter tables, for the `iptables` writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// The address family (`iptables` or `ip6tables`).
    pub family: Family,
    /// The nat table.
    pub nat: DesiredTable,
    /// The filter table.
    pub filter: DesiredTable,
}

impl Tables {
    /// Tables that want nothing: applying them deletes every chain the iptables mode owns
    /// and every jump into one (for leaving iptables mode, or a family no longer proxied).
    pub fn cleanup(family: IpFamily) -> Tables {
        Tables {
            family: writer_family(family),
            nat: DesiredTable::new(Table::Nat, ownership(Table::Nat)),
            filter: DesiredTable::new(Table::Filter, ownership(Table::Filter)),
        }
    }

    /// Both tables, filter first: the order to apply them in, so that a REJECT for a
    /// Service losing its endpoints is in place when its DNAT goes.
    pub fn iter(&self) -> impl Iterator<Item = &DesiredTable> {
        [&self.filter, &self.nat].into_iter()
    }
}

/// The writer's name for a model family.
pub fn writer_family(family: IpFamily) -> Family {
    match family {
        IpFamily::V4 => Family::V4,
        IpFamily::V6 => Family::V6,
    }
}

/// The tables of `fixed.family` with the given Services' parts, in the order given.
pub(crate) fn assemble<'p>(
    fixed: &Fixed<'_>,
    parts: impl Iterator<Item = &'p ServicePart> + Clone,
) -> Result<Tables, iptables::Error> {
    let mut shared: Vec<Vec<Rule>> = vec![Vec::new(); Shared::ALL.len()];
    for part in parts.clone() {
        for (chain, rule) in &part.shared {
            shared[*chain as usize].push(rule.clone());
        }
    }
    let mut tables = Tables::cleanup(fixed.family);
    for table in [&mut tables.nat, &mut tables.filter] {
        let t = table.table;
        table.jumps = fixed.jumps(t)?;
        for &name in fixed_chains(t) {
            let mut rules = fixed.head_rules(t, name)?;
            for s in Shared::ALL {
                if s.table() == t && s.name() == name {
                    rules.append(&mut shared[s as usize]);
                }
            }
            if t == Table::Nat && name == SERVICES {
                rules.extend(fixed.node_ports_tail()?);
            }
            table.chains.push(chain(name, rules)?);
        }
    }
    if let Some(rules) = fixed.kubelet_firewall()? {
        tables.filter.chains.push(chain(KUBELET_FIREWALL, rules)?);
    }
    let own_chains = parts.clone().map(|p| p.chains.len()).sum();
    tables.nat.chains.reserve(own_chains);
    // Cloned from the parts kept for the next update; the writer diffs them chain by chain.
    for part in parts {
        tables.nat.chains.extend(part.chains.iter().cloned());
    }
    Ok(tables)
}

fn chain(name: &str, rules: Vec<Rule>) -> Result<Chain, iptables::Error> {
    Ok(Chain {
        name: name.parse::<ChainName>()?,
        rules,
    })
}
