//! A bounded map that forgets: least recently used entries are evicted when it is full, and
//! entries given a time to live expire.
//!
//! Recency is a counter bumped on every use; `order` maps it back to the key, so the oldest entry
//! is the first of a `BTreeMap`. Expiry times are indexed the same way, so a sweep visits only
//! what has expired. Time is passed in (milliseconds since the epoch): the cache never reads a
//! clock, which keeps it deterministic under test.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::Duration;

use crate::util::clock::{self, Millis};

#[derive(Debug, Clone)]
struct Entry<V> {
    value: V,
    expires_at: Option<Millis>,
    used: u64,
}

/// Counts of what the cache did, for `INFO` and the metrics report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub expirations: u64,
}

/// What an insert pushed out to make room.
#[derive(Debug, PartialEq, Eq)]
pub struct Evicted<K, V> {
    pub key: K,
    pub value: V,
}

/// A map of at most `capacity` entries with least-recently-used eviction and per-entry expiry.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    capacity: usize,
    entries: HashMap<K, Entry<V>>,
    order: BTreeMap<u64, K>,
    expiries: BTreeMap<(Millis, u64), K>,
    clock: u64,
    stats: CacheStats,
}

impl<K: Hash + Eq + Clone, V> TtlCache<K, V> {
    /// A cache of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        TtlCache {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            expiries: BTreeMap::new(),
            clock: 0,
            stats: CacheStats::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The value at `key` if it is there and not expired at `now`; counts as a use.
    pub fn get(&mut self, key: &K, now: Millis) -> Option<&V> {
        self.get_mut(key, now).map(|value| &*value)
    }

    /// [`TtlCache::get`] for changing the value in place.
    pub fn get_mut(&mut self, key: &K, now: Millis) -> Option<&mut V> {
        if self.expire_if_due(key, now) {
            self.stats.misses += 1;
            return None;
        }
        let tick = self.tick();
        let Some(entry) = self.entries.get_mut(key) else {
            self.stats.misses += 1;
            return None;
        };
        self.stats.hits += 1;
        let old = std::mem::replace(&mut entry.used, tick);
        let owned = self
            .order
            .remove(&old)
            .expect("every entry is in the order");
        self.order.insert(tick, owned);
        if let Some(expires_at) = entry.expires_at {
            let owned = self
                .expiries
                .remove(&(expires_at, old))
                .expect("every expiring entry is indexed");
            self.expiries.insert((expires_at, tick), owned);
        }
        Some(&mut entry.value)
    }

    /// The value at `key` without counting a use (for `KEYS`, snapshots and tests).
    pub fn peek(&self, key: &K, now: Millis) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|entry| entry.expires_at.is_none_or(|at| at > now))
            .map(|entry| &entry.value)
    }

    pub fn contains(&self, key: &K, now: Millis) -> bool {
        self.peek(key, now).is_some()
    }

    /// Stores `value` at `key`, expiring after `ttl` if given. Returns the value it replaced and
    /// the entry evicted to make room, if any.
    pub fn insert(
        &mut self,
        key: K,
        value: V,
        ttl: Option<Duration>,
        now: Millis,
    ) -> (Option<V>, Option<Evicted<K, V>>) {
        let expires_at = ttl.map(|ttl| clock::after(now, ttl));
        self.insert_until(key, value, expires_at, now)
    }

    /// [`TtlCache::insert`] with an absolute expiry time (restoring a snapshot).
    pub fn insert_until(
        &mut self,
        key: K,
        value: V,
        expires_at: Option<Millis>,
        now: Millis,
    ) -> (Option<V>, Option<Evicted<K, V>>) {
        let replaced = self.remove(&key);
        let evicted = if self.entries.len() >= self.capacity {
            self.evict_one(now)
        } else {
            None
        };
        let tick = self.tick();
        self.order.insert(tick, key.clone());
        if let Some(at) = expires_at {
            self.expiries.insert((at, tick), key.clone());
        }
        self.entries.insert(
            key,
            Entry {
                value,
                expires_at,
                used: tick,
            },
        );
        (replaced, evicted)
    }

    /// Makes room: an expired entry if there is one, else the least recently used.
    fn evict_one(&mut self, now: Millis) -> Option<Evicted<K, V>> {
        if let Some((&(at, _), key)) = self.expiries.iter().next() {
            if at <= now {
                let key = key.clone();
                self.stats.expirations += 1;
                return self.remove(&key).map(|value| Evicted { key, value });
            }
        }
        let key = self.order.values().next()?.clone();
        self.stats.evictions += 1;
        self.remove(&key).map(|value| Evicted { key, value })
    }

    /// Removes `key`; returns its value even if it had expired.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let entry = self.entries.remove(key)?;
        self.order.remove(&entry.used);
        if let Some(at) = entry.expires_at {
            self.expiries.remove(&(at, entry.used));
        }
        Some(entry.value)
    }

    /// Removes `key` if it has expired at `now`; says whether it did.
    fn expire_if_due(&mut self, key: &K, now: Millis) -> bool {
        let due = self
            .entries
            .get(key)
            .and_then(|entry| entry.expires_at)
            .is_some_and(|at| at <= now);
        if due {
            self.remove(key);
            self.stats.expirations += 1;
        }
        due
    }

    /// Time left before `key` expires: `None` if it is not there, `Some(None)` if it never does.
    pub fn time_to_live(&self, key: &K, now: Millis) -> Option<Option<Duration>> {
        let entry = self.entries.get(key)?;
        match entry.expires_at {
            Some(at) if at <= now => None,
            Some(at) => Some(Some(clock::until(now, at))),
            None => Some(None),
        }
    }

    /// Gives `key` a new time to live (or none, with `None`); false if it is not there.
    pub fn set_ttl(&mut self, key: &K, ttl: Option<Duration>, now: Millis) -> bool {
        if self.expire_if_due(key, now) {
            return false;
        }
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        if let Some(old) = entry.expires_at.take() {
            self.expiries.remove(&(old, entry.used));
        }
        if let Some(ttl) = ttl {
            let at = clock::after(now, ttl);
            entry.expires_at = Some(at);
            self.expiries.insert((at, entry.used), key.clone());
        }
        true
    }

    /// Removes up to `limit` entries expired at `now`, oldest expiry first.
    pub fn sweep(&mut self, now: Millis, limit: usize) -> Vec<(K, V)> {
        let due: Vec<K> = self
            .expiries
            .range(..(now.saturating_add(1), 0))
            .take(limit)
            .map(|(_, key)| key.clone())
            .collect();
        let mut removed = Vec::with_capacity(due.len());
        for key in due {
            if let Some(value) = self.remove(&key) {
                self.stats.expirations += 1;
                removed.push((key, value));
            }
        }
        removed
    }

    /// Every live entry at `now` with its expiry time, in no particular order.
    pub fn iter(&self, now: Millis) -> impl Iterator<Item = (&K, &V, Option<Millis>)> {
        self.entries
            .iter()
            .filter(move |(_, entry)| entry.expires_at.is_none_or(|at| at > now))
            .map(|(key, entry)| (key, &entry.value, entry.expires_at))
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.expiries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_000_000;

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut cache = TtlCache::new(2);
        cache.insert("a", 1, None, T0);
        cache.insert("b", 2, None, T0);
        assert_eq!(cache.get(&"a", T0), Some(&1));
        let (_, evicted) = cache.insert("c", 3, None, T0);
        assert_eq!(evicted, Some(Evicted { key: "b", value: 2 }));
        assert_eq!(cache.peek(&"a", T0), Some(&1));
        assert_eq!(cache.stats().evictions, 1);
    }

    #[test]
    fn entries_expire_on_read_and_on_sweep() {
        let mut cache = TtlCache::new(10);
        cache.insert("short", 1, Some(Duration::from_millis(50)), T0);
        cache.insert("long", 2, Some(Duration::from_secs(60)), T0);
        cache.insert("forever", 3, None, T0);
        assert_eq!(cache.get(&"short", T0 + 49), Some(&1));
        assert_eq!(cache.get(&"short", T0 + 50), None);
        cache.insert("short2", 4, Some(Duration::from_millis(10)), T0);
        let swept = cache.sweep(T0 + 100, 10);
        assert_eq!(swept, vec![("short2", 4)]);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.stats().expirations, 2);
    }

    #[test]
    fn an_expired_entry_is_evicted_before_a_live_one() {
        let mut cache = TtlCache::new(2);
        cache.insert("old", 1, None, T0);
        cache.insert("brief", 2, Some(Duration::from_millis(1)), T0);
        let (_, evicted) = cache.insert("new", 3, None, T0 + 5);
        assert_eq!(
            evicted,
            Some(Evicted {
                key: "brief",
                value: 2
            })
        );
        assert!(cache.contains(&"old", T0 + 5));
    }

    #[test]
    fn ttl_can_be_changed_and_removed() {
        let mut cache = TtlCache::new(4);
        cache.insert("k", 1, Some(Duration::from_millis(10)), T0);
        assert_eq!(
            cache.time_to_live(&"k", T0 + 4),
            Some(Some(Duration::from_millis(6)))
        );
        assert!(cache.set_ttl(&"k", None, T0 + 5));
        assert_eq!(cache.time_to_live(&"k", T0 + 500), Some(None));
        assert!(cache.set_ttl(&"k", Some(Duration::from_millis(1)), T0 + 500));
        assert_eq!(cache.time_to_live(&"k", T0 + 501), None);
        assert!(!cache.set_ttl(&"missing", None, T0));
    }

    #[test]
    fn replacing_keeps_one_entry_and_returns_the_old_value() {
        let mut cache = TtlCache::new(1);
        cache.insert("k", 1, Some(Duration::from_millis(5)), T0);
        let (replaced, evicted) = cache.insert("k", 2, None, T0);
        assert_eq!((replaced, evicted), (Some(1), None));
        assert_eq!(cache.sweep(T0 + 10, 10), vec![]);
        assert_eq!(cache.iter(T0).count(), 1);
    }

    #[test]
    fn a_sweep_respects_its_limit() {
        let mut cache = TtlCache::new(100);
        for i in 0..10 {
            cache.insert(i, i, Some(Duration::from_millis(i as u64)), T0);
        }
        assert_eq!(cache.sweep(T0 + 100, 3).len(), 3);
        assert_eq!(cache.len(), 7);
        cache.clear();
        assert!(cache.is_empty());
    }
}
