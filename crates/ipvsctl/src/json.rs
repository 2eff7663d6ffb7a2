//! The `--json` documents: a stable schema of our own (documented in
//! docs/ipvsctl.md), independent of the IPVS client's serde shapes so that
//! a library change cannot silently change the CLI's output.

use std::net::{IpAddr, SocketAddr};

use desired::VsKey;
use ipvs::spelling::sched_flag_names;
use ipvs::{
    DestinationEntry, ForwardMethod, Info, Rates, ServiceEntry, ServiceFlags, ServiceKey,
    ServiceWithDestinations, Stats, Timeouts, TunnelFlags, TunnelType,
};
use serde::Serialize;

use crate::conns::Conn;
use crate::names::{self, Names};

/// `list --json` and each line of `watch --json`.
#[derive(Debug, Serialize)]
pub(crate) struct Listing<'a> {
    /// IPVS version, e.g. `1.2.1`.
    pub(crate) version: String,
    /// Connection hash table buckets.
    pub(crate) connection_table_size: u32,
    /// The virtual services, in the listing's order.
    pub(crate) services: Vec<ServiceDoc<'a>>,
}

impl<'a> Listing<'a> {
    /// The document for a table, with `names` when `--names` is given.
    pub(crate) fn new(
        info: &Info,
        table: &'a [ServiceWithDestinations],
        names: Option<&'a Names>,
    ) -> Self {
        Listing {
            version: info.version.to_string(),
            connection_table_size: info.connection_table_size,
            services: table.iter().map(|s| ServiceDoc::new(s, names)).collect(),
        }
    }
}

/// One virtual service.
#[derive(Debug, Serialize)]
pub(crate) struct ServiceDoc<'a> {
    /// As ipvsadm names it: `TCP 10.0.0.1:80`, `FWM 7`, `FWM 7 IPv6`.
    pub(crate) name: String,
    /// `ipv4` or `ipv6`.
    pub(crate) family: &'static str,
    /// `tcp`, `udp`, `sctp`; null for fwmark services.
    pub(crate) protocol: Option<&'static str>,
    /// Virtual address; null for fwmark services.
    pub(crate) address: Option<IpAddr>,
    /// Virtual port; null for fwmark services.
    pub(crate) port: Option<u16>,
    /// Firewall mark; null for address services.
    pub(crate) fwmark: Option<u32>,
    /// Scheduler name.
    pub(crate) scheduler: &'a str,
    /// Scheduler flags by ipvsadm's names (`sh-fallback`, `flag-1`...).
    pub(crate) scheduler_flags: Vec<&'static str>,
    /// One-packet scheduling.
    pub(crate) one_packet: bool,
    /// Persistence, or null.
    pub(crate) persistence: Option<PersistenceDoc>,
    /// Persistence engine, or null.
    pub(crate) persistence_engine: Option<&'a str>,
    /// Counters since the last zeroing.
    pub(crate) stats: Counters,
    /// Per-second rates.
    pub(crate) rates: Counters,
    /// Real servers.
    pub(crate) real_servers: Vec<RealServerDoc<'a>>,
    /// With `--names`: the Service port (`namespace/name:port`), null when
    /// unknown. Absent without `--names`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) service: Option<Option<&'a str>>,
}

/// Persistence settings.
#[derive(Debug, Serialize)]
pub(crate) struct PersistenceDoc {
    /// Seconds.
    pub(crate) timeout: u32,
    /// Client prefix length grouped together (32/128: one client).
    pub(crate) prefix_length: u8,
}

/// Counters or rates.
#[derive(Debug, Serialize)]
pub(crate) struct Counters {
    /// Connections.
    pub(crate) connections: u64,
    /// Packets in.
    pub(crate) packets_in: u64,
    /// Packets out.
    pub(crate) packets_out: u64,
    /// Bytes in.
    pub(crate) bytes_in: u64,
    /// Bytes out.
    pub(crate) bytes_out: u64,
}

impl From<&Stats> for Counters {
    fn from(s: &Stats) -> Self {
        Counters {
            connections: s.connections,
            packets_in: s.packets_in,
            packets_out: s.packets_out,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
        }
    }
}

impl From<&Rates> for Counters {
    fn from(r: &Rates) -> Self {
        Counters {
            connections: r.connections,
            packets_in: r.packets_in,
            packets_out: r.packets_out,
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
        }
    }
}

/// One real server.
#[derive(Debug, Serialize)]
pub(crate) struct RealServerDoc<'a> {
    /// Address.
    pub(crate) address: IpAddr,
    /// Port.
    pub(crate) port: u16,
    /// `masq`, `local`, `tunnel`, `route` or `bypass`.
    pub(crate) forward: &'static str,
    /// Tunnel settings for `tunnel`, else null.
    pub(crate) tunnel: Option<TunnelDoc>,
    /// Weight.
    pub(crate) weight: u32,
    /// Upper connection threshold (0: none).
    pub(crate) upper_threshold: u32,
    /// Lower connection threshold (0: none).
    pub(crate) lower_threshold: u32,
    /// Active connections.
    pub(crate) active_connections: u32,
    /// Inactive connections.
    pub(crate) inactive_connections: u32,
    /// Persistence templates.
    pub(crate) persistent_connections: u32,
    /// Counters since the last zeroing.
    pub(crate) stats: Counters,
    /// Per-second rates.
    pub(crate) rates: Counters,
    /// With `--names`: the Pod (`namespace/name`), null when unknown. Absent
    /// without `--names`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pod: Option<Option<&'a str>>,
}

/// A tunnel's encapsulation.
#[derive(Debug, Serialize)]
pub(crate) struct TunnelDoc {
    /// `ipip`, `gue` or `gre`.
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    /// GUE port, else null.
    pub(crate) port: Option<u16>,
    /// `none`, `csum`, `remcsum` (or `csum,remcsum`).
    pub(crate) checksum: &'static str,
}

impl<'a> ServiceDoc<'a> {
    fn new(s: &'a ServiceWithDestinations, names: Option<&'a Names>) -> Self {
        let ServiceEntry { service, stats } = &s.service;
        let vs = names::vs_key(&service.key);
        let (protocol, address, port, fwmark) = match service.key {
            ServiceKey::Inet {
                protocol,
                addr,
                port,
            } => (Some(protocol_name(protocol)), Some(addr), Some(port), None),
            ServiceKey::Fwmark { mark, .. } => (None, None, None, Some(mark.get())),
        };
        ServiceDoc {
            name: service.key.to_string(),
            family: family(&service.key),
            protocol,
            address,
            port,
            fwmark,
            scheduler: service.scheduler.name(),
            scheduler_flags: sched_flag_names(&service.scheduler, service.flags),
            one_packet: service.flags.contains(ServiceFlags::ONE_PACKET),
            persistence: service.persistence.map(|p| PersistenceDoc {
                timeout: p.timeout,
                prefix_length: p.prefix_len,
            }),
            persistence_engine: service.persistence_engine.as_deref(),
            stats: stats.into(),
            rates: (&stats.rates).into(),
            real_servers: s
                .destinations
                .iter()
                .map(|d| RealServerDoc::new(d, names.map(|n| (n, vs))))
                .collect(),
            service: names.map(|n| vs.and_then(|vs| n.service(&vs))),
        }
    }
}

fn family(key: &ServiceKey) -> &'static str {
    match key.af() {
        ipvs::AddressFamily::Inet => "ipv4",
        ipvs::AddressFamily::Inet6 => "ipv6",
    }
}

/// `tcp`, `udp`, `sctp`.
pub(crate) fn protocol_name(p: ipvs::Protocol) -> &'static str {
    match p {
        ipvs::Protocol::Tcp => "tcp",
        ipvs::Protocol::Udp => "udp",
        ipvs::Protocol::Sctp => "sctp",
    }
}

impl<'a> RealServerDoc<'a> {
    /// `names` are `--names` with the key of the server's virtual service.
    fn new(e: &DestinationEntry, names: Option<(&'a Names, Option<VsKey>)>) -> Self {
        let d = &e.destination;
        let real = SocketAddr::new(d.addr, d.port);
        let (forward, tunnel) = match d.forward {
            ForwardMethod::Masquerade => ("masq", None),
            ForwardMethod::Local => ("local", None),
            ForwardMethod::DirectRoute => ("route", None),
            ForwardMethod::Bypass => ("bypass", None),
            ForwardMethod::Tunnel { tunnel, flags } => {
                ("tunnel", Some(TunnelDoc::new(tunnel, flags)))
            }
        };
        RealServerDoc {
            address: d.addr,
            port: d.port,
            forward,
            tunnel,
            weight: d.weight,
            upper_threshold: d.upper_threshold,
            lower_threshold: d.lower_threshold,
            active_connections: e.active_connections,
            inactive_connections: e.inactive_connections,
            persistent_connections: e.persistent_connections,
            stats: (&e.stats).into(),
            rates: (&e.stats.rates).into(),
            pod: names.map(|(n, vs)| vs.and_then(|vs| n.pod(&vs, real))),
        }
    }
}

impl TunnelDoc {
    fn new(tunnel: TunnelType, flags: TunnelFlags) -> Self {
        let (kind, port) = match tunnel {
            TunnelType::Ipip => ("ipip", None),
            TunnelType::Gue { port } => ("gue", Some(port)),
            TunnelType::Gre => ("gre", None),
        };
        let checksum = match (
            flags.contains(TunnelFlags::CSUM),
            flags.contains(TunnelFlags::REMCSUM),
        ) {
            (false, false) => "none",
            (true, false) => "csum",
            (false, true) => "remcsum",
            (true, true) => "csum,remcsum",
        };
        TunnelDoc {
            kind,
            port,
            checksum,
        }
    }
}

/// `info --json`.
#[derive(Debug, Serialize)]
pub(crate) struct InfoDoc {
    /// IPVS version.
    pub(crate) version: String,
    /// Connection hash table buckets.
    pub(crate) connection_table_size: u32,
    /// Number of virtual services.
    pub(crate) services: usize,
    /// Number of real servers, over all services.
    pub(crate) real_servers: usize,
}

/// `timeouts --json`.
#[derive(Debug, Serialize)]
pub(crate) struct TimeoutsDoc {
    /// TCP established, seconds.
    pub(crate) tcp: u32,
    /// TCP after FIN, seconds.
    pub(crate) tcp_fin: u32,
    /// UDP, seconds.
    pub(crate) udp: u32,
}

impl From<Timeouts> for TimeoutsDoc {
    fn from(t: Timeouts) -> Self {
        TimeoutsDoc {
            tcp: t.tcp,
            tcp_fin: t.tcp_fin,
            udp: t.udp,
        }
    }
}

/// `conns --json`.
#[derive(Debug, Serialize)]
pub(crate) struct ConnsDoc<'a> {
    /// The connections, in the kernel's order.
    pub(crate) connections: Vec<ConnDoc<'a>>,
}

impl<'a> ConnsDoc<'a> {
    /// The document for some connections, with `names` when `--names` is given.
    pub(crate) fn new(connections: &'a [Conn], names: Option<&'a Names>) -> Self {
        ConnsDoc {
            connections: connections
                .iter()
                .map(|conn| {
                    let vs = names::conn_vs_key(&conn.protocol, conn.virtual_addr);
                    ConnDoc {
                        conn,
                        service: names.map(|n| vs.and_then(|vs| n.service(&vs))),
                        pod: names.map(|n| vs.and_then(|vs| n.pod(&vs, conn.real))),
                    }
                })
                .collect(),
        }
    }
}

/// One connection.
#[derive(Debug, Serialize)]
pub(crate) struct ConnDoc<'a> {
    /// Its fields.
    #[serde(flatten)]
    pub(crate) conn: &'a Conn,
    /// With `--names`: the virtual service's Service port, null when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) service: Option<Option<&'a str>>,
    /// With `--names`: the real server's Pod, null when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pod: Option<Option<&'a str>>,
}

/// Serializes a document on one line.
pub(crate) fn to_line<T: Serialize>(doc: &T) -> String {
    let mut s = serde_json::to_string(doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn listing_document_has_the_documented_shape() {
        let table = testdata::table();
        let doc = serde_json::to_value(Listing::new(&testdata::info(), &table, None)).unwrap();
        assert_eq!(doc["version"], "1.2.1");
        let services = doc["services"].as_array().unwrap();
        assert_eq!(services.len(), table.len());
        let keys: Vec<&str> = services[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in [
            "name",
            "family",
            "protocol",
            "address",
            "port",
            "fwmark",
            "scheduler",
            "scheduler_flags",
            "one_packet",
            "persistence",
            "persistence_engine",
            "stats",
            "rates",
            "real_servers",
        ] {
            assert!(keys.contains(&k), "missing {k} in {keys:?}");
        }
        let fwm = services.iter().find(|s| s["fwmark"].is_u64()).unwrap();
        assert!(fwm["protocol"].is_null() && fwm["address"].is_null());
        let tunnels: Vec<&serde_json::Value> = services
            .iter()
            .flat_map(|s| s["real_servers"].as_array().unwrap())
            .filter(|r| r["forward"] == "tunnel")
            .collect();
        assert!(
            tunnels
                .iter()
                .any(|t| t["tunnel"]["type"] == "gue" && t["tunnel"]["port"].is_u64())
        );
        assert!(
            services
                .iter()
                .all(|s| !s.as_object().unwrap().contains_key("service")),
            "no names without --names"
        );
        let flagged = services.iter().find(|s| s["scheduler"] == "sh").unwrap();
        assert_eq!(
            flagged["scheduler_flags"],
            serde_json::json!(["sh-fallback", "sh-port"])
        );
    }

    #[test]
    fn names_are_optional_fields() {
        let table = testdata::table_of(testdata::NAMES_TABLE);
        let names = testdata::names();
        let doc =
            serde_json::to_value(Listing::new(&testdata::info(), &table, Some(&names))).unwrap();
        let services = doc["services"].as_array().unwrap();
        let by_name = |n: &str| services.iter().find(|s| s["name"] == n).unwrap();
        let web = by_name("TCP 10.96.0.10:80");
        assert_eq!(web["service"], "shop/web:http");
        let pods: Vec<&serde_json::Value> = web["real_servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["pod"])
            .collect();
        assert_eq!(
            pods,
            [
                &serde_json::json!("shop/web-7d4b9-abcde"),
                &serde_json::json!("shop/web-7d4b9-fghij"),
                &serde_json::Value::Null,
                &serde_json::Value::Null
            ]
        );
        // Unknown: present and null.
        let fwm = by_name("FWM 7");
        assert!(fwm.as_object().unwrap().contains_key("service") && fwm["service"].is_null());
        assert_eq!(by_name("TCP 192.168.50.2:30080")["service"], "shop/cart");
    }

    #[test]
    fn connections_get_names_with_names() {
        let text = "header\n\
            TCP C0A80702 D431 0A60000A 0050 0AF40105 1F90 ESTABLISHED     895\n\
            TCP C0A80702 D432 0A000001 0050 0AF40105 1F90 ESTABLISHED     895\n";
        let conns = crate::conns::parse("c", text, false).unwrap();
        let names = testdata::names();
        let doc = serde_json::to_value(ConnsDoc::new(&conns, Some(&names))).unwrap();
        let c = &doc["connections"];
        assert_eq!(c[0]["service"], "shop/web:http");
        assert_eq!(c[0]["pod"], "shop/web-7d4b9-abcde");
        assert_eq!(c[0]["real"], "10.244.1.5:8080");
        assert!(c[1]["service"].is_null() && c[1]["pod"].is_null());
        // Without --names, the bytes of the connections themselves.
        assert_eq!(
            to_line(&ConnsDoc::new(&conns, None)),
            format!(
                "{{\"connections\":{}}}\n",
                serde_json::to_string(&conns).unwrap()
            )
        );
    }
}
