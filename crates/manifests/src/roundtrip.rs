//! Finding what a typed round trip loses or changes.
//!
//! `k8s-openapi` ignores unknown fields when deserializing, so a misspelt field would
//! silently vanish. Comparing the input with its re-serialization finds it.

use serde_json::Value;
use std::fmt;

/// One place where a document and its typed round trip disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The input has this field, the typed value does not know it.
    Dropped(String),
    /// The typed value has a field the input did not have.
    Added(String),
    /// The field survived with another value (for example a changed number).
    Changed(String),
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dropped(path) => write!(f, "unknown field {path}"),
            Self::Added(path) => write!(f, "field {path} appeared in the round trip"),
            Self::Changed(path) => write!(f, "field {path} changed in the round trip"),
        }
    }
}

/// Every difference between `input` and `output`, with JSON-pointer-like paths
/// (`/spec/template/spec/hostNetwrok`), in document order.
pub fn round_trip_differences(input: &Value, output: &Value) -> Vec<Difference> {
    let mut found = Vec::new();
    compare("", input, output, &mut found);
    found
}

fn compare(path: &str, input: &Value, output: &Value, found: &mut Vec<Difference>) {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let child = format!("{path}/{key}");
                match b.get(key) {
                    Some(other) => compare(&child, value, other, found),
                    None => found.push(Difference::Dropped(child)),
                }
            }
            found.extend(
                b.keys()
                    .filter(|key| !a.contains_key(*key))
                    .map(|key| Difference::Added(format!("{path}/{key}"))),
            );
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                compare(&format!("{path}/{index}"), x, y, found);
            }
        }
        _ if input == output => {}
        _ => found.push(Difference::Changed(path.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identical_documents_have_no_differences() {
        let doc = json!({"a": [1, {"b": "c"}], "d": true});
        assert_eq!(round_trip_differences(&doc, &doc), vec![]);
    }

    #[test]
    fn a_dropped_nested_field_is_named_by_its_path() {
        let input = json!({"spec": {"items": [{"name": "x", "typo": 1}]}});
        let output = json!({"spec": {"items": [{"name": "x"}]}});
        assert_eq!(
            round_trip_differences(&input, &output),
            vec![Difference::Dropped("/spec/items/0/typo".into())]
        );
    }

    #[test]
    fn added_and_changed_fields_are_reported() {
        let input = json!({"a": 1, "list": [1, 2]});
        let output = json!({"a": "1", "list": [1], "extra": {}});
        assert_eq!(
            round_trip_differences(&input, &output),
            vec![
                Difference::Changed("/a".into()),
                Difference::Changed("/list".into()),
                Difference::Added("/extra".into()),
            ]
        );
    }
}
