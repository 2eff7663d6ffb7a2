//! Names: address families, tables and chains.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The address family a ruleset belongs to: `iptables` or `ip6tables`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4, programmed with `iptables-*`.
    V4,
    /// IPv6, programmed with `ip6tables-*`.
    V6,
}

impl Family {
    /// The command prefix of this family's tools: `iptables` or `ip6tables`.
    pub fn command(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

/// An iptables table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `filter`: INPUT, FORWARD, OUTPUT.
    Filter,
    /// `nat`: PREROUTING, INPUT, OUTPUT, POSTROUTING.
    Nat,
    /// `mangle`.
    Mangle,
    /// `raw`.
    Raw,
    /// `security`.
    Security,
}

impl Table {
    /// The table's name as the tools spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Filter => "filter",
            Table::Nat => "nat",
            Table::Mangle => "mangle",
            Table::Raw => "raw",
            Table::Security => "security",
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Table {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "filter" => Table::Filter,
            "nat" => Table::Nat,
            "mangle" => Table::Mangle,
            "raw" => Table::Raw,
            "security" => Table::Security,
            _ => return Err(Error::UnknownTable(s.to_owned())),
        })
    }
}

/// The longest chain name the kernel accepts (`XT_EXTENSION_MAXNAMELEN - 1`).
pub const MAX_CHAIN_NAME: usize = 28;

/// A chain name the tools accept: 1 to 28 printable characters, no
/// whitespace or quotes, not starting with `-` or `!`.
///
/// ```
/// use iptables::ChainName;
/// let c: ChainName = "KUBE-SERVICES".parse().unwrap();
/// assert_eq!(c.as_str(), "KUBE-SERVICES");
/// assert!("KUBE SERVICES".parse::<ChainName>().is_err());
/// assert!("KUBE-SVC-0123456789ABCDEF0123456789".parse::<ChainName>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainName(String);

impl ChainName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ChainName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let valid = !s.is_empty()
            && s.len() <= MAX_CHAIN_NAME
            && !s.starts_with(['-', '!'])
            && s.chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\'');
        if valid {
            Ok(ChainName(s.to_owned()))
        } else {
            Err(Error::InvalidChainName(s.to_owned()))
        }
    }
}

impl fmt::Display for ChainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ChainName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_are_validated() {
        for good in ["KUBE-SERVICES", "KUBE-SVC-ERIFXISQEP7F7OF4", "a"] {
            assert!(good.parse::<ChainName>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "-A",
            "!x",
            "a b",
            "a\"b",
            "KUBE-SEP-0123456789ABCDEF012345",
        ] {
            assert!(bad.parse::<ChainName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tables_round_trip() {
        for t in [
            Table::Filter,
            Table::Nat,
            Table::Mangle,
            Table::Raw,
            Table::Security,
        ] {
            assert_eq!(t.as_str().parse::<Table>().unwrap(), t);
        }
        assert!("broute".parse::<Table>().is_err());
    }
}
