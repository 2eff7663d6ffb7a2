//! Requests: what the client sends, byte for byte, and that the bytes
//! decode back to the same value.

use super::{FAMILY, data, decode};
use crate::message::{self, CmdAttr};
use crate::{
    AddressFamily, Change, Destination, DestinationEntry, ForwardMethod, Persistence, Protocol,
    Scheduler, Service, ServiceEntry, ServiceFlags, ServiceKey, TunnelFlags, TunnelType,
};

fn tcp_v4() -> ServiceKey {
    ServiceKey::inet(Protocol::Tcp, "10.0.0.1".parse().unwrap(), 80)
}

fn encode(seq: u32, change: &Change) -> Vec<u8> {
    let mut out = Vec::new();
    message::encode(&mut out, FAMILY, change.to_message().unwrap());
    // The flags and sequence number the shared socket gives a request.
    netlink::stamp(
        &mut out,
        netlink::NLM_F_REQUEST | netlink::NLM_F_ACK,
        0,
        seq,
    );
    out
}

/// The service a request carries, decoded as a reply would be.
fn service_in(raw: &[u8]) -> Service {
    let received = decode(raw);
    let attrs = data(&received, false);
    let [CmdAttr::Service(svc), ..] = attrs[0] else {
        panic!("no service in {attrs:?}")
    };
    ServiceEntry::from_attrs(svc).unwrap().service
}

/// The destination a request carries.
fn destination_in(raw: &[u8], af: AddressFamily) -> Destination {
    let received = decode(raw);
    let attrs = data(&received, false);
    let [CmdAttr::Service(_), CmdAttr::Dest(dest)] = attrs[0] else {
        panic!("no service and destination in {attrs:?}")
    };
    DestinationEntry::from_attrs(dest, af).unwrap().destination
}

#[test]
fn add_ipv4_service() {
    let svc = Service::new(tcp_v4(), Scheduler::RoundRobin);
    assert_eq!(
        encode(1, &Change::AddService(svc.clone())),
        ADD_SERVICE_TCP_V4
    );
    assert_eq!(service_in(ADD_SERVICE_TCP_V4), svc);
}

#[test]
fn add_ipv6_service() {
    let key = ServiceKey::inet(Protocol::Udp, "2001:db8::1".parse().unwrap(), 53);
    let svc = Service::new(key, Scheduler::WeightedRoundRobin);
    assert_eq!(
        encode(2, &Change::AddService(svc.clone())),
        ADD_SERVICE_UDP_V6
    );
    assert_eq!(service_in(ADD_SERVICE_UDP_V6), svc);
}

#[test]
fn add_fwmark_service() {
    let key = ServiceKey::fwmark(AddressFamily::Inet, 7).unwrap();
    let svc = Service::new(key, Scheduler::LeastConnection);
    assert_eq!(
        encode(3, &Change::AddService(svc.clone())),
        ADD_SERVICE_FWMARK
    );
    assert_eq!(service_in(ADD_SERVICE_FWMARK), svc);
}

#[test]
fn add_persistent_service_with_netmask_and_engine() {
    let key = ServiceKey::inet(Protocol::Udp, "10.0.0.4".parse().unwrap(), 5060);
    let svc = Service {
        flags: ServiceFlags::ONE_PACKET,
        persistence: Some(Persistence {
            timeout: 10800,
            prefix_len: 24,
        }),
        persistence_engine: Some("sip".into()),
        ..Service::new(key, Scheduler::RoundRobin)
    };
    assert_eq!(
        encode(4, &Change::AddService(svc.clone())),
        ADD_SERVICE_PERSISTENT
    );
    assert_eq!(service_in(ADD_SERVICE_PERSISTENT), svc);
}

#[test]
fn add_masquerading_destination() {
    let d = Destination::new(
        "10.244.1.5".parse().unwrap(),
        8080,
        ForwardMethod::Masquerade,
        1,
    );
    assert_eq!(
        encode(5, &Change::AddDestination(tcp_v4(), d)),
        ADD_DEST_MASQ
    );
    assert_eq!(destination_in(ADD_DEST_MASQ, AddressFamily::Inet), d);
}

#[test]
fn add_gue_tunnel_destination_of_another_family() {
    let forward = ForwardMethod::Tunnel {
        tunnel: TunnelType::Gue { port: 6080 },
        flags: TunnelFlags::CSUM,
    };
    let d = Destination::new("2001:db8::7".parse().unwrap(), 80, forward, 2);
    assert_eq!(
        encode(6, &Change::AddDestination(tcp_v4(), d)),
        ADD_DEST_GUE
    );
    assert_eq!(destination_in(ADD_DEST_GUE, AddressFamily::Inet), d);
}

#[test]
fn edit_direct_routing_destination_with_thresholds() {
    let d = Destination {
        upper_threshold: 100,
        lower_threshold: 10,
        ..Destination::new(
            "10.244.1.6".parse().unwrap(),
            80,
            ForwardMethod::DirectRoute,
            5,
        )
    };
    assert_eq!(
        encode(7, &Change::EditDestination(tcp_v4(), d)),
        EDIT_DEST_DROUTE
    );
    assert_eq!(destination_in(EDIT_DEST_DROUTE, AddressFamily::Inet), d);
}

#[test]
fn delete_destination_sends_only_its_key() {
    let change = Change::DeleteDestination {
        service: tcp_v4(),
        addr: "10.244.1.5".parse().unwrap(),
        port: 8080,
    };
    assert_eq!(encode(8, &change), DEL_DEST);
}

#[test]
fn dump_request_has_the_dump_flags_and_no_attributes() {
    let mut out = Vec::new();
    let msg = message::IpvsMessage::new(message::Command::GetService, vec![]);
    message::encode(&mut out, FAMILY, msg);
    netlink::stamp(&mut out, netlink::NLM_F_REQUEST | netlink::NLM_F_DUMP, 0, 9);
    assert_eq!(out, DUMP_SERVICES);
}

/// NEW_SERVICE TCP 10.0.0.1:80 rr
#[rustfmt::skip]
const ADD_SERVICE_TCP_V4: &[u8] = &[
    0x68, 0x00, 0x00, 0x00, // nlmsg_len 104
    0x24, 0x00, 0x05, 0x00, // nlmsg_type IPVS family id, nlmsg_flags NLM_F_REQUEST|NLM_F_ACK
    0x01, 0x00, 0x00, 0x00, // nlmsg_seq 1
    0x00, 0x00, 0x00, 0x00, // nlmsg_pid 0
    0x01, 0x01, 0x00, 0x00, // genlmsghdr: cmd 1, version 1, reserved
    0x54, 0x00, 0x01, 0x00, // IPVS_CMD_ATTR_SERVICE, len 84 (nest)
        0x06, 0x00, 0x01, 0x00, // IPVS_SVC_ATTR_AF, len 6
            0x02, 0x00, 0x00, 0x00, // AF_INET + 2 padding
        0x06, 0x00, 0x02, 0x00, // IPVS_SVC_ATTR_PROTOCOL, len 6
            0x06, 0x00, 0x00, 0x00, // IPPROTO_TCP + 2 padding
        0x14, 0x00, 0x03, 0x00, // IPVS_SVC_ATTR_ADDR, len 20
            0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // 10.0.0.1, zero-filled to 16 bytes
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ...
        0x06, 0x00, 0x04, 0x00, // IPVS_SVC_ATTR_PORT, len 6
            0x00, 0x50, 0x00, 0x00, // port 80, network order + 2 padding
        0x07, 0x00, 0x06, 0x00, // IPVS_SVC_ATTR_SCHED_NAME, len 7
            0x72, 0x72, 0x00, 0x00, // "rr\0" + 1 padding
        0x0c, 0x00, 0x07, 0x00, // IPVS_SVC_ATTR_FLAGS, len 12
            0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, // flags 0, mask all: replace every flag
        0x08, 0x00, 0x08, 0x00, // IPVS_SVC_ATTR_TIMEOUT, len 8
            0x00, 0x00, 0x00, 0x00, // timeout 0 s
        0x08, 0x00, 0x09, 0x00, // IPVS_SVC_ATTR_NETMASK, len 8
            0xff, 0xff, 0xff, 0xff, // 255.255.255.255 (IPv4 masks go in network order)
];

/// NEW_SERVICE UDP [2001:db8::1]:53 wrr
#[rustfmt::skip]
const ADD_SERVICE_UDP_V6: &[u8] = &[
    0x68, 0x00, 0x00, 0x00, // nlmsg_len 104
    0x24, 0x00, 0x05, 0x00, // nlmsg_type IPVS family id, nlmsg_flags NLM_F_REQUEST|NLM_F_ACK
    0x02, 0x00, 0x00, 0x00, // nlmsg_seq 2
    0x00, 0x00, 0x00, 0x00, // nlmsg_pid 0
    0x01, 0x01, 0x00, 0x00, // genlmsghdr: cmd 1, version 1, reserved
    0x54, 0x00, 0x01, 0x00, // IPVS_CMD_ATTR_SERVICE, len 84 (nest)
        0x06, 0x00, 0x01, 0x00, // IPVS_SVC_ATTR_AF, len 6
            0x0a, 0x00, 0x00, 0x00, // AF_INET6 + 2 padding
        0x06, 0x00, 0x02, 0x00, // IPVS_SVC_ATTR_PROTOCOL, len 6
            0x11, 0x00, 0x00, 0x00, // IPPROTO_UDP + 2 padding
        0x14, 0x00, 0x03, 0x00, // IPVS_SVC_ATTR_ADDR, len 20
            0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // 2001:db8::1
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // ...
        0x06, 0x00, 0x04, 0x00, // IPVS_SVC_ATTR_PORT, len 6
            0x00, 0x35, 0x00, 0x00, // port 53, network order + 2 padding
        0x08, 0x00, 0x06, 0x00, // IPVS_SVC_ATTR_SCHED_NAME, len 8
            0x77, 0x72, 0x72, 0x00, // "wrr\0"
        0x0c, 0x00, 0x07, 0x00, // IPVS_SVC_ATTR_FLAGS, len 12
            0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, // flags 0, mask all: replace every flag
        0x08, 0x00, 0x08, 0x00, // IPVS_SVC_ATTR_TIMEOUT, len 8
            0x00, 0x00, 0x00, 0x00, // timeout 0 s
        0x08, 0x00, 0x09, 0x00, // IPVS_SVC_ATTR_NETMASK, len 8
            0x80, 0x00, 0x00, 0x00, // prefix length 128, host order (the kernel refuses 0 for IPv6)
];

/// NEW_SERVICE fwmark 7 (IPv4) lc
#[rustfmt::skip]
const ADD_SERVICE_FWMARK: &[u8] = &[
    0x4c, 0x00, 0x00, 0x00, // nlmsg_len 76
    0x24, 0x00, 0x05, 0x00, // nlmsg_type IPVS family id, nlmsg_flags NLM_F_REQUEST|NLM_F_ACK
    0x03, 0x00, 0x00, 0x00, // nlmsg_seq 3
    0x00, 0x00, 0x00, 0x00, // nlmsg_pid 0
    0x01, 0x01, 0x00, 0x00, // genlmsghdr: cmd 1, version 1, reserved
    0x38, 0x00, 0x01, 0x00, // IPVS_CMD_ATTR_SERVICE, len 56 (nest)
        0x06, 0x00, 0x01, 0x00, // IPVS_SVC_ATTR_AF, len 6
            0x02, 0x00, 0x00, 0x00, // AF_INET + 2 padding
        0x08, 0x00, 0x05, 0x00, // IPVS_SVC_ATTR_FWMARK, len 8
            0x07, 0x00, 0x00, 0x00, // fwmark 7
        0x07, 0x00, 0x06, 0x00, // IPVS_SVC_ATTR_SCHED_NAME, len 7
            0x6c, 0x63, 0x00, 0x00, // "lc\0" + 1 padding
        0x0c, 0x00, 0x07, 0x00, // IPVS_SVC_ATTR_FLAGS, len 12
            0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, // flags 0, mask all: replace every flag
        0x08, 0x00, 0x08, 0x00, // IPVS_SVC_ATTR_TIMEOUT, len 8
            0x00, 0x00, 0x00, 0x00, // timeout 0 s
        0x08, 0x00, 0x09, 0x00, // IPVS_SVC_ATTR_NETMASK, len 8
            0xff, 0xff, 0xff, 0xff, // 255.255.255.255 (IPv4 masks go in network order)
];

/// NEW_SERVICE UDP 10.0.0.4:5060 rr, persistent 10800 s per /24, pe sip, one-packet
#[rustfmt::skip]
const ADD_SERVICE_PERSISTENT: &[u8] = &[
    0x70, 0x00, 0x00, 0x00, // nlmsg_len 112
    0x24, 0x00, 0x05, 0x00, // nlmsg_type IPVS family id, nlmsg_flags NLM_F_REQUEST|NLM_F_ACK
    0x04, 0x00, 0x00, 0x00, // nlmsg_seq 4
    0x00, 0x00, 0x00, 0x00, // nlmsg_pid 0
    0x01, 0x01, 0x00, 0x00, // genlmsghdr: cmd 1, version 1, reserved
    0x5c, 0x00, 0x01, 0x00, // IPVS_CMD_ATTR_SERVICE, len 92 (nest)
        0x06, 0x00, 0x01, 0x00, // IPVS_SVC_ATTR_AF, len 6
            0x02, 0x00, 0x00, 0x00, // AF_INET + 2 padding
        0x06, 0x00, 0x02, 0x00, // IPVS_SVC_ATTR_PROTOCOL, len 6
            0x11, 0x00, 0x00, 0x00, // IPPROTO_UDP + 2 padding
        0x14, 0x00, 0x03, 0x00, // IPVS_SVC_ATTR_ADDR, len 20
            0x0a, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, // 10.0.0.4
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ...
        0x06, 0x00, 0x04, 0x00, // IPVS_SVC_ATTR_PORT, len 6
            0x13, 0xc4, 0x00, 0x00, // port 5060, network order + 2 padding
        0x07, 0x00, 0x06, 0x00, // IPVS_SVC_ATTR_SCHED_NAME, len 7
            0x72, 0x72, 0x00, 0x00, // "rr\0" + 1 padding
        0x08, 0x00, 0x0b, 0x00, // IPVS_SVC_ATTR_PE_NAME, len 8
            0x73, 0x69, 0x70, 0x00, // "sip\0"
        0x0c, 0x00, 0x07, 0x00, // IPVS_SVC_ATTR_FLAGS, len 12
            0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, // flags PERSISTENT|ONEPACKET, mask all
        0x08, 0x00, 0x08, 0x00, // IPVS_SVC_ATTR_TIMEOUT, len 8
            0x30, 0x2a, 0x00, 0x00, // timeout 10800 s
        0x08, 0x00, 0x09, 0x00, // IPVS_SVC_ATTR_NETMASK, len 8
            0xff, 0xff, 0xff, 0x00, // 255.255.255.0, network order
];

/// NEW_DEST TCP 10.0.0.1:80 -> 10.244.1.5:8080 masq weight 1
#[rustfmt::skip]
const ADD_DEST_MASQ: &[u8] = &[
    0x8c, 0x00, 0x00, 0x00, // nlmsg_len 140
    0x24, 0x00, 0x05, 0x00, // nlmsg_type IPVS family id, nlmsg_flags NLM_F_REQUEST|NLM_F_ACK
    0x05, 0x00, 0x00, 0x00, // nlmsg_seq 5
    0x00, 0x00, 0x00, 0x00, // nlmsg_pid 0
    0x05, 0x01, 0x00, 0x00, // genlmsghdr: cmd 5, version 1, reserved
    0x30, 0x00, 0x01, 0x00, // IPVS_CMD_ATTR_SERVICE, len 48 (nest)
        0x06, 0x00, 0x01, 0x00, // IPVS_SVC_ATTR_AF, len 6
            0x02, 0x00, 0x00, 0x00, // AF_INET + 2 padding
        0x06, 0x00, 0x02, 0x00, // IPVS_SVC_ATTR_PROTOCOL, len 6
            0x06, 0x00, 0x00, 0x00, // IPPROTO_TCP + 2 padding
        0x14, 0x00, 0x03, 0x00, // IPVS_SVC_ATTR_ADDR, len 20
            0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // 10.0.0.1, zero-filled to 16 bytes
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ...
        0x06, 0x00, 0x04, 0x00, // IPVS_SVC_ATTR_PORT, len 6
            0x00, 0x50, 0x00, 0x00, // port 80, network order + 2 padding
    0x48, 0x00, 0x02, 0x00, // IPVS_CMD_ATTR_DEST, len 72 (nest)
        0x14, 0x00, 0x01, 0x00, // IPVS_DEST_ATTR_ADDR, len 20
            0x0a, 0xf4, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, // 10.244.1.5
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ...
        0x06, 0x00, 0x02, 0x00, // IPVS_DEST_ATTR_PORT, len 6
            0x1f, 0x90, 0x00, 0x00, // port 8080, network order + 2 padding
        0x06, 0x00, 0x0b, 0x00, // IPVS_DEST_ATTR_ADDR_FAMILY, len 6
            0x02, 0x00, 0x00, 0x00, // AF_INET + 2 padding
        0x08, 0x00, 0x03, 0x00, // IPVS_DEST_ATTR_FWD_METHOD, len 8
            0x00, 0x00, 0x00, 0x00, // IP_VS_CONN_F_MASQ
        0x08, 0x00, 0x04, 0x00, // IPVS_DEST_ATTR_WEIGHT, len 8
            0x01, 0x00, 0x00, 0x00, // weight 1
        0x08, 0x00, 0x05, 0x00, // IPVS_DEST_ATTR_U_THRESH, len 8
            0x00, 0x00, 0x00, 0x00, // upper threshold 0
        0x08, 0x00, 0x06, 0x00, // IPVS_DEST_ATTR_L_THRESH, len 8
            0x00, 0x00, 0x00, 0x00, // lower threshold 0
];

/// NEW_DEST TCP 10.0.0.1:80 -> [2001:db8::7]:80 GUE tunnel to UDP 6080 with checksum, weight 2
#[rustfmt::skip]
const ADD_DEST_GUE: &[u8] = &[
    0xa4, 0x00, 0x00, 0x00, // nlmsg_len 164
    0x24, 0x00, 0x05, 0x00, // nlmsg_type IPVS family id, nlmsg_flags NLM_F_REQUEST|NLM_F_ACK
    0x06, 0x00, 0x00, 0x00, // nlmsg_seq 6
    0x00, 0x00, 0x00, 0x00, // nlmsg_pid 0
    0x05, 0x01, 0x00, 0x00, // genlmsghdr: cmd 5, version 1, reserved
    0x30, 0x00, 0x01, 0x00, // IPVS_CMD_ATTR_SERVICE, len 48 (nest)
        0x06, 0x00, 0x01, 0x00, // IPVS_SVC_ATTR_AF, len 6
            0x02, 0x00, 0x00, 0x00, // AF_INET + 2 padding
        0x06, 0x00, 0x02, 0x00, // IPVS_SVC_ATTR_PROTOCOL, len 6
            0x06, 0x00, 0x00, 0x00, // IPPROTO_TCP + 2 padding
        0x14, 0x00, 0x03, 0x00, // IPVS_SVC_ATTR_ADDR, len 20
            0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // 10.0.0.1, zero-filled to 16 bytes
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ...
        0x06, 0x00, 0x04, 0x00, // IPVS_SVC_ATTR_PORT, len 6
            0x00, 0x50, 0x00, 0x00, // port 80, network order + 2 padding
    0x60, 0x00, 0x02, 0x00, // IPVS_CMD_ATTR_DEST, len 96 (nest)
        0x14, 0x00, 0x01, 0x00, // IPVS_DEST_ATTR_ADDR, len 20
            0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // 2001:db8::7
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, // ...
        0x06, 0x00, 0x02, 0x00, // IPVS_DEST_ATTR_PORT, len 6
            0x00, 0x50, 0x00, 0x00, // port 80, network order + 2 padding
        0x06, 0x00, 0x0b, 0x00, // IPVS_DEST_ATTR_ADDR_FAMILY, len 6
            0x0a, 0x00, 0x00, 0x00, // AF_INET6: mixed families need a tunnel + 2 padding
        0x08, 0x00, 0x03, 0x00, // IPVS_DEST_ATTR_FWD_METHOD, len 8
            0x02, 0x00, 0x00, 0x00, // IP_VS_CONN_F_TUNNEL
        0x08, 0x00, 0x04, 0x00, // IPVS_DEST_ATTR_WEIGHT, len 8
            0x02, 0x00, 0x00, 0x00, // weight 2
        0x08, 0x00, 0x05, 0x00, // IPVS_DEST_ATTR_U_THRESH, len 8
            0x00, 0x00, 0x00, 0x00, // upper threshold 0
        0x08, 0x00, 0x06, 0x00, // IPVS_DEST_ATTR_L_THRESH, len 8
            0x00, 0x00, 0x00, 0x00, // lower threshold 0
        0x05, 0x00, 0x0d, 0x00, // IPVS_DEST_ATTR_TUN_TYPE, len 5
            0x01, 0x00, 0x00, 0x00, // IP_VS_CONN_F_TUNNEL_TYPE_GUE + 3 padding
        0x06, 0x00, 0x0e, 0x00, // IPVS_DEST_ATTR_TUN_PORT, len 6
            0x17, 0xc0, 0x00, 0x00, // tunnel port 6080, network order + 2 padding
        0x06, 0x00, 0x0f, 0x00, // IPVS_DEST_ATTR_TUN_FLAGS, len 6
            0x01, 0x00, 0x00, 0x00, // IP_VS_TUNNEL_ENCAP_FLAG_CSUM + 2 padding
];

/// SET_DEST TCP 10.0.0.1:80 -> 10.244.1.6:80 route weight 5, thresholds 100/10
#[rustfmt::skip]
const EDIT_DEST_DROUTE: &[u8] = &[
    0x8c, 0x00, 0x00, 0x00, // nlmsg_len 140
    0x24, 0x00, 0x05, 0x00, // nlmsg_type IPVS family id, nlmsg_flags NLM_F_REQUEST|NLM_F_ACK
    0x07, 0x00, 0x00, 0x00, // nlmsg_seq 7
    0x00, 0x00, 0x00, 0x00, // nlmsg_pid 0
    0x06, 0x01, 0x00, 0x00, // genlmsghdr: cmd 6, version 1, reserved
    0x30, 0x00, 0x01, 0x00, // IPVS_CMD_ATTR_SERVICE, len 48 (nest)
        0x06, 0x00, 0x01, 0x00, // IPVS_SVC_ATTR_AF, len 6
            0x02, 0x00, 0x00, 0x00, // AF_INET + 2 padding
        0x06, 0x00, 0x02, 0x00, // IPVS_SVC_ATTR_PROTOCOL, len 6
            0x06, 0x00, 0x00, 0x00, // IPPROTO_TCP + 2 padding
        0x14, 0x00, 0x03, 0x00, // IPVS_SVC_ATTR_ADDR, len 20
            0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // 10.0.0.1, zero-filled to 16 bytes
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ...
        0x06, 0x00, 0x04, 0x00, // IPVS_SVC_ATTR_PORT, len 6
            0x00, 0x50, 0x00, 0x00, // port 80, network order + 2 padding
    0x48, 0x00, 0x02, 0x00, // IPVS_CMD_ATTR_DEST, len 72 (nest)
        0x14, 0x00, 0x01, 0x00, // IPVS_DEST_ATTR_ADDR, len 20
            0x0a, 0xf4, 0x01, 0x06, 0x00, 0x00, 0x00, 0x00, // 10.244.1.6
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ...
        0x06, 0x00, 0x02, 0x00, // IPVS_DEST_ATTR_PORT, len 6
            0x00, 0x50, 0x00, 0x00, // port 80, network order + 2 padding
        0x06, 0x00, 0x0b, 0x00, // IPVS_DEST_ATTR_ADDR_FAMILY, len 6
            0x02, 0x00, 0x00, 0x00, // AF_INET + 2 padding
        0x08, 0x00, 0x03, 0x00, // IPVS_DEST_ATTR_FWD_METHOD, len 8
            0x03, 0x00, 0x00, 0x00, // IP_VS_CONN_F_DROUTE
        0x08, 0x00, 0x04, 0x00, // IPVS_DEST_ATTR_WEIGHT, len 8
            0x05, 0x00, 0x00, 0x00, // weight 5
        0x08, 0x00, 0x05, 0x00, // IPVS_DEST_ATTR_U_THRESH, len 8
            0x64, 0x00, 0x00, 0x00, // upper threshold 100
        0x08, 0x00, 0x06, 0x00, // IPVS_DEST_ATTR_L_THRESH, len 8
            0x0a, 0x00, 0x00, 0x00, // lower threshold 10
];

/// DEL_DEST TCP 10.0.0.1:80 -> 10.244.1.5:8080 (identifying attributes only)
#[rustfmt::skip]
const DEL_DEST: &[u8] = &[
    0x6c, 0x00, 0x00, 0x00, // nlmsg_len 108
    0x24, 0x00, 0x05, 0x00, // nlmsg_type IPVS family id, nlmsg_flags NLM_F_REQUEST|NLM_F_ACK
    0x08, 0x00, 0x00, 0x00, // nlmsg_seq 8
    0x00, 0x00, 0x00, 0x00, // nlmsg_pid 0
    0x07, 0x01, 0x00, 0x00, // genlmsghdr: cmd 7, version 1, reserved
    0x30, 0x00, 0x01, 0x00, // IPVS_CMD_ATTR_SERVICE, len 48 (nest)
        0x06, 0x00, 0x01, 0x00, // IPVS_SVC_ATTR_AF, len 6
            0x02, 0x00, 0x00, 0x00, // AF_INET + 2 padding
        0x06, 0x00, 0x02, 0x00, // IPVS_SVC_ATTR_PROTOCOL, len 6
            0x06, 0x00, 0x00, 0x00, // IPPROTO_TCP + 2 padding
        0x14, 0x00, 0x03, 0x00, // IPVS_SVC_ATTR_ADDR, len 20
            0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // 10.0.0.1, zero-filled to 16 bytes
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ...
        0x06, 0x00, 0x04, 0x00, // IPVS_SVC_ATTR_PORT, len 6
            0x00, 0x50, 0x00, 0x00, // port 80, network order + 2 padding
    0x28, 0x00, 0x02, 0x00, // IPVS_CMD_ATTR_DEST, len 40 (nest)
        0x14, 0x00, 0x01, 0x00, // IPVS_DEST_ATTR_ADDR, len 20
            0x0a, 0xf4, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, // 10.244.1.5
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ...
        0x06, 0x00, 0x02, 0x00, // IPVS_DEST_ATTR_PORT, len 6
            0x1f, 0x90, 0x00, 0x00, // port 8080, network order + 2 padding
        0x06, 0x00, 0x0b, 0x00, // IPVS_DEST_ATTR_ADDR_FAMILY, len 6
            0x02, 0x00, 0x00, 0x00, // AF_INET + 2 padding
];

/// GET_SERVICE dump: no attributes
#[rustfmt::skip]
const DUMP_SERVICES: &[u8] = &[
    0x14, 0x00, 0x00, 0x00, // nlmsg_len 20
    0x24, 0x00, 0x01, 0x03, // nlmsg_type IPVS family id, nlmsg_flags NLM_F_REQUEST|NLM_F_DUMP
    0x09, 0x00, 0x00, 0x00, // nlmsg_seq 9
    0x00, 0x00, 0x00, 0x00, // nlmsg_pid 0
    0x04, 0x01, 0x00, 0x00, // genlmsghdr: cmd 4, version 1, reserved
];
