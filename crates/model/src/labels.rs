//! Which Services and EndpointSlices this proxy handles, by the well-known labels.

use std::collections::BTreeMap;

/// The label by which a Service names the proxy that should implement it.
pub const SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// The label the EndpointSlice controller puts on the slices of headless Services.
pub const HEADLESS: &str = "service.kubernetes.io/headless";
/// The label linking an EndpointSlice to its Service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";

/// Why [`ProxyFilter`] leaves an object to someone else.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Rejection {
    /// It carries [`HEADLESS`].
    Headless,
    /// Its [`SERVICE_PROXY_NAME`] names another proxy.
    OtherProxy(String),
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Headless => write!(f, "labelled {HEADLESS}: left to no proxy"),
            Rejection::OtherProxy(name) => write!(
                f,
                "labelled {SERVICE_PROXY_NAME}={name}: left to that proxy \
                 (this one implements it only with --service-proxy-name {name})"
            ),
        }
    }
}

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
        self.rejection(labels).is_none()
    }

    /// Why an object with these labels is not ours, if it is not.
    pub fn rejection(&self, labels: Option<&BTreeMap<String, String>>) -> Option<Rejection> {
        let labels = labels?;
        if labels.contains_key(HEADLESS) {
            return Some(Rejection::Headless);
        }
        match labels.get(SERVICE_PROXY_NAME) {
            Some(name) if self.proxy_name.as_deref() != Some(name.as_str()) => {
                Some(Rejection::OtherProxy(name.clone()))
            }
            _ => None,
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
