//! An ipset client over nfnetlink (`NETLINK_NETFILTER`, subsystem
//! `NFNL_SUBSYS_IPSET`, protocol 6), with no C library and no `unsafe`.
//!
//! - [`SetSpec`], [`SetType`], [`Family`]: what a set is (the types
//!   kube-proxy's IPVS mode uses: `hash:ip`, `hash:ip,port`,
//!   `hash:ip,port,ip`, `hash:ip,port,net`, `hash:net`, `bitmap:port`);
//! - [`Entry`], [`Member`]: typed members, printed and parsed in `ipset save`
//!   syntax (`10.96.0.10,tcp:80`);
//! - [`Ipset`]: list every set with its members in one dump, create,
//!   destroy, swap, add and delete members in batches (many messages per
//!   `sendmsg`, every refusal mapped back to its member), and
//!   [`Ipset::sync_set`] / [`Ipset::sync_listed`], which apply the minimal
//!   diff or rebuild a set atomically when its spec changed.
//!
//! Sets live in network namespaces: a handle works in the namespace of the
//! thread that opened it.
//!
//! ```no_run
//! use ipset::{Ipset, Contents};
//! let mut ipset = Ipset::open()?;
//! for set in ipset.list()? {
//!     if let Contents::Known { spec, members } = &set.contents {
//!         println!("{spec}");
//!         for m in members {
//!             println!("add {} {m}", set.name);
//!         }
//!     }
//! }
//! # Ok::<(), ipset::Error>(())
//! ```

mod client;
mod entry;
mod error;
mod listed;
mod name;
mod spec;
mod sync;
mod wire;

pub use client::Ipset;
pub use entry::{Entry, EntryError, Member, Net, Protocol};
pub use error::{Errno, Error, MemberFailure, Op};
pub use listed::{Contents, ListedSet};
pub use name::{MAX_NAME_LEN, NameError, SetName};
pub use spec::{Family, HashLimits, NotAHashType, SetSpec, SetType, Storage};
pub use sync::{SetPlan, SyncReport, diff};
