//! A Service's own bound on how long its leaving TCP real servers drain, from its
//! annotation (ours): it overrides the daemon-wide `--ipvs-drain-timeout` for this Service's
//! virtual servers. An invalid value is skipped with a warning naming the annotation, and the
//! daemon-wide bound applies.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::scheduling::checked;
use crate::warning::Invalid;

/// Whole seconds a leaving TCP real server of this Service may drain (weight 0) before it
/// is deleted with connections left; it goes earlier once it has none. `0` deletes it at the
/// next sync.
pub const DRAIN_TIMEOUT_ANNOTATION: &str = "kube-ipvs-proxy.io/drain-timeout-seconds";

/// The longest bound the annotation takes: a day, as kube-proxy's longest IPVS timeout
/// default (`tcpTimeout`, 15 min) is far below it and a longer drain is a forgotten one.
const MAX: Duration = Duration::from_secs(24 * 3600);

/// The drain bound the annotations set, if they set a usable one; a value that cannot be
/// used is pushed to `soft` (naming the annotation) and skipped.
pub fn drain_timeout(
    annotations: Option<&BTreeMap<String, String>>,
    soft: &mut Vec<Invalid>,
) -> Option<Duration> {
    let value = annotations?.get(DRAIN_TIMEOUT_ANNOTATION)?;
    checked(DRAIN_TIMEOUT_ANNOTATION, seconds(value), soft)
}

fn seconds(value: &str) -> Result<Duration, String> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
        .filter(|d| *d <= MAX)
        .ok_or_else(|| format!("{value:?} is not a number of seconds from 0 to 86400"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: &str) -> (Option<Duration>, Vec<Invalid>) {
        let annotations = BTreeMap::from([(DRAIN_TIMEOUT_ANNOTATION.to_owned(), value.to_owned())]);
        let mut soft = Vec::new();
        (drain_timeout(Some(&annotations), &mut soft), soft)
    }

    #[test]
    fn whole_seconds_up_to_a_day() {
        assert_eq!(read("120"), (Some(Duration::from_secs(120)), Vec::new()));
        assert_eq!(read(" 0 "), (Some(Duration::ZERO), Vec::new()));
        assert_eq!(read("86400").0, Some(Duration::from_secs(86400)));
        assert_eq!(drain_timeout(None, &mut Vec::new()), None);
    }

    #[test]
    fn anything_else_is_skipped_with_a_warning_naming_the_annotation() {
        for bad in ["2m", "-1", "1.5", "", "86401"] {
            let (timeout, soft) = read(bad);
            assert_eq!(timeout, None, "{bad:?}");
            assert_eq!(soft.len(), 1, "{bad:?}");
            assert_eq!(
                soft[0].field,
                "metadata.annotations[kube-ipvs-proxy.io/drain-timeout-seconds]"
            );
            assert!(soft[0].reason.contains("number of seconds"), "{soft:?}");
        }
    }
}
