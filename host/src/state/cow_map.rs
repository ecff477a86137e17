//! A hash map whose copies are taken in about constant time and diverge
//! entry by entry: the keyed state and open windows a checkpoint encodes off
//! the pipeline thread while the pipeline goes on changing them.
//!
//! As Flink's `CopyOnWriteStateMap` does for its heap state backend, a
//! snapshot shares the map's storage, and a write to an entry the snapshot
//! still holds copies that entry only. The map is kept in small shards (16
//! entries each on average, split one at a time as it grows, by linear
//! hashing) and each value behind its own pointer: a snapshot copies one
//! pointer per shard, and the first write to a shard after it copies the
//! shard's pointers and the value written, never the map; a write to a
//! shard and value the snapshot has let go of is made in place.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::Arc;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Entries a shard holds on average before one is split.
const PER_SHARD: usize = 16;

/// One entry, with its key's hash (shards grow and split without hashing again).
#[derive(Clone)]
struct Slot<K, V> {
    hash: u64,
    key: K,
    value: Arc<V>,
}

type Shard<K, V> = HashTable<Slot<K, V>>;

/// A map of small shards, each shared with the snapshots taken since it was
/// last written, as are its values (see the module's documentation).
///
/// It serializes as one map, in the same bytes as a `HashMap` of its
/// entries, so that checkpoints read either.
pub struct CowMap<K, V> {
    /// Hashes keys, once per lookup: the hash's high half picks the shard,
    /// its low half the place in the shard. Seeded at random per map (keys
    /// come from outside: they cannot be made to pile up in one shard).
    hasher: foldhash::fast::RandomState,
    /// Shards `0..base + split`: linear hashing's table.
    shards: Vec<Arc<Shard<K, V>>>,
    /// A power of two: keys are placed by their hash's low bits…
    base: usize,
    /// … one more bit for shards before this one (they were split).
    split: usize,
    len: usize,
}

impl<K, V> Default for CowMap<K, V> {
    fn default() -> Self {
        CowMap {
            hasher: foldhash::fast::RandomState::default(),
            shards: vec![Arc::new(HashTable::new())],
            base: 1,
            split: 0,
            len: 0,
        }
    }
}

impl<K, V> Clone for CowMap<K, V> {
    /// A snapshot: shares every shard (one pointer copied per shard).
    fn clone(&self) -> Self {
        CowMap {
            hasher: self.hasher.clone(),
            shards: self.shards.clone(),
            base: self.base,
            split: self.split,
            len: self.len,
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for CowMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The bits of a hash that pick its shard: the high half (the low bits
/// place entries inside a shard, and would all be alike there).
fn shard_bits(hash: u64) -> usize {
    (hash >> 32) as usize
}

fn slot_hash<K, V>(slot: &Slot<K, V>) -> u64 {
    slot.hash
}

impl<K, V> CowMap<K, V> {
    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards
            .iter()
            .flat_map(|shard| shard.iter().map(|s| (&s.key, &*s.value)))
    }

    /// Every key, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    fn hash_of<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The shard of a key with this hash.
    fn shard_of(&self, hash: u64) -> usize {
        let hash = shard_bits(hash);
        let i = hash & (self.base - 1);
        if i < self.split {
            hash & (2 * self.base - 1)
        } else {
            i
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> CowMap<K, V> {
    /// An empty map with shards for about `entries` entries, so that
    /// filling it splits none (a checkpoint read back).
    pub fn with_capacity(entries: usize) -> Self {
        let base = entries.div_ceil(PER_SHARD).max(1).next_power_of_two();
        CowMap {
            hasher: foldhash::fast::RandomState::default(),
            shards: (0..base)
                .map(|_| Arc::new(HashTable::with_capacity(PER_SHARD)))
                .collect(),
            base,
            split: 0,
            len: 0,
        }
    }

    /// Splits shards until they hold `PER_SHARD` entries on average with
    /// one more entry: one shard split per `PER_SHARD` entries added.
    fn make_room(&mut self) {
        while self.len + 1 > self.shards.len() * PER_SHARD {
            let at = self.split;
            let mask = 2 * self.base - 1;
            let mut moved = HashTable::new();
            for slot in
                Arc::make_mut(&mut self.shards[at]).extract_if(|s| shard_bits(s.hash) & mask != at)
            {
                moved.insert_unique(slot.hash, slot, slot_hash);
            }
            self.shards.push(Arc::new(moved));
            self.split += 1;
            if self.split == self.base {
                self.base *= 2;
                self.split = 0;
            }
        }
    }

    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash_of(key);
        self.shards[self.shard_of(hash)]
            .find(hash, |s| s.key.borrow() == key)
            .map(|s| &*s.value)
    }

    /// Whether `key` has a value.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// The value of `key`, to be changed.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash_of(key);
        self.get_mut_by(hash, |k| k.borrow() == key)
    }

    /// The value of the key with this hash that `is` accepts, to be changed.
    fn get_mut_by(&mut self, hash: u64, is: impl Fn(&K) -> bool) -> Option<&mut V> {
        let at = self.shard_of(hash);
        let shard = &mut self.shards[at];
        // A shared shard is not copied for a key it does not hold (no weak
        // pointers are ever made: one strong pointer means unshared).
        if Arc::strong_count(shard) > 1 && shard.find(hash, |s| is(&s.key)).is_none() {
            return None;
        }
        Arc::make_mut(shard)
            .find_mut(hash, |s| is(&s.key))
            .map(|s| Arc::make_mut(&mut s.value))
    }

    /// The value of `key`, inserted with `make` if it has none.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let hash = self.hash_of(&key);
        if self.shards[self.shard_of(hash)]
            .find(hash, |s| s.key == key)
            .is_none()
        {
            self.make_room();
        }
        let at = self.shard_of(hash);
        let slot =
            match Arc::make_mut(&mut self.shards[at]).entry(hash, |s| s.key == key, slot_hash) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    self.len += 1;
                    let slot = Slot {
                        hash,
                        key,
                        value: Arc::new(make()),
                    };
                    entry.insert(slot).into_mut()
                }
            };
        Arc::make_mut(&mut slot.value)
    }

    /// Sets the value of `key`; returns the one it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if self.len + 1 > self.shards.len() * PER_SHARD {
            if let Some(old) = self.get_mut(&key) {
                return Some(std::mem::replace(old, value));
            }
            self.make_room();
        }
        let hash = self.hash_of(&key);
        let at = self.shard_of(hash);
        match Arc::make_mut(&mut self.shards[at]).entry(hash, |s| s.key == key, slot_hash) {
            Entry::Occupied(mut entry) => Some(std::mem::replace(
                Arc::make_mut(&mut entry.get_mut().value),
                value,
            )),
            Entry::Vacant(entry) => {
                entry.insert(Slot {
                    hash,
                    key,
                    value: Arc::new(value),
                });
                self.len += 1;
                None
            }
        }
    }

    /// Removes the value of `key`, and returns it.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash_of(key);
        let at = self.shard_of(hash);
        self.shards[at].find(hash, |s| s.key.borrow() == key)?;
        let Ok(entry) =
            Arc::make_mut(&mut self.shards[at]).find_entry(hash, |s| s.key.borrow() == key)
        else {
            return None;
        };
        self.len -= 1;
        Some(Arc::unwrap_or_clone(entry.remove().0.value))
    }

    /// Removes the entries `drop` says yes to, and shows each to
    /// `removed`; only shards with an entry to remove are copied. `drop`
    /// may be asked twice about an entry.
    pub fn remove_if(
        &mut self,
        mut drop: impl FnMut(&K, &V) -> bool,
        mut removed: impl FnMut(&K, &V),
    ) {
        for shard in &mut self.shards {
            if !shard.iter().any(|s| drop(&s.key, &s.value)) {
                continue;
            }
            for slot in Arc::make_mut(shard).extract_if(|s| drop(&s.key, &s.value)) {
                self.len -= 1;
                removed(&slot.key, &slot.value);
            }
        }
    }

    /// Changes, with `change`, every entry `wanted` says yes to; only
    /// shards and values with such an entry are copied. `wanted` may be
    /// asked twice about an entry.
    pub fn update_if(
        &mut self,
        mut wanted: impl FnMut(&K, &V) -> bool,
        mut change: impl FnMut(&K, &mut V),
    ) {
        for shard in &mut self.shards {
            if !shard.iter().any(|s| wanted(&s.key, &s.value)) {
                continue;
            }
            for slot in Arc::make_mut(shard).iter_mut() {
                if wanted(&slot.key, &slot.value) {
                    change(&slot.key, Arc::make_mut(&mut slot.value));
                }
            }
        }
    }
}

impl<V: Clone> CowMap<Arc<str>, V> {
    /// [`get_mut`](Self::get_mut) for a key that is most likely the very
    /// allocation the map holds (keys a source interned): the pointers are
    /// compared first, and the text only when they differ.
    pub fn get_mut_shared(&mut self, key: &Arc<str>) -> Option<&mut V> {
        let hash = self.hash_of(&**key);
        self.get_mut_by(hash, |k| Arc::ptr_eq(k, key) || **k == **key)
    }
}

impl<K: Hash + Eq + Clone, V: Clone> FromIterator<(K, V)> for CowMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = CowMap::default();
        for (key, value) in entries {
            map.insert(key, value);
        }
        map
    }
}

impl<K: Serialize, V: Serialize> Serialize for CowMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (key, value) in self.iter() {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de, K, V> Deserialize<'de> for CowMap<K, V>
where
    K: Deserialize<'de> + Hash + Eq + Clone,
    V: Deserialize<'de> + Clone,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<K, V>(PhantomData<(K, V)>);
        impl<'de, K, V> Visitor<'de> for Entries<K, V>
        where
            K: Deserialize<'de> + Hash + Eq + Clone,
            V: Deserialize<'de> + Clone,
        {
            type Value = CowMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
                // The length a damaged checkpoint claims is not trusted
                // beyond what reading it can confirm.
                let claimed = entries.size_hint().unwrap_or(0).min(1 << 20);
                let mut map = CowMap::with_capacity(claimed);
                while let Some((key, value)) = entries.next_entry()? {
                    map.insert(key, value);
                }
                Ok(map)
            }
        }
        deserializer.deserialize_map(Entries(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
        Bump(u16),
        Snapshot,
        RetainEven,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u16..300, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0u16..300).prop_map(Op::Remove),
            (0u16..300).prop_map(Op::Bump),
            Just(Op::Snapshot),
            Just(Op::RetainEven),
        ]
    }

    fn sorted(map: &CowMap<u16, u32>) -> Vec<(u16, u32)> {
        let mut entries: Vec<_> = map.iter().map(|(k, v)| (*k, *v)).collect();
        entries.sort_unstable();
        entries
    }

    proptest! {
        /// The map answers as a `HashMap` given the same changes, and every
        /// snapshot keeps what the map held when it was taken.
        #[test]
        fn it_is_a_map_and_snapshots_do_not_move(ops in proptest::collection::vec(op(), 0..400)) {
            let mut map = CowMap::<u16, u32>::default();
            let mut model = std::collections::BTreeMap::new();
            let mut snapshots = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(map.insert(k, v), model.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(map.remove(&k), model.remove(&k)),
                    Op::Bump(k) => {
                        *map.get_or_insert_with(k, || 0) += 1;
                        *model.entry(k).or_insert(0) += 1;
                        if let Some(v) = map.get_mut(&k) { *v += 1; }
                        *model.get_mut(&k).unwrap() += 1;
                    }
                    Op::Snapshot => {
                        let expected: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
                        snapshots.push((map.clone(), expected));
                    }
                    Op::RetainEven => {
                        map.remove_if(|_, v| *v % 2 != 0, |_, _| {});
                        model.retain(|_, v| *v % 2 == 0);
                    }
                }
                prop_assert_eq!(map.len(), model.len());
            }
            prop_assert_eq!(sorted(&map), model.into_iter().collect::<Vec<_>>());
            for (snapshot, expected) in snapshots {
                prop_assert_eq!(sorted(&snapshot), expected);
            }
        }
    }

    #[test]
    fn a_shared_key_finds_its_entry_by_pointer_or_by_text() {
        let keys: Vec<Arc<str>> = (0..1000).map(|i| Arc::from(format!("k{i}"))).collect();
        let mut map: CowMap<Arc<str>, u32> = keys.iter().cloned().zip(0..).collect();
        let snapshot = map.clone();
        for (i, key) in keys.iter().enumerate() {
            // The map's own allocation, and an equal string made apart.
            *map.get_mut_shared(key).unwrap() += 1;
            let apart: Arc<str> = Arc::from(&**key);
            *map.get_mut_shared(&apart).unwrap() += 1;
            assert_eq!(map.get(&**key), Some(&(i as u32 + 2)));
        }
        assert_eq!(map.get_mut_shared(&Arc::from("k1000")), None);
        assert_eq!(map.len(), 1000);
        assert_eq!(snapshot.get("k7"), Some(&7), "the snapshot is untouched");
    }

    #[test]
    fn it_is_stored_in_the_bytes_of_a_hash_map() {
        let map: CowMap<String, u32> = (0..100).map(|i| (format!("k{i}"), i)).collect();
        let bytes = postcard::to_allocvec(&map).unwrap();
        let read: std::collections::HashMap<String, u32> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(read.len(), 100);
        assert_eq!(read["k42"], 42);
        let back: CowMap<String, u32> =
            postcard::from_bytes(&postcard::to_allocvec(&read).unwrap()).unwrap();
        assert_eq!((back.len(), back.get("k7")), (100, Some(&7)));
    }

    #[test]
    fn a_write_after_a_snapshot_copies_one_shard_and_one_value() {
        let mut map: CowMap<u32, Vec<u32>> = (0..10_000).map(|i| (i, vec![i])).collect();
        assert!(map.shards.len() * PER_SHARD >= 10_000 && map.shards.len() < 10_000 / 4);
        let snapshot = map.clone();
        map.get_mut(&5).unwrap().push(0);
        let shared = map
            .shards
            .iter()
            .zip(snapshot.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert_eq!(
            shared,
            map.shards.len() - 1,
            "one shard copied, the rest shared"
        );
        let at = map.shard_of(map.hash_of(&5u32));
        let values_shared = map.shards[at]
            .iter()
            .zip(snapshot.shards[at].iter())
            .filter(|(a, b)| Arc::ptr_eq(&a.value, &b.value))
            .count();
        assert_eq!(values_shared, map.shards[at].len() - 1, "one value copied");
        assert_eq!(snapshot.get(&5), Some(&vec![5]));
        drop(snapshot);
        let before = Arc::as_ptr(&map.shards[at]);
        map.get_mut(&5).unwrap().push(1);
        assert_eq!(
            Arc::as_ptr(&map.shards[at]),
            before,
            "no snapshot left: written in place"
        );
        assert_eq!(map.get(&5), Some(&vec![5, 0, 1]));
    }
}
