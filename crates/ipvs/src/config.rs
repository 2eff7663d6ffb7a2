//! Connection timeouts (`IPVS_CMD_GET_CONFIG` / `IPVS_CMD_SET_CONFIG`).

use serde::{Deserialize, Serialize};

use crate::message::CmdAttr;

/// The connection timeouts, in seconds, as `ipvsadm --set tcp tcpfin udp`.
///
/// When setting, 0 leaves a value unchanged (the kernel's rule). When
/// reading, 0 means the kernel was built without that protocol.
///
/// # Examples
/// ```
/// let only_udp = ipvs::Timeouts { udp: 60, ..Default::default() };
/// assert_eq!(only_udp.tcp, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Timeouts {
    /// TCP established connections (default 900).
    pub tcp: u32,
    /// TCP connections after FIN (default 120).
    pub tcp_fin: u32,
    /// UDP (default 300).
    pub udp: u32,
}

impl Timeouts {
    pub(crate) fn to_attrs(self) -> Vec<CmdAttr> {
        [
            (self.tcp, CmdAttr::TimeoutTcp as fn(u32) -> CmdAttr),
            (self.tcp_fin, CmdAttr::TimeoutTcpFin),
            (self.udp, CmdAttr::TimeoutUdp),
        ]
        .into_iter()
        .filter(|(v, _)| *v != 0)
        .map(|(v, attr)| attr(v))
        .collect()
    }

    pub(crate) fn from_attrs(attrs: &[CmdAttr]) -> Self {
        let mut t = Timeouts::default();
        for attr in attrs {
            match attr {
                CmdAttr::TimeoutTcp(v) => t.tcp = *v,
                CmdAttr::TimeoutTcpFin(v) => t.tcp_fin = *v,
                CmdAttr::TimeoutUdp(v) => t.udp = *v,
                _ => {}
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_values_are_not_sent() {
        let t = Timeouts {
            tcp: 0,
            tcp_fin: 30,
            udp: 60,
        };
        assert_eq!(
            t.to_attrs(),
            vec![CmdAttr::TimeoutTcpFin(30), CmdAttr::TimeoutUdp(60)]
        );
        assert_eq!(Timeouts::from_attrs(&t.to_attrs()), t);
    }
}
