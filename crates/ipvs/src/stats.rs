//! Traffic statistics (`IPVS_SVC_ATTR_STATS{,64}`, `IPVS_DEST_ATTR_STATS{,64}`).

use netlink_packet_core::DecodeError;
use serde::{Deserialize, Serialize};

const IPVS_STATS_ATTR_CONNS: u16 = 1;
const IPVS_STATS_ATTR_INPKTS: u16 = 2;
const IPVS_STATS_ATTR_OUTPKTS: u16 = 3;
const IPVS_STATS_ATTR_INBYTES: u16 = 4;
const IPVS_STATS_ATTR_OUTBYTES: u16 = 5;
const IPVS_STATS_ATTR_CPS: u16 = 6;
const IPVS_STATS_ATTR_INPPS: u16 = 7;
const IPVS_STATS_ATTR_OUTPPS: u16 = 8;
const IPVS_STATS_ATTR_INBPS: u16 = 9;
const IPVS_STATS_ATTR_OUTBPS: u16 = 10;
/// Alignment padding before a u64 on architectures that need it; skipped.
const IPVS_STATS_ATTR_PAD: u16 = 11;

/// Counters since the last zeroing and the estimator's current rates, for a
/// service or a destination.
///
/// Read from the 64-bit statistics nest when the kernel sends it (4.1+),
/// otherwise from the older nest whose packet and connection counters wrap
/// at 2^32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stats {
    /// Connections scheduled.
    pub connections: u64,
    /// Packets in (client to server).
    pub packets_in: u64,
    /// Packets out (server to client).
    pub packets_out: u64,
    /// Bytes in.
    pub bytes_in: u64,
    /// Bytes out.
    pub bytes_out: u64,
    /// Per-second rates.
    pub rates: Rates,
}

/// Per-second rates estimated by the kernel (about every 2 s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rates {
    /// Connections per second.
    pub connections: u64,
    /// Packets in per second.
    pub packets_in: u64,
    /// Packets out per second.
    pub packets_out: u64,
    /// Bytes in per second.
    pub bytes_in: u64,
    /// Bytes out per second.
    pub bytes_out: u64,
}

impl Stats {
    /// Parses the payload of a statistics nest of either flavour: every value
    /// is read by its length (4 or 8 bytes), padding is skipped and unknown
    /// attributes are ignored.
    pub(crate) fn parse_nest(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut s = Stats::default();
        for nla in crate::nla::iter(buf) {
            let (kind, value) = nla?;
            let v = match value.len() {
                4 => u64::from(u32::from_ne_bytes([value[0], value[1], value[2], value[3]])),
                8 => u64::from_ne_bytes(crate::nla::array(value, "stats")?),
                _ if kind == IPVS_STATS_ATTR_PAD => continue,
                n => return Err(format!("statistics attribute {kind} of {n} bytes").into()),
            };
            let slot = match kind {
                IPVS_STATS_ATTR_CONNS => &mut s.connections,
                IPVS_STATS_ATTR_INPKTS => &mut s.packets_in,
                IPVS_STATS_ATTR_OUTPKTS => &mut s.packets_out,
                IPVS_STATS_ATTR_INBYTES => &mut s.bytes_in,
                IPVS_STATS_ATTR_OUTBYTES => &mut s.bytes_out,
                IPVS_STATS_ATTR_CPS => &mut s.rates.connections,
                IPVS_STATS_ATTR_INPPS => &mut s.rates.packets_in,
                IPVS_STATS_ATTR_OUTPPS => &mut s.rates.packets_out,
                IPVS_STATS_ATTR_INBPS => &mut s.rates.bytes_in,
                IPVS_STATS_ATTR_OUTBPS => &mut s.rates.bytes_out,
                _ => continue,
            };
            *slot = v;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_32_bit_flavour_with_64_bit_byte_counters() {
        let raw: Vec<u8> = [
            &[0x08, 0x00, 0x01, 0x00][..],
            &3u32.to_ne_bytes(), // CONNS u32 3
            &[0x08, 0x00, 0x02, 0x00],
            &10u32.to_ne_bytes(), // INPKTS u32 10
            &[0x08, 0x00, 0x03, 0x00],
            &9u32.to_ne_bytes(), // OUTPKTS u32 9
            &[0x0c, 0x00, 0x04, 0x00],
            &600u64.to_ne_bytes(), // INBYTES u64 600
            &[0x0c, 0x00, 0x05, 0x00],
            &500u64.to_ne_bytes(), // OUTBYTES u64 500
            &[0x08, 0x00, 0x06, 0x00],
            &1u32.to_ne_bytes(), // CPS u32 1
            &[0x08, 0x00, 0x0a, 0x00],
            &77u32.to_ne_bytes(), // OUTBPS u32 77
        ]
        .concat();
        let s = Stats::parse_nest(&raw).unwrap();
        assert_eq!(
            s,
            Stats {
                connections: 3,
                packets_in: 10,
                packets_out: 9,
                bytes_in: 600,
                bytes_out: 500,
                rates: Rates {
                    connections: 1,
                    bytes_out: 77,
                    ..Rates::default()
                },
            }
        );
    }

    #[test]
    fn parses_the_64_bit_flavour_and_skips_padding() {
        let raw: Vec<u8> = [
            &[0x04, 0x00, 0x0b, 0x00][..], // PAD, empty
            &[0x0c, 0x00, 0x01, 0x00],
            &(1u64 << 40).to_ne_bytes(), // CONNS u64 2^40
            &[0x0c, 0x00, 0x09, 0x00],
            &5u64.to_ne_bytes(), // INBPS u64 5
            &[0x08, 0x00, 0x63, 0x00],
            &[1, 2, 3, 4], // unknown attr 99: ignored
        ]
        .concat();
        let s = Stats::parse_nest(&raw).unwrap();
        assert_eq!(s.connections, 1 << 40);
        assert_eq!(s.rates.bytes_in, 5);
        assert_eq!(s.packets_in, 0);
    }

    #[test]
    fn refuses_odd_lengths() {
        let raw = [0x06, 0x00, 0x01, 0x00, 1, 2, 0, 0]; // CONNS of 2 bytes
        assert!(Stats::parse_nest(&raw).is_err());
    }
}
