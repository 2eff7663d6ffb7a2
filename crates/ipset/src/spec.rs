//! What a set is: name, type, family and create options.

use std::fmt;
use std::ops::RangeInclusive;

use crate::SetName;

/// The set types kube-proxy's IPVS mode uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetType {
    /// `hash:ip`: addresses.
    HashIp,
    /// `hash:ip,port`: address, protocol and port.
    HashIpPort,
    /// `hash:ip,port,ip`: address, protocol, port and a second address.
    HashIpPortIp,
    /// `hash:ip,port,net`: address, protocol, port and a network.
    HashIpPortNet,
    /// `hash:net`: networks.
    HashNet,
    /// `bitmap:port`: ports in a fixed range.
    BitmapPort,
}

impl SetType {
    /// Every supported type.
    pub const ALL: [SetType; 6] = [
        SetType::HashIp,
        SetType::HashIpPort,
        SetType::HashIpPortIp,
        SetType::HashIpPortNet,
        SetType::HashNet,
        SetType::BitmapPort,
    ];

    /// The kernel's type name, e.g. `hash:ip,port`.
    pub fn name(self) -> &'static str {
        match self {
            SetType::HashIp => "hash:ip",
            SetType::HashIpPort => "hash:ip,port",
            SetType::HashIpPortIp => "hash:ip,port,ip",
            SetType::HashIpPortNet => "hash:ip,port,net",
            SetType::HashNet => "hash:net",
            SetType::BitmapPort => "bitmap:port",
        }
    }

    /// The type with this kernel name, if supported.
    pub fn from_name(name: &str) -> Option<SetType> {
        SetType::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for SetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Address family of a hash set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4 (`family inet`, `NFPROTO_IPV4`).
    #[doc(alias = "NFPROTO_IPV4")]
    Inet,
    /// IPv6 (`family inet6`, `NFPROTO_IPV6`).
    #[doc(alias = "NFPROTO_IPV6")]
    Inet6,
}

impl Family {
    /// The `NFPROTO_*` value.
    pub(crate) fn nfproto(self) -> u8 {
        match self {
            Family::Inet => 2,
            Family::Inet6 => 10,
        }
    }

    pub(crate) fn from_nfproto(value: u8) -> Option<Family> {
        match value {
            2 => Some(Family::Inet),
            10 => Some(Family::Inet6),
            _ => None,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Inet => "inet",
            Family::Inet6 => "inet6",
        })
    }
}

/// Size options of a hash set (`hashsize`, `maxelem`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashLimits {
    /// Initial bucket count; the kernel rounds it up to a power of two (at
    /// least 64) and grows it as the set fills.
    pub hashsize: u32,
    /// Most entries the set accepts.
    pub maxelem: u32,
}

impl Default for HashLimits {
    /// kube-proxy's values: `hashsize 1024 maxelem 65536`.
    fn default() -> Self {
        HashLimits {
            hashsize: 1024,
            maxelem: 65536,
        }
    }
}

/// How the set stores its members, with the options of that storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Storage {
    /// A hash set of one family.
    Hash {
        /// Address family.
        family: Family,
        /// Size options.
        limits: HashLimits,
    },
    /// A `bitmap:port` over this range of ports (`range FROM-TO`).
    Bitmap {
        /// The ports the set can hold.
        range: RangeInclusive<u16>,
    },
}

/// A set to create or keep: name, type, storage options and whether its
/// entries carry comments (the `comment` extension).
///
/// ```
/// use ipset::{Family, HashLimits, SetSpec, SetType};
/// let spec = SetSpec::hash("KUBE-CLUSTER-IP".parse().unwrap(), SetType::HashIpPort, Family::Inet, HashLimits::default()).unwrap();
/// assert_eq!(spec.to_string(), "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536");
/// let ports = SetSpec::bitmap_port("KUBE-NODE-PORT-TCP".parse().unwrap(), 0..=65535).with_comments();
/// assert_eq!(ports.to_string(), "create KUBE-NODE-PORT-TCP bitmap:port range 0-65535 comment");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SetSpec {
    name: SetName,
    set_type: SetType,
    storage: Storage,
    comments: bool,
}

/// A hash spec was asked for a bitmap type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a hash set type")]
pub struct NotAHashType(pub SetType);

impl SetSpec {
    /// A hash set of `set_type` (any type but [`SetType::BitmapPort`]).
    ///
    /// # Errors
    /// When `set_type` is [`SetType::BitmapPort`].
    pub fn hash(
        name: SetName,
        set_type: SetType,
        family: Family,
        limits: HashLimits,
    ) -> Result<Self, NotAHashType> {
        if set_type == SetType::BitmapPort {
            return Err(NotAHashType(set_type));
        }
        Ok(SetSpec {
            name,
            set_type,
            storage: Storage::Hash { family, limits },
            comments: false,
        })
    }

    /// A `bitmap:port` set over `range`.
    pub fn bitmap_port(name: SetName, range: RangeInclusive<u16>) -> Self {
        SetSpec {
            name,
            set_type: SetType::BitmapPort,
            storage: Storage::Bitmap { range },
            comments: false,
        }
    }

    /// The same spec with the `comment` extension, so that entries can carry
    /// a comment.
    pub fn with_comments(mut self) -> Self {
        self.comments = true;
        self
    }

    /// The same spec under another name.
    pub fn renamed(&self, name: SetName) -> Self {
        SetSpec {
            name,
            ..self.clone()
        }
    }

    /// The set's name.
    pub fn name(&self) -> &SetName {
        &self.name
    }

    /// The set's type.
    pub fn set_type(&self) -> SetType {
        self.set_type
    }

    /// Storage and its options.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The family of a hash set; `None` for `bitmap:port`.
    pub fn family(&self) -> Option<Family> {
        match self.storage {
            Storage::Hash { family, .. } => Some(family),
            Storage::Bitmap { .. } => None,
        }
    }

    /// Whether entries carry comments.
    pub fn comments(&self) -> bool {
        self.comments
    }

    /// True when a set created from `self` would behave like `other`, so
    /// that keeping `other` and updating its members is enough. `hashsize`
    /// is not compared: the kernel rounds it and grows it as the set fills.
    pub fn compatible_with(&self, other: &SetSpec) -> bool {
        let storage_matches = match (&self.storage, &other.storage) {
            (
                Storage::Hash {
                    family: f1,
                    limits: l1,
                },
                Storage::Hash {
                    family: f2,
                    limits: l2,
                },
            ) => f1 == f2 && l1.maxelem == l2.maxelem,
            (Storage::Bitmap { range: r1 }, Storage::Bitmap { range: r2 }) => r1 == r2,
            _ => false,
        };
        self.name == other.name
            && self.set_type == other.set_type
            && self.comments == other.comments
            && storage_matches
    }
}

/// The `ipset save` header line of the set (without kernel-chosen options
/// such as `bucketsize` and `initval`).
impl fmt::Display for SetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "create {} {}", self.name, self.set_type)?;
        match &self.storage {
            Storage::Hash { family, limits } => write!(
                f,
                " family {family} hashsize {} maxelem {}",
                limits.hashsize, limits.maxelem
            )?,
            Storage::Bitmap { range } => write!(f, " range {}-{}", range.start(), range.end())?,
        }
        if self.comments {
            f.write_str(" comment")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> SetName {
        s.parse().unwrap()
    }

    #[test]
    fn type_names_round_trip() {
        for t in SetType::ALL {
            assert_eq!(SetType::from_name(t.name()), Some(t));
        }
        assert_eq!(SetType::from_name("hash:mac"), None);
    }

    #[test]
    fn bitmap_is_not_a_hash() {
        let err = SetSpec::hash(
            name("x"),
            SetType::BitmapPort,
            Family::Inet,
            HashLimits::default(),
        );
        assert_eq!(err, Err(NotAHashType(SetType::BitmapPort)));
    }

    #[test]
    fn compatibility_ignores_hashsize_only() {
        let base = SetSpec::hash(
            name("s"),
            SetType::HashIp,
            Family::Inet,
            HashLimits::default(),
        )
        .unwrap();
        let grown = SetSpec::hash(
            name("s"),
            SetType::HashIp,
            Family::Inet,
            HashLimits {
                hashsize: 4096,
                maxelem: 65536,
            },
        )
        .unwrap();
        assert!(base.compatible_with(&grown));
        let v6 = SetSpec::hash(
            name("s"),
            SetType::HashIp,
            Family::Inet6,
            HashLimits::default(),
        )
        .unwrap();
        assert!(!base.compatible_with(&v6));
        assert!(!base.compatible_with(&base.clone().with_comments()));
        let small = SetSpec::hash(
            name("s"),
            SetType::HashIp,
            Family::Inet,
            HashLimits {
                hashsize: 1024,
                maxelem: 10,
            },
        )
        .unwrap();
        assert!(!base.compatible_with(&small));
        assert!(
            !SetSpec::bitmap_port(name("s"), 0..=10)
                .compatible_with(&SetSpec::bitmap_port(name("s"), 0..=11))
        );
    }
}
