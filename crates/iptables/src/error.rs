//! Errors, each naming the operation and the object.

use crate::{LineOrigin, Table};

/// Everything that can go wrong reading or writing iptables.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A table name the tools do not know.
    #[error("unknown iptables table {0:?}")]
    UnknownTable(String),
    /// A chain name the tools would reject.
    #[error(
        "invalid chain name {0:?}: 1 to 28 printable characters, no quotes, not starting with - or !"
    )]
    InvalidChainName(String),
    /// A rule that cannot be written as one restore line.
    #[error("invalid rule `{rule}`: {why}")]
    InvalidRule {
        /// The rule text.
        rule: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// `iptables-save` output that does not parse.
    #[error("parse iptables-save output, line {line} ({text:?}): {what}")]
    Parse {
        /// Line number, from 1.
        line: usize,
        /// The line.
        text: String,
        /// What is wrong.
        what: String,
    },
    /// A desired table that cannot be applied as asked.
    #[error("invalid desired {table} table: {why}")]
    InvalidDesired {
        /// The table.
        table: Table,
        /// What is inconsistent.
        why: String,
    },
    /// A tool could not be started (not installed, not executable).
    #[error("start `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// A tool ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on standard error.
        stderr: String,
    },
    /// `iptables-restore` rejected our input; `origin` says which of our
    /// chains and rules the failing line belongs to, when the tool named one.
    #[error("`{command}` of the {table} table failed ({status}){}: {stderr}", describe(*line, origin.as_deref()))]
    Restore {
        /// The command line.
        command: String,
        /// The table applied.
        table: Table,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The failing line of the input, as the tool reported it.
        line: Option<usize>,
        /// What that line was for.
        origin: Option<Box<LineOrigin>>,
        /// What the tool printed on standard error.
        stderr: String,
    },
    /// `iptables --version` printed something we cannot read a backend from.
    #[error("cannot tell the iptables backend from `{command}` output {output:?}")]
    UnknownBackend {
        /// The command line.
        command: String,
        /// What it printed.
        output: String,
    },
}

fn describe(line: Option<usize>, origin: Option<&LineOrigin>) -> String {
    match (line, origin) {
        (Some(n), Some(o)) => format!(" at input line {n}, {o}"),
        (Some(n), None) => format!(" at input line {n}"),
        (None, _) => String::new(),
    }
}

impl std::fmt::Display for LineOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineOrigin::Table => f.write_str("the table header"),
            LineOrigin::Declare(c) => write!(f, "declaring chain {c}"),
            LineOrigin::Append { chain, index, rule } => {
                write!(f, "rule {} of chain {chain}: `{rule}`", index + 1)
            }
            LineOrigin::InsertJump(j) => write!(f, "inserting jump `{}` into {}", j.rule, j.from),
            LineOrigin::DeleteRule { chain, rule } => write!(f, "deleting `{rule}` from {chain}"),
            LineOrigin::DeleteChain(c) => write!(f, "deleting chain {c}"),
            LineOrigin::Commit => f.write_str("COMMIT (the kernel rejected the whole table)"),
        }
    }
}

impl Error {
    /// Whether `iptables-restore` failed or could not be run: what kube-proxy counts in
    /// `kubeproxy_sync_proxy_rules_iptables_restore_failures_total` (any error of its
    /// `RestoreAll`), as opposed to reading or planning a table.
    pub fn is_restore(&self) -> bool {
        match self {
            Error::Restore { .. } => true,
            Error::Spawn { command, .. } => command.ends_with(crate::runner::RESTORE_ARGS),
            _ => false,
        }
    }
}

#[cfg(test)]
mod restore_tests {
    use super::*;

    fn spawn(command: &str) -> Error {
        Error::Spawn {
            command: command.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }
    }

    #[test]
    fn only_a_restore_that_failed_or_did_not_start_is_a_restore_failure() {
        assert!(spawn("iptables-nft-restore --noflush --wait").is_restore());
        assert!(!spawn("iptables-nft-save -t nat").is_restore());
        assert!(!Error::UnknownTable("raw2".into()).is_restore());
    }
}
