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
