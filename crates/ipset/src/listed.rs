//! Sets as the kernel reports them.

use crate::{Member, SetName, SetSpec};

/// One set read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSet {
    /// The set's name.
    pub name: SetName,
    /// How many iptables rules (or other kernel users) reference the set; a
    /// referenced set cannot be destroyed or renamed.
    pub references: u32,
    /// The set's spec and members, when this crate understands them.
    pub contents: Contents,
}

/// What a listed set holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// A set of a type this crate models, with every member.
    Known {
        /// The spec that would create this set (with the kernel's current
        /// `hashsize`).
        spec: SetSpec,
        /// The members, in the kernel's order.
        members: Vec<Member>,
    },
    /// A set this crate does not model (another type, another family, or a
    /// member it cannot represent): left alone, reported by name.
    Foreign {
        /// The kernel's type name, e.g. `hash:mac`.
        type_name: String,
        /// Why it is not modelled.
        reason: String,
    },
}
