//! Device profiles from files users already have: an EdgeX device profile,
//! or a KubeEdge device (with its model) whose properties are read over
//! Modbus. Both become eddy's own [`Point`]s, the form a pipeline file may
//! also write directly.

use std::path::{Path, PathBuf};

use crate::Point;

mod edgex;
mod kubeedge;

/// Why a profile file gives no points.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not YAML, or not the shape expected; with the place if known.
    #[error("{path}{}: {message}", place.map_or(String::new(), |(l, c)| format!(":{l}:{c}")))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Line and column, 1-based.
        place: Option<(usize, usize)>,
        /// What is wrong.
        message: String,
    },
}

impl FileError {
    fn invalid(path: &Path, message: impl Into<String>) -> Self {
        FileError::Invalid {
            path: path.to_owned(),
            place: None,
            message: message.into(),
        }
    }

    fn yaml(path: &Path, e: &serde_norway::Error) -> Self {
        FileError::Invalid {
            path: path.to_owned(),
            place: e.location().map(|l| (l.line(), l.column())),
            message: e.to_string(),
        }
    }
}

/// Reads the points of a profile file, whichever of the two forms it is:
/// an EdgeX device profile has `deviceResources`; KubeEdge documents have
/// `kind: Device` (and `kind: DeviceModel`).
pub fn load(path: &Path) -> Result<Vec<Point>, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// [`load`] from text already read; `path` names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Point>, FileError> {
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value: serde_norway::Value =
            serde::Deserialize::deserialize(document).map_err(|e| FileError::yaml(path, &e))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    if documents.iter().any(|d| d.get("deviceResources").is_some()) {
        let [one] = documents.as_slice() else {
            return Err(FileError::invalid(
                path,
                "an EdgeX device profile is one YAML document",
            ));
        };
        return edgex::points(path, one);
    }
    if documents
        .iter()
        .any(|d| d.get("kind").and_then(|k| k.as_str()) == Some("Device"))
    {
        return kubeedge::points(path, &documents);
    }
    Err(FileError::invalid(
        path,
        "neither an EdgeX device profile (`deviceResources`) nor a KubeEdge `kind: Device`",
    ))
}

/// A number written as a number or as a string (EdgeX writes `scale: "0.1"`).
fn number(value: &serde_norway::Value) -> Option<f64> {
    match value {
        serde_norway::Value::Number(n) => n.as_f64(),
        serde_norway::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A flag written as a boolean or as a string (`"true"`).
fn flag(value: Option<&serde_norway::Value>) -> Option<bool> {
    match value? {
        serde_norway::Value::Bool(b) => Some(*b),
        serde_norway::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RawType, ReadWrite, Table};

    fn example(name: &str) -> Vec<Point> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/profiles")
            .join(name);
        load(&path).unwrap()
    }

    #[test]
    fn an_edgex_profile_loads_as_it_is() {
        let points = example("ups-edgex.yaml");
        let names: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "battery_voltage",
                "load_pct",
                "output_power_w",
                "on_battery",
                "fan_fault",
                "model_name"
            ]
        );
        let voltage = &points[0];
        assert_eq!(voltage.table, Table::InputRegisters);
        assert_eq!(
            voltage.raw_type,
            RawType::Uint16,
            "rawType wins over valueType"
        );
        assert_eq!(voltage.scale, 0.1, "a scale written as a string");
        assert_eq!(voltage.units.as_deref(), Some("V"));
        assert!(points[2].word_swap && !points[2].byte_swap);
        assert_eq!(
            points[3].raw_type,
            RawType::Bool,
            "valueType when there is no rawType"
        );
        assert_eq!(points[3].table, Table::DiscreteInputs);
        assert_eq!(
            (points[4].address, points[4].bit),
            (50, Some(3)),
            "`register.bit`"
        );
        assert_eq!(points[5].string_registers, Some(8));
        assert_eq!(points[5].address, 100);
        crate::Profile { points }.check().unwrap();
    }

    #[test]
    fn a_kubeedge_device_and_model_load_typed_by_the_model() {
        let points = example("crac-kubeedge.yaml");
        let by_name = |n: &str| points.iter().find(|p| p.name == n).unwrap();
        let supply = by_name("supply_temp");
        assert_eq!(supply.table, Table::InputRegisters);
        assert_eq!(supply.raw_type, RawType::Int16, "an int of one register");
        assert_eq!(supply.scale, 0.1);
        assert_eq!(supply.units.as_deref(), Some("degC"));
        assert_eq!(supply.read_write, ReadWrite::R);
        let setpoint = by_name("setpoint");
        assert_eq!(
            (setpoint.table, setpoint.address),
            (Table::HoldingRegisters, 10)
        );
        assert_eq!(setpoint.read_write, ReadWrite::RW);
        let compressor = by_name("compressor_on");
        assert_eq!(
            (compressor.table, compressor.raw_type),
            (Table::Coils, RawType::Bool)
        );
    }

    #[test]
    fn the_v1beta1_form_reads_visitors_from_properties() {
        let text = "apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
spec:
  properties:
    - name: power
      type: FLOAT
      accessMode: ReadOnly
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
spec:
  properties:
    - name: power
      visitors:
        protocolName: modbus
        configData:
          register: InputRegister
          offset: 4
          limit: 2
          isSwap: true
          isRegisterSwap: true
";
        let points = parse(Path::new("device.yaml"), text).unwrap();
        assert_eq!(points.len(), 1);
        let p = &points[0];
        assert_eq!((p.raw_type, p.address), (RawType::Float32, 4));
        assert!(p.byte_swap && p.word_swap);
    }

    #[test]
    fn yaml_errors_name_the_file_line_and_column() {
        let e = parse(Path::new("p.yaml"), "deviceResources:\n  - name: [\n").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("p.yaml:"), "{text}");
        assert!(
            matches!(e, FileError::Invalid { place: Some(_), .. }),
            "{text}"
        );
        let e = parse(Path::new("p.yaml"), "name: x\n").unwrap_err();
        assert!(e.to_string().contains("neither an EdgeX"), "{e}");
        let e = parse(
            Path::new("p.yaml"),
            "deviceResources:\n  - name: r\n    attributes: { primaryTable: HOLDING_REGISTERS, startingAddress: 0, rawType: Int16 }\n    properties: { valueType: Int16, mask: \"0x0F\" }\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("`r`: properties.mask is not supported"),
            "{e}"
        );
    }
}
