//! The record codec: JSON, CSV and raw input to eddy records, and records
//! to JSON lines.
//!
//! Every source that reads bytes uses it, so that a file, a TCP stream, an
//! MQTT payload and a Kafka value with the same settings give the same
//! records. A source carries the settings in its own table (`format`,
//! `key_field`, `time_field`, `time_format`, `csv`) and builds a
//! [`Decoding`] from them; then:
//!
//! - [`StreamDecoder`] reads files and byte streams, fed in whatever pieces
//!   they arrive in: JSON lines, raw lines, or CSV whose quoted cells may
//!   span lines. It reports its [`Position`] after every line or row, so a
//!   file can be read again from a checkpoint. It does no I/O itself.
//! - [`Decoder`] reads whole messages: a JSON document (an object, or an
//!   array of objects), CSV rows, or a raw payload.
//!
//! A piece of input that is not a record comes back as a [`DecodeError`]
//! with the reason and the input as text, for the dead-letter log; the rest
//! is read on. Field names and keys are interned, so records of the same
//! shape share their strings.
//!
//! [`write_json_line`] writes records as eddy's sinks do; the JSON format
//! reads those lines back as the same records (bytes fields included).
//!
//! ```
//! use eddy_codec::{Decoder, Decoding, Format, Meta};
//!
//! let mut csv = Decoding::new(Format::Csv, "device", "ts");
//! csv.time_format = eddy_codec::TimeFormat::Rfc3339;
//! let mut decoder = Decoder::new(csv).unwrap();
//! let mut records = Vec::new();
//! decoder
//!     .decode(b"device,ts,temperature\nups-1,2026-01-01T00:00:00Z,24.5\n", &Meta::now(), &mut records)
//!     .unwrap();
//! assert_eq!(records[0].time, 1_767_225_600_000);
//! ```

#![warn(missing_docs, unreachable_pub)]

mod csv;
mod decoder;
mod intern;
mod json;
mod number;
mod settings;
mod stream;
mod time;

pub use decoder::{DecodeError, Decoder, Meta, now_ms};
pub use json::{JsonRecord, write_json_line, write_json_message};
pub use settings::{
    AsciiChar, CsvOptions, Decoding, Format, TimeFormat, default_key_field, default_raw_field,
    default_time_field,
};
pub use stream::{MAX_ITEM_BYTES, Position, Step, StreamDecoder};
