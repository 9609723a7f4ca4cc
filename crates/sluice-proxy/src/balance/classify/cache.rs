//! [`Classifier`]: verdicts cached by statement text.
//!
//! The text is hashed once; the hash picks a shard and is the key inside it
//! (an identity hasher, so the map does not hash again), and the stored text
//! is compared on a hit so a 64-bit collision can never return another
//! statement's verdict. Each shard keeps two generations: new verdicts go
//! into `recent`; when it is full, `recent` becomes `older` and the previous
//! `older` is dropped; a hit in `older` moves the entry back to `recent`.
//! That is LRU-like (hot statements survive, one-off statements age out)
//! with O(1) work and no per-entry bookkeeping, and a shard never holds more
//! than its capacity. Parsing happens outside the lock, so a slow parse
//! never blocks other clients.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{classify, Classification};

/// Shards: enough that 2 to 64 cores rarely meet on one lock.
const SHARDS: usize = 32;

/// Texts longer than this are classified every time: they are usually
/// one-off statements with inline data that would only evict useful entries.
const MAX_CACHED_TEXT: usize = 16 * 1024;

/// A bounded, thread-safe classification cache. Cheap to share (`Arc`).
pub struct Classifier {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// Entries per generation per shard.
    generation_capacity: usize,
}

struct Entry {
    text: Box<str>,
    verdict: Arc<Classification>,
}

type ByHash = HashMap<u64, Entry, BuildHasherDefault<PrehashedKey>>;

#[derive(Default)]
struct Shard {
    recent: ByHash,
    older: ByHash,
}

impl Classifier {
    /// A cache holding at most about `capacity` statements (at least one
    /// per shard).
    pub fn new(capacity: usize) -> Classifier {
        let generation_capacity = (capacity / SHARDS / 2).max(1);
        Classifier {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            generation_capacity,
        }
    }

    /// The verdict for `sql`, from the cache or by parsing it now.
    pub fn classify(&self, sql: &str) -> Arc<Classification> {
        if sql.len() > MAX_CACHED_TEXT {
            return Arc::new(classify(sql));
        }
        let key = cache_key(sql);
        let key = key.as_ref();
        let hash = self.hasher.hash_one(key);
        let shard = &self.shards[(hash >> 59) as usize % SHARDS];
        if let Some(verdict) = self.lookup(&mut lock(shard), hash, key) {
            return verdict;
        }
        let verdict = Arc::new(classify(sql));
        let mut shard = lock(shard);
        if shard.recent.len() >= self.generation_capacity {
            shard.older = std::mem::take(&mut shard.recent);
        }
        // On a 64-bit collision the newer text simply replaces the older.
        shard.recent.insert(
            hash,
            Entry {
                text: key.into(),
                verdict: verdict.clone(),
            },
        );
        verdict
    }

    fn lookup(&self, shard: &mut Shard, hash: u64, sql: &str) -> Option<Arc<Classification>> {
        if let Some(entry) = shard.recent.get(&hash) {
            return (*entry.text == *sql).then(|| entry.verdict.clone());
        }
        let entry = shard.older.remove(&hash)?;
        if *entry.text != *sql {
            return None;
        }
        let verdict = entry.verdict.clone();
        if shard.recent.len() >= self.generation_capacity {
            shard.older = std::mem::take(&mut shard.recent);
        }
        shard.recent.insert(hash, entry);
        Some(verdict)
    }

    /// How many verdicts are cached now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let shard = lock(shard);
                shard.recent.len() + shard.older.len()
            })
            .sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most statements this cache will hold.
    pub fn capacity(&self) -> usize {
        self.generation_capacity * 2 * SHARDS
    }
}

impl Default for Classifier {
    /// 10,000 statements: a few MiB for typical statement lengths.
    fn default() -> Classifier {
        Classifier::new(10_000)
    }
}

/// The text a verdict is cached under. Statements that differ only in
/// numeric literals (`... WHERE aid = 17` / `= 42`, what ORMs and pgbench
/// send without parameters) share one entry: a number never changes where
/// a statement may run. Only texts made of nothing but ASCII keywords,
/// identifiers, operators and numbers are rewritten, so finding the numbers
/// needs no SQL lexer: any quote, `$` (parameters, dollar quoting),
/// backslash, comment (hints live there) or `sluice` (gateway commands,
/// whose values matter) keeps the text as it is. Rewritten keys start with
/// NUL, which no statement text contains, so they never equal a real text.
pub(crate) fn cache_key(sql: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let bytes = sql.as_bytes();
    let plain = bytes
        .iter()
        .all(|&b| b.is_ascii() && !matches!(b, b'\'' | b'"' | b'$' | b'\\' | 0));
    if !plain
        || !bytes.iter().any(u8::is_ascii_digit)
        || sql.contains("--")
        || sql.contains("/*")
        || sql.to_ascii_lowercase().contains("sluice")
    {
        return Cow::Borrowed(sql);
    }
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut key = String::with_capacity(sql.len() + 1);
    key.push('\0');
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let starts_number = b.is_ascii_digit() && (i == 0 || !is_word(bytes[i - 1]));
        if !starts_number {
            key.push(b as char);
            i += 1;
            continue;
        }
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
            let mut j = i + 1;
            if j < bytes.len() && matches!(bytes[j], b'+' | b'-') {
                j += 1;
            }
            if j < bytes.len() && bytes[j].is_ascii_digit() {
                i = j;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
        }
        key.push('0');
    }
    Cow::Owned(key)
}

/// A poisoned lock only means another thread panicked mid-insert; the maps
/// are still valid, so keep serving rather than spreading the panic.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keys are already hashes: pass them through.
#[derive(Default)]
struct PrehashedKey(u64);

impl Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached if a non-u64 key is ever used; stay correct anyway.
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::classify::{PrimaryReason, Route};

    #[test]
    fn repeated_text_is_served_from_the_cache() {
        let classifier = Classifier::new(1000);
        let first = classifier.classify("SELECT 1");
        let second = classifier.classify("SELECT 1");
        assert!(
            Arc::ptr_eq(&first, &second),
            "second lookup should be the cached verdict"
        );
        assert_eq!(first.route, Route::Replica);
        assert_eq!(classifier.len(), 1);
        let write = classifier.classify("INSERT INTO t VALUES (1)");
        assert_eq!(write.route, Route::Primary(PrimaryReason::Write));
        assert_eq!(classifier.len(), 2);
    }

    #[test]
    fn size_stays_bounded_and_hot_entries_survive() {
        let classifier = Classifier::new(SHARDS * 8);
        let hot = classifier.classify("SELECT 'hot'");
        for i in 0..5_000 {
            // Distinct texts (a number inside a name is not a literal).
            classifier.classify(&format!("SELECT c{i}"));
            if i % 10 == 0 {
                // Touching it keeps it young.
                assert!(
                    Arc::ptr_eq(&hot, &classifier.classify("SELECT 'hot'")),
                    "lost at {i}"
                );
            }
            assert!(
                classifier.len() <= classifier.capacity(),
                "{}",
                classifier.len()
            );
        }
        assert!(classifier.len() >= SHARDS, "{}", classifier.len());
        assert_eq!(classifier.capacity(), SHARDS * 8);
    }

    #[test]
    fn texts_differing_only_in_numbers_share_an_entry() {
        let cache = Classifier::new(1000);
        for aid in [1, 42, 99999, 7] {
            let sql = format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid}");
            assert_eq!(*cache.classify(&sql), classify(&sql));
        }
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache_key("SELECT t1.c2 FROM t1 WHERE x = 1.5e-3 LIMIT 10"),
            "\0SELECT t1.c2 FROM t1 WHERE x = 0 LIMIT 0"
        );
        for kept in [
            "SELECT 'a1'",
            "SELECT $1::int + 1",
            "SELECT 1 -- sluice:primary",
            "/* sluice:replica */ SELECT 1",
            "SET sluice.min_lsn = 1",
            "SELECT \"col1\" FROM t WHERE a = 1",
            "SELECT 1 FROM t",
        ] {
            let key = cache_key(kept);
            assert!(
                key == kept || !kept.contains(['\'', '$', '-', '/', '"']),
                "{kept}"
            );
        }
        assert_eq!(cache_key("SELECT 1 FROM t"), "\0SELECT 0 FROM t");
        // Numbers never change the verdict, also where they sit in calls.
        for (a, b) in [
            ("SELECT pg_advisory_lock(1)", "SELECT pg_advisory_lock(2)"),
            ("INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)"),
            (
                "SELECT * FROM t FOR UPDATE LIMIT 1",
                "SELECT * FROM t FOR UPDATE LIMIT 3",
            ),
        ] {
            let cache = Classifier::new(1000);
            assert_eq!(*cache.classify(a), classify(a));
            assert_eq!(*cache.classify(b), classify(b));
            assert_eq!(cache.len(), 1);
        }
    }

    #[test]
    fn long_texts_are_classified_but_not_cached() {
        let classifier = Classifier::new(100);
        let long = format!("SELECT '{}'", "x".repeat(MAX_CACHED_TEXT));
        assert_eq!(classifier.classify(&long).route, Route::Replica);
        assert!(classifier.is_empty());
    }

    #[test]
    fn colliding_hashes_never_mix_verdicts() {
        // Force a collision by inserting under another text's hash.
        let classifier = Classifier::new(100);
        let read = "SELECT now()";
        let hash = classifier.hasher.hash_one(cache_key(read).as_ref());
        let shard = &classifier.shards[(hash >> 59) as usize % SHARDS];
        lock(shard).recent.insert(
            hash,
            Entry {
                text: "DELETE FROM t".into(),
                verdict: Arc::new(classify("DELETE FROM t")),
            },
        );
        assert_eq!(classifier.classify(read).route, Route::Replica);
    }

    #[test]
    fn concurrent_use_agrees_with_uncached_classification() {
        let classifier = Arc::new(Classifier::new(64));
        let texts: Vec<String> = (0..200)
            .map(|i| {
                if i % 3 == 0 {
                    format!("UPDATE t SET a = {i}")
                } else {
                    format!("SELECT {i}")
                }
            })
            .collect();
        std::thread::scope(|scope| {
            for t in 0..4 {
                let classifier = classifier.clone();
                let texts = &texts;
                scope.spawn(move || {
                    for text in texts.iter().skip(t).cycle().take(1000) {
                        assert_eq!(*classifier.classify(text), classify(text), "{text}");
                    }
                });
            }
        });
    }
}
