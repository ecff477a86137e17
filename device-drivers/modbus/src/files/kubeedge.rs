//! KubeEdge devices read by its Modbus mapper: a `kind: Device` whose
//! properties have Modbus visitors (`register`, `offset`, `limit`,
//! `scale`, `isSwap`, `isRegisterSwap`), in the v1alpha2 form
//! (`spec.propertyVisitors[].modbus`) or the v1beta1 form
//! (`spec.properties[].visitors.configData`); and, in the same file, the
//! `kind: DeviceModel` that gives each property its type and access mode.

use std::collections::HashMap;
use std::path::Path;

use serde_norway::Value;

use super::{FileError, flag, number};
use crate::{Point, RawType, ReadWrite, Table};

/// What the model says of a property.
#[derive(Default, Clone)]
struct Property {
    /// `int`, `float`, `double`, `string`, `boolean` (lower case).
    kind: Option<String>,
    writable: bool,
    unit: Option<String>,
}

/// The properties of the model `name` (or of the file's only model when
/// the device names none), by property name, from either API version.
fn model(documents: &[Value], name: Option<&str>) -> HashMap<String, Property> {
    let mut properties = HashMap::new();
    let models: Vec<&Value> = documents
        .iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some("DeviceModel"))
        .collect();
    let named = |m: &&Value| {
        m.get("metadata")
            .and_then(|md| md.get("name"))
            .and_then(Value::as_str)
            == name
    };
    let chosen: Vec<&Value> = match name {
        Some(_) => models.iter().copied().filter(named).collect(),
        None if models.len() == 1 => models,
        None => Vec::new(),
    };
    for m in chosen {
        let Some(list) = m
            .get("spec")
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_sequence)
        else {
            continue;
        };
        for p in list {
            let Some(name) = p.get("name").and_then(Value::as_str) else {
                continue;
            };
            let mut property = Property::default();
            match p.get("type") {
                // v1beta1: `type: INT`, with accessMode and unit beside it.
                Some(Value::String(t)) => {
                    property.kind = Some(t.to_ascii_lowercase());
                    property.writable =
                        p.get("accessMode").and_then(Value::as_str) == Some("ReadWrite");
                    property.unit = p.get("unit").and_then(Value::as_str).map(str::to_owned);
                }
                // v1alpha2: `type: { int: { accessMode, unit } }`.
                Some(Value::Mapping(m)) => {
                    if let Some((Value::String(t), inner)) = m.iter().next() {
                        property.kind = Some(t.to_ascii_lowercase());
                        property.writable =
                            inner.get("accessMode").and_then(Value::as_str) == Some("ReadWrite");
                        property.unit =
                            inner.get("unit").and_then(Value::as_str).map(str::to_owned);
                    }
                }
                _ => {}
            }
            properties.insert(name.to_owned(), property);
        }
    }
    properties
}

/// The points of the device's Modbus visitors, typed by the model its
/// `deviceModelRef` names. A file holds one device: each eddy device has
/// its own profile.
pub(super) fn points(path: &Path, documents: &[Value]) -> Result<Vec<Point>, FileError> {
    let mut points = Vec::new();
    let devices: Vec<&Value> = documents
        .iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some("Device"))
        .collect();
    if devices.len() > 1 {
        return Err(FileError::invalid(
            path,
            format!(
                "{} documents of `kind: Device`; a profile file holds one device (and its model)",
                devices.len()
            ),
        ));
    }
    for device in devices {
        let spec = device.get("spec").unwrap_or(&Value::Null);
        let model_name = spec
            .get("deviceModelRef")
            .and_then(|r| r.get("name"))
            .and_then(Value::as_str);
        let model = model(documents, model_name);
        let mut visitors: Vec<(String, &Value)> = Vec::new();
        if let Some(list) = spec.get("propertyVisitors").and_then(Value::as_sequence) {
            for v in list {
                if let (Some(name), Some(modbus)) = (
                    v.get("propertyName").and_then(Value::as_str),
                    v.get("modbus"),
                ) {
                    visitors.push((name.to_owned(), modbus));
                }
            }
        }
        if let Some(list) = spec.get("properties").and_then(Value::as_sequence) {
            for p in list {
                let visitor = p.get("visitors");
                let protocol = visitor
                    .and_then(|v| v.get("protocolName"))
                    .and_then(Value::as_str);
                if let (Some(name), Some("modbus"), Some(data)) = (
                    p.get("name").and_then(Value::as_str),
                    protocol,
                    visitor.and_then(|v| v.get("configData")),
                ) {
                    visitors.push((name.to_owned(), data));
                }
            }
        }
        for (name, visitor) in visitors {
            let property = model.get(&name).cloned().unwrap_or_default();
            points.push(point(path, name, visitor, &property)?);
        }
    }
    if points.is_empty() {
        return Err(FileError::invalid(
            path,
            "no property of a `kind: Device` has a Modbus visitor",
        ));
    }
    Ok(points)
}

/// One visitor as a point. The register count (`limit`) and the model's
/// type give the raw type: a boolean is a bit; an int of 1, 2 or 4
/// registers is Int16, Int32 or Int64; a float or double of 2 or 4 is
/// Float32 or Float64; a string takes `limit` registers. Without a type in
/// the file, registers are read unsigned. `isSwap` swaps the bytes of each
/// register and `isRegisterSwap` reverses the order of its registers.
fn point(
    path: &Path,
    name: String,
    visitor: &Value,
    property: &Property,
) -> Result<Point, FileError> {
    let fail = |message: String| FileError::invalid(path, format!("property `{name}`: {message}"));
    let table = match visitor.get("register").and_then(Value::as_str) {
        Some("CoilRegister") => Table::Coils,
        Some("DiscreteInputRegister") => Table::DiscreteInputs,
        Some("HoldingRegister") => Table::HoldingRegisters,
        Some("InputRegister") => Table::InputRegisters,
        other => {
            return Err(fail(format!(
                "register {other:?}: CoilRegister, DiscreteInputRegister, HoldingRegister or InputRegister"
            )));
        }
    };
    let address = visitor
        .get("offset")
        .and_then(number)
        .filter(|a| a.fract() == 0.0 && (0.0..=65_535.0).contains(a))
        .ok_or_else(|| fail("offset must be a number from 0 to 65535".into()))?
        as u16;
    let limit = match visitor.get("limit") {
        None | Some(Value::Null) => 1,
        Some(v) => number(v)
            .filter(|n| n.fract() == 0.0 && (1.0..=125.0).contains(n))
            .ok_or_else(|| fail("limit must be 1 to 125".into()))? as u16,
    };
    let kind = property.kind.as_deref();
    let raw_type = if table.is_bits() || kind == Some("boolean") {
        RawType::Bool
    } else {
        match (kind, limit) {
            (Some("string"), _) => RawType::String,
            (Some("int"), 1) => RawType::Int16,
            (Some("int"), 2) => RawType::Int32,
            (Some("int"), 4) => RawType::Int64,
            (Some("float" | "double"), 2) => RawType::Float32,
            (Some("float" | "double"), 4) => RawType::Float64,
            (None, 1) => RawType::Uint16,
            (None, 2) => RawType::Uint32,
            (None, 4) => RawType::Uint64,
            (kind, limit) => {
                return Err(fail(format!(
                    "a {} of {limit} registers cannot be read",
                    kind.unwrap_or("value")
                )));
            }
        }
    };
    // KubeEdge's own examples set the flags on coils too; a bit has no order.
    let swaps = raw_type != RawType::Bool;
    let byte_swap = swaps && flag(visitor.get("isSwap")).unwrap_or(false);
    let word_swap = swaps && flag(visitor.get("isRegisterSwap")).unwrap_or(false);
    let scale = match visitor.get("scale") {
        None | Some(Value::Null) => 1.0,
        Some(v) => number(v).ok_or_else(|| fail("scale is not a number".into()))?,
    };
    Ok(Point {
        name,
        table,
        address,
        raw_type,
        word_swap,
        byte_swap,
        bit: None,
        string_registers: (raw_type == RawType::String).then_some(limit),
        // KubeEdge's mapper reads a scale of 0 as none.
        scale: if scale == 0.0 { 1.0 } else { scale },
        offset: 0.0,
        units: property.unit.clone(),
        read_write: if property.writable {
            ReadWrite::RW
        } else {
            ReadWrite::R
        },
    })
}
