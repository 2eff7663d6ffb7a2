//! In-memory kernel tables that behave like the kernel where the dataplane
//! depends on it, for whole syncs in unit tests.

pub(crate) mod addresses;
pub(crate) mod conntrack;
pub(crate) mod ipset;
pub(crate) mod iptables;
pub(crate) mod ipvs;
