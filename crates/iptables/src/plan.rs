//! The pure heart of the writer: from what a table holds and what we want in
//! it, the `iptables-restore --noflush` input that gets there, touching only
//! our chains and the jumps into them. No I/O here.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::learned::Learned;
use crate::{ChainName, ChainState, DesiredTable, Error, Jump, Rule, Table, TableState};

/// Where a line of the restore input comes from, to explain a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOrigin {
    /// `*table`.
    Table,
    /// `:CHAIN - [0:0]`: creates or flushes one of our chains.
    Declare(ChainName),
    /// `-A CHAIN rule`: rule number `index` (from 0) of a chain we rewrite.
    Append {
        /// The chain.
        chain: ChainName,
        /// The rule's position in the desired chain.
        index: usize,
        /// The rule.
        rule: Rule,
    },
    /// `-I FROM 1 rule`: a missing jump.
    InsertJump(Jump),
    /// `-D CHAIN rule`: a duplicate or stale jump into one of our chains.
    DeleteRule {
        /// The built-in chain.
        chain: ChainName,
        /// The rule deleted.
        rule: Rule,
    },
    /// `-X CHAIN`: one of our chains no longer wanted.
    DeleteChain(ChainName),
    /// `COMMIT`.
    Commit,
}

/// The restore input for one table, and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The table.
    pub table: Table,
    /// Chains created or rewritten (declared, then all their rules appended).
    pub rewritten: Vec<ChainName>,
    /// Chains flushed and deleted.
    pub deleted: Vec<ChainName>,
    /// Chains no longer wanted that a chain we do not own still jumps to:
    /// flushed but kept, since deleting them would fail the whole restore.
    /// Once empty they are left alone until the reference goes.
    pub kept_referenced: Vec<ChainName>,
    /// Jumps inserted.
    pub jumps_inserted: Vec<Jump>,
    /// Rules deleted from built-in chains (duplicate or stale jumps).
    pub rules_deleted: Vec<(ChainName, Rule)>,
    text: String,
    lines: Vec<LineOrigin>,
}

impl Plan {
    /// The `iptables-restore --noflush` input.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// What line `number` (from 1, as `iptables-restore` counts) does.
    pub fn line(&self, number: usize) -> Option<&LineOrigin> {
        number.checked_sub(1).and_then(|i| self.lines.get(i))
    }

    /// How many lines the input has.
    pub fn line_count(&self) -> usize {
        self.lines.len()
    }

    fn push(&mut self, line: std::fmt::Arguments<'_>, origin: LineOrigin) {
        // Writing to a String cannot fail.
        let _ = self.text.write_fmt(line);
        self.text.push('\n');
        self.lines.push(origin);
    }
}

/// Computes the restore input that turns `current` into `desired`, or `None`
/// when nothing needs to change (then no restore should run at all).
///
/// - Our chains (desired, or owned by `desired.ownership`) whose rules differ
///   from the desired ones are declared (which flushes them) and rewritten;
///   unchanged chains are left out.
/// - Owned chains no longer desired are flushed, then deleted with `-X`,
///   unless a chain we do not own still refers to them.
/// - Each desired jump is kept exactly once: inserted at the top of its
///   built-in chain when missing, duplicates deleted. Any other rule in a
///   built-in chain that targets one of our chains is deleted.
/// - Rules in chains we do not own are never touched.
///
/// `learned` holds the saved forms of rules applied earlier (see
/// [`Learned`]); pass `Learned::default()` to compare literally.
///
/// ```
/// use iptables::{plan, Chain, DesiredTable, Jump, Learned, Ownership, Rule, Ruleset, Table};
/// let current = Ruleset::parse("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n").unwrap();
/// let mut desired = DesiredTable::new(Table::Nat, Ownership::prefixes(["KUBE-"]));
/// desired.chains.push(Chain {
///     name: "KUBE-SERVICES".parse().unwrap(),
///     rules: vec![Rule::parse("-s 127.0.0.0/8 -j RETURN").unwrap()],
/// });
/// desired.jumps.push(Jump {
///     from: "PREROUTING".parse().unwrap(),
///     rule: Rule::parse(r#"-m comment --comment "kubernetes service portals" -j KUBE-SERVICES"#).unwrap(),
/// });
/// let plan = plan(&current.tables[&Table::Nat], &desired, &Learned::default()).unwrap().unwrap();
/// assert_eq!(plan.text(), "*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN\n\
///     -I PREROUTING 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\nCOMMIT\n");
/// ```
///
/// # Errors
/// [`Error::InvalidDesired`] when the desired table is inconsistent: a chain
/// or jump listed twice, a desired chain that is built in, a jump from a chain that
/// is not built in, a jump whose target is not a desired chain, or a rule
/// jumping to an owned chain that is not desired (it would be deleted).
pub fn plan(
    current: &TableState,
    desired: &DesiredTable,
    learned: &Learned,
) -> Result<Option<Plan>, Error> {
    let existing = current.by_name();
    let wanted = validate(&existing, desired)?;
    let owned = |name: &str| wanted.contains_key(name) || desired.ownership.owns(name);

    let rewritten: Vec<&crate::Chain> = desired
        .chains
        .iter()
        .filter(|c| {
            existing
                .get(c.name.as_str())
                .is_none_or(|cur| !learned.chain_matches(&c.name, &c.rules, &cur.rules))
        })
        .collect();
    let mut unwanted: Vec<&ChainState> = current
        .chains
        .iter()
        .filter(|c| {
            !c.is_builtin() && owned(c.name.as_str()) && !wanted.contains_key(c.name.as_str())
        })
        .collect();
    let unwanted_names: HashSet<&str> = unwanted.iter().map(|c| c.name.as_str()).collect();
    let referenced: HashSet<&str> = current
        .chains
        .iter()
        .filter(|c| !c.is_builtin() && !owned(c.name.as_str()))
        .flat_map(|c| c.rules.iter().filter_map(Rule::target))
        .filter(|t| unwanted_names.contains(t))
        .collect();
    // A chain kept for a foreign reference and already flushed needs nothing.
    unwanted.retain(|c| !(c.rules.is_empty() && referenced.contains(c.name.as_str())));
    let (missing, stale) = jumps(current, desired, learned, &owned);

    if rewritten.is_empty() && unwanted.is_empty() && missing.is_empty() && stale.is_empty() {
        return Ok(None);
    }
    let mut plan = Plan {
        table: desired.table,
        rewritten: rewritten.iter().map(|c| c.name.clone()).collect(),
        deleted: Vec::new(),
        kept_referenced: Vec::new(),
        jumps_inserted: missing.iter().map(|j| (*j).clone()).collect(),
        rules_deleted: stale
            .iter()
            .map(|(c, r)| ((*c).clone(), (*r).clone()))
            .collect(),
        text: String::new(),
        lines: Vec::new(),
    };
    plan.push(format_args!("*{}", desired.table), LineOrigin::Table);
    let declared = rewritten
        .iter()
        .map(|c| &c.name)
        .chain(unwanted.iter().map(|c| &c.name));
    for name in declared {
        plan.push(
            format_args!(":{name} - [0:0]"),
            LineOrigin::Declare(name.clone()),
        );
    }
    for (chain, rule) in &stale {
        plan.push(
            format_args!("-D {chain} {rule}"),
            LineOrigin::DeleteRule {
                chain: (*chain).clone(),
                rule: (*rule).clone(),
            },
        );
    }
    for chain in &rewritten {
        for (index, rule) in chain.rules.iter().enumerate() {
            let origin = LineOrigin::Append {
                chain: chain.name.clone(),
                index,
                rule: rule.clone(),
            };
            if rule.words().is_empty() {
                plan.push(format_args!("-A {}", chain.name), origin);
            } else {
                plan.push(format_args!("-A {} {rule}", chain.name), origin);
            }
        }
    }
    // Inserting at position 1 in reverse order leaves them in list order.
    for jump in missing.iter().rev() {
        plan.push(
            format_args!("-I {} 1 {}", jump.from, jump.rule),
            LineOrigin::InsertJump((*jump).clone()),
        );
    }
    for chain in unwanted {
        if referenced.contains(chain.name.as_str()) {
            plan.kept_referenced.push(chain.name.clone());
        } else {
            plan.push(
                format_args!("-X {}", chain.name),
                LineOrigin::DeleteChain(chain.name.clone()),
            );
            plan.deleted.push(chain.name.clone());
        }
    }
    plan.push(format_args!("COMMIT"), LineOrigin::Commit);
    Ok(Some(plan))
}

/// Checks the desired table against itself and the current one; returns the
/// desired chains by name.
fn validate<'a>(
    existing: &HashMap<&str, &ChainState>,
    desired: &'a DesiredTable,
) -> Result<HashMap<&'a str, &'a crate::Chain>, Error> {
    let invalid = |why: String| Error::InvalidDesired {
        table: desired.table,
        why,
    };
    let mut wanted = HashMap::with_capacity(desired.chains.len());
    for chain in &desired.chains {
        if wanted.insert(chain.name.as_str(), chain).is_some() {
            return Err(invalid(format!("chain {} is listed twice", chain.name)));
        }
        if existing
            .get(chain.name.as_str())
            .is_some_and(|c| c.is_builtin())
        {
            return Err(invalid(format!("chain {} is a built-in chain", chain.name)));
        }
    }
    for (i, jump) in desired.jumps.iter().enumerate() {
        if desired.jumps[..i].contains(jump) {
            return Err(invalid(format!(
                "jump `{}` in {} is listed twice",
                jump.rule, jump.from
            )));
        }
        let user_chain = existing
            .get(jump.from.as_str())
            .is_some_and(|c| !c.is_builtin());
        if user_chain || wanted.contains_key(jump.from.as_str()) {
            return Err(invalid(format!(
                "jump from {}, which is not a built-in chain",
                jump.from
            )));
        }
        if !jump.rule.target().is_some_and(|t| wanted.contains_key(t)) {
            return Err(invalid(format!(
                "jump `{}` in {} does not target a desired chain",
                jump.rule, jump.from
            )));
        }
    }
    for chain in &desired.chains {
        let dangling = chain
            .rules
            .iter()
            .filter_map(Rule::target)
            .find(|t| !wanted.contains_key(t) && desired.ownership.owns(t));
        if let Some(target) = dangling {
            return Err(invalid(format!(
                "chain {} jumps to {target}, which we own but do not want",
                chain.name
            )));
        }
    }
    Ok(wanted)
}

/// The desired jumps that are missing, and the rules in built-in chains that
/// target our chains but are not (the first copy of) a desired jump.
fn jumps<'a>(
    current: &'a TableState,
    desired: &'a DesiredTable,
    learned: &Learned,
    owned: &dyn Fn(&str) -> bool,
) -> (Vec<&'a Jump>, Vec<(&'a ChainName, &'a Rule)>) {
    let mut found = vec![false; desired.jumps.len()];
    let mut stale = Vec::new();
    for chain in current.chains.iter().filter(|c| c.is_builtin()) {
        for rule in &chain.rules {
            if !rule.target().is_some_and(owned) {
                continue;
            }
            let first_copy = desired.jumps.iter().enumerate().find(|(i, j)| {
                !found[*i] && j.from == chain.name && learned.jump_matches(&j.from, &j.rule, rule)
            });
            match first_copy {
                Some((i, _)) => found[i] = true,
                None => stale.push((&chain.name, rule)),
            }
        }
    }
    let missing = desired
        .jumps
        .iter()
        .zip(found)
        .filter(|(_, f)| !f)
        .map(|(j, _)| j)
        .collect();
    (missing, stale)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
