//! `IPSET_CMD_LIST` dumps: the request, and the replies folded into sets.
//!
//! A set's first message carries its type, family and header
//! (`IPSET_ATTR_DATA`); long member lists continue in further messages that
//! repeat only the set name before their `IPSET_ATTR_ADT`.

use nfnetlink::{Attr, Attrs, Message, ParseError};

use super::{attr, cmd, data, request};
use crate::{Contents, Family, HashLimits, ListedSet, SetName, SetSpec, SetType};

/// A dump of every set, or of the one named.
pub(crate) fn list(set: Option<&SetName>) -> Message {
    request(cmd::LIST, 0, set.map(SetName::as_str))
}

/// The header of a set, from its first message.
#[derive(Default)]
struct Header<'a> {
    type_name: &'a str,
    family: u8,
    hashsize: u32,
    maxelem: u32,
    port_from: u16,
    port_to: u16,
    comments: bool,
    references: u32,
}

impl<'a> Header<'a> {
    fn read_data(&mut self, nested: Attrs<'a>) -> Result<(), ParseError> {
        for a in nested {
            let a = a?;
            match a.kind() {
                data::HASHSIZE => self.hashsize = a.u32_be()?,
                data::MAXELEM => self.maxelem = a.u32_be()?,
                data::PORT => self.port_from = a.u16_be()?,
                data::PORT_TO => self.port_to = a.u16_be()?,
                data::CADT_FLAGS => self.comments = a.u32_be()? & data::WITH_COMMENT != 0,
                data::REFERENCES => self.references = a.u32_be()?,
                _ => {}
            }
        }
        Ok(())
    }

    fn contents(&self, name: &SetName) -> Contents {
        let foreign = |reason: &str| Contents::Foreign {
            type_name: self.type_name.to_owned(),
            reason: reason.to_owned(),
        };
        let Some(set_type) = SetType::from_name(self.type_name) else {
            return foreign("set type not modelled");
        };
        let spec = if set_type == SetType::BitmapPort {
            SetSpec::bitmap_port(name.clone(), self.port_from..=self.port_to)
        } else {
            let Some(family) = Family::from_nfproto(self.family) else {
                return foreign("address family not modelled");
            };
            let limits = HashLimits {
                hashsize: self.hashsize,
                maxelem: self.maxelem,
            };
            match SetSpec::hash(name.clone(), set_type, family, limits) {
                Ok(spec) => spec,
                Err(e) => return foreign(&e.to_string()),
            }
        };
        Contents::Known {
            spec: if self.comments {
                spec.with_comments()
            } else {
                spec
            },
            members: Vec::new(),
        }
    }
}

/// Folds the messages of a LIST dump into sets.
pub(crate) fn parse(replies: &[nfnetlink::Reply]) -> Result<Vec<ListedSet>, ParseError> {
    let mut sets: Vec<ListedSet> = Vec::new();
    for reply in replies {
        let mut name = None;
        let mut header: Option<Header<'_>> = None;
        let mut adt: Option<Attr<'_>> = None;
        for a in Attrs::new(&reply.attrs) {
            let a = a?;
            match a.kind() {
                attr::SETNAME => name = Some(a.str()?),
                attr::TYPENAME => header.get_or_insert_default().type_name = a.str()?,
                attr::FAMILY => header.get_or_insert_default().family = a.u8()?,
                attr::DATA => header.get_or_insert_default().read_data(a.nested())?,
                attr::ADT => adt = Some(a),
                _ => {}
            }
        }
        let name: SetName = name
            .ok_or(ParseError("list reply without IPSET_ATTR_SETNAME"))?
            .parse()
            .map_err(|_| ParseError("list reply with an invalid set name"))?;
        if let Some(h) = header {
            sets.push(ListedSet {
                contents: h.contents(&name),
                references: h.references,
                name: name.clone(),
            });
        }
        let set = sets
            .last_mut()
            .filter(|s| s.name == name)
            .ok_or(ParseError("list reply continues a set it never started"))?;
        if let Some(adt) = adt {
            add_members(set, adt)?;
        }
    }
    Ok(sets)
}

fn add_members(set: &mut ListedSet, adt: Attr<'_>) -> Result<(), ParseError> {
    let Contents::Known { spec, members } = &mut set.contents else {
        return Ok(());
    };
    let set_type = spec.set_type();
    for a in adt.nested() {
        let a = a?;
        if a.kind() != attr::DATA {
            continue;
        }
        match super::adt::parse_member(set_type, a.nested()) {
            Ok(member) => members.push(member),
            Err(ParseError(reason)) => {
                set.contents = Contents::Foreign {
                    type_name: set_type.name().to_owned(),
                    reason: reason.to_owned(),
                };
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[cfg(target_endian = "little")] // the golden bytes spell native-endian netlink headers
mod tests {
    use super::*;
    use crate::{Entry, Member};

    /// `ipset list KUBE-CLUSTER-IP` on kernel 6.18 (ipset 7.17, protocol 7),
    /// captured with strace: one message after the 16-byte `nlmsghdr`.
    #[rustfmt::skip]
    const DUMP: &[u8] = &[
        0x02, 0x00, 0x00, 0x00,                         // nfgenmsg
        0x05, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00, // PROTOCOL 7
        0x14, 0x00, 0x02, 0x00, b'K', b'U', b'B', b'E', b'-', b'C', b'L', b'U', b'S', b'T', b'E', b'R', b'-', b'I', b'P', 0,
        0x11, 0x00, 0x03, 0x00, b'h', b'a', b's', b'h', b':', b'i', b'p', b',', b'p', b'o', b'r', b't', 0, 0, 0, 0,
        0x05, 0x00, 0x05, 0x00, 0x02, 0x00, 0x00, 0x00, // FAMILY inet
        0x05, 0x00, 0x04, 0x00, 0x07, 0x00, 0x00, 0x00, // REVISION 7
        0x06, 0x00, 0x0b, 0x40, 0x00, 0x00, 0x00, 0x00, // INDEX 0 (protocol 7 only)
        0x3c, 0x00, 0x07, 0x80,                         // DATA: the header
        0x08, 0x00, 0x12, 0x40, 0x00, 0x00, 0x04, 0x00, //   HASHSIZE 1024
        0x08, 0x00, 0x13, 0x40, 0x00, 0x01, 0x00, 0x00, //   MAXELEM 65536
        0x05, 0x00, 0x15, 0x00, 0x0c, 0x00, 0x00, 0x00, //   BUCKETSIZE 12
        0x08, 0x00, 0x11, 0x40, 0x00, 0x11, 0x46, 0x4a, //   INITVAL
        0x08, 0x00, 0x19, 0x40, 0x00, 0x00, 0x00, 0x00, //   REFERENCES 0
        0x08, 0x00, 0x1a, 0x40, 0x00, 0x00, 0x01, 0x38, //   MEMSIZE 312
        0x08, 0x00, 0x18, 0x40, 0x00, 0x00, 0x00, 0x02, //   ELEMENTS 2
        0x44, 0x00, 0x08, 0x80,                         // ADT
        0x20, 0x00, 0x07, 0x80,                         //   DATA
        0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x0a, 0x60, 0x00, 0x0a, // IP 10.96.0.10 (no NET_BYTEORDER flag in dumps)
        0x06, 0x00, 0x04, 0x40, 0x00, 0x50, 0x00, 0x00, //     PORT 80
        0x05, 0x00, 0x07, 0x00, 0x06, 0x00, 0x00, 0x00, //     PROTO tcp
        0x20, 0x00, 0x07, 0x80,                         //   DATA
        0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x0a, 0x60, 0x00, 0x0b, // IP 10.96.0.11
        0x06, 0x00, 0x04, 0x40, 0x00, 0x35, 0x00, 0x00, //     PORT 53
        0x05, 0x00, 0x07, 0x00, 0x11, 0x00, 0x00, 0x00, //     PROTO udp
    ];

    #[test]
    fn list_request_for_one_set() {
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[48u8, 0, 0, 0][..], &[0x07, 0x06], &[0, 0], &[3, 0, 0, 0], &[0, 0, 0, 0], // IPSET_CMD_LIST
            &[0, 0, 0, 0],
            &[5, 0, 1, 0, 6, 0, 0, 0],
            &[20, 0, 2, 0], b"KUBE-CLUSTER-IP\0",
        ]
        .concat();
        assert_eq!(
            list(Some(&"KUBE-CLUSTER-IP".parse().unwrap())).finish(3),
            want
        );
    }

    #[test]
    fn parses_a_captured_dump() {
        let reply = nfnetlink::Reply {
            kind: 0x0607,
            attrs: DUMP[4..].to_vec(),
        };
        let sets = parse(&[reply]).unwrap();
        let spec = crate::wire::cluster_ip_spec();
        let members = ["10.96.0.10,tcp:80", "10.96.0.11,udp:53"]
            .map(|m| Member::new(m.parse::<Entry>().unwrap()))
            .to_vec();
        assert_eq!(
            sets,
            vec![ListedSet {
                name: spec.name().clone(),
                references: 0,
                contents: Contents::Known { spec, members }
            }]
        );
    }

    #[test]
    fn continuation_messages_extend_the_set() {
        // The same set split in two: the second message repeats only the name.
        let first = nfnetlink::Reply {
            kind: 0x0607,
            attrs: DUMP[4..DUMP.len() - 0x44].to_vec(),
        };
        let mut rest = DUMP[4..32].to_vec(); // PROTOCOL + SETNAME
        rest.extend_from_slice(&DUMP[DUMP.len() - 0x44..]);
        let sets = parse(&[
            first,
            nfnetlink::Reply {
                kind: 0x0607,
                attrs: rest.clone(),
            },
        ])
        .unwrap();
        let Contents::Known { members, .. } = &sets[0].contents else {
            panic!("not known")
        };
        assert_eq!(members.len(), 2);
        assert!(
            parse(&[nfnetlink::Reply {
                kind: 0x0607,
                attrs: rest
            }])
            .is_err()
        );
    }
}
