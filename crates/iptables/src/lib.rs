//! The one iptables writer of kube-ipvs-proxy, shared by the IPVS-mode and
//! iptables-mode rule generators. It knows nothing of Kubernetes: callers
//! describe the chains they want in a table ([`DesiredTable`]), and the
//! writer
//!
//! 1. reads the table with `iptables-save -t TABLE` ([`Ruleset::parse`]),
//! 2. computes the `iptables-restore --noflush` input that rewrites only the
//!    chains that changed, deletes owned chains no longer wanted and keeps
//!    each jump from a built-in chain present exactly once ([`plan()`], a pure
//!    function),
//! 3. runs one `iptables-restore --noflush --wait` for the table
//!    ([`Iptables::restore`]), mapping a failing line back to the chain and
//!    rule it came from.
//!
//! Nothing is run when the table is already right. [`Iptables::sync`] reads
//! the table every time and repairs drift; [`Iptables::sync_from_applied`]
//! plans against the state it last applied, for cheap event-driven syncs
//! between full ones. The backend (nf_tables
//! or legacy) is the host's `iptables` one ([`Backend::detect`]) or forced.
//!
//! ```no_run
//! use iptables::{Chain, DesiredTable, Family, Iptables, Jump, Ownership, Rule, Table};
//! let mut ipt = Iptables::detect(Family::V4)?;
//! let mut nat = DesiredTable::new(Table::Nat, Ownership::prefixes(["KUBE-"]));
//! nat.chains.push(Chain {
//!     name: "KUBE-SERVICES".parse()?,
//!     rules: vec![Rule::parse("-s 127.0.0.0/8 -j RETURN")?],
//! });
//! nat.jumps.push(Jump {
//!     from: "PREROUTING".parse()?,
//!     rule: Rule::parse(r#"-m comment --comment "kubernetes service portals" -j KUBE-SERVICES"#)?,
//! });
//! if let Some(plan) = ipt.sync(&nat)? {
//!     println!("rewrote {} chains", plan.rewritten.len());
//! }
//! # Ok::<(), iptables::Error>(())
//! ```

mod applied;
mod args;
mod backend;
mod desired;
mod error;
mod learned;
mod name;
mod plan;
mod rule;
mod runner;
mod save;

pub use args::Args;
pub use backend::{Backend, Tools};
pub use desired::{Chain, DesiredTable, Jump, Ownership};
pub use error::Error;
pub use learned::Learned;
pub use name::{ChainName, Family, MAX_CHAIN_NAME, Table};
pub use plan::{LineOrigin, Plan, plan};
pub use rule::Rule;
pub use runner::Iptables;
pub use save::{ChainState, Counters, Ruleset, TableState};
