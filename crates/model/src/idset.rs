//! A small set of object ids.

use crate::ObjectId;

/// A set of object ids, sorted, in one allocation. Meant for the many sets that hold one
/// or two ids (the slices of a Service, the Services claiming a virtual server): a
/// `BTreeSet` allocates a whole node (about 400 bytes) for a single id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdSet(Vec<ObjectId>);

impl IdSet {
    /// Adds `id`; whether it was not there yet.
    pub fn insert(&mut self, id: ObjectId) -> bool {
        match self.0.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                // Grown one at a time: these sets stay small, and there are many.
                self.0.reserve_exact(1);
                self.0.insert(at, id);
                true
            }
        }
    }

    /// Removes `id`; whether it was there.
    pub fn remove(&mut self, id: &ObjectId) -> bool {
        match self.0.binary_search(id) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// The smallest id.
    pub fn first(&self) -> Option<&ObjectId> {
        self.0.first()
    }

    /// The ids, sorted.
    pub fn iter(&self) -> std::slice::Iter<'_, ObjectId> {
        self.0.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a IdSet {
    type Item = &'a ObjectId;
    type IntoIter = std::slice::Iter<'a, ObjectId>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_without_duplicates() {
        let mut set = IdSet::default();
        assert!(set.insert(ObjectId::new("d", "b")));
        assert!(set.insert(ObjectId::new("d", "a")));
        assert!(!set.insert(ObjectId::new("d", "b")));
        assert_eq!(set.len(), 2);
        assert_eq!(set.first(), Some(&ObjectId::new("d", "a")));
        assert!(set.remove(&ObjectId::new("d", "a")));
        assert!(!set.remove(&ObjectId::new("d", "a")));
        let left: Vec<&ObjectId> = set.iter().collect();
        assert_eq!(left, [&ObjectId::new("d", "b")]);
        assert!(set.remove(&ObjectId::new("d", "b")));
        assert!(set.is_empty());
    }
}
