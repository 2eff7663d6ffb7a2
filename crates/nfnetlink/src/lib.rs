//! Minimal nfnetlink (`NETLINK_NETFILTER`) framing, shared by the `ipset` and
//! `conntrack` clients: a message builder with nested attributes, an
//! attribute parser, and a blocking socket over the shared
//! [`netlink::Socket`], which sends many messages per `sendmsg` and maps
//! every answer back to its message.
//!
//! It knows no subsystem: callers pass the subsystem id and command, and
//! interpret attributes themselves.
//!
//! ```
//! use nfnetlink::{Message, Attrs};
//! // An ipset PROTOCOL request: subsystem 6, command 1, one u8 attribute.
//! let mut m = Message::new(6, 1, 2);
//! m.put_u8(1, 7);
//! let bytes = m.finish(1);
//! let parsed: Vec<_> = Attrs::new(&bytes[20..]).collect::<Result<_, _>>().unwrap();
//! assert_eq!(parsed[0].kind(), 1);
//! assert_eq!(parsed[0].u8().unwrap(), 7);
//! ```

mod attr;
mod message;
mod socket;

pub use attr::{Attr, Attrs, ParseError};
pub use message::{Message, NLA_F_NESTED, NLA_F_NET_BYTEORDER, Nest};
pub use netlink::KernelText;
pub use socket::{Error, Reply, Socket};
