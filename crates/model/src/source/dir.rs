//! The directory source (`--from-dir DIR`): YAML or JSON files, several documents per file,
//! `kind: List` too, holding Services, EndpointSlices and optionally Nodes. Other kinds are
//! ignored, so a directory of real manifests can be pointed at as it is.
//!
//! The daemon reads the directory as a listing of every kind, file by file ([`stream`]): the
//! objects of one file are passed on before the next is read, so no more than one file's
//! raw objects are held at a time. At start-up a file that cannot be read or parsed is
//! named and left out, and the daemon starts with the others; while running, a malformed
//! file stops a whole listing (naming file and line) before it completes, so nothing is
//! removed: a half-written file never makes Services disappear (the files read before it do
//! apply). A large JSON file is parsed as it is read, its text never held whole
//! ([`super::split`]). Only regular files are read, within limits ([`MAX_FILE_BYTES`], [`MAX_YAML_BYTES`], [`MAX_DEPTH`]). An object of a known kind whose
//! fields do not decode is rejected with a [`Warning`] naming the field
//! ([`SourceEvent::Undecodable`]): a valid version read earlier stays in force.
//!
//! Afterwards ([`watch`]) only what changed is read again: the files whose size or
//! modification time moved, as [`SourceEvent::Applied`] events. Only when an object may be
//! gone (a file removed, or a file naming other objects than before) is the directory
//! listed again whole. A changed file that does not parse keeps its objects as they were.
//! So a change to one file of a directory of 20,000 costs one file's read, not 20,000.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::io::Seek as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::sync::mpsc;

use super::file::{self, Visited};
pub use super::file::{MAX_DEPTH, MAX_FILE_BYTES, MAX_YAML_BYTES};
use super::notify::TreeWatch;
use super::{json, split};
use crate::warning::{Consequence, Invalid, Warning};
use crate::{Kind, Object, ObjectId, SourceEvent};

/// Why a directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// A file or directory could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not valid YAML/JSON.
    #[error("{path}:{line}:{column}: malformed YAML: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A path named like a manifest is not a regular file (nor a symbolic link to one).
    #[error("reading {path}: not a regular file but {what}")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        what: &'static str,
    },
    /// A file is larger than [`MAX_FILE_BYTES`], or than [`MAX_YAML_BYTES`] for YAML.
    #[error("reading {path}: larger than {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// A file is not UTF-8.
    #[error("reading {path}: not UTF-8 (byte {offset})")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// A file nests flow collections deeper than [`MAX_DEPTH`].
    #[error("{path}:{line}:{column}: collections nested deeper than {limit} levels")]
    TooDeep {
        /// The file.
        path: PathBuf,
        /// 1-based line where the limit is passed.
        line: usize,
        /// 1-based column where the limit is passed.
        column: usize,
        /// The limit.
        limit: usize,
    },
}

impl DirError {
    /// Whether reading again may succeed with the file unchanged (an I/O error: a file
    /// removed or replaced meanwhile, a dangling link, a full table of open files), rather
    /// than only once the file changes.
    pub fn may_pass(&self) -> bool {
        matches!(self, DirError::Io { .. })
    }
}

/// What a listing does with a file that cannot be read or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unreadable {
    /// Logs it, naming it, and goes on; the listing completes without its objects: the
    /// daemon starts with what parses.
    Skip,
    /// Stops, leaving the listing incomplete so that nothing is removed (a whole listing
    /// while running: a half-written file must not delete Services).
    Stop,
}

/// Reads `dir` as one listing of every kind, passing `each` the events of one file at a
/// time: first [`SourceEvent::Relisting`] of every kind, then each file's objects as
/// [`SourceEvent::Applied`] (or [`SourceEvent::Undecodable`]), then
/// [`SourceEvent::Relisted`] of every kind. A file that cannot be read or parsed is logged,
/// naming it and why, and left out: its objects come once it is mended ([`watch`]). Returns
/// what each file held, for [`watch`].
///
/// # Errors
/// [`DirError::Io`] when `dir` (or a directory under it) cannot be listed.
pub fn stream(dir: &Path, each: impl FnMut(Vec<SourceEvent>)) -> Result<Index, DirError> {
    list(dir, Unreadable::Skip, each)
}

/// [`stream`], with a choice of what a file that cannot be read or parsed does.
fn list(
    dir: &Path,
    unreadable: Unreadable,
    mut each: impl FnMut(Vec<SourceEvent>),
) -> Result<Index, DirError> {
    let paths = files(dir)?;
    each(
        Kind::ALL
            .iter()
            .map(|k| SourceEvent::Relisting(*k))
            .collect(),
    );
    let mut index = Index::default();
    for path in paths {
        match read_file(&path) {
            Ok((stamp, events)) => {
                each(events);
                index.files.insert(relative(dir, &path), stamp);
            }
            Err(e) if unreadable == Unreadable::Stop => return Err(e),
            Err(e) => {
                tracing::error!(error = %e, "a file was not read: its objects are left out");
                index.unread(dir, &path, &e);
            }
        }
    }
    each(
        Kind::ALL
            .iter()
            .map(|k| SourceEvent::Relisted(*k))
            .collect(),
    );
    Ok(index)
}

/// What the directory held when last read, file by file: each file's size and modification
/// time then, and a digest of the objects it named. A change re-reads only the files whose
/// size or time moved ([`watch`]); when that shows an object gone (a file removed, or one
/// that names other objects than before), the directory is listed again whole, which
/// deletes what no file holds. Two stamps per file instead of the objects: at 20,000 files
/// this is what the source keeps between changes.
#[derive(Debug)]
pub struct Index {
    files: BTreeMap<Box<Path>, Stamp>,
    /// A whole listing was due and did not complete (a malformed file): the next look lists
    /// again, so what is gone is still deleted once the file is mended.
    relist: bool,
    /// A listing or a read failed in a way that may pass ([`DirError::may_pass`]): look
    /// again soon, even if nothing changes.
    retry: bool,
    /// Reads a file's objects: [`objects`] (tests inject errors).
    read: fn(&Path) -> Result<Snapshot, DirError>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            files: BTreeMap::new(),
            relist: false,
            retry: false,
            read: objects,
        }
    }
}

/// One file of an [`Index`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    /// Nanoseconds since the epoch; zero when unknown.
    modified: u64,
    /// A digest of the kinds and ids of its objects, those that do not decode too.
    objects: u64,
}

/// A file's size and modification time in nanoseconds since the epoch (zero when it
/// cannot be looked at).
fn stat(path: &Path) -> (u64, u64) {
    let meta = std::fs::metadata(path).ok();
    let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
    let modified = (meta.and_then(|m| m.modified().ok()))
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    (len, modified)
}

/// A file's path under `dir`, as the index keeps it (shorter than the whole path).
fn relative(dir: &Path, path: &Path) -> Box<Path> {
    path.strip_prefix(dir).unwrap_or(path).into()
}

/// A digest of a file's objects, sorted first: their order in the file does not count.
fn digest(objects: &mut [(Kind, ObjectId)]) -> u64 {
    objects.sort();
    let mut hasher = std::hash::DefaultHasher::new();
    objects.hash(&mut hasher);
    hasher.finish()
}

/// Reads one file with `read`: its stamp (the size and time looked at before reading: a
/// write after that shows at the next look) and its events.
fn read_file_with(
    read: fn(&Path) -> Result<Snapshot, DirError>,
    path: &Path,
) -> Result<(Stamp, Vec<SourceEvent>), DirError> {
    let (len, modified) = stat(path);
    let file = read(path)?;
    let mut ids: Vec<(Kind, ObjectId)> = (file.objects.iter().map(|o| (o.kind(), o.id())))
        .chain(file.warnings.iter().map(|w| (w.kind, w.object.clone())))
        .collect();
    let stamp = Stamp {
        len,
        modified,
        objects: digest(&mut ids),
    };
    let events = file
        .objects
        .into_iter()
        .map(SourceEvent::Applied)
        .chain(file.warnings.into_iter().map(SourceEvent::Undecodable))
        .collect();
    Ok((stamp, events))
}

/// [`read_file_with`] the real reader.
fn read_file(path: &Path) -> Result<(Stamp, Vec<SourceEvent>), DirError> {
    read_file_with(objects, path)
}

impl Index {
    /// Notes a file a listing could not read: one that may read at another try is not
    /// recorded (so the next look reads it) and asks for one soon; any other is recorded
    /// as holding nothing, read again once it changes.
    fn unread(&mut self, dir: &Path, path: &Path, error: &DirError) {
        if error.may_pass() {
            self.retry = true;
            return;
        }
        let (len, modified) = stat(path);
        let stamp = Stamp {
            len,
            modified,
            objects: digest(&mut []),
        };
        self.files.insert(relative(dir, path), stamp);
    }

    /// Whether the last look failed in a way that may pass, so another is due soon.
    fn owes_retry(&self) -> bool {
        self.retry
    }

    /// Reads what changed in `dir` since the index was taken and passes on its events,
    /// one file per call of `send`: the objects of each new or changed file, or, when an
    /// object may be gone, a whole listing ([`stream`]). A changed file that cannot be read
    /// or parsed is logged and keeps its objects: one whose error may pass is read again at
    /// the next look (see [`Index::owes_retry`]), any other once it changes again. Stops,
    /// returning false, when `send` does.
    fn changes(&mut self, dir: &Path, mut send: impl FnMut(Vec<SourceEvent>) -> bool) -> bool {
        self.retry = false;
        let paths = match files(dir) {
            Ok(paths) => paths,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the source directory; trying again");
                self.retry = true;
                return true;
            }
        };
        let present: BTreeSet<Box<Path>> = paths.iter().map(|p| relative(dir, p)).collect();
        let nothing = digest(&mut []);
        let mut gone = self.relist
            || (self.files.iter())
                .any(|(path, stamp)| !present.contains(path) && stamp.objects != nothing);
        self.files.retain(|path, _| present.contains(path));
        for path in &paths {
            if gone {
                break;
            }
            let (len, modified) = stat(path);
            let key = relative(dir, path);
            let old = self.files.get(&key).copied();
            if old.is_some_and(|s| s.len == len && s.modified == modified) {
                continue;
            }
            let stamp = match read_file_with(self.read, path) {
                Ok((stamp, events)) => {
                    if !events.is_empty() && !send(events) {
                        return false;
                    }
                    stamp
                }
                Err(e) if e.may_pass() => {
                    tracing::warn!(error = %e, "a changed file was not read: its objects stay; trying again");
                    self.retry = true;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "a changed file was not read: its objects stay");
                    let objects = old.map_or(nothing, |s| s.objects);
                    Stamp {
                        len,
                        modified,
                        objects,
                    }
                }
            };
            gone |= old.is_some_and(|s| s.objects != stamp.objects);
            self.files.insert(key, stamp);
        }
        if !gone {
            return true;
        }
        let mut open = true;
        match list(dir, Unreadable::Stop, |events| open = open && send(events)) {
            Ok(index) => {
                *self = Index {
                    read: self.read,
                    ..index
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the directory listing stopped: nothing removed");
                self.relist = true;
                self.retry = e.may_pass();
            }
        }
        open
    }
}

/// Everything read from a directory, at once: for one-shot readers of small directories
/// (tests, `ipvsctl-rs --names`); the daemon uses [`stream`].
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The objects, in file order.
    pub objects: Vec<Object>,
    /// Objects skipped because they did not decode.
    pub warnings: Vec<Warning>,
}

impl Snapshot {
    /// Moves `other`'s objects and warnings to the end of this one's.
    pub(super) fn append(&mut self, other: &mut Snapshot) {
        self.objects.append(&mut other.objects);
        self.warnings.append(&mut other.warnings);
    }

    /// The Service `id` as read, whatever the model would make of it.
    pub fn service(&self, id: &crate::ObjectId) -> Option<&k8s_openapi::api::core::v1::Service> {
        self.objects.iter().find_map(|o| match o {
            Object::Service(s) if o.id() == *id => Some(s.as_ref()),
            _ => None,
        })
    }

    /// One [`SourceEvent::Listed`] per kind: the directory is the complete truth for each.
    pub fn into_events(self) -> Vec<SourceEvent> {
        let mut by_kind: BTreeMap<Kind, Vec<Object>> =
            Kind::ALL.iter().map(|k| (*k, Vec::new())).collect();
        for object in self.objects {
            by_kind.entry(object.kind()).or_default().push(object);
        }
        by_kind
            .into_iter()
            .map(|(kind, objects)| SourceEvent::Listed(kind, objects))
            .collect()
    }
}

/// Reads every `*.yaml`, `*.yml` and `*.json` file under `dir` (recursively, sorted by path).
///
/// # Errors
/// [`DirError`] for an unreadable path or a malformed file.
pub fn read(dir: &Path) -> Result<Snapshot, DirError> {
    let mut snapshot = Snapshot::default();
    for path in files(dir)? {
        snapshot.append(&mut objects(&path)?);
    }
    Ok(snapshot)
}

/// The size above which a file is read in pieces ([`split`]) rather than whole.
const SPLIT_ABOVE: u64 = 1 << 20;

/// The objects of the file at `path`. A file larger than [`SPLIT_ABOVE`] is first read in
/// pieces as a sequence of JSON documents, a List's items decoded one by one, so that its
/// text is never held whole ([`split`]); any other file, and one that is not such JSON
/// after all (YAML, or malformed: for the error's place), is read whole and [`parse`]d.
///
/// # Errors
/// As [`file::open`], [`file::text`] and [`parse`].
fn objects(path: &Path) -> Result<Snapshot, DirError> {
    let io = |source| DirError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = file::open(path)?;
    if file.get_ref().metadata().map_err(io)?.len() > SPLIT_ABOVE {
        let read = split::snapshot(&mut file, decode);
        if let Some(snapshot) = read.map_err(io)? {
            return match file.limit() {
                0 => Err(file::too_large(path)),
                _ => Ok(snapshot),
            };
        }
        file.get_mut().rewind().map_err(io)?;
        file.set_limit(MAX_FILE_BYTES + 1);
    }
    let text = file::text(path, file)?;
    let mut snapshot = Snapshot::default();
    parse(path, &text, &mut snapshot)?;
    Ok(snapshot)
}

/// Parses one file's text into `into`: JSON documents as JSON (whose escapes YAML 1.1 does
/// not all accept: surrogate pairs), a List's items decoded one by one as they are parsed
/// ([`json`]), anything else as YAML.
///
/// # Errors
/// [`DirError::Malformed`] with the line of the syntax error, [`DirError::TooDeep`],
/// [`DirError::TooLarge`] for YAML of more than [`MAX_YAML_BYTES`].
pub fn parse(path: &Path, text: &str, into: &mut Snapshot) -> Result<(), DirError> {
    let json = text
        .trim_start()
        .starts_with(['{', '['])
        .then(|| json::snapshot(serde_json::Deserializer::from_str(text), decode));
    if let Some(Some(mut read)) = json {
        into.append(&mut read);
        return Ok(());
    }
    if text.len() as u64 > MAX_YAML_BYTES {
        return Err(DirError::TooLarge {
            path: path.to_owned(),
            limit: MAX_YAML_BYTES,
        });
    }
    if let Some((line, column)) = file::too_deep(text) {
        return Err(DirError::TooDeep {
            path: path.to_owned(),
            line,
            column,
            limit: MAX_DEPTH,
        });
    }
    for document in serde_norway::Deserializer::from_str(text) {
        let value = serde_norway::Value::deserialize(document).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            DirError::Malformed {
                path: path.to_owned(),
                line,
                column,
                message: e.to_string(),
            }
        })?;
        decode(value, into);
    }
    Ok(())
}

/// Decodes one object, or a List's items, into `into`: a known kind that does not decode
/// is a warning naming the field.
pub(super) fn decode(value: serde_norway::Value, into: &mut Snapshot) {
    let kind = value.get("kind").and_then(serde_norway::Value::as_str);
    let kind = match kind {
        Some("List") => {
            if let Some(serde_norway::Value::Sequence(items)) = value.get("items") {
                for item in items {
                    decode(item.clone(), into);
                }
            }
            return;
        }
        Some("Service") => Kind::Service,
        Some("EndpointSlice") => Kind::EndpointSlice,
        Some("Node") => Kind::Node,
        _ => return,
    };
    let id = object_id(&value);
    let decoded = match kind {
        Kind::Service => typed(value).map(|s| Object::Service(Box::new(s))),
        Kind::EndpointSlice => typed(value).map(|s| Object::EndpointSlice(Box::new(s))),
        Kind::Node => typed(value).map(|n| Object::Node(Box::new(n))),
    };
    match decoded {
        Ok(object) => into.objects.push(object),
        Err(problem) => into.warnings.push(Warning {
            kind,
            object: id,
            problem,
            consequence: Consequence::Skipped,
        }),
    }
}

fn typed<T: serde::de::DeserializeOwned>(value: serde_norway::Value) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        Invalid::new(field, e.into_inner().to_string())
    })
}

fn object_id(value: &serde_norway::Value) -> ObjectId {
    let meta = value.get("metadata");
    let field = |name: &str| {
        meta.and_then(|m| m.get(name))
            .and_then(serde_norway::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    ObjectId::new(field("namespace"), field("name"))
}

/// The files named like manifests under `dir`, sorted; symbolic links to directories are
/// followed, each directory entered once (no cycle).
fn files(dir: &Path) -> Result<Vec<PathBuf>, DirError> {
    let mut visited = Visited::default();
    visited.enter(dir);
    files_under(dir, &mut visited)
}

fn files_under(dir: &Path, visited: &mut Visited) -> Result<Vec<PathBuf>, DirError> {
    let io = |source| DirError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        // The entry's type needs no stat, but a symbolic link (a ConfigMap mount's `..data`)
        // is followed.
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => path.is_dir(),
            Ok(t) => t.is_dir(),
            Err(_) => path.is_dir(),
        };
        if is_dir {
            if visited.enter(&path) {
                out.extend(files_under(&path, visited)?);
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Waits for changes under `dir` (inotify; where inotify is unavailable, it polls every
/// `period`) and passes on what changed since `index` ([`stream`]'s), one file's events per
/// message: the files whose size or modification time moved are read again, and objects no
/// file holds any more are deleted. Returns when the receiver is dropped.
pub async fn watch(
    dir: PathBuf,
    period: Duration,
    mut index: Index,
    tx: mpsc::Sender<Vec<SourceEvent>>,
) {
    let mut notified = match TreeWatch::new(&dir) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, ?period, "cannot watch the source directory; polling it");
            None
        }
    };
    let mut backoff = RETRY_FIRST;
    // The first look needs no event: the directory may have changed since it was read.
    while send_changes(&dir, &mut index, &tx).await {
        let retry = index.owes_retry().then_some(backoff);
        backoff = match retry {
            Some(after) => (after * 2).min(RETRY_LAST),
            None => RETRY_FIRST,
        };
        notified = match notified.take() {
            Some(mut w) => settled(&mut w, &dir, retry).await.then_some(w),
            None => {
                tokio::time::sleep(retry.map_or(period, |r| r.min(period))).await;
                None
            }
        };
    }
}

/// The wait before looking again after a failure that may pass; doubled at each failure
/// in a row up to [`RETRY_LAST`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between tries.
const RETRY_LAST: Duration = Duration::from_secs(30);

/// [`Index::changes`] on a blocking thread, each message waiting for room in the channel.
/// Returns false once the receiver is gone.
async fn send_changes(dir: &Path, index: &mut Index, tx: &mpsc::Sender<Vec<SourceEvent>>) -> bool {
    let (dir, tx, mut taken) = (dir.to_owned(), tx.clone(), std::mem::take(index));
    let read = tokio::task::spawn_blocking(move || {
        let open = taken.changes(&dir, |events| tx.blocking_send(events).is_ok());
        (taken, open)
    });
    match read.await {
        Ok((read, open)) => {
            *index = read;
            open
        }
        Err(e) => {
            // The index is lost: the next change reads every file as new (nothing deleted).
            tracing::error!(error = %e, "the directory reader failed");
            true
        }
    }
}

/// How long a change may go on (a file written in pieces, several files) before the
/// directory is read: one read for a burst of writes.
const SETTLE: Duration = Duration::from_millis(50);

/// Waits for a change under `dir` and for it to settle, or for `retry` to pass; watches
/// directories created since. False (after a warning) when inotify stopped working: the
/// caller polls from then on.
async fn settled(watch: &mut TreeWatch, dir: &Path, retry: Option<Duration>) -> bool {
    let changed = match retry {
        Some(after) => tokio::time::timeout(after, watch.changed())
            .await
            .unwrap_or(Ok(())),
        None => watch.changed().await,
    };
    match changed {
        Ok(()) => {
            tokio::time::sleep(SETTLE).await;
            watch.add_subdirectories(dir);
            watch.discard();
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the source directory any more; polling it");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Snapshot, DirError> {
        let mut s = Snapshot::default();
        parse(Path::new("t.yaml"), text, &mut s).map(|()| s)
    }

    #[test]
    fn multi_document_and_lists() {
        let s = parse_str(
            "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: d}\n---\n\
             apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Node\n  metadata: {name: n1}\n\
             - apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: ignored}\n---\n",
        )
        .expect("parses");
        let kinds: Vec<Kind> = s.objects.iter().map(Object::kind).collect();
        assert_eq!(kinds, vec![Kind::Service, Kind::Node]);
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn json_is_yaml() {
        let s = parse_str(r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"j"}}"#)
            .expect("parses");
        assert_eq!(s.objects.len(), 1);
    }

    #[test]
    fn json_with_surrogate_pairs_is_json() {
        let s = parse_str(
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"j","annotations":{"x":"\ud83d\ude00"}}}
               {"apiVersion":"v1","kind":"Service","metadata":{"name":"k"}}"#,
        )
        .expect("parses");
        let names: Vec<String> = s.objects.iter().map(|o| o.id().name.to_string()).collect();
        assert_eq!(names, ["j", "k"]);
    }

    #[test]
    fn a_json_list_is_read_item_by_item_whatever_the_order_of_its_keys() {
        // kubectl's order: items before kind. A bad item is a warning, the others stay.
        let list = r#"{"apiVersion": "v1", "items": [
              {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "d"}},
              {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b", "namespace": "d"},
               "spec": {"ports": [{"port": "http"}]}},
              {"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}]},
              {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}],
            "kind": "List", "metadata": {"resourceVersion": ""}}
            {"kind": "Service", "metadata": {"name": "e", "namespace": "d"}, "items": [
              {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "f", "namespace": "d"}}]}
            {"kind": "List", "items": {"not": "an array"}}
            [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "g", "namespace": "d"}}]"#;
        let s = parse_str(list).expect("parses");
        let read: Vec<(Kind, String)> = s
            .objects
            .iter()
            .map(|o| (o.kind(), o.id().name.to_string()))
            .collect();
        // Not `f`: the items of a document that is not a List are not objects; not `g`: a
        // top-level array is not a document the source reads.
        let expected = [
            (Kind::Service, "a"),
            (Kind::Node, "n1"),
            (Kind::Service, "e"),
        ]
        .map(|(k, n)| (k, n.to_owned()));
        assert_eq!(read, expected);
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert_eq!(s.warnings[0].object, ObjectId::new("d", "b"));
        assert_eq!(s.warnings[0].problem.field, "spec.ports[0].port");
    }

    #[test]
    fn a_large_file_is_read_in_pieces_and_falls_back_to_reading_it_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big.json");
        let padding = " ".repeat(usize::try_from(SPLIT_ABOVE).expect("usize"));
        let service = |name: &str| {
            format!(
                r#"{{"apiVersion": "v1", "kind": "Service", "metadata": {{"name": "{name}"}}}}"#
            )
        };
        let list = format!(
            r#"{{"items": [{}, {}],{padding}"kind": "List"}}"#,
            service("a"),
            service("b")
        );
        std::fs::write(&path, &list).expect("write");
        let names = |s: &Snapshot| -> Vec<String> {
            s.objects.iter().map(|o| o.id().name.to_string()).collect()
        };
        assert_eq!(names(&objects(&path).expect("JSON")), ["a", "b"]);
        // YAML's flow style begins like JSON.
        std::fs::write(
            &path,
            format!("{{kind: Service, metadata: {{name: y}}}}{padding}"),
        )
        .expect("write");
        assert_eq!(names(&objects(&path).expect("YAML")), ["y"]);
        // Malformed: the error names the line, as for a file read whole.
        std::fs::write(&path, format!("{padding}\n\n{{\"kind\": \"List\",,}}")).expect("write");
        let err = objects(&path).expect_err("malformed");
        assert!(matches!(err, DirError::Malformed { line: 3, .. }), "{err}");
    }

    #[test]
    fn json_may_be_larger_than_yaml() {
        let service = r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}}"#;
        let padding = " ".repeat(usize::try_from(MAX_YAML_BYTES).expect("usize"));
        let s = parse_str(&format!("{service}{padding}")).expect("JSON of any size read");
        assert_eq!(s.objects.len(), 1);
        let yaml = format!("kind: Service\nmetadata: {{name: a}}\n#{padding}\n");
        let err = parse_str(&yaml).expect_err("YAML too large");
        assert!(
            matches!(err, DirError::TooLarge { limit, .. } if limit == MAX_YAML_BYTES),
            "{err}"
        );
    }

    #[test]
    fn deep_nesting_is_refused_naming_the_place() {
        let depth = MAX_DEPTH + 1;
        let text = format!(
            "kind: Service\nx: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let err = parse_str(&text).expect_err("too deep");
        assert!(
            matches!(err, DirError::TooDeep { line: 2, column, .. } if column == 3 + depth),
            "{err}"
        );
        let json = format!("{{\"x\": {}{}}}", "[".repeat(depth), "]".repeat(depth));
        assert!(matches!(parse_str(&json), Err(DirError::TooDeep { .. })));
    }

    #[test]
    fn malformed_yaml_names_file_and_line() {
        let err = parse_str("apiVersion: v1\nkind: Service\nmetadata: {name: a\n  bad: [\n")
            .expect_err("malformed");
        let DirError::Malformed { path, line, .. } = &err else {
            panic!("wrong error {err}");
        };
        assert_eq!(path, Path::new("t.yaml"));
        assert!(*line >= 3, "line {line}");
        assert!(err.to_string().starts_with("t.yaml:"));
    }

    #[test]
    fn wrong_type_skips_object_naming_field() {
        let s = parse_str(
            "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: d}\nspec:\n  ports:\n  - port: http\n",
        )
        .expect("parses");
        assert!(s.objects.is_empty());
        let w = &s.warnings[0];
        assert_eq!(w.object, ObjectId::new("d", "a"));
        assert_eq!(w.problem.field, "spec.ports[0].port");
        assert_eq!(w.consequence, Consequence::Skipped);
    }
}

#[cfg(test)]
mod watch_tests {
    use super::*;
    use crate::Model;

    fn service(port: u16) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: a, namespace: d}}\n\
             spec: {{clusterIP: 10.96.0.1, ports: [{{port: {port}}}]}}\n"
        )
    }

    /// Every event of one read, in order, and whether it ended in an error.
    fn streamed(dir: &Path) -> (Vec<SourceEvent>, bool) {
        let mut all = Vec::new();
        let result = stream(dir, |events| all.extend(events));
        (all, result.is_err())
    }

    #[test]
    fn a_directory_streams_as_one_listing_and_a_malformed_file_stops_a_relist() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.yaml"), service(80)).expect("write");
        let (events, failed) = streamed(dir.path());
        assert!(!failed);
        let begun: Vec<SourceEvent> = Kind::ALL.map(SourceEvent::Relisting).into();
        let done: Vec<SourceEvent> = Kind::ALL.map(SourceEvent::Relisted).into();
        assert_eq!(events[..3], begun);
        assert!(matches!(
            &events[3],
            SourceEvent::Applied(Object::Service(_))
        ));
        assert_eq!(events[4..], done);

        // `b.yaml` is malformed: `a` still applies, the listing never completes.
        std::fs::write(dir.path().join("b.yaml"), "kind: Service\nmetadata: [\n").expect("break");
        let mut model = Model::default();
        model.apply(SourceEvent::Listed(Kind::Service, Vec::new()));
        let mut events = Vec::new();
        let failed = list(dir.path(), Unreadable::Stop, |e| events.extend(e)).is_err();
        assert!(failed);
        assert_eq!(events.len(), 4, "{events:?}");
        for event in events {
            model.apply(event);
        }
        assert!(model.service(&ObjectId::new("d", "a")).is_some());
    }

    #[test]
    fn an_object_that_no_longer_decodes_keeps_its_last_valid_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, service(80)).expect("write");
        let mut model = Model::default();
        for event in streamed(dir.path()).0 {
            assert!(model.apply(event).is_empty());
        }
        std::fs::write(&file, service(80).replace("port: 80", "port: http")).expect("rewrite");
        let (events, failed) = streamed(dir.path());
        assert!(!failed);
        let warnings: Vec<Warning> = events.into_iter().flat_map(|e| model.apply(e)).collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].problem.field, "spec.ports[0].port");
        assert_eq!(warnings[0].consequence, Consequence::LastValidKept);
        let port = model
            .service(&ObjectId::new("d", "a"))
            .map(|s| s.ports[0].port);
        assert_eq!(port, Some(80), "the listing completed without removing it");
    }

    /// The ids of the Services applied in `events`.
    fn applied(events: &[SourceEvent]) -> Vec<ObjectId> {
        events
            .iter()
            .filter_map(|e| match e {
                SourceEvent::Applied(o) => Some(o.id()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn start_up_lists_what_parses_and_leaves_out_what_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path();
        std::fs::write(path.join("a.yaml"), named_service("good", 80)).expect("write");
        std::fs::write(path.join("b.yaml"), "kind: Service\nmetadata: [\n").expect("write");
        std::fs::write(path.join("c.yaml"), b"kind: \xff\n").expect("write");
        std::os::unix::fs::symlink("gone.yaml", path.join("d.yaml")).expect("symlink");
        std::os::unix::fs::symlink("/dev/zero", path.join("e.yaml")).expect("symlink");
        // A cycle of directories: each file is listed once.
        std::os::unix::fs::symlink(".", path.join("loop")).expect("symlink");
        let (events, failed) = streamed(path);
        assert!(!failed);
        assert_eq!(applied(&events), vec![ObjectId::new("d", "good")]);
        assert_eq!(events.last(), Some(&SourceEvent::Relisted(Kind::ALL[2])));
        let index = stream(path, drop).expect("listed");
        assert!(index.owes_retry(), "the dangling link may resolve later");
    }

    /// A reader failing once for `flaky.yaml`, as the file system may (a file replaced
    /// while read, no handle left).
    fn flaky(path: &Path) -> Result<Snapshot, DirError> {
        static FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if path.ends_with("flaky.yaml") && !FAILED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(DirError::Io {
                path: path.to_owned(),
                source: std::io::Error::from_raw_os_error(24),
            });
        }
        objects(path)
    }

    #[test]
    fn a_failed_read_is_tried_again_until_it_succeeds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = stream(dir.path(), drop).expect("listed");
        index.read = flaky;
        std::fs::write(dir.path().join("flaky.yaml"), named_service("f", 80)).expect("write");
        let mut events = Vec::new();
        assert!(index.changes(dir.path(), |e| {
            events.extend(e);
            true
        }));
        assert!(events.is_empty(), "{events:?}");
        assert!(index.owes_retry());
        // Nothing changed on disk: the next look reads it all the same.
        assert!(index.changes(dir.path(), |e| {
            events.extend(e);
            true
        }));
        assert_eq!(applied(&events), vec![ObjectId::new("d", "f")]);
        assert!(!index.owes_retry());
    }

    #[tokio::test]
    async fn a_failed_listing_is_tried_again_without_another_change() {
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("src");
        std::fs::create_dir(&dir).expect("mkdir");
        let index = stream(&dir, drop).expect("listed");
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(watch(dir.clone(), Duration::from_secs(3600), index, tx));
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The directory goes (an event; listing it fails), and comes back with a file in a
        // new directory the watch does not see: only a retry finds it.
        std::fs::rename(&dir, parent.path().join("old")).expect("move away");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let staged = parent.path().join("staged");
        std::fs::create_dir(&staged).expect("mkdir");
        std::fs::write(staged.join("a.yaml"), named_service("back", 80)).expect("write");
        std::fs::rename(&staged, &dir).expect("move in");
        let mut seen = Vec::new();
        while let Ok(Some(events)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            seen.extend(events);
            if !applied(&seen).is_empty() {
                break;
            }
        }
        assert!(
            applied(&seen).contains(&ObjectId::new("d", "back")),
            "{seen:?}"
        );
        task.abort();
    }

    fn named_service(name: &str, port: u16) -> String {
        service(port).replace("name: a,", &format!("name: {name},"))
    }

    #[tokio::test]
    async fn only_changed_files_are_read_again_and_what_no_file_holds_is_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (svc, other) = (dir.path().join("svc.yaml"), dir.path().join("other.yaml"));
        std::fs::write(&svc, service(80)).expect("write");
        std::fs::write(&other, named_service("b", 80)).expect("write");
        let mut model = Model::default();
        let index = stream(dir.path(), |events| {
            for event in events {
                model.apply(event);
            }
        })
        .expect("read");
        assert!(model.is_synced());
        let (tx, mut rx) = mpsc::channel(4);
        // A poll period longer than the test: only inotify can see the changes in time.
        let task = tokio::spawn(watch(
            dir.path().to_owned(),
            Duration::from_secs(3600),
            index,
            tx,
        ));
        // What the watch sends within `patience`, if anything.
        async fn sent(
            rx: &mut mpsc::Receiver<Vec<SourceEvent>>,
            patience: Duration,
        ) -> Option<Vec<SourceEvent>> {
            tokio::time::timeout(patience, rx.recv())
                .await
                .ok()
                .flatten()
        }
        let (patience, quiet) = (Duration::from_secs(10), Duration::from_millis(300));
        let port = |model: &Model, name: &str| {
            model
                .service(&ObjectId::new("d", name))
                .map(|s| s.ports[0].port)
        };

        // One file changes (a different size shows even within one mtime tick): only its
        // object comes again, no listing.
        std::fs::write(&svc, service(8080)).expect("rewrite");
        let events = sent(&mut rx, patience).await.expect("read again");
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(
            matches!(&events[0], SourceEvent::Applied(o) if o.id() == ObjectId::new("d", "a")),
            "{events:?}"
        );
        for event in events {
            model.apply(event);
        }
        assert_eq!(port(&model, "a"), Some(8080));

        // The file breaks: nothing is sent, the Service stays.
        std::fs::write(&svc, "kind: Service\nmetadata: [\n").expect("break");
        let nothing = sent(&mut rx, quiet).await;
        assert!(nothing.is_none(), "a malformed file sent {nothing:?}");

        // Applies what the watch sends until it has been quiet for a while.
        async fn drain(rx: &mut mpsc::Receiver<Vec<SourceEvent>>, model: &mut Model) -> usize {
            let (first, quiet) = (Duration::from_secs(10), Duration::from_millis(300));
            let mut messages = 0;
            while let Some(events) = sent(rx, if messages == 0 { first } else { quiet }).await {
                messages += 1;
                for event in events {
                    model.apply(event);
                }
            }
            messages
        }

        // `a` moves into the other file, which no longer names `b`: its objects changed, so
        // the directory is listed whole, which stops at the broken file: nothing is removed.
        std::fs::write(&other, service(8081)).expect("rewrite");
        assert!(drain(&mut rx, &mut model).await > 0);
        assert_eq!(
            (port(&model, "a"), port(&model, "b")),
            (Some(8081), Some(80))
        );

        // The broken file is mended, naming what it named before: the listing still owed
        // completes, and `b` goes.
        std::fs::write(&svc, service(8081)).expect("mend");
        assert!(drain(&mut rx, &mut model).await > 0);
        assert_eq!((port(&model, "a"), port(&model, "b")), (Some(8081), None));

        // That file goes: `a` stays, the other file has it.
        std::fs::remove_file(&svc).expect("remove");
        assert!(drain(&mut rx, &mut model).await > 0);
        assert_eq!(port(&model, "a"), Some(8081));

        // The last file goes: so does `a`.
        std::fs::remove_file(&other).expect("remove");
        assert!(drain(&mut rx, &mut model).await > 0);
        assert!(model.is_synced());
        assert_eq!(model.len(), (0, 0));
        task.abort();
    }
}
