//! Parsing `iptables-save` output into tables, chains and rules.

use std::collections::{BTreeMap, HashMap};

use crate::{ChainName, Error, Rule, Table};

/// Packet and byte counters of a chain's policy, as `[packets:bytes]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// One chain as `iptables-save` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    /// The chain's name.
    pub name: ChainName,
    /// The policy of a built-in chain (`ACCEPT`, `DROP`); `None` for a
    /// user-defined chain (shown as `-`).
    pub policy: Option<String>,
    /// The policy counters.
    pub counters: Counters,
    /// The rules, in order, without their `-A CHAIN` prefix.
    pub rules: Vec<Rule>,
}

impl ChainState {
    /// True for a built-in chain (one with a policy, such as `PREROUTING`).
    pub fn is_builtin(&self) -> bool {
        self.policy.is_some()
    }
}

/// One table as `iptables-save -t TABLE` shows it: chains in the order
/// printed (built-in chains first, then user chains by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableState {
    /// Which table.
    pub table: Table,
    /// Its chains.
    pub chains: Vec<ChainState>,
}

impl TableState {
    /// An empty table (what a table that was never used looks like).
    pub fn empty(table: Table) -> Self {
        TableState {
            table,
            chains: Vec::new(),
        }
    }

    /// The chain named `name`, if the table has it (a linear search: use
    /// [`TableState::by_name`] for many look-ups).
    pub fn chain(&self, name: &str) -> Option<&ChainState> {
        self.chains.iter().find(|c| c.name.as_str() == name)
    }

    /// The chains indexed by name.
    pub fn by_name(&self) -> HashMap<&str, &ChainState> {
        self.chains.iter().map(|c| (c.name.as_str(), c)).collect()
    }
}

/// Everything one `iptables-save` run printed, by table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// The tables printed.
    pub tables: BTreeMap<Table, TableState>,
}

impl Ruleset {
    /// Parses `iptables-save` (or `ip6tables-save`, either backend) output.
    /// Comments and blank lines are skipped; rules may carry `[pkts:bytes]`
    /// counters (`iptables-save -c`).
    ///
    /// ```
    /// use iptables::{Ruleset, Table};
    /// let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n\
    ///     -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\nCOMMIT\n";
    /// let rs = Ruleset::parse(saved).unwrap();
    /// let nat = &rs.tables[&Table::Nat];
    /// assert_eq!(nat.chain("PREROUTING").unwrap().rules[0].target(), Some("KUBE-SERVICES"));
    /// assert!(!nat.chain("KUBE-SERVICES").unwrap().is_builtin());
    /// ```
    ///
    /// # Errors
    /// [`Error::Parse`] naming the line that is not `iptables-save` syntax.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut parser = Parser::default();
        for (i, line) in text.lines().enumerate() {
            parser.line(line.trim()).map_err(|what| Error::Parse {
                line: i + 1,
                text: line.to_owned(),
                what,
            })?;
        }
        if let Some(open) = parser.open {
            return Err(Error::Parse {
                line: text.lines().count(),
                text: String::new(),
                what: format!("table {} has no COMMIT", open.table),
            });
        }
        Ok(Ruleset {
            tables: parser.tables,
        })
    }
}

#[derive(Default)]
struct Parser {
    tables: BTreeMap<Table, TableState>,
    open: Option<TableState>,
    /// Positions of the open table's chains, by name.
    index: HashMap<String, usize>,
}

impl Parser {
    fn line(&mut self, line: &str) -> Result<(), String> {
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        if let Some(name) = line.strip_prefix('*') {
            if let Some(open) = &self.open {
                return Err(format!("table {} has no COMMIT", open.table));
            }
            let table = name.parse::<Table>().map_err(|e| e.to_string())?;
            self.open = Some(TableState::empty(table));
            self.index.clear();
            return Ok(());
        }
        let Some(open) = self.open.as_mut() else {
            return Err("outside a table".into());
        };
        if line == "COMMIT" {
            self.tables
                .insert(open.table, self.open.take().ok_or("no table")?);
            return Ok(());
        }
        if let Some(decl) = line.strip_prefix(':') {
            let chain = parse_declaration(decl)?;
            self.index.insert(chain.name.to_string(), open.chains.len());
            open.chains.push(chain);
            return Ok(());
        }
        let (chain, rule) = parse_append(line)?;
        let at = *self
            .index
            .get(chain)
            .ok_or_else(|| format!("rule for undeclared chain {chain}"))?;
        open.chains[at].rules.push(rule);
        Ok(())
    }
}

/// `NAME POLICY [packets:bytes]`, the policy `-` for user chains.
fn parse_declaration(decl: &str) -> Result<ChainState, String> {
    let mut parts = decl.split_whitespace();
    let name = parts.next().ok_or("chain declaration without a name")?;
    let name = name.parse::<ChainName>().map_err(|e| e.to_string())?;
    let policy = match parts.next().ok_or("chain declaration without a policy")? {
        "-" => None,
        p => Some(p.to_owned()),
    };
    let counters = match parts.next() {
        Some(c) => parse_counters(c)?,
        None => Counters::default(),
    };
    Ok(ChainState {
        name,
        policy,
        counters,
        rules: Vec::new(),
    })
}

fn parse_counters(text: &str) -> Result<Counters, String> {
    let bad = || format!("bad counters {text:?}");
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(bad)?;
    let (p, b) = inner.split_once(':').ok_or_else(bad)?;
    Ok(Counters {
        packets: p.parse().map_err(|_| bad())?,
        bytes: b.parse().map_err(|_| bad())?,
    })
}

/// `[pkts:bytes] -A CHAIN spec...` (counters optional).
fn parse_append(line: &str) -> Result<(&str, Rule), String> {
    let line = match line.strip_prefix('[') {
        Some(rest) => rest
            .split_once(']')
            .ok_or("unterminated counters")?
            .1
            .trim_start(),
        None => line,
    };
    let rest = line
        .strip_prefix("-A ")
        .ok_or_else(|| "expected `-A CHAIN`, a chain declaration or COMMIT".to_owned())?;
    let (chain, spec) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let rule = Rule::parse(spec).map_err(|e| e.to_string())?;
    Ok((chain, rule))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NFT: &str = include_str!("../testdata/kube-proxy-ipvs.nft.save");
    const LEGACY: &str = include_str!("../testdata/kube-proxy-ipvs.legacy.save");

    #[test]
    fn parses_real_nft_and_legacy_output_alike() {
        let nft = Ruleset::parse(NFT).unwrap();
        let legacy = Ruleset::parse(LEGACY).unwrap();
        assert_eq!(nft, legacy, "both backends print the same rules");
        let nat = &nft.tables[&Table::Nat];
        let names: Vec<_> = nat.chains.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "PREROUTING",
                "INPUT",
                "OUTPUT",
                "POSTROUTING",
                "KUBE-LOAD-BALANCER",
                "KUBE-MARK-MASQ",
                "KUBE-NODE-PORT",
                "KUBE-POSTROUTING",
                "KUBE-SERVICES"
            ]
        );
        let services = nat.chain("KUBE-SERVICES").unwrap();
        assert_eq!(services.rules.len(), 6);
        assert_eq!(
            services.rules[2].words()[..4],
            ["!", "-s", "10.244.0.0/16", "-m"],
            "iptables-save moves `! -s` before the matches"
        );
        assert_eq!(
            services.rules[2].words()[6],
            "Kubernetes service cluster ip + port for masquerade purpose"
        );
        let filter = &nft.tables[&Table::Filter];
        let input = filter.chain("INPUT").unwrap();
        assert_eq!(input.policy.as_deref(), Some("ACCEPT"));
        let targets: Vec<_> = input.rules.iter().filter_map(Rule::target).collect();
        assert_eq!(
            targets,
            [
                "KUBE-IPVS-FILTER",
                "KUBE-PROXY-FIREWALL",
                "KUBE-NODE-PORT",
                "SOMEONE-ELSE"
            ]
        );
        let other = filter.chain("SOMEONE-ELSE").unwrap();
        assert_eq!(other.rules[0].words()[9], "default/svc:http cluster IP");
    }

    #[test]
    fn parses_counters_and_empty_rules() {
        let rs = Ruleset::parse(
            "*filter\n:INPUT DROP [12:3456]\n:X - [0:0]\n[3:180] -A INPUT -j X\n-A X\nCOMMIT\n",
        )
        .unwrap();
        let f = &rs.tables[&Table::Filter];
        let input = f.chain("INPUT").unwrap();
        assert_eq!(input.policy.as_deref(), Some("DROP"));
        assert_eq!(
            input.counters,
            Counters {
                packets: 12,
                bytes: 3456
            }
        );
        assert_eq!(input.rules[0].target(), Some("X"));
        assert!(f.chain("X").unwrap().rules[0].words().is_empty());
    }

    #[test]
    fn reports_the_bad_line() {
        for (text, line) in [
            ("-A INPUT -j X\n", 1),
            ("*filter\n:INPUT ACCEPT [0:0]\n-A NOPE -j X\nCOMMIT\n", 3),
            ("*filter\n:INPUT ACCEPT [x:0]\nCOMMIT\n", 2),
            ("*filter\n-I INPUT -j X\nCOMMIT\n", 2),
            ("*bogus\nCOMMIT\n", 1),
            ("*filter\n*nat\n", 2),
            ("*filter\n:INPUT ACCEPT [0:0]\n", 2),
        ] {
            match Ruleset::parse(text) {
                Err(Error::Parse { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
