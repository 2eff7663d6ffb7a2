//! Reading one file of the directory source without trusting it: only a regular file, or a
//! symbolic link to one (followed once: a ConfigMap mount's `x.yaml -> ..data/x.yaml`), of
//! at most [`MAX_FILE_BYTES`] ([`MAX_YAML_BYTES`] for YAML), in UTF-8, and with flow collections (`[`, `{`) nested at most
//! [`MAX_DEPTH`] deep. A FIFO named `*.yaml` would block the reader, `/dev/zero` never ends,
//! and deep flow nesting parses in quadratic time: each is refused, naming the file.

use std::fs::File;
use std::io::{Read, Take};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use super::dir::DirError;

/// The largest file read, in bytes: a JSON List of a large cluster (`kubectl get
/// svc,endpointslices -A -o json` of 10,000 Services with 10 endpoints each is 47 MiB),
/// read in pieces and decoded item by item, so that its text is never held whole.
pub const MAX_FILE_BYTES: u64 = 128 << 20;

/// The largest file parsed as YAML, in bytes: far above any manifest (the API server stores
/// objects of at most 1.5 MiB). A YAML document is held whole as a tree while it is
/// decoded, at many times its size.
pub const MAX_YAML_BYTES: u64 = 32 << 20;

/// The deepest nesting of flow collections read: the YAML parser's own limit for any
/// nesting, checked before parsing because the parser takes quadratic time to reach it.
pub const MAX_DEPTH: usize = 128;

/// `path` opened for reading, at most [`MAX_FILE_BYTES`] and one byte more of it (one more
/// byte read tells a file over the limit).
///
/// # Errors
/// [`DirError::Io`] when it cannot be looked at or opened (which may pass),
/// [`DirError::NotRegular`] for what it is.
pub(crate) fn open(path: &Path) -> Result<Take<File>, DirError> {
    let io = |source| DirError::Io {
        path: path.to_owned(),
        source,
    };
    let not_regular = |what: &'static str| DirError::NotRegular {
        path: path.to_owned(),
        what,
    };
    let target = target(path).map_err(io)?;
    // The link's target must not be a link itself, nor become one: O_NOFOLLOW. O_NONBLOCK:
    // should a FIFO appear there after the check, opening it does not wait for a writer.
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits().cast_signed())
        .open(&target)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => {
                not_regular("a symbolic link to a symbolic link")
            }
            _ => io(e),
        })?;
    let kind = file.metadata().map_err(io)?.file_type();
    if !kind.is_file() {
        return Err(not_regular(if kind.is_dir() {
            "a directory"
        } else {
            "a FIFO, socket or device"
        }));
    }
    Ok(file.take(MAX_FILE_BYTES + 1))
}

/// The text of `path` from `reader` (which [`open`] gave) to its end.
///
/// # Errors
/// [`DirError::Io`] when it cannot be read, [`DirError::TooLarge`] or
/// [`DirError::NotUtf8`] for what it holds.
pub(crate) fn text(path: &Path, mut reader: impl Read) -> Result<String, DirError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|source| DirError::Io {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(path));
    }
    String::from_utf8(bytes).map_err(|e| DirError::NotUtf8 {
        path: path.to_owned(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// [`DirError::TooLarge`] for `path`, over [`MAX_FILE_BYTES`].
pub(crate) fn too_large(path: &Path) -> DirError {
    DirError::TooLarge {
        path: path.to_owned(),
        limit: MAX_FILE_BYTES,
    }
}

/// `path`, or where it links to when it is a symbolic link (relative to its directory).
fn target(path: &Path) -> std::io::Result<PathBuf> {
    if !std::fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Ok(path.to_owned());
    }
    let link = std::fs::read_link(path)?;
    Ok(path.parent().unwrap_or(Path::new("")).join(link))
}

/// The directories a walk of the tree has entered, by device and inode: a symbolic link
/// back to a directory entered already (a cycle, or a second way to the same files) is
/// not followed again.
#[derive(Debug, Default)]
pub(crate) struct Visited(std::collections::HashSet<(u64, u64)>);

impl Visited {
    /// Whether `dir` is a directory not entered yet (it counts as entered from now on).
    pub(crate) fn enter(&mut self, dir: &Path) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(dir).is_ok_and(|m| m.is_dir() && self.0.insert((m.dev(), m.ino())))
    }
}

/// The line and column (1-based) where `text` first nests flow collections deeper than
/// [`MAX_DEPTH`], if it does. Brackets in double-quoted strings and in comments do not
/// count; a plain or single-quoted scalar's do (a false alarm needs more than
/// [`MAX_DEPTH`] unbalanced brackets in scalars).
pub(crate) fn too_deep(text: &str) -> Option<(usize, usize)> {
    let (mut depth, mut line, mut column) = (0usize, 1, 0);
    let (mut quoted, mut escaped, mut comment) = (false, false, false);
    let mut previous = '\n';
    for c in text.chars() {
        column += 1;
        if c == '\n' {
            (line, column, comment) = (line + 1, 0, false);
        } else if comment {
        } else if quoted {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
        } else {
            match c {
                '"' => quoted = true,
                '#' if previous.is_whitespace() => comment = true,
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Some((line, column));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        previous = c;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> Result<String, DirError> {
        text(path, open(path)?)
    }

    #[test]
    fn nesting_is_counted_outside_strings_and_comments() {
        let deep = format!(
            "a: {}{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(too_deep(&deep), Some((1, 4 + MAX_DEPTH)));
        let at_limit = format!("a: {}{}", "{".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert_eq!(too_deep(&at_limit), None);
        let hidden = format!(
            "a: \"\\\"{}\"\n# {}\nb: [1]\n",
            "[".repeat(MAX_DEPTH + 1),
            "{".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(too_deep(&hidden), None);
    }

    #[test]
    fn only_regular_files_within_the_cap_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "a: 1\n").expect("write");
        assert_eq!(read(&file).expect("read"), "a: 1\n");

        let link = dir.path().join("link.yaml");
        std::os::unix::fs::symlink("a.yaml", &link).expect("symlink");
        assert_eq!(read(&link).expect("followed once"), "a: 1\n");
        let twice = dir.path().join("twice.yaml");
        std::os::unix::fs::symlink("link.yaml", &twice).expect("symlink");
        let loop_ = dir.path().join("loop.yaml");
        std::os::unix::fs::symlink("loop.yaml", &loop_).expect("symlink");
        let zero = dir.path().join("zero.yaml");
        std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
        let fifo = dir.path().join("fifo.yaml");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .expect("mkfifo");
        let subdir = dir.path().join("d.yaml");
        std::fs::create_dir(&subdir).expect("mkdir");
        for path in [&twice, &loop_, &zero, &fifo, &subdir] {
            let err = read(path).expect_err("not a regular file");
            assert!(matches!(err, DirError::NotRegular { .. }), "{err}");
            assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
        }

        let big = dir.path().join("big.yaml");
        let f = std::fs::File::create(&big).expect("create");
        f.set_len(MAX_FILE_BYTES + 1).expect("grow");
        let err = read(&big).expect_err("too large");
        assert!(matches!(err, DirError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("big.yaml"), "{err}");

        std::fs::write(&file, b"a: \xff\n").expect("write");
        let err = read(&file).expect_err("not UTF-8");
        assert!(matches!(err, DirError::NotUtf8 { offset: 3, .. }), "{err}");
    }
}
