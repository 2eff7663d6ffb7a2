//! Module information (`IPVS_CMD_GET_INFO`, reply `IPVS_CMD_SET_INFO`).

use std::fmt;

use netlink_packet_core::{DecodeError, DefaultNla, Nla, NlaBuffer, Parseable};
use serde::{Deserialize, Serialize};

use crate::nla::u32_ne;

const IPVS_INFO_ATTR_VERSION: u16 = 1;
const IPVS_INFO_ATTR_CONN_TAB_SIZE: u16 = 2;

/// The IPVS version and connection table size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Info {
    /// IPVS version (`IP_VS_VERSION_CODE`, 1.2.1 for years).
    pub version: Version,
    /// Buckets of the connection hash table (`ip_vs` parameter `conn_tab_bits`).
    pub connection_table_size: u32,
}

/// An IPVS version, displayed as ipvsadm does (`1.2.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Patch.
    pub patch: u8,
}

impl Version {
    /// Decodes `IP_VS_VERSION_CODE` (`0x010201` is 1.2.1).
    pub fn from_code(code: u32) -> Self {
        let [_, major, minor, patch] = code.to_be_bytes();
        Version {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The top-level attributes of a `SET_INFO` reply. Their numbers overlap
/// the command attributes, so they are parsed only for that command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum InfoAttr {
    Version(u32),
    ConnTabSize(u32),
    Other(DefaultNla),
}

impl Nla for InfoAttr {
    fn value_len(&self) -> usize {
        match self {
            InfoAttr::Version(_) | InfoAttr::ConnTabSize(_) => 4,
            InfoAttr::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            InfoAttr::Version(_) => IPVS_INFO_ATTR_VERSION,
            InfoAttr::ConnTabSize(_) => IPVS_INFO_ATTR_CONN_TAB_SIZE,
            InfoAttr::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            InfoAttr::Version(v) | InfoAttr::ConnTabSize(v) => {
                buffer.copy_from_slice(&v.to_ne_bytes());
            }
            InfoAttr::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a> Parseable<NlaBuffer<&'a [u8]>> for InfoAttr {
    fn parse(buf: &NlaBuffer<&'a [u8]>) -> Result<Self, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() {
            IPVS_INFO_ATTR_VERSION => InfoAttr::Version(u32_ne(value, "IPVS_INFO_ATTR_VERSION")?),
            IPVS_INFO_ATTR_CONN_TAB_SIZE => {
                InfoAttr::ConnTabSize(u32_ne(value, "IPVS_INFO_ATTR_CONN_TAB_SIZE")?)
            }
            _ => InfoAttr::Other(DefaultNla::parse(buf)?),
        })
    }
}

impl Info {
    pub(crate) fn from_attrs(attrs: &[InfoAttr]) -> Result<Self, DecodeError> {
        let mut version = None;
        let mut size = None;
        for attr in attrs {
            match attr {
                InfoAttr::Version(v) => version = Some(Version::from_code(*v)),
                InfoAttr::ConnTabSize(s) => size = Some(*s),
                InfoAttr::Other(_) => {}
            }
        }
        Ok(Info {
            version: version.ok_or("GET_INFO reply without IPVS_INFO_ATTR_VERSION")?,
            connection_table_size: size
                .ok_or("GET_INFO reply without IPVS_INFO_ATTR_CONN_TAB_SIZE")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_code_decodes() {
        assert_eq!(Version::from_code(0x010201).to_string(), "1.2.1");
    }
}
