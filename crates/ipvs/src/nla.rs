//! Attribute helpers shared by the object families: iterating a nested
//! attribute buffer, fixed-size values and NUL-terminated strings.

use netlink_packet_core::{DecodeError, NlaBuffer, NlasIterator, Parseable};

/// Parses every attribute of `buf` (the payload of a nest, or of a message)
/// into `T`, with `what` naming the nest in errors.
pub(crate) fn parse_all<T>(buf: &[u8], what: &str) -> Result<Vec<T>, DecodeError>
where
    T: for<'a> Parseable<NlaBuffer<&'a [u8]>>,
{
    NlasIterator::new(buf)
        .map(|nla| nla.and_then(|nla| T::parse(&nla)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DecodeError::from(format!("failed to parse {what} attributes: {e}")))
}

/// The attributes of `buf` as (type, value), read in place: no copy, no
/// allocation. The type is without its `NLA_F_NESTED`/`NLA_F_NET_BYTEORDER`
/// flag bits. For the hot path of large dumps; [`parse_all`] builds typed
/// values.
pub(crate) fn iter(buf: &[u8]) -> Attrs<'_> {
    Attrs { rest: buf }
}

/// The iterator of [`iter`]; it ends after the first malformed attribute.
#[derive(Debug)]
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

/// `NLA_TYPE_MASK`: the type without the flag bits.
const NLA_TYPE_MASK: u16 = 0x3fff;

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        let Some(&[l0, l1, t0, t1]) = rest.get(..4) else {
            return Some(Err(format!(
                "attribute header truncated to {} bytes",
                rest.len()
            )
            .into()));
        };
        let len = usize::from(u16::from_ne_bytes([l0, l1]));
        let Some(value) = rest.get(4..len) else {
            return Some(Err(format!(
                "attribute of {len} bytes in {} bytes",
                rest.len()
            )
            .into()));
        };
        self.rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some(Ok((u16::from_ne_bytes([t0, t1]) & NLA_TYPE_MASK, value)))
    }
}

/// Reads a fixed-size attribute value, checking its length.
pub(crate) fn array<const N: usize>(value: &[u8], what: &str) -> Result<[u8; N], DecodeError> {
    value.try_into().map_err(|_| {
        DecodeError::from(format!(
            "attribute {what}: expected {N} bytes, got {}",
            value.len()
        ))
    })
}

/// A host-order `u16` attribute value.
pub(crate) fn u16_ne(value: &[u8], what: &str) -> Result<u16, DecodeError> {
    array(value, what).map(u16::from_ne_bytes)
}

/// A network-order (big-endian) `u16` attribute value, e.g. a port.
pub(crate) fn u16_be(value: &[u8], what: &str) -> Result<u16, DecodeError> {
    array(value, what).map(u16::from_be_bytes)
}

/// A host-order `u32` attribute value.
pub(crate) fn u32_ne(value: &[u8], what: &str) -> Result<u32, DecodeError> {
    array(value, what).map(u32::from_ne_bytes)
}

/// A NUL-terminated string attribute value (the NUL is optional on input).
pub(crate) fn nul_string(value: &[u8], what: &str) -> Result<String, DecodeError> {
    let bytes = value.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8(bytes.to_vec())
        .map_err(|e| DecodeError::from(format!("attribute {what}: {e}")))
}

/// The length of a NUL-terminated string attribute value.
pub(crate) fn nul_string_len(s: &str) -> usize {
    s.len() + 1
}

/// Writes a NUL-terminated string attribute value.
pub(crate) fn emit_nul_string(s: &str, buffer: &mut [u8]) {
    buffer[..s.len()].copy_from_slice(s.as_bytes());
    buffer[s.len()] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_read_in_place_with_padding_and_flags_dropped() {
        let buf = [
            6, 0, 1, 0, 0xaa, 0xbb, 0, 0, // type 1, 2 bytes + 2 of padding
            4, 0, 0x02, 0x80, // type 2 with NLA_F_NESTED, empty
            8, 0, 3, 0, 1, 2, 3, 4, // type 3, 4 bytes
        ];
        let attrs: Vec<(u16, &[u8])> = iter(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            attrs,
            [(1, &[0xaa, 0xbb][..]), (2, &[][..]), (3, &[1, 2, 3, 4][..])]
        );
    }

    #[test]
    fn a_malformed_attribute_is_an_error_and_ends_the_iteration() {
        let overlong = [12, 0, 1, 0, 0, 0, 0, 0];
        let mut it = iter(&overlong);
        assert!(it.next().is_some_and(|r| r.is_err()));
        assert!(it.next().is_none());
        assert!(iter(&[4, 0]).next().is_some_and(|r| r.is_err()));
        let too_short = [2, 0, 1, 0];
        assert!(iter(&too_short).next().is_some_and(|r| r.is_err()));
    }
}
