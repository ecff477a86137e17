//! Whole messages (an MQTT payload, a Kafka value) to records.

use std::sync::Arc;

use eddy_abi::{Record, Value};

use crate::csv::{Columns, CsvFraming};
use crate::intern::Interner;
use crate::settings::{Decoding, Format};
use crate::stream::Step;

/// What the source knows about a piece of input besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    /// A key for records whose input names none (the topic an MQTT message
    /// came on, say).
    pub key: Option<&'a str>,
    /// When the input arrived, ms since the Unix epoch: the event time when
    /// `time_field` is empty.
    pub arrival_ms: i64,
}

impl Meta<'_> {
    /// No key, arrived now.
    pub fn now() -> Meta<'static> {
        Meta {
            key: None,
            arrival_ms: now_ms(),
        }
    }
}

/// The wall clock, ms since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Why some input is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DecodeError {
    /// What is wrong, and what was expected.
    pub reason: String,
    /// The input, as text, for the dead-letter log.
    pub input: String,
    /// The line of a file or stream where it starts (1-based), if known.
    pub line: Option<u64>,
}

/// Field names and keys, interned.
#[derive(Debug)]
pub(crate) struct Names {
    fields: Interner,
    keys: Interner,
}

impl Names {
    pub(crate) fn new() -> Self {
        Names {
            fields: Interner::new(4096, true),
            keys: Interner::new(65_536, false),
        }
    }

    pub(crate) fn field(&mut self, name: &str) -> Arc<str> {
        self.fields.get(name)
    }

    pub(crate) fn key(&mut self, key: &str) -> Arc<str> {
        self.keys.get(key)
    }
}

/// Turns messages into records, as its [`Decoding`] says.
///
/// ```
/// use eddy_codec::{Decoder, Decoding, Format, Meta};
///
/// let mut decoder = Decoder::new(Decoding::new(Format::Json, "sensor", "ts")).unwrap();
/// let mut records = Vec::new();
/// decoder.decode(br#"{"sensor": "rack-1", "ts": 1000, "temperature": 24.5}"#, &Meta::now(), &mut records).unwrap();
/// assert_eq!(&*records[0].key, "rack-1");
/// assert_eq!(records[0].get("temperature").and_then(|v| v.as_f64()), Some(24.5));
/// ```
pub struct Decoder {
    settings: Decoding,
    names: Names,
    /// `csv.columns`, when configured.
    columns: Option<Columns>,
}

impl Decoder {
    /// A decoder for these settings; fails when they cannot work.
    pub fn new(settings: Decoding) -> Result<Decoder, String> {
        settings.validate()?;
        let columns = match &settings.csv.columns {
            Some(names) => Some(Columns::new(names.iter().map(String::as_str), &settings)?),
            None => None,
        };
        Ok(Decoder {
            settings,
            names: Names::new(),
            columns,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &Decoding {
        &self.settings
    }

    /// The decoder's shared copy of key `key`: records of one key share one
    /// allocation, whether the key came from a payload or from elsewhere
    /// (an MQTT topic), and later stages compare them by pointer first.
    pub fn intern_key(&mut self, key: &str) -> Arc<str> {
        self.names.key(key)
    }

    /// The decoder's shared copy of field name `name`.
    pub fn intern_name(&mut self, name: &str) -> Arc<str> {
        self.names.field(name)
    }

    /// Decodes one message: a JSON document (an object or an array of
    /// objects), CSV rows (the first row is the header unless `csv.columns`
    /// names the columns), or a raw payload. Records go to `out`; rows that
    /// cannot be read are returned, each with its reason, and do not stop
    /// the others.
    pub fn decode(
        &mut self,
        payload: &[u8],
        meta: &Meta<'_>,
        out: &mut Vec<Record>,
    ) -> Result<(), Vec<DecodeError>> {
        match self.settings.format {
            Format::Json => self
                .json(payload, meta, out)
                .map_err(|reason| vec![error(reason, payload, None)]),
            Format::Raw => {
                out.push(self.raw(payload, meta));
                Ok(())
            }
            Format::Csv => self.csv_message(payload, meta, out),
        }
    }

    /// One JSON document into `out`.
    pub(crate) fn json(
        &mut self,
        bytes: &[u8],
        meta: &Meta<'_>,
        out: &mut Vec<Record>,
    ) -> Result<(), String> {
        crate::json::decode(bytes, &self.settings, &mut self.names, meta, out)
    }

    /// A raw payload as a record.
    pub(crate) fn raw(&mut self, payload: &[u8], meta: &Meta<'_>) -> Record {
        Record {
            key: self.names.key(meta.key.unwrap_or("")),
            time: meta.arrival_ms,
            fields: vec![(
                self.names.field(&self.settings.raw_field),
                Value::Bytes(payload.into()),
            )],
        }
    }

    fn csv_message(
        &mut self,
        payload: &[u8],
        meta: &Meta<'_>,
        out: &mut Vec<Record>,
    ) -> Result<(), Vec<DecodeError>> {
        // Each message is an input of its own: its header comes first.
        let mut csv = CsvFraming::new(&self.settings, self.columns.clone());
        let mut errors = Vec::new();
        let mut rest = payload;
        loop {
            let (step, taken) = csv.next(&self.settings, &mut self.names, rest, true, meta, out);
            rest = &rest[taken..];
            match step {
                Step::Rejected(e) => errors.push(e),
                Step::Fatal(e) => {
                    errors.push(e);
                    break;
                }
                Step::End => break,
                Step::Records(_) | Step::NeedInput => {}
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The settings and the interned names, apart.
    pub(crate) fn parts(&mut self) -> (&Decoding, &mut Names) {
        (&self.settings, &mut self.names)
    }

    pub(crate) fn configured_columns(&self) -> Option<&Columns> {
        self.columns.as_ref()
    }
}

/// A decode error for `input`.
pub(crate) fn error(reason: String, input: &[u8], line: Option<u64>) -> DecodeError {
    DecodeError {
        reason,
        input: String::from_utf8_lossy(input).into_owned(),
        line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(settings: Decoding, payload: &str) -> (Vec<Record>, Vec<DecodeError>) {
        let mut decoder = Decoder::new(settings).unwrap();
        let mut out = Vec::new();
        let meta = Meta {
            key: Some("topic/a"),
            arrival_ms: 77,
        };
        let errors = decoder
            .decode(payload.as_bytes(), &meta, &mut out)
            .err()
            .unwrap_or_default();
        (out, errors)
    }

    #[test]
    fn json_pointers_pick_the_key_time_and_fields_from_nested_documents() {
        let names = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, p)| (n.to_string(), p.to_string()))
                .collect()
        };
        let fields = names(&[
            ("temperature_c", "/env/temp"),
            ("first", "/readings/0"),
            ("escaped", "/a~1b/c~0d"),
            ("absent", "/nothing/here"),
        ]);
        let settings = Decoding::new(Format::Json, "/meta/rack", "/meta/ts")
            .picking(fields.iter().map(|(n, p)| (n, p)));
        settings.validate().unwrap();
        let doc = r#"{"meta":{"rack":"r-7","ts":1700000000000},"env":{"temp":24.5},
                      "readings":[3,4],"a/b":{"c~d":true},"ignored":1}"#;
        let (records, errors) = decode(settings.clone(), doc);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            records,
            [Record::new("r-7", 1_700_000_000_000)
                .with("temperature_c", 24.5)
                .with("first", 3i64)
                .with("escaped", true)]
        );
        // The key falls back to the source's (the topic); a pointer to an
        // object is no field value.
        let (records, errors) = decode(
            settings.clone(),
            r#"[{"meta":{"ts":5},"env":{"temp":1}},{"meta":{"ts":6},"env":{"temp":{"x":1}}}]"#,
        );
        assert!(records.is_empty());
        assert!(errors[0].reason.contains("temperature_c"), "{errors:?}");
        let (records, _) = decode(settings.clone(), r#"{"meta":{"ts":5},"env":{"temp":1}}"#);
        assert_eq!(
            records,
            [Record::new("topic/a", 5).with("temperature_c", 1i64)]
        );
        // A missing time is an error, as with member names.
        let (_, errors) = decode(settings, r#"{"meta":{"rack":"r"}}"#);
        assert!(errors[0].reason.contains("/meta/ts"), "{errors:?}");
        // Only the time by pointer: the other top-level members are fields.
        let time_only = Decoding::new(Format::Json, "k", "/m/t");
        let (records, _) = decode(time_only, r#"{"k":"a","m":{"t":9},"v":2}"#);
        assert_eq!(records, [Record::new("a", 9).with("v", 2i64)]);
        // A pointer is checked.
        let bad = Decoding::new(Format::Json, "k", "t")
            .picking(names(&[("v", "env.temp")]).iter().map(|(n, p)| (n, p)));
        assert!(bad.validate().unwrap_err().contains("JSON Pointer"));
    }

    #[test]
    fn a_json_array_is_several_records_and_a_bad_one_spoils_the_document() {
        let json = Decoding::new(Format::Json, "k", "t");
        let (records, errors) = decode(
            json.clone(),
            r#"[{"k":"a","t":1,"v":1},{"k":"b","t":2,"v":2.5}]"#,
        );
        assert!(errors.is_empty());
        assert_eq!(
            records,
            [
                Record::new("a", 1).with("v", 1i64),
                Record::new("b", 2).with("v", 2.5)
            ]
        );
        let (records, errors) = decode(json, r#"[{"k":"a","t":1},{"k":"b"}]"#);
        assert!(records.is_empty());
        assert!(errors[0].reason.contains("no `t` member"), "{errors:?}");
    }

    #[test]
    fn a_message_without_key_or_time_takes_them_from_the_source() {
        let mut settings = Decoding::new(Format::Json, "key", "");
        settings.time_format = crate::TimeFormat::UnixS;
        let (records, _) = decode(settings, r#"{"v": true}"#);
        assert_eq!(records, [Record::new("topic/a", 77).with("v", true)]);
    }

    #[test]
    fn csv_messages_have_their_own_header_unless_columns_are_given() {
        let (records, errors) = decode(
            Decoding::new(Format::Csv, "key", "time"),
            "time,key,v\n1,a,0.5\n2,b,x\n3,c\n",
        );
        assert_eq!(
            records,
            [
                Record::new("a", 1).with("v", 0.5),
                Record::new("b", 2).with("v", "x")
            ]
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, Some(4));
        assert_eq!(errors[0].input, "3,c");
        let mut settings = Decoding::new(Format::Csv, "", "ts");
        settings.csv.columns = Some(vec!["ts".into(), "v".into()]);
        settings.csv.delimiter = crate::AsciiChar::new(';').unwrap();
        let (records, errors) = decode(settings, "5;1\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(records, [Record::new("topic/a", 5).with("v", 1i64)]);
    }

    #[test]
    fn raw_payloads_are_one_bytes_field() {
        let (records, _) = decode(Decoding::new(Format::Raw, "key", "time"), "\u{1}\u{2}");
        assert_eq!(
            records,
            [Record::new("topic/a", 77).with("payload", Value::Bytes(Arc::from(&[1u8, 2][..])))]
        );
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let mut settings = Decoding::new(Format::Csv, "key", "time");
        settings.csv.columns = Some(vec!["time".into()]);
        assert!(
            Decoder::new(settings)
                .err()
                .unwrap()
                .contains("no column `key`")
        );
        assert!(crate::AsciiChar::new('§').is_none());
    }
}
