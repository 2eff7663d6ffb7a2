//! The `NETLINK_GENERIC` socket (the shared [`netlink::Socket`]) and the
//! `IPVS` family id resolved on it.

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_sys::protocols::NETLINK_GENERIC;

use crate::error::{Error, Object, Operation};
use crate::message::FAMILY_NAME;

/// A generic netlink socket talking to the `IPVS` family.
#[derive(Debug)]
pub(crate) struct Transport {
    socket: netlink::Socket,
    family: u16,
}

impl Transport {
    /// Opens a socket in the calling thread's network namespace and
    /// resolves the `IPVS` family there.
    pub(crate) fn open() -> Result<Self, Error> {
        let socket = netlink::Socket::open(NETLINK_GENERIC)
            .map_err(Error::netlink(Operation::Connect, Object::default()))?;
        let mut t = Transport { socket, family: 0 };
        t.family = t.resolve_family()?;
        Ok(t)
    }

    /// Asks `nlctrl` for the id of the `IPVS` family. Looking it up makes
    /// the kernel try to load `ip_vs`; `ENOENT` means IPVS is unavailable.
    fn resolve_family(&mut self) -> Result<u16, Error> {
        const OP: Operation = Operation::Connect;
        let ctrl = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(FAMILY_NAME.to_owned())],
        };
        let mut msg = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::from(GenlMessage::from_payload(ctrl)),
        );
        msg.finalize();
        let mut bytes = vec![0; msg.buffer_len()];
        msg.serialize(&mut bytes);
        let mut family = None;
        let answered = self.socket.request(&mut bytes, |frame| {
            let netlink::Body::Data { message, .. } = frame.body else {
                return Ok(());
            };
            let reply = NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(message)
                .map_err(Error::decode(OP))?;
            if let NetlinkPayload::InnerMessage(genl) = reply.payload {
                family = genl.payload.nlas.iter().find_map(|nla| match nla {
                    GenlCtrlAttrs::FamilyId(id) => Some(*id),
                    _ => None,
                });
            }
            Ok(())
        });
        match answered {
            Ok(()) => family.ok_or(Error::NotAvailable),
            Err(netlink::Failed::Netlink(e)) if e.errno() == Some(libc::ENOENT) => {
                Err(Error::NotAvailable)
            }
            Err(netlink::Failed::Netlink(e)) => Err(Error::netlink(OP, Object::default())(e)),
            Err(netlink::Failed::Caller(e)) => Err(e),
        }
    }

    /// The resolved family id.
    pub(crate) fn family(&self) -> u16 {
        self.family
    }

    /// The socket.
    pub(crate) fn socket(&mut self) -> &mut netlink::Socket {
        &mut self.socket
    }
}
