//! Change notification for the directory source: inotify watches on a directory and on every
//! directory under it, so the source looks at its files again only after something there was
//! written, moved, created or removed, instead of stat-ing every file on a timer (at 10,000
//! Services, 20,000 files every second, which also slowed the daemon's own syncs).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use super::file::Visited;
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use tokio::sync::mpsc;

/// What changes a directory's listing or a file's content (`ATTRIB`: a `touch` changes the
/// modification time the source's fingerprint compares).
const EVENTS: WatchFlags = WatchFlags::CLOSE_WRITE
    .union(WatchFlags::MODIFY)
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::CREATE)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF);

/// An inotify instance watching one directory tree. A thread of its own blocks reading the
/// instance and signals each batch of events; it is not joined (the process may exit while
/// it waits), and it ends at the first event after the watch was dropped.
#[derive(Debug)]
pub(crate) struct TreeWatch {
    fd: Arc<OwnedFd>,
    events: mpsc::Receiver<()>,
}

impl TreeWatch {
    /// Watches `dir` and every directory under it.
    ///
    /// # Errors
    /// When inotify is unavailable (no instance or watch left), `dir` cannot be watched, or
    /// the reading thread cannot be started.
    pub(crate) fn new(dir: &Path) -> io::Result<TreeWatch> {
        let fd = Arc::new(inotify::init(CreateFlags::CLOEXEC)?);
        inotify::add_watch(&*fd, dir, EVENTS)?;
        let (tx, events) = mpsc::channel(1);
        let reader = Arc::clone(&fd);
        std::thread::Builder::new()
            .name("dir-watch".into())
            .spawn(move || read_events(&reader, &tx))?;
        let watch = TreeWatch { fd, events };
        watch.add_subdirectories(dir);
        Ok(watch)
    }

    /// Adds watches on the directories under `dir` (again: a directory watched already keeps
    /// its watch), so that directories created since are covered too. A directory that
    /// vanishes meanwhile is passed over: its removal was an event already.
    pub(crate) fn add_subdirectories(&self, dir: &Path) {
        let mut visited = Visited::default();
        visited.enter(dir);
        self.add_under(dir, &mut visited);
    }

    /// [`TreeWatch::add_subdirectories`] below `dir`, each directory once.
    fn add_under(&self, dir: &Path, visited: &mut Visited) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if visited.enter(&path) && inotify::add_watch(&*self.fd, &path, EVENTS).is_ok() {
                self.add_under(&path, visited);
            }
        }
    }

    /// Waits until something under the tree changed.
    ///
    /// # Errors
    /// When the inotify instance can no longer be read.
    pub(crate) async fn changed(&mut self) -> io::Result<()> {
        self.events
            .recv()
            .await
            .ok_or_else(|| io::Error::other("the inotify reader stopped"))
    }

    /// Forgets the changes reported so far: those of a change that arrived while the
    /// directory was about to be read anyway.
    pub(crate) fn discard(&mut self) {
        while self.events.try_recv().is_ok() {}
    }
}

/// Reads `fd`'s events until it fails or nobody listens; which files they name does not
/// matter (any change means a re-read), so each read is one signal, coalesced while the
/// last is not taken.
fn read_events(fd: &OwnedFd, tx: &mpsc::Sender<()>) {
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(_) => match tx.try_send(()) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(())) => {}
                Err(mpsc::error::TrySendError::Closed(())) => return,
            },
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the source directory's inotify events");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn changed_within(watch: &mut TreeWatch, ms: u64) -> bool {
        tokio::time::timeout(Duration::from_millis(ms), watch.changed())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Lets the events of what was just done arrive, and forgets them.
    async fn settle(watch: &mut TreeWatch) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        watch.discard();
    }

    #[tokio::test]
    async fn reports_changes_anywhere_in_the_tree_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let mut watch = TreeWatch::new(dir.path()).expect("inotify");
        assert!(
            !changed_within(&mut watch, 100).await,
            "nothing happened yet"
        );

        std::fs::write(dir.path().join("sub/a.yaml"), "x").expect("write");
        assert!(
            changed_within(&mut watch, 5000).await,
            "a write in a subdirectory"
        );
        settle(&mut watch).await;
        assert!(
            !changed_within(&mut watch, 100).await,
            "nothing more happened"
        );

        std::fs::create_dir(dir.path().join("new")).expect("mkdir");
        assert!(changed_within(&mut watch, 5000).await, "a new directory");
        watch.add_subdirectories(dir.path());
        std::fs::write(dir.path().join("new/b.yaml"), "x").expect("write");
        assert!(
            changed_within(&mut watch, 5000).await,
            "a write in the new directory"
        );
        settle(&mut watch).await;

        std::fs::remove_file(dir.path().join("sub/a.yaml")).expect("rm");
        assert!(changed_within(&mut watch, 5000).await, "a removal");
        settle(&mut watch).await;
        let _ = std::fs::read_to_string(dir.path().join("new/b.yaml")).expect("read");
        assert!(
            !changed_within(&mut watch, 200).await,
            "reading is not a change"
        );
    }
}
