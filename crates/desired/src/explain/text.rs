//! An [`Explanation`] for people: one block per family and port, virtual servers in
//! `ipvsadm -Sn` lines, then each endpoint with where it goes or why not.

use std::fmt::{self, Write as _};

use super::{
    EndpointExplanation, Exclusion, Explanation, FamilyExplanation, PortExplanation, Role, Use,
};
use crate::render::ipvsadm_save;

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exclusion::NotReady => f.write_str("not ready (and not serving while terminating)"),
            Exclusion::TerminatingWhileReady { among } => write!(
                f,
                "terminating: a serving terminating endpoint is used only when no endpoint \
                 is ready, and the {among} has ready ones"
            ),
            Exclusion::OtherNode { node, policy } => write!(
                f,
                "on node {}, not this one, and {policy} is Local",
                node.as_deref().unwrap_or("(none given)")
            ),
            Exclusion::TopologyZone { hints, zone } => write!(
                f,
                "topology hints for zone {} (PreferSameZone), this node's zone is {}",
                list(hints),
                zone.as_deref().unwrap_or("unset")
            ),
            Exclusion::TopologyNode { hints } => write!(
                f,
                "topology hints for node {} (PreferSameNode)",
                list(hints)
            ),
        }
    }
}

/// `a, b, c`, or `(none)`.
fn list<T: fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "(none)".to_owned();
    }
    let shown: Vec<String> = items.iter().map(ToString::to_string).collect();
    shown.join(", ")
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::ClusterIp => "cluster IP",
            Role::ExternalIp => "external IP",
            Role::LoadBalancerIp => "load balancer IP",
            Role::NodePort => "node port",
        })
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Service {} on node {}", self.service, self.node)?;
        if let Some(zone) = &self.zone {
            write!(f, " (zone {zone})")?;
        }
        writeln!(f)?;
        if let Some(skipped) = &self.not_proxied {
            writeln!(f, "  not proxied: {}", skipped.message)?;
        }
        for d in &self.defaults_used {
            writeln!(f, "  default used: {d}")?;
        }
        for ip in &self.proxy_mode_ingress {
            writeln!(
                f,
                "  load balancer ingress {ip}: ipMode Proxy, left to the load balancer (no virtual server)"
            )?;
        }
        for family in &self.families {
            family.fmt(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for FamilyExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cluster_ip {
            Some(ip) => writeln!(f, "{} (cluster IP {ip})", self.family)?,
            None => writeln!(f, "{}", self.family)?,
        }
        if let Some(why) = &self.not_proxied {
            writeln!(f, "  not proxied: {why}")?;
            if !self.unused_endpoints.is_empty() {
                let unused = list(&self.unused_endpoints);
                writeln!(f, "  endpoints not used (wrong family): {unused}")?;
            }
        }
        for port in &self.ports {
            port.fmt(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for PortExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "(unnamed)"
        } else {
            &self.name
        };
        write!(f, "  port {name} {} {}", self.protocol, self.port)?;
        if let Some(np) = self.node_port {
            write!(f, ", node port {np}")?;
        }
        write!(
            f,
            "; internalTrafficPolicy {}",
            self.internal_traffic_policy
        )?;
        if let Some(p) = self.external_traffic_policy {
            write!(f, ", externalTrafficPolicy {p}")?;
        }
        writeln!(f, "; topology {:?}", self.topology)?;
        writeln!(f, "    virtual servers:")?;
        for vs in &self.virtual_servers {
            let mut lines = String::new();
            ipvsadm_save(&vs.virtual_server, &mut lines);
            writeln!(f, "      # {}", vs.role)?;
            for line in lines.lines() {
                writeln!(f, "      {line}")?;
            }
            if let Some(lost) = &vs.lost_to {
                writeln!(f, "      ! not programmed for this Service: {lost}")?;
            }
        }
        if !self.node_port_addresses.is_empty() {
            writeln!(f, "    node port on: {}", list(&self.node_port_addresses))?;
        }
        writeln!(f, "    endpoints:")?;
        if self.endpoints.is_empty() {
            writeln!(f, "      (none)")?;
        }
        for e in &self.endpoints {
            e.fmt(f)?;
        }
        for s in &self.unmatched_slices {
            writeln!(
                f,
                "      slice {}: no port named {:?}/{} (it has {}); its endpoints {} are not used",
                s.slice,
                self.name,
                self.protocol,
                list(&s.ports),
                list(&s.endpoints)
            )?;
        }
        if !self.bound_addresses.is_empty() {
            writeln!(f, "    on kube-ipvs0: {}", list(&self.bound_addresses))?;
        }
        if !self.ipsets.is_empty() {
            writeln!(f, "    ipsets:")?;
            for e in &self.ipsets {
                writeln!(f, "      {} {}  # {}", e.set(), e.entry, e.kind.comment())?;
            }
        }
        for d in &self.out_filter_drops {
            writeln!(
                f,
                "    KUBE-IPVS-OUT-FILTER drops the node's own traffic to {} {}:{}: no source range contains its IP",
                d.protocol, d.addr, d.port
            )?;
        }
        for n in &self.notes {
            writeln!(f, "    note: {n}")?;
        }
        Ok(())
    }
}

impl fmt::Display for EndpointExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut head = format!("{}:{}", self.address, self.port);
        if let Some(pod) = &self.pod {
            let _ = write!(head, " {pod}");
        }
        let _ = write!(head, " node {}", self.node.as_deref().unwrap_or("-"));
        let conditions = [
            (self.ready, "ready"),
            (self.serving, "serving"),
            (self.terminating, "terminating"),
        ];
        let set: Vec<&str> = conditions
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        let _ = write!(head, " [{}]", set.join(","));
        let internal = describe(&self.internal);
        match &self.external {
            None => writeln!(f, "      {head}: {internal}"),
            Some(external) if *external == self.internal => {
                writeln!(f, "      {head}: {internal}")
            }
            Some(external) => writeln!(
                f,
                "      {head}: cluster IP: {internal}; external: {}",
                describe(external)
            ),
        }
    }
}

fn describe(u: &Use) -> String {
    match u {
        Use::RealServer => "real server".to_owned(),
        Use::Excluded(why) => format!("not a real server: {why}"),
    }
}
