//! Parsing attributes (`struct nlattr` lists) out of a reply.

/// A malformed reply: what was expected, for error messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed netlink attribute: {0}")]
pub struct ParseError(pub &'static str);

const TYPE_MASK: u16 = !(crate::NLA_F_NESTED | crate::NLA_F_NET_BYTEORDER);

/// One attribute: its type (flags masked off) and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    kind: u16,
    payload: &'a [u8],
}

impl<'a> Attr<'a> {
    /// The attribute type without `NLA_F_NESTED`/`NLA_F_NET_BYTEORDER`.
    pub fn kind(&self) -> u16 {
        self.kind
    }

    /// The raw payload (padding excluded).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The payload as a `u8`.
    ///
    /// # Errors
    /// When the payload is not exactly one byte.
    pub fn u8(&self) -> Result<u8, ParseError> {
        match self.payload {
            [b] => Ok(*b),
            _ => Err(ParseError("u8 attribute of the wrong size")),
        }
    }

    /// The payload as a big-endian `u16`.
    ///
    /// # Errors
    /// When the payload is not exactly two bytes.
    pub fn u16_be(&self) -> Result<u16, ParseError> {
        self.array()
            .map(u16::from_be_bytes)
            .ok_or(ParseError("u16 attribute of the wrong size"))
    }

    /// The payload as a big-endian `u32`.
    ///
    /// # Errors
    /// When the payload is not exactly four bytes.
    pub fn u32_be(&self) -> Result<u32, ParseError> {
        self.array()
            .map(u32::from_be_bytes)
            .ok_or(ParseError("u32 attribute of the wrong size"))
    }

    /// The payload as a big-endian `u64`.
    ///
    /// # Errors
    /// When the payload is not exactly eight bytes.
    pub fn u64_be(&self) -> Result<u64, ParseError> {
        self.array()
            .map(u64::from_be_bytes)
            .ok_or(ParseError("u64 attribute of the wrong size"))
    }

    /// The payload as a fixed-size array (addresses).
    pub fn array<const N: usize>(&self) -> Option<[u8; N]> {
        self.payload.try_into().ok()
    }

    /// The payload as a string, up to its first NUL.
    ///
    /// # Errors
    /// When the bytes are not UTF-8.
    pub fn str(&self) -> Result<&'a str, ParseError> {
        let end = self
            .payload
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.payload.len());
        std::str::from_utf8(&self.payload[..end])
            .map_err(|_| ParseError("string attribute is not UTF-8"))
    }

    /// The attributes nested in this one.
    pub fn nested(&self) -> Attrs<'a> {
        Attrs::new(self.payload)
    }
}

/// An iterator over a list of attributes.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// Iterates over the attributes packed in `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Attrs { rest: bytes }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([self.rest[0], self.rest[1]]));
        let kind = u16::from_ne_bytes([self.rest[2], self.rest[3]]) & TYPE_MASK;
        if len < 4 || len > self.rest.len() {
            self.rest = &[];
            return Some(Err(ParseError("attribute length out of bounds")));
        }
        let payload = &self.rest[4..len];
        self.rest = &self.rest[len.next_multiple_of(4).min(self.rest.len())..];
        Some(Ok(Attr { kind, payload }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    #[test]
    fn round_trips_through_the_builder() {
        let mut m = Message::new(6, 7, 2);
        m.put_u16_be(4 | crate::NLA_F_NET_BYTEORDER, 8080);
        let n = m.begin_nest(7);
        m.put_u32_be(18, 1024);
        m.put_str(2, "set");
        m.end_nest(n);
        let bytes = m.finish(3);
        let attrs: Vec<_> = Attrs::new(&bytes[20..]).collect::<Result<_, _>>().unwrap();
        assert_eq!(attrs.len(), 2);
        assert_eq!((attrs[0].kind(), attrs[0].u16_be()), (4, Ok(8080)));
        let inner: Vec<_> = attrs[1].nested().collect::<Result<_, _>>().unwrap();
        assert_eq!(attrs[1].kind(), 7);
        assert_eq!(inner[0].u32_be(), Ok(1024));
        assert_eq!(inner[1].str(), Ok("set"));
    }

    #[test]
    fn rejects_truncated_attributes() {
        let bytes = [8u8, 0, 1, 0, 0];
        let mut it = Attrs::new(&bytes);
        assert!(it.next().is_some_and(|r| r.is_err()));
        assert!(it.next().is_none());
    }
}
