//! What a rule generator asks for: the chains we want in one table, the
//! jumps into them from built-in chains, and which chain names we own.

use crate::{ChainName, Rule, Table, TableState};

/// A chain we own, with its complete list of rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The chain's name.
    pub name: ChainName,
    /// Its rules, in order.
    pub rules: Vec<Rule>,
}

/// A rule in a built-in chain (`PREROUTING`, `INPUT`, `FORWARD`, `OUTPUT`,
/// `POSTROUTING`) that jumps to one of our chains. It is kept present exactly
/// once, inserted at the top when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jump {
    /// The built-in chain holding the rule.
    pub from: ChainName,
    /// The rule, whose target must be one of the desired chains, e.g.
    /// `-m comment --comment "kubernetes service portals" -j KUBE-SERVICES`.
    pub rule: Rule,
}

/// Which chain names are ours, beyond the desired chains themselves: an owned
/// chain that is no longer desired is deleted, together with any rule in a
/// built-in chain that jumps to it.
///
/// ```
/// use iptables::Ownership;
/// let own = Ownership::prefixes(["KUBE-SVC-", "KUBE-SEP-"]).with_names(["KUBE-SERVICES"]);
/// assert!(own.owns("KUBE-SVC-ERIFXISQEP7F7OF4"));
/// assert!(own.owns("KUBE-SERVICES"));
/// assert!(!own.owns("KUBE-SERVICES-X"));
/// assert!(!own.owns("DOCKER"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    names: Vec<String>,
    prefixes: Vec<String>,
}

impl Ownership {
    /// Owns exactly these chain names.
    pub fn names<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Ownership::default().with_names(names)
    }

    /// Owns every chain whose name starts with one of these prefixes.
    pub fn prefixes<I: IntoIterator<Item = S>, S: Into<String>>(prefixes: I) -> Self {
        Ownership::default().with_prefixes(prefixes)
    }

    /// Also owns these exact names.
    #[must_use]
    pub fn with_names<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.names.extend(names.into_iter().map(Into::into));
        self
    }

    /// Also owns names with these prefixes.
    #[must_use]
    pub fn with_prefixes<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        prefixes: I,
    ) -> Self {
        self.prefixes.extend(prefixes.into_iter().map(Into::into));
        self
    }

    /// True when `chain` is ours.
    pub fn owns(&self, chain: &str) -> bool {
        self.names.iter().any(|n| n == chain)
            || self.prefixes.iter().any(|p| chain.starts_with(p.as_str()))
    }
}

/// Everything we want in one table of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredTable {
    /// The table.
    pub table: Table,
    /// Our chains, each with all its rules. They are owned implicitly.
    pub chains: Vec<Chain>,
    /// Jumps from built-in chains into our chains, in the order they should
    /// appear when all are inserted.
    pub jumps: Vec<Jump>,
    /// Further chain names we own (for deleting chains no longer desired).
    pub ownership: Ownership,
}

impl DesiredTable {
    /// An empty desired table owning `ownership`: applying it deletes every
    /// owned chain and every jump into one.
    pub fn new(table: Table, ownership: Ownership) -> Self {
        DesiredTable {
            table,
            chains: Vec::new(),
            jumps: Vec::new(),
            ownership,
        }
    }

    /// What `ownership` claims in `current`, as a desired table: the owned
    /// chains with their rules, and the rules of built-in chains that jump
    /// to them. Planning it against `current` changes nothing; it is a
    /// starting point for tests and for adopting a table as it is.
    ///
    /// ```
    /// use iptables::{plan, DesiredTable, Learned, Ownership, Ruleset, Table};
    /// let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n:KUBE-SERVICES - [0:0]\n\
    ///     -A PREROUTING -j DOCKER\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n";
    /// let current = &Ruleset::parse(saved).unwrap().tables[&Table::Nat];
    /// let adopted = DesiredTable::from_current(current, Ownership::prefixes(["KUBE-"]));
    /// assert_eq!(adopted.chains.len(), 1);
    /// assert_eq!(adopted.jumps.len(), 1);
    /// assert_eq!(plan(current, &adopted, &Learned::default()).unwrap(), None);
    /// ```
    pub fn from_current(current: &TableState, ownership: Ownership) -> Self {
        let mut desired = DesiredTable::new(current.table, ownership);
        for chain in &current.chains {
            if chain.is_builtin() {
                let jumps = chain
                    .rules
                    .iter()
                    .filter(|r| r.target().is_some_and(|t| desired.ownership.owns(t)));
                desired.jumps.extend(jumps.map(|rule| Jump {
                    from: chain.name.clone(),
                    rule: rule.clone(),
                }));
            } else if desired.ownership.owns(chain.name.as_str()) {
                desired.chains.push(Chain {
                    name: chain.name.clone(),
                    rules: chain.rules.clone(),
                });
            }
        }
        desired
    }
}
