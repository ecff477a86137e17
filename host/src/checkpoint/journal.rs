//! Entries of the ingest journal: what a source read, as it read it.
//!
//! An entry is encoded compactly, since the journal's cost on the data path
//! is the bytes it writes: the source's name, the driver's position after the
//! records (if it has positions), whether the source ended, a table of the
//! field names used, then each record as its key, its time as the difference
//! to the previous one, and its fields as name index and value (the plugin
//! ABI's value encoding).

use std::sync::Arc;

use eddy_abi::decode::{DecodeError, Reader};
use eddy_abi::{Record, encode};
use eddy_driver::Rejected;

/// One poll of one source, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// The source's name.
    pub source: String,
    /// The driver's position after the records, if it has positions.
    pub position: Option<Vec<u8>>,
    /// Whether the source ended with this poll.
    pub ended: bool,
    /// The records, in the order the driver gave them.
    pub records: Vec<Record>,
    /// The source's own watermark after them, for a source that keeps one
    /// (written last, and only then, so older entries read as `None`).
    pub watermark: Option<i64>,
    /// Input the source could not read (dead letters), kept so that a
    /// replay writes them again after a restore has cut the dead-letter
    /// log back.
    pub rejected: Vec<Rejected>,
}

/// Flags of the optional trailing fields (absent in older entries).
const HAS_WATERMARK: u64 = 1;
const HAS_REJECTED: u64 = 2;

impl JournalEntry {
    /// Appends an entry to `out`.
    pub fn encode(
        source: &str,
        position: Option<&[u8]>,
        ended: bool,
        records: &[Record],
        watermark: Option<i64>,
        rejected: &[Rejected],
        out: &mut Vec<u8>,
    ) {
        encode::bytes(source.as_bytes(), out);
        match position {
            Some(position) => {
                encode::varint(1, out);
                encode::bytes(position, out);
            }
            None => encode::varint(0, out),
        }
        encode::varint(u64::from(ended), out);
        // Records of one driver share their names' `Arc`s: a pointer is
        // compared first, the text only when no pointer matches.
        let find = |names: &[&Arc<str>], name: &Arc<str>| {
            names
                .iter()
                .position(|n| Arc::ptr_eq(n, name))
                .or_else(|| names.iter().position(|n| **n == *name))
        };
        let mut names: Vec<&Arc<str>> = Vec::new();
        for record in records {
            for (name, _) in &record.fields {
                if find(&names, name).is_none() {
                    names.push(name);
                }
            }
        }
        encode::varint(names.len() as u64, out);
        for name in &names {
            encode::bytes(name.as_bytes(), out);
        }
        encode::varint(records.len() as u64, out);
        let mut previous = 0i64;
        for record in records {
            encode::bytes(record.key.as_bytes(), out);
            encode::i64(record.time.wrapping_sub(previous), out);
            previous = record.time;
            encode::varint(record.fields.len() as u64, out);
            for (name, value) in &record.fields {
                let index = find(&names, name).unwrap_or_default();
                encode::varint(index as u64, out);
                encode::value(value, out);
            }
        }
        let flags = if watermark.is_some() {
            HAS_WATERMARK
        } else {
            0
        } | if rejected.is_empty() { 0 } else { HAS_REJECTED };
        if flags != 0 {
            encode::varint(flags, out);
        }
        if let Some(watermark) = watermark {
            encode::i64(watermark, out);
        }
        if !rejected.is_empty() {
            encode::varint(rejected.len() as u64, out);
            for r in rejected {
                encode::bytes(r.origin.as_bytes(), out);
                encode::bytes(r.input.as_bytes(), out);
                encode::bytes(r.reason.as_bytes(), out);
            }
        }
    }

    /// Decodes an entry.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let source = reader.str()?.to_owned();
        let position = match reader.varint()? {
            0 => None,
            _ => Some(reader.bytes()?.to_vec()),
        };
        let ended = reader.varint()? != 0;
        let names = (0..reader.count()?)
            .map(|_| reader.str().map(Arc::<str>::from))
            .collect::<Result<Vec<_>, _>>()?;
        let count = reader.count()?;
        let mut records = Vec::with_capacity(count);
        let mut previous = 0i64;
        for _ in 0..count {
            let key = reader.str()?;
            let time = previous.wrapping_add(reader.i64()?);
            previous = time;
            let mut record = Record::new(key, time);
            for _ in 0..reader.count()? {
                let index = reader.varint()? as usize;
                let name = names.get(index).ok_or(DecodeError::Truncated)?.clone();
                record.fields.push((name, reader.value()?.to_owned_value()));
            }
            records.push(record);
        }
        let flags = if reader.is_empty() {
            0
        } else {
            reader.varint()?
        };
        let watermark = if flags & HAS_WATERMARK != 0 {
            Some(reader.i64()?)
        } else {
            None
        };
        let mut rejected = Vec::new();
        if flags & HAS_REJECTED != 0 {
            for _ in 0..reader.count()? {
                rejected.push(Rejected {
                    origin: reader.str()?.to_owned(),
                    input: reader.str()?.to_owned(),
                    reason: reader.str()?.to_owned(),
                });
            }
        }
        Ok(JournalEntry {
            source,
            position,
            ended,
            records,
            watermark,
            rejected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_as_written_and_a_cut_one_is_an_error() {
        let records = [
            Record::new("a", 1).with("v", 2.5).with("ok", true),
            Record::new("b", -3),
        ];
        let mut bytes = Vec::new();
        JournalEntry::encode("ups", Some(b"pos"), true, &records, None, &[], &mut bytes);
        let entry = JournalEntry::decode(&bytes).unwrap();
        assert_eq!(
            entry,
            JournalEntry {
                source: "ups".into(),
                position: Some(b"pos".to_vec()),
                ended: true,
                records: records.to_vec(),
                watermark: None,
                rejected: Vec::new(),
            }
        );
        assert!(JournalEntry::decode(&bytes[..bytes.len() - 1]).is_err());
        // With the source's own watermark and input it could not read: an
        // entry without them (as older entries are) is a prefix.
        let mut with = Vec::new();
        let rejected = [Rejected {
            origin: "racks (topic a/b)".into(),
            input: "{broken".into(),
            reason: "EOF".into(),
        }];
        let watermark = Some(-1_700_000_000_000);
        JournalEntry::encode(
            "ups",
            Some(b"pos"),
            true,
            &records,
            watermark,
            &rejected,
            &mut with,
        );
        assert_eq!(&with[..bytes.len()], &bytes[..]);
        let entry = JournalEntry::decode(&with).unwrap();
        assert_eq!(
            (entry.watermark, entry.rejected),
            (watermark, rejected.to_vec())
        );
        assert!(JournalEntry::decode(&with[..with.len() - 1]).is_err());
    }

    fn value() -> impl proptest::strategy::Strategy<Value = eddy_abi::Value> {
        use eddy_abi::Value;
        use proptest::prelude::*;
        prop_oneof![
            any::<f64>().prop_map(Value::F64),
            any::<i64>().prop_map(Value::I64),
            any::<bool>().prop_map(Value::Bool),
            ".{0,6}".prop_map(|s| Value::Str(s.as_str().into())),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(|b| Value::Bytes(b.into())),
        ]
    }

    /// The bytes of an entry, to compare entries whose floats may be NaN.
    fn bits(entry: &JournalEntry) -> Vec<u8> {
        let mut bytes = Vec::new();
        JournalEntry::encode(
            &entry.source,
            entry.position.as_deref(),
            entry.ended,
            &entry.records,
            entry.watermark,
            &entry.rejected,
            &mut bytes,
        );
        bytes
    }

    proptest::proptest! {
        /// Any entry reads back as written; a damaged one (bytes changed,
        /// cut, added) reads back as an entry or an error, never a panic.
        #[test]
        fn fuzz_journal_entries_read_back_and_damaged_ones_do_no_harm(
            source in ".{0,8}",
            position in proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8)),
            ended in proptest::prelude::any::<bool>(),
            watermark in proptest::option::of(proptest::prelude::any::<i64>()),
            rejected in proptest::collection::vec((".{0,4}", ".{0,6}", ".{0,4}"), 0..3),
            records in proptest::collection::vec(
                (".{0,6}", proptest::prelude::any::<i64>(), proptest::collection::vec(("[a-c]{1,2}", value()), 0..4)),
                0..6,
            ),
            damage in crate::damage::damage(),
        ) {
            let records: Vec<Record> = records
                .into_iter()
                .map(|(key, time, fields)| {
                    fields.into_iter().fold(Record::new(key.as_str(), time), |r, (n, v)| r.with(n.as_str(), v))
                })
                .collect();
            let mut bytes = Vec::new();
            let rejected: Vec<Rejected> = rejected
                .into_iter()
                .map(|(origin, input, reason)| Rejected { origin, input, reason })
                .collect();
            JournalEntry::encode(&source, position.as_deref(), ended, &records, watermark, &rejected, &mut bytes);
            let entry = JournalEntry::decode(&bytes).unwrap();
            proptest::prop_assert_eq!(bits(&entry), bytes.clone());
            proptest::prop_assert_eq!((&entry.source, &entry.position, entry.ended, entry.watermark), (&source, &position, ended, watermark));
            proptest::prop_assert_eq!(&entry.rejected, &rejected);
            let _ = JournalEntry::decode(&crate::damage::apply(bytes, &damage));
        }
    }
}
