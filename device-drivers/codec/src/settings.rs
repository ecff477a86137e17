//! What a source says about how its input becomes records.

use serde::Deserialize;

/// How input is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// JSON: an object is a record, an array of objects several. In files
    /// and streams, one JSON value per line (JSON lines). An object with a
    /// `fields` object is read as eddy writes records (`key`, `time`,
    /// `fields`; `id` and `output` are not fields), so eddy's own output can
    /// be read back, bytes fields (`{"hex": "…"}`) included.
    #[serde(alias = "jsonl")]
    Json,
    /// Comma-separated values: a header row names the columns (or
    /// `csv.columns` does); quoted cells may hold separators, quotes and
    /// line breaks.
    Csv,
    /// The whole payload as one bytes field (`raw_field`), for plugins that
    /// decode it themselves.
    Raw,
}

/// How event times are written in the input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// Milliseconds since the Unix epoch (an integer, or a float, rounded down).
    #[default]
    UnixMs,
    /// Seconds since the Unix epoch (an integer or a float).
    UnixS,
    /// Microseconds since the Unix epoch.
    UnixUs,
    /// Nanoseconds since the Unix epoch.
    UnixNs,
    /// An RFC 3339 timestamp string, e.g. `2026-01-01T00:00:00.250+01:00`.
    Rfc3339,
}

/// One ASCII character, as a setting (a CSV delimiter, a comment mark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsciiChar(u8);

impl AsciiChar {
    /// `c`, if it is ASCII.
    pub fn new(c: char) -> Option<AsciiChar> {
        u8::try_from(c).ok().filter(u8::is_ascii).map(AsciiChar)
    }

    /// The byte.
    pub fn byte(self) -> u8 {
        self.0
    }
}

impl<'de> Deserialize<'de> for AsciiChar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let c = char::deserialize(d)?;
        AsciiChar::new(c).ok_or_else(|| {
            serde::de::Error::custom(format_args!("expected one ASCII character, not {c:?}"))
        })
    }
}

/// `csv = { … }`: options of the CSV format.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// The separator between cells, one ASCII character.
    #[serde(default = "default_delimiter")]
    pub delimiter: AsciiChar,
    /// Column names, for input without a header row. Default: the first row
    /// of a file or connection (of each payload, for messages) names them.
    pub columns: Option<Vec<String>>,
    /// Lines that start with this ASCII character are comments and skipped.
    pub comment: Option<AsciiChar>,
}

impl CsvOptions {
    /// Checks that configured columns name the key and time columns.
    pub fn check_columns(&self, key_field: &str, time_field: &str) -> Result<(), String> {
        let Some(columns) = &self.columns else {
            return Ok(());
        };
        if columns.is_empty() {
            return Err("csv.columns must name at least one column".into());
        }
        for needed in [key_field, time_field] {
            if !needed.is_empty() && !columns.iter().any(|c| c == needed) {
                return Err(format!(
                    "csv.columns has no column `{needed}`; it has {}",
                    columns
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        Ok(())
    }
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: default_delimiter(),
            columns: None,
            comment: None,
        }
    }
}

/// Everything the codec needs to turn input into records. Sources carry
/// these settings in their own table (`format`, `key_field`, `time_field`,
/// `time_format`, `csv`) and build this with [`Decoding::new`].
#[derive(Debug, Clone)]
pub struct Decoding {
    /// The layout.
    pub format: Format,
    /// The member or column holding the record key. When the input has no
    /// such member, the key the source gives (an MQTT topic, say) is used;
    /// without one the input is rejected.
    pub key_field: String,
    /// The member or column holding the event time; empty for the time the
    /// input arrived (Telegraf's convention).
    pub time_field: String,
    /// How that time is written.
    pub time_format: TimeFormat,
    /// CSV options.
    pub csv: CsvOptions,
    /// The field a `raw` payload goes to.
    pub raw_field: String,
    /// JSON: fields picked by JSON Pointer (RFC 6901), `(field, pointer)`;
    /// when given, a record's fields are these and no others. Besides,
    /// `key_field` and `time_field` starting with `/` are pointers too.
    pub json_fields: Vec<(String, String)>,
}

impl Decoding {
    /// Settings with the given format and field names, and defaults otherwise.
    pub fn new(format: Format, key_field: &str, time_field: &str) -> Self {
        Decoding {
            format,
            key_field: key_field.to_owned(),
            time_field: time_field.to_owned(),
            time_format: TimeFormat::default(),
            csv: CsvOptions::default(),
            raw_field: default_raw_field(),
            json_fields: Vec::new(),
        }
    }

    /// With fields picked from JSON by pointer (see [`Decoding::json_fields`]).
    pub fn picking<'a>(
        mut self,
        fields: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Self {
        self.json_fields = fields
            .into_iter()
            .map(|(name, pointer)| (name.clone(), pointer.clone()))
            .collect();
        self
    }

    /// Whether JSON is read through pointers rather than member names.
    pub(crate) fn points(&self) -> bool {
        !self.json_fields.is_empty()
            || self.key_field.starts_with('/')
            || self.time_field.starts_with('/')
    }

    /// Settings as a source's table gives them (its `csv` table, if any).
    pub fn with(
        format: Format,
        key_field: &str,
        time_field: &str,
        time_format: TimeFormat,
        csv: Option<&CsvOptions>,
    ) -> Self {
        Decoding {
            time_format,
            csv: csv.cloned().unwrap_or_default(),
            ..Decoding::new(format, key_field, time_field)
        }
    }

    /// Checks what cannot be checked by the types: says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        self.csv.check_columns(&self.key_field, &self.time_field)?;
        if self.format == Format::Raw && self.raw_field.is_empty() {
            return Err("raw_field must name a field".into());
        }
        if !self.json_fields.is_empty() && self.format != Format::Json {
            return Err("json_fields picks fields from JSON; format is not json".into());
        }
        for (name, pointer) in &self.json_fields {
            if name.is_empty() {
                return Err("json_fields: a field has a name".into());
            }
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(format!(
                    "json_fields.{name}: `{pointer}` is not a JSON Pointer (they start with `/`, e.g. `/env/temperature`)"
                ));
            }
        }
        Ok(())
    }
}

/// The default `key_field`: `key`.
pub fn default_key_field() -> String {
    "key".into()
}

/// The default `time_field`: `time`.
pub fn default_time_field() -> String {
    "time".into()
}

/// The default `raw_field`: `payload`.
pub fn default_raw_field() -> String {
    "payload".into()
}

fn default_delimiter() -> AsciiChar {
    AsciiChar(b',')
}
