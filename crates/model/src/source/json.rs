//! JSON documents of the directory source, read as they are parsed: a `kind: List` (the
//! shape of `kubectl get svc,endpointslices -A -o json`) has each of its `items` decoded as
//! soon as it is parsed, so that the file's whole tree is never held at once (a 30 MB List
//! held as a tree took about 17 times its size). A large file is not even held as text:
//! [`super::split`] cuts its items out as it reads it, and passes the rest here.

use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_norway::{Mapping, Value};

use super::dir::Snapshot;

/// Decodes one object (or a nested List) into a snapshot.
pub(super) type Decode = fn(Value, &mut Snapshot);

/// The objects `parser` reads, a sequence of JSON documents, each object passed to
/// `decode`; `None` when its input is not such a sequence (it is then read as YAML).
pub(super) fn snapshot<'de, R: serde_json::de::Read<'de>>(
    mut parser: serde_json::Deserializer<R>,
    decode: Decode,
) -> Option<Snapshot> {
    let mut into = Snapshot::default();
    while parser.end().is_err() {
        Document {
            into: &mut into,
            decode,
            split: Snapshot::default(),
        }
        .deserialize(&mut parser)
        .ok()?;
    }
    Some(into)
}

/// Reads one document, `text`, into `into`, where `split` holds the items cut out of it
/// beforehand ([`super::split`]): they are `into`'s too if it is a List. `None` when
/// `text` is not one JSON document.
pub(super) fn document(
    text: &[u8],
    split: Snapshot,
    into: &mut Snapshot,
    decode: Decode,
) -> Option<()> {
    let mut parser = serde_json::Deserializer::from_slice(text);
    Document {
        into,
        decode,
        split,
    }
    .deserialize(&mut parser)
    .ok()?;
    parser.end().ok()
}

/// One top-level document: an object whose `items` are decoded as they come, kept aside
/// until its `kind` (which may come after them, as in kubectl's output) says it is a List.
struct Document<'a> {
    into: &'a mut Snapshot,
    decode: Decode,
    /// Items decoded already, cut out of the document's text.
    split: Snapshot,
}

impl<'de> DeserializeSeed<'de> for Document<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Document<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON document")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut items = self.split;
        let mut rest = Mapping::new();
        while let Some(key) = map.next_key::<Value>()? {
            if key.as_str() == Some("items") {
                map.next_value_seed(Items {
                    into: &mut items,
                    decode: self.decode,
                })?;
            } else {
                let value = map.next_value::<Value>()?;
                rest.insert(key, value);
            }
        }
        if rest.get("kind").and_then(Value::as_str) == Some("List") {
            self.into.append(&mut items);
        } else {
            (self.decode)(Value::Mapping(rest), self.into);
        }
        Ok(())
    }

    /// A top-level array holds no object the source reads.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// A List's `items`, each decoded as soon as it is parsed; anything but an array holds none.
struct Items<'a> {
    into: &'a mut Snapshot,
    decode: Decode,
}

impl<'de> DeserializeSeed<'de> for Items<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Items<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a List's items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Value>()? {
            (self.decode)(item, self.into);
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(())
    }
}
