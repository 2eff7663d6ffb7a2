//! Port names from `/etc/services`, both ways: restore input names ports
//! (`10.0.0.1:http`) as `getservbyname` reads them, and listings without
//! `-n` print them as `getservbyport` finds them.

use std::sync::OnceLock;

use ipvs::Protocol;

/// The `/etc/services` database: names and aliases with their port and
/// protocol.
#[derive(Debug, Default)]
pub(crate) struct ServiceNames {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    names: Vec<String>,
    port: u16,
    protocol: String,
}

impl ServiceNames {
    /// The system's `/etc/services`, read once; empty when it is missing.
    pub(crate) fn system() -> &'static ServiceNames {
        static SYSTEM: OnceLock<ServiceNames> = OnceLock::new();
        SYSTEM.get_or_init(|| {
            std::fs::read_to_string("/etc/services")
                .map(|text| ServiceNames::parse(&text))
                .unwrap_or_default()
        })
    }

    /// Parses the `name port/protocol [aliases...] [# comment]` format;
    /// malformed lines are skipped, as libc does.
    pub(crate) fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .filter_map(|line| {
                let line = line.split('#').next().unwrap_or_default();
                let mut fields = line.split_whitespace();
                let name = fields.next()?;
                let (port, protocol) = fields.next()?.split_once('/')?;
                let mut names = vec![name.to_owned()];
                names.extend(fields.map(str::to_owned));
                Some(Entry {
                    names,
                    port: port.parse().ok()?,
                    protocol: protocol.to_ascii_lowercase(),
                })
            })
            .collect();
        ServiceNames { entries }
    }

    /// The port of a service name for a protocol (`getservbyname`).
    pub(crate) fn port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        let proto = protocol.to_string().to_ascii_lowercase();
        self.entries
            .iter()
            .find(|e| e.protocol == proto && e.names.iter().any(|n| n == name))
            .map(|e| e.port)
    }

    /// The name of a port for a protocol (`getservbyport`): the first
    /// entry's own name, not an alias.
    pub(crate) fn name(&self, port: u16, protocol: Protocol) -> Option<&str> {
        let proto = protocol.to_string().to_ascii_lowercase();
        self.entries
            .iter()
            .find(|e| e.protocol == proto && e.port == port)
            .and_then(|e| e.names.first())
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# Network services
http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP
domain\t\t53/tcp
domain\t\t53/udp
sip\t\t5060/udp
bogus line
broken\t\tx/tcp
";

    #[test]
    fn names_and_aliases_resolve_per_protocol() {
        let db = ServiceNames::parse(SAMPLE);
        assert_eq!(db.port("http", Protocol::Tcp), Some(80));
        assert_eq!(db.port("www", Protocol::Tcp), Some(80));
        assert_eq!(db.port("http", Protocol::Udp), None);
        assert_eq!(db.port("domain", Protocol::Udp), Some(53));
        assert_eq!(db.port("sip", Protocol::Sctp), None);
        assert_eq!(db.port("broken", Protocol::Tcp), None);
        assert_eq!(db.port("bogus", Protocol::Tcp), None);
        assert_eq!(db.name(80, Protocol::Tcp), Some("http"));
        assert_eq!(db.name(53, Protocol::Udp), Some("domain"));
        assert_eq!(db.name(80, Protocol::Udp), None);
        assert_eq!(db.name(5060, Protocol::Tcp), None);
    }
}
