//! A large JSON file read in pieces: the `items` of each top-level object (a List, as
//! `kubectl get svc,endpointslices -A -o json` prints it) are parsed and decoded one by one
//! as they are read, so that neither the file's text nor its tree is held whole. The rest of
//! each document (its `kind`, `metadata`, an empty `items`) is kept and parsed once the
//! document ends, and says whether the items are a List's.
//!
//! The scanner follows strings and nesting outside the items only, to find where they
//! begin; serde_json parses each item, and the rest. Anything it does not expect (an item
//! that is not an object, a byte out of place) gives up, and the file is then read whole.

use std::io::{self, Read};

use serde_norway::Value;

use super::dir::Snapshot;
use super::json::{self, Decode};

/// The bytes read at a time.
const PIECE: u64 = 256 << 10;

/// The documents `reader` holds, its Lists' items decoded one by one as they are read;
/// `Ok(None)` when it is not a sequence of JSON documents the scanner follows (read it
/// whole instead).
///
/// # Errors
/// When `reader` fails.
pub(super) fn snapshot(reader: impl Read, decode: Decode) -> io::Result<Option<Snapshot>> {
    snapshot_in_pieces(reader, decode, PIECE)
}

/// [`snapshot`], reading `piece` bytes at a time.
fn snapshot_in_pieces(
    mut reader: impl Read,
    decode: Decode,
    piece: u64,
) -> io::Result<Option<Snapshot>> {
    let mut scanner = Scanner::new(decode);
    // What was read and not yet scanned: an item is parsed from here once it is whole.
    let mut window = Vec::new();
    loop {
        let read = (&mut reader).take(piece).read_to_end(&mut window)?;
        let Some(scanned) = scanner.scan(&window, read == 0) else {
            return Ok(None);
        };
        window.drain(..scanned);
        if read == 0 {
            return Ok(scanner.finish());
        }
    }
}

/// Where the scanner is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between documents.
    Between,
    /// In a document, outside its `items`: what is read is kept in `rest`.
    Document,
    /// In `items`, before an item: `first` right after its `[`.
    BeforeItem { first: bool },
    /// In `items`, after an item.
    AfterItem,
}

/// Where a key of the top-level object is, while its document is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// A key may come next (after `{` or `,`).
    Expected,
    /// In a key that began at this offset of `rest`.
    In(usize),
    /// After a key, before its `:`; whether the key is `items`.
    Colon(bool),
    /// After the `:`, before the value; whether the key is `items`.
    Value(bool),
    /// In a value, or in a top-level array.
    None,
}

/// The scanner and what it has read so far.
struct Scanner {
    decode: Decode,
    state: State,
    /// In a string, and right after a backslash in it.
    string: bool,
    escaped: bool,
    /// The nesting depth in the document.
    depth: usize,
    /// Whether the document is an object (whose keys are looked at).
    object: bool,
    key: Key,
    /// The document being read, without its items.
    rest: Vec<u8>,
    /// The decoded items of the document being read.
    items: Snapshot,
    /// The documents read.
    into: Snapshot,
}

/// JSON's white space.
fn blank(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

impl Scanner {
    fn new(decode: Decode) -> Scanner {
        Scanner {
            decode,
            state: State::Between,
            string: false,
            escaped: false,
            depth: 0,
            object: false,
            key: Key::None,
            rest: Vec::new(),
            items: Snapshot::default(),
            into: Snapshot::default(),
        }
    }

    /// Scans `buf`, the stream's next bytes (its last when `end`): how many bytes were
    /// scanned (fewer than all when an item is not whole yet), or `None` to give up.
    fn scan(&mut self, buf: &[u8], end: bool) -> Option<usize> {
        let mut i = 0;
        while let Some(&b) = buf.get(i) {
            match self.state {
                State::BeforeItem { .. } if b == b'{' => {
                    let mut items =
                        serde_json::Deserializer::from_slice(&buf[i..]).into_iter::<Value>();
                    match items.next()? {
                        Ok(item) => {
                            (self.decode)(item, &mut self.items);
                            self.state = State::AfterItem;
                            i += items.byte_offset();
                            continue;
                        }
                        Err(e) if e.is_eof() && !end => return Some(i),
                        Err(_) => return None,
                    }
                }
                State::BeforeItem { first: true } | State::AfterItem if b == b']' => {
                    self.rest.push(b);
                    self.depth -= 1;
                    self.state = State::Document;
                }
                State::AfterItem if b == b',' => self.state = State::BeforeItem { first: false },
                State::BeforeItem { .. } | State::AfterItem | State::Between if blank(b) => {}
                State::Between if matches!(b, b'{' | b'[') => {
                    self.state = State::Document;
                    self.document_byte(b)?;
                }
                State::BeforeItem { .. } | State::AfterItem | State::Between => return None,
                State::Document => self.document_byte(b)?,
            }
            i += 1;
        }
        Some(i)
    }

    /// Follows strings: whether `b` is in one (its closing quote included).
    fn in_string(&mut self, b: u8) -> bool {
        if !self.string {
            self.string = b == b'"';
            return self.string;
        }
        if self.escaped {
            self.escaped = false;
        } else if b == b'\\' {
            self.escaped = true;
        } else if b == b'"' {
            self.string = false;
        }
        true
    }

    /// One byte of a document outside its items.
    fn document_byte(&mut self, b: u8) -> Option<()> {
        self.rest.push(b);
        let opened = !self.string && b == b'"';
        if self.in_string(b) {
            if opened && self.depth == 1 && self.key == Key::Expected {
                self.key = Key::In(self.rest.len() - 1);
            } else if let (false, Key::In(start)) = (self.string, self.key) {
                self.key = Key::Colon(&self.rest[start..] == b"\"items\"");
            }
            return Some(());
        }
        match b {
            b'{' | b'[' => {
                self.depth += 1;
                if self.depth == 1 {
                    self.object = b == b'{';
                    self.key = if self.object {
                        Key::Expected
                    } else {
                        Key::None
                    };
                } else if self.depth == 2 {
                    if b == b'[' && self.key == Key::Value(true) {
                        self.state = State::BeforeItem { first: true };
                    }
                    self.key = Key::None;
                }
            }
            b'}' | b']' => {
                self.depth = self.depth.checked_sub(1)?;
                if self.depth == 0 {
                    self.document_done()?;
                }
            }
            b':' if self.depth == 1 => {
                if let Key::Colon(items) = self.key {
                    self.key = Key::Value(items);
                }
            }
            b',' if self.depth == 1 && self.object => self.key = Key::Expected,
            _ if blank(b) => {}
            _ if self.depth == 1 => self.key = Key::None,
            _ => {}
        }
        Some(())
    }

    /// The document read is parsed, with the items cut out of it.
    fn document_done(&mut self) -> Option<()> {
        let items = std::mem::take(&mut self.items);
        json::document(&self.rest, items, &mut self.into, self.decode)?;
        self.rest.clear();
        self.state = State::Between;
        Some(())
    }

    /// What was read, if the stream ended between documents.
    fn finish(self) -> Option<Snapshot> {
        (self.state == State::Between).then_some(self.into)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::source::dir;

    /// `text` read in pieces of `piece` bytes.
    fn split(text: &str, piece: u64) -> Option<Snapshot> {
        snapshot_in_pieces(text.as_bytes(), dir::decode, piece).expect("no I/O error")
    }

    /// `text` read whole, as a file that is not read in pieces.
    fn whole(text: &str) -> Snapshot {
        let mut into = Snapshot::default();
        dir::parse(Path::new("t.json"), text, &mut into).expect("parses");
        into
    }

    const LISTS: &str = r#"{"apiVersion": "v1", "items": [
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "d",
           "annotations": {"q": "\"items\": [}{", "e": "\\"}}},
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b", "namespace": "d"},
           "spec": {"ports": [{"port": "http"}]}},
          {"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}]},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}],
        "kind": "List", "metadata": {"resourceVersion": "", "items": [1]}}
        {"kind": "Service", "metadata": {"name": "e", "namespace": "d"}, "items": [
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "f", "namespace": "d"}}]}
        {"kind": "List", "items": {"not": "an array"}}
        {"kind": "List", "items": []} {"kind": "List", "\u0069tems": [
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "h", "namespace": "d"}}]}
        [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "g", "namespace": "d"}}]
        "#;

    #[test]
    fn pieces_of_any_size_read_as_the_whole_text() {
        let expected = whole(LISTS);
        let names: Vec<String> = (expected.objects.iter())
            .map(|o| o.id().name.to_string())
            .collect();
        assert_eq!(names, ["a", "n1", "e", "h"], "the text read whole");
        for piece in [1, 2, 3, 7, 64, 1 << 16] {
            let read = split(LISTS, piece).expect("followed");
            assert_eq!(read.objects, expected.objects, "pieces of {piece}");
            assert_eq!(read.warnings, expected.warnings, "pieces of {piece}");
        }
    }

    #[test]
    fn what_the_scanner_does_not_follow_is_given_up() {
        for text in [
            // Not JSON, or not documents the source reads.
            "kind: List\nitems: []\n",
            "1 {}",
            // An item that is not an object, or out of place.
            r#"{"kind": "List", "items": [1]}"#,
            r#"{"kind": "List", "items": [{}, ]}"#,
            r#"{"kind": "List", "items": [{} {}]}"#,
            // Malformed: an item, the rest of a document, its end.
            r#"{"kind": "List", "items": [{"kind": "Service",}]}"#,
            r#"{"kind": "List" "items": []}"#,
            r#"{"kind": "List", "items": [{"kind": "Service"}]"#,
            r#"{"kind": "List"}}"#,
            "{\"kind\": \"Li",
        ] {
            assert!(split(text, 4).is_none(), "{text}");
        }
    }
}
