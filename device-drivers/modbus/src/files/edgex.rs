//! EdgeX device profiles (device-modbus): `deviceResources`, each with
//! Modbus `attributes` and value `properties`.

use std::path::Path;

use serde_norway::Value;

use super::{FileError, flag, number};
use crate::{Point, RawType, ReadWrite, Table};

/// The points of an EdgeX device profile. Resources without Modbus
/// attributes (none have a `primaryTable`) are not points and are left out;
/// value transforms eddy does not do (`mask`, `shift`, `base`) are refused
/// rather than ignored.
pub(super) fn points(path: &Path, profile: &Value) -> Result<Vec<Point>, FileError> {
    let Some(resources) = profile.get("deviceResources").and_then(Value::as_sequence) else {
        return Err(FileError::invalid(path, "`deviceResources` is not a list"));
    };
    let mut points = Vec::new();
    for (i, resource) in resources.iter().enumerate() {
        let name = resource
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{}", i + 1), str::to_owned);
        let fail = |message: String| {
            FileError::invalid(path, format!("device resource `{name}`: {message}"))
        };
        let Some(attributes) = resource.get("attributes") else {
            continue;
        };
        let Some(table) = attributes.get("primaryTable") else {
            continue;
        };
        let properties = resource.get("properties").unwrap_or(&Value::Null);
        // EdgeX matches table and type names whatever their case.
        let table = table
            .as_str()
            .map(str::to_ascii_uppercase)
            .and_then(|t| serde_norway::from_value::<Table>(Value::String(t)).ok())
            .ok_or_else(|| {
                fail(format!(
                    "primaryTable {table:?}: COILS, DISCRETES_INPUT, INPUT_REGISTERS or HOLDING_REGISTERS"
                ))
            })?;
        let (address, dotted_bit) = starting_address(attributes.get("startingAddress"))
            .ok_or_else(|| {
                fail("startingAddress must be a register from 0 to 65535, or `register.bit`".into())
            })?;
        // EdgeX reads the value as its rawType when there is one, else as
        // its valueType.
        let raw = attributes
            .get("rawType")
            .or_else(|| properties.get("valueType"))
            .and_then(Value::as_str)
            .ok_or_else(|| fail("neither attributes.rawType nor properties.valueType".into()))?;
        let raw_type = RawType::named(raw)
            .ok_or_else(|| fail(format!("type `{raw}` cannot be read from Modbus registers")))?;
        for unsupported in ["mask", "shift", "base"] {
            if properties.get(unsupported).is_some_and(|v| !v.is_null()) {
                return Err(fail(format!("properties.{unsupported} is not supported")));
            }
        }
        let read_write = match properties.get("readWrite").and_then(Value::as_str) {
            None | Some("R") => ReadWrite::R,
            Some("RW" | "WR") => ReadWrite::RW,
            Some("W") => ReadWrite::W,
            Some(other) => return Err(fail(format!("readWrite `{other}`: R, RW or W"))),
        };
        let scale = match properties.get("scale") {
            None | Some(Value::Null) => 1.0,
            Some(v) => number(v).ok_or_else(|| fail("scale is not a number".into()))?,
        };
        let offset = match properties.get("offset") {
            None | Some(Value::Null) => 0.0,
            Some(v) => number(v).ok_or_else(|| fail("offset is not a number".into()))?,
        };
        let string_registers = match attributes.get("stringRegisterSize") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                number(v)
                    .filter(|n| n.fract() == 0.0 && (1.0..=123.0).contains(n))
                    .ok_or_else(|| fail("stringRegisterSize must be 1 to 123".into()))?
                    as u16,
            ),
        };
        let bit = match attributes.get("bitOffset") {
            None | Some(Value::Null) => dotted_bit,
            Some(v) => Some(
                number(v)
                    .filter(|n| n.fract() == 0.0 && (0.0..=15.0).contains(n))
                    .ok_or_else(|| fail("bitOffset must be 0 to 15".into()))? as u8,
            ),
        };
        // EdgeX applies word and byte order to 32-bit types only.
        let thirty_two = matches!(
            raw_type,
            RawType::Int32 | RawType::Uint32 | RawType::Float32
        );
        points.push(Point {
            name,
            table,
            address,
            raw_type,
            word_swap: thirty_two && flag(attributes.get("isWordSwap")).unwrap_or(false),
            byte_swap: thirty_two && flag(attributes.get("isByteSwap")).unwrap_or(false),
            bit,
            string_registers,
            scale,
            offset,
            units: properties
                .get("units")
                .and_then(Value::as_str)
                .map(str::to_owned),
            read_write,
        });
    }
    Ok(points)
}

/// A `startingAddress`: a register, as a number or a string, or a bit of a
/// register written `register.bit` (compared as text: `10.10` is bit 10).
fn starting_address(value: Option<&Value>) -> Option<(u16, Option<u8>)> {
    let text = match value? {
        Value::Number(n) => {
            let a = n.as_f64()?;
            return (a.fract() == 0.0 && (0.0..=65_535.0).contains(&a)).then_some((a as u16, None));
        }
        Value::String(s) => s.trim().to_owned(),
        _ => return None,
    };
    match text.split_once('.') {
        None => Some((text.parse().ok()?, None)),
        Some((register, bit)) => {
            let bit: u8 = bit.parse().ok()?;
            (bit <= 15).then_some((register.parse().ok()?, Some(bit)))
        }
    }
}
