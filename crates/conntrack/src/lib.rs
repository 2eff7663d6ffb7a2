//! Deleting conntrack entries over ctnetlink (`NETLINK_NETFILTER`,
//! subsystem `NFNL_SUBSYS_CTNETLINK`), with no C library and no `unsafe`.
//!
//! It covers what a service proxy deletes, as kube-proxy does
//! (`pkg/proxy/conntrack`): UDP flows to a service IP and port, UDP flows to
//! a node port, and flows a service IP or node port DNATed to an endpoint
//! that is gone ([`Filter::udp_nat`], [`Filter::udp_node_port_nat`]).
//! Like kube-proxy it lists the table once, matches in userspace, and
//! deletes each matching entry by tuple; here the deletes are batched, many
//! per `sendmsg`, and carry the entry's id so a newer flow reusing the tuple
//! is left alone.
//!
//! A handle works in the network namespace of the thread that opened it.

mod client;
mod error;
mod filter;
mod flow;
mod wire;

pub use client::Conntrack;
pub use error::Error;
pub use filter::{Filter, TupleFilter};
pub use flow::{Family, Flow, Tuple, proto};
