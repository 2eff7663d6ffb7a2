//! A Service's own IPVS scheduler and scheduler flags, from its annotations: ours, and
//! kube-router's (read exactly as kube-router reads them, so Services keep their behaviour
//! when a cluster moves from kube-router).
//!
//! Precedence: our annotation over kube-router's, for the scheduler and for the flags each;
//! an invalid value is skipped with a warning and the next source applies (kube-router's
//! annotation, then the global `ipvs.scheduler` and kube-proxy's flags for it).

use std::collections::BTreeMap;

use crate::scheduler::{SchedFlags, Scheduler};
use crate::warning::Invalid;

/// The annotation that chooses the IPVS scheduler for a Service's virtual servers, overriding
/// `ipvs.scheduler` / `--ipvs-scheduler`: any scheduler the kernel has (`rr`, `wrr`, `lc`,
/// `wlc`, `lblc`, `lblcr`, `dh`, `sh`, `sed`, `nq`, `mh`, `fo`, `ovf`, `twos`).
pub const SCHEDULER_ANNOTATION: &str = "kube-ipvs-proxy.io/ipvs-scheduler";
/// The annotation that sets the scheduler flags of a Service whose scheduler annotation (ours
/// or kube-router's) is `sh` or `mh`: comma-separated `flag-1`, `flag-2`, `flag-3` or
/// ipvsadm's names `sh-fallback`, `sh-port`, `mh-fallback`, `mh-port`, checked as
/// `ipvsadm -b` checks them (a named flag must match the scheduler; one bad flag rejects the
/// value).
pub const SCHED_FLAGS_ANNOTATION: &str = "kube-ipvs-proxy.io/ipvs-sched-flags";
/// kube-router's scheduler annotation: `rr`, `lc`, `dh`, `sh` or `mh`.
pub const KUBE_ROUTER_SCHEDULER_ANNOTATION: &str = "kube-router.io/service.scheduler";
/// kube-router's scheduler flags annotation: comma-separated `flag-1`, `flag-2`, `flag-3`,
/// applied only when the scheduler is `mh` (kube-router's `parseSchedFlags`).
pub const KUBE_ROUTER_SCHED_FLAGS_ANNOTATION: &str = "kube-router.io/service.schedflags";

/// The schedulers kube-router's annotation accepts (its `buildServicesInfo`).
const KUBE_ROUTER_SCHEDULERS: [Scheduler; 5] = [
    Scheduler::Rr,
    Scheduler::Lc,
    Scheduler::Dh,
    Scheduler::Sh,
    Scheduler::Mh,
];

/// What a Service's annotations decide about its scheduling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scheduling {
    /// The scheduler, when an annotation chooses one; otherwise the global one applies.
    pub scheduler: Option<Scheduler>,
    /// The scheduler flags, when the annotations decide them; otherwise kube-proxy's flags for
    /// the scheduler apply (`mh-port` for `mh`, none for the others).
    pub flags: Option<SchedFlags>,
}

/// Where a Service's scheduler came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Ours,
    KubeRouter,
}

impl Scheduling {
    /// Reads the four annotations; a value that cannot be used is pushed to `soft` (naming the
    /// annotation) and skipped.
    pub fn from_annotations(
        annotations: Option<&BTreeMap<String, String>>,
        soft: &mut Vec<Invalid>,
    ) -> Scheduling {
        let Some(annotations) = annotations else {
            return Scheduling::default();
        };
        let get = |key: &str| annotations.get(key).map(String::as_str);
        let chosen = get(SCHEDULER_ANNOTATION)
            .and_then(|v| checked(SCHEDULER_ANNOTATION, ours(v), soft))
            .map(|s| (s, Source::Ours))
            .or_else(|| {
                get(KUBE_ROUTER_SCHEDULER_ANNOTATION)
                    .and_then(|v| checked(KUBE_ROUTER_SCHEDULER_ANNOTATION, kube_router(v), soft))
                    .map(|s| (s, Source::KubeRouter))
            });
        let scheduler = chosen.map(|(s, _)| s);
        let flags = get(SCHED_FLAGS_ANNOTATION)
            .and_then(|v| checked(SCHED_FLAGS_ANNOTATION, our_flags(v, scheduler), soft))
            .or_else(|| {
                get(KUBE_ROUTER_SCHED_FLAGS_ANNOTATION)
                    .and_then(|v| kube_router_flags(v, scheduler, soft))
            })
            .or(match chosen {
                // kube-router sets no flag on an `mh` Service without its flags annotation.
                Some((Scheduler::Mh, Source::KubeRouter)) => Some(SchedFlags::empty()),
                _ => None,
            });
        Scheduling { scheduler, flags }
    }
}

/// `Some(value)`, or `None` with the problem pushed to `soft` under the annotation's field.
pub(crate) fn checked<T>(
    annotation: &str,
    value: Result<T, String>,
    soft: &mut Vec<Invalid>,
) -> Option<T> {
    value
        .map_err(|reason| soft.push(Invalid::new(field(annotation), reason)))
        .ok()
}

/// The field path of an annotation, as warnings name it.
fn field(annotation: &str) -> String {
    format!("metadata.annotations[{annotation}]")
}

fn ours(value: &str) -> Result<Scheduler, String> {
    value.trim().parse::<Scheduler>().map_err(|e| e.to_string())
}

fn kube_router(value: &str) -> Result<Scheduler, String> {
    value
        .parse::<Scheduler>()
        .ok()
        .filter(|s| KUBE_ROUTER_SCHEDULERS.contains(s))
        .ok_or_else(|| {
            format!("unknown scheduler {value:?} for kube-router's annotation (known: rr, lc, dh, sh, mh)")
        })
}

/// Our flags: ipvsadm's `-b` syntax and checks, for an `sh` or `mh` scheduler.
fn our_flags(value: &str, scheduler: Option<Scheduler>) -> Result<SchedFlags, String> {
    let scheduler = match scheduler {
        Some(s @ (Scheduler::Sh | Scheduler::Mh)) => s,
        other => {
            return Err(format!(
                "scheduler flags need a scheduler annotation naming sh or mh (the Service's is {})",
                other.map_or("the global one".to_owned(), |s| s.to_string())
            ));
        }
    };
    // Empty items are skipped, as ipvsadm's strtok does; an empty value sets no flag.
    value
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .try_fold(SchedFlags::empty(), |acc, flag| {
        let (bit, needs) = match flag {
            "flag-1" => (SchedFlags::FLAG_1, None),
            "flag-2" => (SchedFlags::FLAG_2, None),
            "flag-3" => (SchedFlags::FLAG_3, None),
            "sh-fallback" => (SchedFlags::FLAG_1, Some(Scheduler::Sh)),
            "sh-port" => (SchedFlags::FLAG_2, Some(Scheduler::Sh)),
            "mh-fallback" => (SchedFlags::FLAG_1, Some(Scheduler::Mh)),
            "mh-port" => (SchedFlags::FLAG_2, Some(Scheduler::Mh)),
            _ => return Err(format!("invalid scheduler flag {flag:?}")),
        };
        match needs {
            Some(needed) if needed != scheduler => Err(format!(
                "scheduler flag {flag:?} is for {needed}, the Service's scheduler is {scheduler}"
            )),
            _ => Ok(acc | bit),
        }
    })
}

/// kube-router's `parseSchedFlags`: spaces trimmed, unknown flags skipped (and reported),
/// applied only to an `mh` Service.
fn kube_router_flags(
    value: &str,
    scheduler: Option<Scheduler>,
    soft: &mut Vec<Invalid>,
) -> Option<SchedFlags> {
    if scheduler != Some(Scheduler::Mh) {
        soft.push(Invalid::new(
            field(KUBE_ROUTER_SCHED_FLAGS_ANNOTATION),
            "kube-router applies its scheduler flags only when the scheduler is mh",
        ));
        return None;
    }
    let mut unknown = Vec::new();
    let flags =
        value
            .split(',')
            .map(|f| f.trim_matches(' '))
            .fold(SchedFlags::empty(), |acc, flag| match flag {
                "flag-1" => acc | SchedFlags::FLAG_1,
                "flag-2" => acc | SchedFlags::FLAG_2,
                "flag-3" => acc | SchedFlags::FLAG_3,
                "" => acc,
                other => {
                    unknown.push(other);
                    acc
                }
            });
    if !unknown.is_empty() {
        soft.push(Invalid::new(
            field(KUBE_ROUTER_SCHED_FLAGS_ANNOTATION),
            format!("unknown scheduler flags {unknown:?} skipped (known: flag-1, flag-2, flag-3)"),
        ));
    }
    Some(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = SCHEDULER_ANNOTATION;
    const OUR_FLAGS: &str = SCHED_FLAGS_ANNOTATION;
    const KR: &str = KUBE_ROUTER_SCHEDULER_ANNOTATION;
    const KR_FLAGS: &str = KUBE_ROUTER_SCHED_FLAGS_ANNOTATION;

    /// The scheduling for `annotations`, and the annotations that were warned about.
    fn read(annotations: &[(&str, &str)]) -> (Scheduling, Vec<String>) {
        let map = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut soft = Vec::new();
        let scheduling = Scheduling::from_annotations(Some(&map), &mut soft);
        (scheduling, soft.into_iter().map(|w| w.field).collect())
    }

    fn scheduling(scheduler: Scheduler, flags: Option<SchedFlags>) -> Scheduling {
        Scheduling {
            scheduler: Some(scheduler),
            flags,
        }
    }

    #[test]
    fn without_annotations_the_global_scheduler_and_kube_proxys_flags_apply() {
        assert_eq!(read(&[]), (Scheduling::default(), vec![]));
        let mut soft = Vec::new();
        assert_eq!(
            Scheduling::from_annotations(None, &mut soft),
            Scheduling::default()
        );
        assert!(soft.is_empty());
    }

    #[test]
    fn kube_routers_annotations_read_as_kube_router_reads_them() {
        // buildServicesInfo: only rr, lc, dh, sh and mh; parseSchedFlags: comma-separated,
        // spaces trimmed, flag-1..3, applied only when the scheduler is mh.
        assert_eq!(
            read(&[(KR, "lc")]),
            (scheduling(Scheduler::Lc, None), vec![])
        );
        // mh without kube-router's flags annotation: kube-router sets no flag.
        assert_eq!(
            read(&[(KR, "mh")]),
            (scheduling(Scheduler::Mh, Some(SchedFlags::empty())), vec![])
        );
        let (s, warned) = read(&[(KR, "mh"), (KR_FLAGS, "flag-1, flag-2")]);
        assert_eq!(
            s,
            scheduling(Scheduler::Mh, Some(SchedFlags::FLAG_1 | SchedFlags::FLAG_2))
        );
        assert_eq!(s.flags.map(SchedFlags::kernel_bits), Some(0x0018));
        assert!(warned.is_empty());
        // An unknown flag is skipped, the others apply.
        let (s, warned) = read(&[(KR, "mh"), (KR_FLAGS, "flag-3,bogus")]);
        assert_eq!(s, scheduling(Scheduler::Mh, Some(SchedFlags::FLAG_3)));
        assert_eq!(warned, [field(KR_FLAGS)]);
        // Flags on another scheduler are not applied.
        let (s, warned) = read(&[(KR, "sh"), (KR_FLAGS, "flag-1")]);
        assert_eq!(s, scheduling(Scheduler::Sh, None));
        assert_eq!(warned, [field(KR_FLAGS)]);
        // A scheduler kube-router does not take (it would use rr): the global one applies.
        let (s, warned) = read(&[(KR, "wrr")]);
        assert_eq!(s, Scheduling::default());
        assert_eq!(warned, [field(KR)]);
    }

    #[test]
    fn our_annotations_come_first_and_an_invalid_one_gives_way() {
        assert_eq!(
            read(&[(OURS, "wrr"), (KR, "mh"), (KR_FLAGS, "flag-1")]),
            (scheduling(Scheduler::Wrr, None), vec![field(KR_FLAGS)])
        );
        let (s, warned) = read(&[(OURS, "fastest"), (KR, "mh")]);
        assert_eq!(s, scheduling(Scheduler::Mh, Some(SchedFlags::empty())));
        assert_eq!(warned, [field(OURS)]);
        // Our invalid flags give way to kube-router's.
        let (s, warned) = read(&[(OURS, "mh"), (OUR_FLAGS, "flag-9"), (KR_FLAGS, "flag-2")]);
        assert_eq!(s, scheduling(Scheduler::Mh, Some(SchedFlags::FLAG_2)));
        assert_eq!(warned, [field(OUR_FLAGS)]);
    }

    #[test]
    fn our_flags_take_ipvsadms_names_and_checks() {
        // ipvsadm's parse_sched_flags: sh-* only with sh, mh-* only with mh, flag-N with any.
        let (s, warned) = read(&[(OURS, "sh"), (OUR_FLAGS, "sh-fallback,sh-port")]);
        assert_eq!(
            s,
            scheduling(Scheduler::Sh, Some(SchedFlags::FLAG_1 | SchedFlags::FLAG_2))
        );
        assert!(warned.is_empty());
        let (s, _) = read(&[(OURS, "mh"), (OUR_FLAGS, "mh-fallback")]);
        assert_eq!(s, scheduling(Scheduler::Mh, Some(SchedFlags::FLAG_1)));
        let (s, _) = read(&[(KR, "sh"), (OUR_FLAGS, "flag-2,")]);
        assert_eq!(s, scheduling(Scheduler::Sh, Some(SchedFlags::FLAG_2)));
        // An empty value turns kube-proxy's mh-port off.
        let (s, _) = read(&[(OURS, "mh"), (OUR_FLAGS, "")]);
        assert_eq!(s, scheduling(Scheduler::Mh, Some(SchedFlags::empty())));
        // One incompatible or unknown flag rejects the value, as ipvsadm fails the command.
        for bad in ["mh-port", "sh-port,mh-port", "port"] {
            let (s, warned) = read(&[(OURS, "sh"), (OUR_FLAGS, bad)]);
            assert_eq!(s, scheduling(Scheduler::Sh, None), "{bad}");
            assert_eq!(warned, [field(OUR_FLAGS)], "{bad}");
        }
        // Flags need a scheduler annotation naming sh or mh.
        for annotations in [
            vec![(OUR_FLAGS, "flag-1")],
            vec![(OURS, "rr"), (OUR_FLAGS, "flag-1")],
        ] {
            let (s, warned) = read(&annotations);
            assert_eq!(s.flags, None);
            assert_eq!(warned, [field(OUR_FLAGS)]);
        }
    }
}
