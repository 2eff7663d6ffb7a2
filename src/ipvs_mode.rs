//! IPVS mode in the daemon: the desired state is crate `desired`'s, the dataplane crate
//! `dataplane`'s [`IpvsDataplane`], started from the settings.

use std::io::Write;

use dataplane::ipvs::{IpvsDataplane, IpvsOptions, Owner};
use desired::{DesiredState, NodeInfo};
use model::{Changes, Model};

use crate::proxier::{Proxier, Rules};
use dataplane::ProxyMode;
use settings::Settings;
use settings::cli::Output;

impl Rules for DesiredState {
    fn new(settings: &Settings, node: NodeInfo, model: &Model) -> Self {
        DesiredState::new(settings.desired.clone(), node, model)
    }

    fn update(&mut self, model: &Model, changes: &Changes, node: &NodeInfo) {
        DesiredState::update(self, model, changes, node);
    }

    fn log(&self, model: &Model, changes: &Changes) {
        let (services, slices) = model.len();
        tracing::info!(
            services,
            slices,
            changed_services = changes.services.len(),
            virtual_servers = self.virtual_servers().count(),
            "desired state updated"
        );
    }

    fn claims(&self) -> &desired::Claims {
        DesiredState::claims(self)
    }

    fn size(&self) -> usize {
        self.virtual_servers().count()
    }

    fn ipvs(&self) -> Option<&DesiredState> {
        Some(self)
    }

    fn print(&self, out: &mut dyn Write, output: Output) -> anyhow::Result<()> {
        match output {
            Output::Text => out.write_all(desired::render::text(self)?.as_bytes())?,
            Output::Json => {
                serde_json::to_writer_pretty(&mut *out, &desired::render::json(self)?)?;
                out.write_all(b"\n")?;
            }
        }
        Ok(())
    }
}

/// Which virtual servers are ours, as the settings say.
pub(crate) fn owner(settings: &Settings) -> Owner {
    Owner {
        exclude_cidrs: settings.exclude_cidrs.clone(),
        node_port_range: settings.node_port_range.clone(),
    }
}

/// The IPVS dataplane's node settings, as the settings say.
pub(crate) fn options(settings: &Settings) -> IpvsOptions {
    IpvsOptions {
        owner: owner(settings),
        strict_arp: settings.strict_arp,
        timeouts: settings.ipvs_timeouts,
        schedulers: vec![settings.desired.scheduler.to_string()],
        drain_timeout: settings.drain_timeout,
    }
}

impl Proxier for IpvsDataplane {
    const MODE: ProxyMode = ProxyMode::Ipvs;

    fn start(settings: &Settings) -> impl FnOnce() -> anyhow::Result<Self> + Send + 'static {
        let options = options(settings);
        move || {
            let dataplane = IpvsDataplane::start(&options)?;
            tracing::info!("IPVS dataplane ready on {}", hostnet::KUBE_IPVS0);
            Ok(dataplane)
        }
    }
}
