//! Values by key: text, integers and lists, with expiry and a capacity.
//!
//! Each operation takes the store's lock once, so a command is atomic. Type mismatches
//! (`INCR` on a list) are errors naming the key and both types, as clients expect from Redis.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::cache::{CacheStats, TtlCache};
use super::glob::glob_match;
pub use super::value::{End, SetCondition, Value};
use crate::error::DepotError;
use crate::util::clock::Millis;

/// A saved entry: key, value and absolute expiry.
pub type SavedEntry = (String, Value, Option<Millis>);

/// The store.
#[derive(Debug)]
pub struct KvStore {
    cache: Mutex<TtlCache<String, Value>>,
    default_ttl: Option<Duration>,
}

impl KvStore {
    pub fn new(capacity: usize, default_ttl: Option<Duration>) -> Self {
        KvStore {
            cache: Mutex::new(TtlCache::new(capacity)),
            default_ttl,
        }
    }

    fn cache(&self) -> MutexGuard<'_, TtlCache<String, Value>> {
        // A panic while holding the lock leaves the cache consistent: every method finishes its
        // bookkeeping before it can panic, so the poison is ignored.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str, now: Millis) -> Result<Option<String>, DepotError> {
        let mut cache = self.cache();
        match cache.get(&key.to_owned(), now) {
            None => Ok(None),
            Some(value) => value
                .as_text()
                .map(Some)
                .ok_or_else(|| wrong_type(key, "text", value)),
        }
    }

    /// Sets `key`; says whether it wrote (`NX`/`XX` may refuse).
    pub fn set(
        &self,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        condition: SetCondition,
        now: Millis,
    ) -> bool {
        let mut cache = self.cache();
        let present = cache.contains(&key.to_owned(), now);
        let allowed = match condition {
            SetCondition::Always => true,
            SetCondition::IfAbsent => !present,
            SetCondition::IfPresent => present,
        };
        if allowed {
            cache.insert(key.to_owned(), value, ttl.or(self.default_ttl), now);
        }
        allowed
    }

    /// Removes the keys; returns how many were there.
    pub fn delete(&self, keys: &[String], now: Millis) -> usize {
        let mut cache = self.cache();
        keys.iter()
            .filter(|key| {
                let live = cache.contains(key, now);
                cache.remove(key);
                live
            })
            .count()
    }

    /// Adds `by` to the integer at `key` (0 if absent); returns the new value.
    pub fn increment(&self, key: &str, by: i64, now: Millis) -> Result<i64, DepotError> {
        let mut cache = self.cache();
        let owned = key.to_owned();
        match cache.get_mut(&owned, now) {
            Some(Value::Int(number)) => {
                *number = number
                    .checked_add(by)
                    .ok_or_else(|| DepotError::Overflow(owned.clone()))?;
                Ok(*number)
            }
            Some(Value::Text(_)) => Err(DepotError::NotAnInteger(owned)),
            Some(other) => Err(wrong_type(key, "an integer", other)),
            None => {
                cache.insert(owned, Value::Int(by), self.default_ttl, now);
                Ok(by)
            }
        }
    }

    /// Appends to the text at `key`; returns its new length in bytes.
    pub fn append(&self, key: &str, suffix: &str, now: Millis) -> Result<usize, DepotError> {
        let mut cache = self.cache();
        let owned = key.to_owned();
        let current = cache.get_mut(&owned, now);
        match current {
            Some(value @ (Value::Text(_) | Value::Int(_))) => {
                let mut text = value.as_text().unwrap_or_default();
                text.push_str(suffix);
                let length = text.len();
                *value = Value::Text(text);
                Ok(length)
            }
            Some(other) => Err(wrong_type(key, "text", other)),
            None => {
                cache.insert(owned, Value::Text(suffix.to_owned()), self.default_ttl, now);
                Ok(suffix.len())
            }
        }
    }

    /// Pushes `values` onto the list at `key` in order; returns the list's length.
    pub fn push(
        &self,
        key: &str,
        end: End,
        values: &[String],
        now: Millis,
    ) -> Result<usize, DepotError> {
        let mut cache = self.cache();
        let owned = key.to_owned();
        let list = match cache.get_mut(&owned, now) {
            Some(Value::List(list)) => list,
            Some(other) => return Err(wrong_type(key, "a list", other)),
            None => {
                cache.insert(owned.clone(), Value::List(VecDeque::new()), None, now);
                match cache.get_mut(&owned, now) {
                    Some(Value::List(list)) => list,
                    _ => unreachable!("a list was just inserted"),
                }
            }
        };
        for value in values {
            match end {
                End::Left => list.push_front(value.clone()),
                End::Right => list.push_back(value.clone()),
            }
        }
        Ok(list.len())
    }

    /// Pops from the list at `key`; an emptied list is removed.
    pub fn pop(&self, key: &str, end: End, now: Millis) -> Result<Option<String>, DepotError> {
        let mut cache = self.cache();
        let owned = key.to_owned();
        let (popped, emptied) = match cache.get_mut(&owned, now) {
            Some(Value::List(list)) => {
                let popped = match end {
                    End::Left => list.pop_front(),
                    End::Right => list.pop_back(),
                };
                (popped, list.is_empty())
            }
            Some(other) => return Err(wrong_type(key, "a list", other)),
            None => return Ok(None),
        };
        if emptied {
            cache.remove(&owned);
        }
        Ok(popped)
    }

    /// Items `start..=stop` of the list at `key`; negative indices count from the end.
    pub fn range(
        &self,
        key: &str,
        start: i64,
        stop: i64,
        now: Millis,
    ) -> Result<Vec<String>, DepotError> {
        let mut cache = self.cache();
        let list = match cache.get(&key.to_owned(), now) {
            Some(Value::List(list)) => list,
            Some(other) => return Err(wrong_type(key, "a list", other)),
            None => return Ok(Vec::new()),
        };
        let len = list.len() as i64;
        let resolve = |index: i64| if index < 0 { len + index } else { index };
        let (start, stop) = (resolve(start).max(0), resolve(stop).min(len - 1));
        if start > stop {
            return Ok(Vec::new());
        }
        Ok(list
            .iter()
            .skip(start as usize)
            .take((stop - start + 1) as usize)
            .cloned()
            .collect())
    }

    pub fn expire(&self, key: &str, ttl: Option<Duration>, now: Millis) -> bool {
        self.cache().set_ttl(&key.to_owned(), ttl, now)
    }

    /// Time to live of `key`: `None` if absent, `Some(None)` if it never expires.
    pub fn ttl(&self, key: &str, now: Millis) -> Option<Option<Duration>> {
        self.cache().time_to_live(&key.to_owned(), now)
    }

    /// Keys matching `pattern` (`*` matches any run of characters), sorted.
    pub fn keys(&self, pattern: &str, now: Millis) -> Vec<String> {
        let cache = self.cache();
        let mut keys: Vec<String> = cache
            .iter(now)
            .filter(|(key, _, _)| glob_match(pattern, key))
            .map(|(key, _, _)| key.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Removes up to `limit` expired keys; returns how many.
    pub fn sweep(&self, now: Millis, limit: usize) -> usize {
        self.cache().sweep(now, limit).len()
    }

    pub fn len(&self) -> usize {
        self.cache().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> CacheStats {
        self.cache().stats()
    }

    /// Every live entry, for a snapshot.
    pub fn export(&self, now: Millis) -> Vec<SavedEntry> {
        let cache = self.cache();
        let mut entries: Vec<SavedEntry> = cache
            .iter(now)
            .map(|(key, value, expires)| (key.clone(), value.clone(), expires))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries
    }

    /// Loads a snapshot's entries, skipping those that expired meanwhile; returns how many.
    pub fn import(&self, entries: Vec<SavedEntry>, now: Millis) -> usize {
        let mut cache = self.cache();
        let mut loaded = 0;
        for (key, value, expires_at) in entries {
            if expires_at.is_some_and(|at| at <= now) {
                continue;
            }
            cache.insert_until(key, value, expires_at, now);
            loaded += 1;
        }
        loaded
    }

    pub fn flush(&self) {
        self.cache().clear();
    }
}

fn wrong_type(key: &str, expected: &'static str, found: &Value) -> DepotError {
    DepotError::WrongType {
        key: key.to_owned(),
        expected,
        found: found.type_name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 5_000_000;

    fn store() -> KvStore {
        KvStore::new(100, None)
    }

    #[test]
    fn set_get_and_conditions() {
        let kv = store();
        assert!(kv.set(
            "a",
            Value::from_input("hi"),
            None,
            SetCondition::Always,
            NOW
        ));
        assert!(!kv.set(
            "a",
            Value::from_input("x"),
            None,
            SetCondition::IfAbsent,
            NOW
        ));
        assert!(!kv.set(
            "b",
            Value::from_input("x"),
            None,
            SetCondition::IfPresent,
            NOW
        ));
        assert_eq!(kv.get("a", NOW).unwrap().as_deref(), Some("hi"));
        assert_eq!(kv.get("b", NOW).unwrap(), None);
        assert_eq!(kv.delete(&["a".into(), "b".into()], NOW), 1);
    }

    #[test]
    fn integers_count_and_refuse_overflow() {
        let kv = store();
        assert_eq!(kv.increment("n", 5, NOW).unwrap(), 5);
        kv.set(
            "m",
            Value::from_input("41"),
            None,
            SetCondition::Always,
            NOW,
        );
        assert_eq!(kv.increment("m", 1, NOW).unwrap(), 42);
        kv.set("big", Value::Int(i64::MAX), None, SetCondition::Always, NOW);
        assert_eq!(
            kv.increment("big", 1, NOW),
            Err(DepotError::Overflow("big".into()))
        );
        kv.set(
            "t",
            Value::from_input("007"),
            None,
            SetCondition::Always,
            NOW,
        );
        assert_eq!(
            kv.increment("t", 1, NOW),
            Err(DepotError::NotAnInteger("t".into()))
        );
    }

    #[test]
    fn lists_push_pop_and_range() {
        let kv = store();
        let items: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(kv.push("l", End::Right, &items, NOW).unwrap(), 3);
        assert_eq!(kv.push("l", End::Left, &["z".into()], NOW).unwrap(), 4);
        assert_eq!(kv.range("l", 0, -1, NOW).unwrap(), ["z", "a", "b", "c"]);
        assert_eq!(kv.range("l", -2, 10, NOW).unwrap(), ["b", "c"]);
        assert_eq!(kv.range("l", 3, 1, NOW).unwrap(), Vec::<String>::new());
        assert_eq!(kv.pop("l", End::Right, NOW).unwrap().as_deref(), Some("c"));
        assert!(matches!(
            kv.get("l", NOW),
            Err(DepotError::WrongType { .. })
        ));
        for _ in 0..3 {
            kv.pop("l", End::Left, NOW).unwrap();
        }
        assert!(kv.is_empty(), "an emptied list is removed");
    }

    #[test]
    fn append_turns_numbers_into_text() {
        let kv = store();
        kv.set("v", Value::Int(1), None, SetCondition::Always, NOW);
        assert_eq!(kv.append("v", "0x", NOW).unwrap(), 3);
        assert_eq!(kv.get("v", NOW).unwrap().as_deref(), Some("10x"));
        assert_eq!(kv.append("new", "abc", NOW).unwrap(), 3);
    }

    #[test]
    fn expiry_and_snapshots() {
        let kv = KvStore::new(10, Some(Duration::from_secs(1)));
        kv.set("a", Value::Int(1), None, SetCondition::Always, NOW);
        kv.set(
            "b",
            Value::Int(2),
            Some(Duration::from_secs(10)),
            SetCondition::Always,
            NOW,
        );
        assert!(kv.expire("b", None, NOW));
        assert_eq!(kv.ttl("b", NOW), Some(None));
        assert_eq!(kv.ttl("a", NOW), Some(Some(Duration::from_secs(1))));
        let saved = kv.export(NOW);
        let restored = KvStore::new(10, None);
        assert_eq!(restored.import(saved, NOW + 1_500), 1);
        assert_eq!(restored.keys("*", NOW + 1_500), ["b"]);
        assert_eq!(kv.sweep(NOW + 2_000, 10), 1);
    }
}
