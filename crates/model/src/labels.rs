//! Which Services and EndpointSlices this proxy handles, by the well-known labels.

use std::collections::BTreeMap;

/// The label by which a Service names the proxy that should implement it.
pub const SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// The label the EndpointSlice controller puts on the slices of headless Services.
pub const HEADLESS: &str = "service.kubernetes.io/headless";
/// The label linking an EndpointSlice to its Service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";

/// The label filter kube-proxy applies to Services and EndpointSlices.
///
/// kube-proxy handles objects that carry neither [`SERVICE_PROXY_NAME`] nor [`HEADLESS`].
/// With a proxy name configured (`--service-proxy-name`), objects whose
/// [`SERVICE_PROXY_NAME`] equals it are handled too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyFilter {
    /// Our own proxy name, if any.
    pub proxy_name: Option<String>,
}

impl ProxyFilter {
    /// Whether an object with these labels is ours.
    pub fn accepts(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let Some(labels) = labels else {
            return true;
        };
        if labels.contains_key(HEADLESS) {
            return false;
        }
        match labels.get(SERVICE_PROXY_NAME) {
            None => true,
            Some(name) => self.proxy_name.as_deref() == Some(name.as_str()),
        }
    }

    /// The server-side label selector that returns a superset of what [`Self::accepts`]:
    /// exact when no proxy name is set, otherwise only the headless exclusion (the proxy
    /// name test then happens here, because a selector cannot say "absent or equal").
    pub fn label_selector(&self) -> String {
        match self.proxy_name {
            None => format!("!{SERVICE_PROXY_NAME},!{HEADLESS}"),
            Some(_) => format!("!{HEADLESS}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn default_filter_skips_labelled_objects() {
        let f = ProxyFilter::default();
        assert!(f.accepts(None));
        assert!(f.accepts(Some(&labels(&[("app", "web")]))));
        assert!(!f.accepts(Some(&labels(&[(SERVICE_PROXY_NAME, "other")]))));
        assert!(!f.accepts(Some(&labels(&[(HEADLESS, "")]))));
        assert_eq!(
            f.label_selector(),
            "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"
        );
    }

    #[test]
    fn named_filter_takes_its_own_and_unlabelled() {
        let f = ProxyFilter {
            proxy_name: Some("ipvs".into()),
        };
        assert!(f.accepts(None));
        assert!(f.accepts(Some(&labels(&[(SERVICE_PROXY_NAME, "ipvs")]))));
        assert!(!f.accepts(Some(&labels(&[(SERVICE_PROXY_NAME, "other")]))));
        assert!(!f.accepts(Some(&labels(&[
            (HEADLESS, ""),
            (SERVICE_PROXY_NAME, "ipvs")
        ]))));
    }
}
