//! When to sync: kube-proxy's bounded-frequency runner.
//!
//! A sync runs after a change is signalled, but never sooner than
//! `min_interval` after the previous one started (`minSyncPeriod`), so a burst
//! of changes costs one sync; and at least every `max_interval` (`syncPeriod`)
//! even without changes, which is what repairs drift made by hand.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until, timeout_at};

/// Why a sync runs; a full resync also re-reads and repairs everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The model changed.
    Change,
    /// `max_interval` passed without a change.
    Periodic,
}

/// Signals the runner that the model changed. Cheap to clone; signals that
/// arrive while a sync is waiting or running coalesce into one more sync.
#[derive(Debug, Clone)]
pub(crate) struct Trigger(Arc<Notify>);

impl Trigger {
    /// Asks for a sync as soon as `min_interval` allows.
    pub(crate) fn request(&self) {
        self.0.notify_one();
    }
}

/// Runs a sync function on changes, rate-limited, and periodically.
#[derive(Debug)]
pub(crate) struct Runner {
    min_interval: Duration,
    max_interval: Duration,
    notify: Arc<Notify>,
}

impl Runner {
    /// A runner with kube-proxy's `minSyncPeriod` and `syncPeriod`.
    pub(crate) fn new(min_interval: Duration, max_interval: Duration) -> Self {
        Runner {
            min_interval,
            max_interval: max_interval.max(min_interval),
            notify: Arc::new(Notify::new()),
        }
    }

    /// The handle that sources use to signal changes.
    pub(crate) fn trigger(&self) -> Trigger {
        Trigger(self.notify.clone())
    }

    /// Runs `sync` until the future is dropped or a sync fails, and returns that
    /// sync's error: first when the first change is signalled, then as changes and the
    /// period demand.
    pub(crate) async fn run<F, Fut, E>(self, mut sync: F) -> E
    where
        F: FnMut(Reason) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        // Nothing is programmed before the sources have delivered a first
        // complete view, which they signal as a change.
        self.notify.notified().await;
        let mut reason = Reason::Change;
        loop {
            let started = Instant::now();
            if let Err(e) = sync(reason).await {
                return e;
            }
            let earliest = started + self.min_interval;
            let deadline = started + self.max_interval;
            reason = match timeout_at(deadline, self.notify.notified()).await {
                Ok(()) => {
                    sleep_until(earliest).await;
                    Reason::Change
                }
                Err(_) => Reason::Periodic,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// (reason, seconds since start) of every sync.
    type Log = Arc<Mutex<Vec<(Reason, u64)>>>;

    async fn spawn_runner(min: u64, max: u64) -> (Trigger, Log) {
        let runner = Runner::new(Duration::from_secs(min), Duration::from_secs(max));
        let trigger = runner.trigger();
        let (log, start) = (Log::default(), Instant::now());
        let sink = log.clone();
        tokio::spawn(runner.run(move |reason| {
            sink.lock()
                .unwrap()
                .push((reason, start.elapsed().as_secs()));
            async { Ok::<(), std::convert::Infallible>(()) }
        }));
        tokio::task::yield_now().await;
        (trigger, log)
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_first_change() {
        let (trigger, log) = spawn_runner(1, 30).await;
        sleep_until(Instant::now() + Duration::from_secs(100)).await;
        assert!(log.lock().unwrap().is_empty(), "synced before any change");
        trigger.request();
        sleep_until(Instant::now() + Duration::from_millis(10)).await;
        assert_eq!(log.lock().unwrap().as_slice(), &[(Reason::Change, 100)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_costs_one_sync_after_min_interval() {
        let (trigger, log) = spawn_runner(5, 30).await;
        trigger.request();
        tokio::task::yield_now().await;
        for _ in 0..10 {
            trigger.request();
        }
        sleep_until(Instant::now() + Duration::from_secs(8)).await;
        assert_eq!(
            log.lock().unwrap().as_slice(),
            &[(Reason::Change, 0), (Reason::Change, 5)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn syncs_periodically_without_changes() {
        let (trigger, log) = spawn_runner(1, 30).await;
        trigger.request();
        sleep_until(Instant::now() + Duration::from_secs(65)).await;
        assert_eq!(
            log.lock().unwrap().as_slice(),
            &[
                (Reason::Change, 0),
                (Reason::Periodic, 30),
                (Reason::Periodic, 60)
            ]
        );
    }
}
