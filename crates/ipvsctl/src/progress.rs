//! Progress on standard error for long operations (a restore or a listing
//! of more than [`THRESHOLD`] entries): entries done, total and rate, redrawn
//! in place at most every [`REDRAW`], and erased when done. Only on a
//! terminal: when standard error is a file or a pipe, nothing is written.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Operations on fewer entries than this show no progress.
pub(crate) const THRESHOLD: usize = 5_000;
/// The shortest time between two redraws.
pub(crate) const REDRAW: Duration = Duration::from_millis(200);

/// One operation's progress line.
pub(crate) struct Progress {
    what: &'static str,
    total: usize,
    started: Instant,
    drawn: Option<Instant>,
    sink: Option<Box<dyn Write>>,
}

impl Progress {
    /// Progress of `what` over `total` entries on standard error, if it is
    /// a terminal and `total` reaches [`THRESHOLD`].
    pub(crate) fn stderr(what: &'static str, total: usize) -> Self {
        let terminal = std::io::stderr().is_terminal();
        Self::to(
            what,
            total,
            terminal.then(|| Box::new(std::io::stderr()) as _),
        )
    }

    /// Progress written to `sink` (none: nothing shown).
    pub(crate) fn to(what: &'static str, total: usize, sink: Option<Box<dyn Write>>) -> Self {
        Progress {
            what,
            total,
            started: Instant::now(),
            drawn: None,
            sink,
        }
    }

    /// `done` entries are done (the total may be learnt late, as when a
    /// listing has read the services).
    pub(crate) fn update(&mut self, done: usize, total: usize) {
        self.total = total;
        let Some(sink) = &mut self.sink else { return };
        if total < THRESHOLD || self.drawn.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        self.drawn = Some(Instant::now());
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        // A progress line that cannot be written is not worth failing for.
        let _ = write!(sink, "\r\x1b[K{}: {done}/{total} ({rate:.0}/s)", self.what);
        let _ = sink.flush();
    }

    /// Erases the line, if one was drawn.
    pub(crate) fn finish(&mut self) {
        if let (Some(sink), Some(_)) = (&mut self.sink, self.drawn) {
            let _ = write!(sink, "\r\x1b[K");
            let _ = sink.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A sink the test can read after the progress is done with it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn run(total: usize, sink: Option<Shared>) -> String {
        let mut p = Progress::to("restore", total, sink.clone().map(|s| Box::new(s) as _));
        for done in [1, total / 2, total] {
            p.update(done, total);
        }
        p.finish();
        sink.map(|s| String::from_utf8(s.0.lock().unwrap().clone()).unwrap())
            .unwrap_or_default()
    }

    #[test]
    fn large_operations_on_a_terminal_show_progress() {
        let shown = run(110_000, Some(Shared::default()));
        assert!(
            shown.starts_with("\r\x1b[Krestore: 1/110000 ("),
            "{shown:?}"
        );
        assert!(shown.ends_with("/s)\r\x1b[K"), "{shown:?}");
        // Redrawn at most every REDRAW: the next two updates came sooner.
        assert_eq!(shown.matches("restore:").count(), 1, "{shown:?}");
        // Small ones and non-terminals show nothing.
        assert_eq!(run(THRESHOLD - 1, Some(Shared::default())), "");
        assert_eq!(run(110_000, None), "");
    }
}
