//! One point of a device, and how its registers or bits become a value.

use serde::Deserialize;

/// The four Modbus tables (EdgeX `primaryTable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Table {
    /// Read-write bits (function 1 to read).
    Coils,
    /// Read-only bits (function 2); EdgeX writes `DISCRETES_INPUT`.
    #[serde(alias = "DISCRETES_INPUT", alias = "DISCRETE_INPUT")]
    DiscreteInputs,
    /// Read-only 16-bit registers (function 4).
    InputRegisters,
    /// Read-write 16-bit registers (function 3).
    HoldingRegisters,
}

impl Table {
    /// Whether it holds bits rather than registers.
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coils | Table::DiscreteInputs)
    }
}

/// How a point's registers are to be read (EdgeX `rawType`; the upper-case
/// names of EdgeX 1.x are taken too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RawType {
    /// A bit of a bit table, or one bit of a register.
    #[serde(alias = "BOOL")]
    Bool,
    /// One register, signed.
    #[serde(alias = "INT16")]
    Int16,
    /// One register, unsigned.
    #[serde(alias = "UINT16")]
    Uint16,
    /// Two registers, signed.
    #[serde(alias = "INT32")]
    Int32,
    /// Two registers, unsigned.
    #[serde(alias = "UINT32")]
    Uint32,
    /// Four registers, signed.
    #[serde(alias = "INT64")]
    Int64,
    /// Four registers, unsigned.
    #[serde(alias = "UINT64")]
    Uint64,
    /// Two registers, IEEE 754 single precision.
    #[serde(alias = "FLOAT32")]
    Float32,
    /// Four registers, IEEE 754 double precision.
    #[serde(alias = "FLOAT64")]
    Float64,
    /// Characters, two a register (`stringRegisterSize` registers).
    #[serde(alias = "STRING")]
    String,
}

impl RawType {
    /// The type an EdgeX `rawType` or `valueType` names, whatever its case.
    pub fn named(name: &str) -> Option<RawType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "bool" => RawType::Bool,
            "int16" => RawType::Int16,
            "uint16" => RawType::Uint16,
            "int32" => RawType::Int32,
            "uint32" => RawType::Uint32,
            "int64" => RawType::Int64,
            "uint64" => RawType::Uint64,
            "float32" => RawType::Float32,
            "float64" => RawType::Float64,
            "string" => RawType::String,
            _ => return None,
        })
    }

    /// Whether word and byte order apply: everything but a bit. The word
    /// order of a one-register value is moot; a 64-bit value's or a
    /// string's registers are reversed as a whole.
    pub fn swaps(self) -> bool {
        self != RawType::Bool
    }

    /// How many registers a value of this type takes (a string: as the
    /// point says).
    pub fn registers(self, string_registers: u16) -> u16 {
        match self {
            RawType::Bool | RawType::Int16 | RawType::Uint16 => 1,
            RawType::Int32 | RawType::Uint32 | RawType::Float32 => 2,
            RawType::Int64 | RawType::Uint64 | RawType::Float64 => 4,
            RawType::String => string_registers,
        }
    }
}

/// A point's value, decoded and scaled.
#[derive(Debug, Clone, PartialEq)]
pub enum PointValue {
    /// A bit.
    Bool(bool),
    /// An integer read without scale or offset.
    Int(i128),
    /// A float, or an integer with a scale or offset.
    Float(f64),
    /// Characters, up to the first NUL.
    Text(String),
}

/// Why a response does not give a point's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer registers or bits than the point takes.
    #[error("point `{point}`: {got} registers or bits, expected {expected}")]
    Short {
        /// The point.
        point: String,
        /// What came.
        got: usize,
        /// What it takes.
        expected: usize,
    },
}

/// Why a value cannot be written to a point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("point `{point}`: {reason}")]
pub struct EncodeError {
    /// The point.
    pub point: String,
    /// Why.
    pub reason: String,
}

/// A value on its way to registers, scale and offset undone.
enum Raw<'a> {
    Int(i128),
    Float(f64),
    Text(&'a [u8]),
}

/// Whether a point may be read, written or both (EdgeX `readWrite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum ReadWrite {
    /// Read only.
    #[default]
    R,
    /// Read and written.
    RW,
    /// Written only.
    W,
}

/// One value of a device: an EdgeX device resource with its Modbus
/// attributes, under EdgeX's names.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Point {
    /// The field name it becomes in the device's records.
    pub name: String,
    /// The table it is in (`primaryTable`).
    #[serde(rename = "primaryTable")]
    pub table: Table,
    /// The address of its first register or bit, 0-based (as EdgeX since
    /// its Ireland release; `startingAddress`).
    #[serde(rename = "startingAddress")]
    pub address: u16,
    /// How its registers are read.
    pub raw_type: RawType,
    /// The low word comes first (`isWordSwap`; EdgeX has it for 32-bit
    /// types, KubeEdge's `isRegisterSwap` for any).
    #[serde(default, rename = "isWordSwap")]
    pub word_swap: bool,
    /// The two bytes of each register are swapped (`isByteSwap`; EdgeX has
    /// it for 32-bit types, KubeEdge's `isSwap` for any).
    #[serde(default, rename = "isByteSwap")]
    pub byte_swap: bool,
    /// `Bool` in a register table: which bit of the register (0 is the
    /// least significant).
    #[serde(default, rename = "bitOffset")]
    pub bit: Option<u8>,
    /// `String`: how many registers it takes (`stringRegisterSize`).
    #[serde(default, rename = "stringRegisterSize")]
    pub string_registers: Option<u16>,
    /// Multiplies the raw value.
    #[serde(default = "one")]
    pub scale: f64,
    /// Added after the scale.
    #[serde(default)]
    pub offset: f64,
    /// The unit, for people reading the profile.
    #[serde(default)]
    pub units: Option<String>,
    /// Whether it is read, written or both.
    #[serde(default)]
    pub read_write: ReadWrite,
}

fn one() -> f64 {
    1.0
}

impl Point {
    /// How many registers (or bits, in a bit table) it takes.
    pub fn size(&self) -> u16 {
        if self.table.is_bits() {
            1
        } else {
            self.raw_type.registers(self.string_registers.unwrap_or(0))
        }
    }

    /// Its value from the registers of a response that start at its address.
    pub fn decode_registers(&self, registers: &[u16]) -> Result<PointValue, DecodeError> {
        // What the type takes, whatever table the point claims to be in.
        let n = usize::from(self.raw_type.registers(self.string_registers.unwrap_or(0)));
        let words = registers.get(..n).ok_or_else(|| DecodeError::Short {
            point: self.name.clone(),
            got: registers.len(),
            expected: n,
        })?;
        let bytes = self.bytes(words);
        let unsigned = |bytes: &[u8]| bytes.iter().fold(0u128, |v, b| (v << 8) | u128::from(*b));
        let value = match self.raw_type {
            RawType::Bool => {
                // A bit past 15 (refused by a profile's check) reads as 0.
                let bit = u32::from(self.bit.unwrap_or(0));
                return Ok(PointValue::Bool(
                    words[0].checked_shr(bit).unwrap_or(0) & 1 == 1,
                ));
            }
            RawType::String => {
                let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
                return Ok(PointValue::Text(
                    String::from_utf8_lossy(&bytes[..end]).into_owned(),
                ));
            }
            RawType::Uint16 | RawType::Uint32 | RawType::Uint64 => {
                PointValue::Int(unsigned(&bytes) as i128)
            }
            RawType::Int16 => PointValue::Int(i128::from(i16::from_be_bytes([bytes[0], bytes[1]]))),
            RawType::Int32 => PointValue::Int(i128::from(i32::from_be_bytes([
                bytes[0], bytes[1], bytes[2], bytes[3],
            ]))),
            RawType::Int64 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&bytes);
                PointValue::Int(i128::from(i64::from_be_bytes(b)))
            }
            RawType::Float32 => PointValue::Float(f64::from(f32::from_be_bytes([
                bytes[0], bytes[1], bytes[2], bytes[3],
            ]))),
            RawType::Float64 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&bytes);
                PointValue::Float(f64::from_be_bytes(b))
            }
        };
        Ok(self.scaled(value))
    }

    /// Its value from the bits of a response that start at its address.
    pub fn decode_bits(&self, bits: &[bool]) -> Result<PointValue, DecodeError> {
        bits.first()
            .map(|b| PointValue::Bool(*b))
            .ok_or_else(|| DecodeError::Short {
                point: self.name.clone(),
                got: 0,
                expected: 1,
            })
    }

    /// The registers' bytes, most significant first, after the swaps the
    /// point asks for.
    fn bytes(&self, words: &[u16]) -> Vec<u8> {
        let swaps = self.raw_type.swaps();
        let mut words = words.to_vec();
        if swaps && self.word_swap {
            words.reverse();
        }
        words
            .iter()
            .flat_map(|w| {
                let b = w.to_be_bytes();
                if swaps && self.byte_swap {
                    [b[1], b[0]]
                } else {
                    b
                }
            })
            .collect()
    }

    /// The registers that hold `value`, in the point's type, word and byte
    /// order, with its scale and offset undone: what writing it sends.
    /// Integers are rounded to the nearest; a value outside the type's
    /// range, or a string longer than the point's registers, is refused.
    pub fn encode_registers(&self, value: &PointValue) -> Result<Vec<u16>, EncodeError> {
        let refuse = |reason: String| EncodeError {
            point: self.name.clone(),
            reason,
        };
        let raw = match value {
            PointValue::Int(i) if self.scale == 1.0 && self.offset == 0.0 => Raw::Int(*i),
            PointValue::Int(i) => Raw::Float((*i as f64 - self.offset) / self.scale),
            PointValue::Float(f) => Raw::Float((f - self.offset) / self.scale),
            PointValue::Bool(b) => Raw::Int(i128::from(*b)),
            PointValue::Text(t) => Raw::Text(t.as_bytes()),
        };
        let int = |raw: &Raw<'_>| -> Result<i128, EncodeError> {
            match *raw {
                Raw::Int(i) => Ok(i),
                Raw::Float(f) if f.is_finite() => Ok(f.round() as i128),
                _ => Err(refuse(format!("{value:?} is not a {:?}", self.raw_type))),
            }
        };
        let in_range = |v: i128, low: i128, high: i128| {
            if (low..=high).contains(&v) {
                Ok(v)
            } else {
                Err(refuse(format!(
                    "{v} is outside what a {:?} holds ({low} to {high})",
                    self.raw_type
                )))
            }
        };
        let bytes: Vec<u8> = match self.raw_type {
            RawType::Bool => {
                let v = in_range(int(&raw)?, 0, 1)?;
                let bit = u32::from(self.bit.unwrap_or(0));
                return Ok(vec![(v as u16) << bit]);
            }
            RawType::Int16 => (in_range(int(&raw)?, i16::MIN.into(), i16::MAX.into())? as i16)
                .to_be_bytes()
                .to_vec(),
            RawType::Uint16 => (in_range(int(&raw)?, 0, u16::MAX.into())? as u16)
                .to_be_bytes()
                .to_vec(),
            RawType::Int32 => (in_range(int(&raw)?, i32::MIN.into(), i32::MAX.into())? as i32)
                .to_be_bytes()
                .to_vec(),
            RawType::Uint32 => (in_range(int(&raw)?, 0, u32::MAX.into())? as u32)
                .to_be_bytes()
                .to_vec(),
            RawType::Int64 => (in_range(int(&raw)?, i64::MIN.into(), i64::MAX.into())? as i64)
                .to_be_bytes()
                .to_vec(),
            RawType::Uint64 => (in_range(int(&raw)?, 0, u64::MAX.into())? as u64)
                .to_be_bytes()
                .to_vec(),
            RawType::Float32 | RawType::Float64 => {
                let f = match raw {
                    Raw::Int(i) => i as f64,
                    Raw::Float(f) => f,
                    Raw::Text(_) => {
                        return Err(refuse(format!("{value:?} is not a number")));
                    }
                };
                if self.raw_type == RawType::Float32 {
                    (f as f32).to_be_bytes().to_vec()
                } else {
                    f.to_be_bytes().to_vec()
                }
            }
            RawType::String => {
                let Raw::Text(text) = raw else {
                    return Err(refuse(format!("{value:?} is not a string")));
                };
                let room = usize::from(self.string_registers.unwrap_or(0)) * 2;
                if text.len() > room {
                    return Err(refuse(format!(
                        "{} bytes do not fit in {room} bytes",
                        text.len()
                    )));
                }
                let mut b = text.to_vec();
                b.resize(room, 0);
                b
            }
        };
        // The swaps are their own inverse: lay the bytes out as a device
        // with this order would, by the same rule `bytes` reads them with.
        let words: Vec<u16> = bytes
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        let swaps = self.raw_type.swaps();
        let mut words: Vec<u16> = if swaps && self.byte_swap {
            words.iter().map(|w| w.swap_bytes()).collect()
        } else {
            words
        };
        if swaps && self.word_swap {
            words.reverse();
        }
        Ok(words)
    }

    /// The value with scale and offset applied, if it has any.
    fn scaled(&self, value: PointValue) -> PointValue {
        if self.scale == 1.0 && self.offset == 0.0 {
            return value;
        }
        match value {
            PointValue::Int(v) => PointValue::Float(self.scale_int(v) + self.offset),
            PointValue::Float(v) => PointValue::Float(v * self.scale + self.offset),
            other => other,
        }
    }

    /// An integer times the scale. A decimal scale (0.1, 0.01, 0.5) divides
    /// by its whole inverse instead, which gives the double nearest the
    /// decimal value (234 at 0.1 is 23.4, not 23.400000000000002): what
    /// the device means, and what a setpoint written as 23.4 reads back as.
    fn scale_int(&self, v: i128) -> f64 {
        let inverse = 1.0 / self.scale;
        if self.scale.abs() < 1.0 && (inverse - inverse.round()).abs() < 1e-9 * inverse.abs() {
            v as f64 / inverse.round()
        } else {
            v as f64 * self.scale
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(raw_type: RawType, word_swap: bool, byte_swap: bool) -> Point {
        Point {
            name: "p".into(),
            table: Table::HoldingRegisters,
            address: 0,
            raw_type,
            word_swap,
            byte_swap,
            bit: None,
            string_registers: Some(3),
            scale: 1.0,
            offset: 0.0,
            units: None,
            read_write: ReadWrite::R,
        }
    }

    /// Registers as a device lays out `bytes` (most significant first),
    /// with the given word and byte order: computed here from the bytes,
    /// not by the decoder.
    fn laid_out(bytes: &[u8], word_swap: bool, byte_swap: bool) -> Vec<u16> {
        let mut words: Vec<[u8; 2]> = bytes.chunks(2).map(|c| [c[0], c[1]]).collect();
        if word_swap {
            words.reverse();
        }
        words
            .into_iter()
            .map(|[a, b]| {
                if byte_swap {
                    u16::from_be_bytes([b, a])
                } else {
                    u16::from_be_bytes([a, b])
                }
            })
            .collect()
    }

    #[test]
    fn every_32_bit_order_reads_back() {
        for (word_swap, byte_swap) in [(false, false), (true, false), (false, true), (true, true)] {
            let regs = laid_out(&(-123_456_789i32).to_be_bytes(), word_swap, byte_swap);
            assert_eq!(
                point(RawType::Int32, word_swap, byte_swap).decode_registers(&regs),
                Ok(PointValue::Int(-123_456_789))
            );
            let regs = laid_out(&3_000_000_000u32.to_be_bytes(), word_swap, byte_swap);
            assert_eq!(
                point(RawType::Uint32, word_swap, byte_swap).decode_registers(&regs),
                Ok(PointValue::Int(3_000_000_000))
            );
            let regs = laid_out(&(-1.5f32).to_be_bytes(), word_swap, byte_swap);
            assert_eq!(
                point(RawType::Float32, word_swap, byte_swap).decode_registers(&regs),
                Ok(PointValue::Float(-1.5))
            );
        }
        // The familiar example: 0x4148 0x0000 is 12.5 as ABCD; CDAB reads
        // the same registers sent low word first.
        assert_eq!(
            point(RawType::Float32, false, false).decode_registers(&[0x4148, 0x0000]),
            Ok(PointValue::Float(12.5))
        );
        assert_eq!(
            point(RawType::Float32, true, false).decode_registers(&[0x0000, 0x4148]),
            Ok(PointValue::Float(12.5))
        );
    }

    #[test]
    fn sixteen_and_sixty_four_bits_strings_bits_and_scale() {
        assert_eq!(
            point(RawType::Int16, false, false).decode_registers(&[0xFF38]),
            Ok(PointValue::Int(-200))
        );
        assert_eq!(
            point(RawType::Uint16, false, false).decode_registers(&[0xFF38]),
            Ok(PointValue::Int(65336))
        );
        let regs = laid_out(&u64::MAX.to_be_bytes(), false, false);
        assert_eq!(
            point(RawType::Uint64, false, false).decode_registers(&regs),
            Ok(PointValue::Int(i128::from(u64::MAX)))
        );
        let regs = laid_out(&(-2i64).to_be_bytes(), false, false);
        assert_eq!(
            point(RawType::Int64, false, false).decode_registers(&regs),
            Ok(PointValue::Int(-2))
        );
        let regs = laid_out(&std::f64::consts::PI.to_be_bytes(), false, false);
        assert_eq!(
            point(RawType::Float64, false, false).decode_registers(&regs),
            Ok(PointValue::Float(std::f64::consts::PI))
        );
        assert_eq!(
            point(RawType::String, false, false).decode_registers(&laid_out(
                b"UPS\0\0\0",
                false,
                false
            )),
            Ok(PointValue::Text("UPS".into()))
        );
        let mut bit = point(RawType::Bool, false, false);
        bit.bit = Some(3);
        assert_eq!(bit.decode_registers(&[0b1000]), Ok(PointValue::Bool(true)));
        assert_eq!(bit.decode_registers(&[0b0111]), Ok(PointValue::Bool(false)));
        let mut volts = point(RawType::Uint16, false, false);
        volts.scale = 0.1;
        volts.offset = -1.0;
        assert_eq!(
            volts.decode_registers(&[2305]),
            Ok(PointValue::Float(229.5))
        );
        // Decimal scales give the decimal value: 234 at 0.1 is 23.4.
        volts.offset = 0.0;
        assert_eq!(volts.decode_registers(&[234]), Ok(PointValue::Float(23.4)));
        volts.scale = 0.01;
        assert_eq!(
            volts.decode_registers(&[2301]),
            Ok(PointValue::Float(23.01))
        );
        volts.scale = 2.5;
        assert_eq!(volts.decode_registers(&[3]), Ok(PointValue::Float(7.5)));
        assert!(matches!(
            point(RawType::Float64, false, false).decode_registers(&[1, 2]),
            Err(DecodeError::Short {
                got: 2,
                expected: 4,
                ..
            })
        ));
    }

    #[test]
    fn encoding_lays_values_out_as_the_device_reads_them() {
        for (word_swap, byte_swap) in [(false, false), (true, false), (false, true), (true, true)] {
            let p = point(RawType::Int32, word_swap, byte_swap);
            assert_eq!(
                p.encode_registers(&PointValue::Int(-123_456_789)),
                Ok(laid_out(
                    &(-123_456_789i32).to_be_bytes(),
                    word_swap,
                    byte_swap
                ))
            );
            let p = point(RawType::Float32, word_swap, byte_swap);
            assert_eq!(
                p.encode_registers(&PointValue::Float(21.5)),
                Ok(laid_out(&21.5f32.to_be_bytes(), word_swap, byte_swap))
            );
        }
        let p = point(RawType::Float64, false, false);
        assert_eq!(
            p.encode_registers(&PointValue::Float(-1.25)),
            Ok(laid_out(&(-1.25f64).to_be_bytes(), false, false))
        );
        let p = point(RawType::String, false, false);
        assert_eq!(
            p.encode_registers(&PointValue::Text("ab".into())),
            Ok(vec![0x6162, 0, 0])
        );
        assert!(
            p.encode_registers(&PointValue::Text("abcdefg".into()))
                .is_err()
        );
    }

    #[test]
    fn a_scaled_setpoint_is_written_raw_and_refused_out_of_range() {
        let mut p = point(RawType::Int16, false, false);
        p.scale = 0.1;
        p.offset = -40.0;
        // 21.5 = raw * 0.1 - 40, so raw = 615.
        assert_eq!(p.encode_registers(&PointValue::Float(21.5)), Ok(vec![615]));
        assert_eq!(
            p.decode_registers(&[615]).map(|v| match v {
                PointValue::Float(f) => (f * 10.0).round() / 10.0,
                _ => f64::NAN,
            }),
            Ok(21.5)
        );
        assert!(p.encode_registers(&PointValue::Float(4000.0)).is_err());
        let u = point(RawType::Uint16, false, false);
        assert!(u.encode_registers(&PointValue::Int(-1)).is_err());
        assert_eq!(
            u.encode_registers(&PointValue::Int(65_535)),
            Ok(vec![0xFFFF])
        );
    }

    #[test]
    fn sixteen_and_sixty_four_bit_values_take_swaps_too() {
        let p = point(RawType::Int16, false, true);
        let regs = laid_out(&(-2i16).to_be_bytes(), false, true);
        assert_eq!(p.decode_registers(&regs), Ok(PointValue::Int(-2)));
        assert_eq!(p.encode_registers(&PointValue::Int(-2)), Ok(regs));
        let p = point(RawType::Int64, true, false);
        let regs = laid_out(&(-1_234_567_890_123i64).to_be_bytes(), true, false);
        assert_eq!(
            p.decode_registers(&regs),
            Ok(PointValue::Int(-1_234_567_890_123))
        );
        assert_eq!(
            p.encode_registers(&PointValue::Int(-1_234_567_890_123)),
            Ok(regs)
        );
    }
}
