//! Set names: at most 31 bytes (`IPSET_MAXNAMELEN` minus the NUL).

use std::fmt;
use std::str::FromStr;

/// The longest set name the kernel accepts, in bytes.
pub const MAX_NAME_LEN: usize = 31;

/// A valid set name: 1 to 31 bytes, printable ASCII without spaces (which
/// `ipset save` could not round-trip).
///
/// ```
/// use ipset::SetName;
/// let name: SetName = "KUBE-CLUSTER-IP".parse().unwrap();
/// assert_eq!(name.as_str(), "KUBE-CLUSTER-IP");
/// assert!("KUBE-6-LOAD-BALANCER-SOURCE-CIDR".parse::<SetName>().is_err()); // 32 bytes
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetName(String);

/// Why a string is not a set name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty name.
    #[error("empty ipset name")]
    Empty,
    /// Longer than [`MAX_NAME_LEN`] bytes.
    #[error("ipset name {0:?} is longer than 31 bytes")]
    TooLong(String),
    /// Contains a space, a control or a non-ASCII character.
    #[error("ipset name {0:?} contains a space, control or non-ASCII character")]
    BadCharacter(String),
}

impl SetName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name for a temporary twin of this set, used while rebuilding it:
    /// the name cut to 27 bytes plus `-TMP`.
    pub fn temporary(&self) -> SetName {
        let cut = &self.0[..self.0.len().min(MAX_NAME_LEN - 4)];
        SetName(format!("{cut}-TMP"))
    }
}

impl FromStr for SetName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            Err(NameError::Empty)
        } else if s.len() > MAX_NAME_LEN {
            Err(NameError::TooLong(s.into()))
        } else if !s.bytes().all(|b| b.is_ascii_graphic()) {
            Err(NameError::BadCharacter(s.into()))
        } else {
            Ok(SetName(s.into()))
        }
    }
}

impl fmt::Display for SetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_length_and_characters() {
        assert!("KUBE-6-LOAD-BALANCER-SOURCE-CID".parse::<SetName>().is_ok());
        assert_eq!("".parse::<SetName>(), Err(NameError::Empty));
        assert!(matches!(
            "a b".parse::<SetName>(),
            Err(NameError::BadCharacter(_))
        ));
        assert!(matches!(
            "x".repeat(32).parse::<SetName>(),
            Err(NameError::TooLong(_))
        ));
    }

    #[test]
    fn temporary_names_fit() {
        let long: SetName = "KUBE-6-LOAD-BALANCER-SOURCE-CID".parse().unwrap();
        assert_eq!(long.temporary().as_str(), "KUBE-6-LOAD-BALANCER-SOURCE-TMP");
        let short: SetName = "KUBE-IPVS-IPS".parse().unwrap();
        assert_eq!(short.temporary().as_str(), "KUBE-IPVS-IPS-TMP");
    }
}
