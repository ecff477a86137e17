//! A device's points, checked as a whole.

use serde::Deserialize;

use crate::{Point, RawType, Table};

/// Why a profile cannot work. Each names the point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// Two points claim the same register or bit.
    #[error("points `{first}` and `{second}` overlap in {table:?} at address {address}")]
    Overlap {
        /// The first point, in address order.
        first: String,
        /// The point that overlaps it.
        second: String,
        /// The table.
        table: Table,
        /// The first address both claim.
        address: u16,
    },
    /// A point's settings do not fit together.
    #[error("point `{point}`: {reason}")]
    Point {
        /// The point.
        point: String,
        /// What is wrong.
        reason: String,
    },
}

/// A device's points.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Its points; each becomes a field of the device's records.
    pub points: Vec<Point>,
}

impl Profile {
    /// Checks every point, and that no two claim the same register or bit
    /// (bits of one register may be different points).
    pub fn check(&self) -> Result<(), ProfileError> {
        let mut names = std::collections::HashSet::new();
        for p in &self.points {
            check_point(p)?;
            if !names.insert(p.name.as_str()) {
                return Err(ProfileError::Point {
                    point: p.name.clone(),
                    reason: "named twice; a name is one field of the device's records".into(),
                });
            }
        }
        // Profiles hold tens or hundreds of points: every pair is checked.
        for (i, a) in self.points.iter().enumerate() {
            for b in &self.points[i + 1..] {
                let (a_start, b_start) = (u32::from(a.address), u32::from(b.address));
                let (a_end, b_end) = (a_start + u32::from(a.size()), b_start + u32::from(b.size()));
                let intersect = a.table == b.table && a_start < b_end && b_start < a_end;
                let other_bits_of_one_register = a_start == b_start
                    && a.size() == 1
                    && b.size() == 1
                    && a.bit.is_some()
                    && b.bit.is_some()
                    && a.bit != b.bit;
                if intersect && !other_bits_of_one_register {
                    let (first, second) = if a_start <= b_start { (a, b) } else { (b, a) };
                    return Err(ProfileError::Overlap {
                        first: first.name.clone(),
                        second: second.name.clone(),
                        table: a.table,
                        address: a.address.max(b.address),
                    });
                }
            }
        }
        Ok(())
    }
}

fn check_point(p: &Point) -> Result<(), ProfileError> {
    let fail = |reason: String| {
        Err(ProfileError::Point {
            point: p.name.clone(),
            reason,
        })
    };
    if p.table.is_bits() && p.raw_type != RawType::Bool {
        return fail(format!(
            "{:?} holds bits; its rawType must be Bool",
            p.table
        ));
    }
    match (p.raw_type, p.string_registers) {
        (RawType::String, None | Some(0)) => {
            return fail(
                "a String needs stringRegisterSize (registers, two characters each)".into(),
            );
        }
        (RawType::String, Some(_)) => {}
        (other, Some(n)) if n != other.registers(0) => {
            return fail(format!(
                "a {other:?} takes {} registers, not {n}",
                other.registers(0)
            ));
        }
        _ => {}
    }
    if let Some(bit) = p.bit {
        if p.table.is_bits() || p.raw_type != RawType::Bool {
            return fail("bitOffset is for a Bool in a register table".into());
        }
        if bit > 15 {
            return fail(format!("bitOffset {bit}: a register has bits 0 to 15"));
        }
    }
    if (p.word_swap || p.byte_swap) && !p.raw_type.swaps() {
        return fail("isWordSwap and isByteSwap are not for a Bool".into());
    }
    if p.raw_type == RawType::String && p.string_registers.is_some_and(|n| n > 123) {
        return fail("stringRegisterSize is at most 123 (what one write can carry)".into());
    }
    if !p.scale.is_finite() || !p.offset.is_finite() || p.scale == 0.0 {
        return fail("scale must be a finite number other than 0, offset a finite number".into());
    }
    if u32::from(p.address) + u32::from(p.size()) > 65_536 {
        return fail(format!(
            "it ends past the last address (starts at {}, {} registers)",
            p.address,
            p.size()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(points: &str) -> Profile {
        toml::from_str(points).unwrap()
    }

    #[test]
    fn an_edgex_style_profile_reads_and_checks() {
        let p = profile(
            r#"
            [[points]]
            name = "voltage"
            primaryTable = "HOLDING_REGISTERS"
            startingAddress = 0
            rawType = "Float32"
            isWordSwap = true
            units = "V"

            [[points]]
            name = "alarm"
            primaryTable = "HOLDING_REGISTERS"
            startingAddress = 2
            rawType = "Bool"
            bitOffset = 0

            [[points]]
            name = "fault"
            primaryTable = "HOLDING_REGISTERS"
            startingAddress = 2
            rawType = "BOOL"
            bitOffset = 1

            [[points]]
            name = "model"
            primaryTable = "INPUT_REGISTERS"
            startingAddress = 0
            rawType = "String"
            stringRegisterSize = 4

            [[points]]
            name = "running"
            primaryTable = "COILS"
            startingAddress = 0
            rawType = "Bool"
            readWrite = "RW"
            "#,
        );
        assert_eq!(p.check(), Ok(()));
    }

    #[test]
    fn what_cannot_work_is_refused_naming_the_point() {
        let one = |extra: &str| {
            profile(&format!(
                "[[points]]\nname = \"p\"\nprimaryTable = \"HOLDING_REGISTERS\"\nstartingAddress = 10\n{extra}"
            ))
            .check()
            .unwrap_err()
            .to_string()
        };
        let e = one("rawType = \"Float32\"\nstringRegisterSize = 3");
        assert!(
            e.contains("point `p`: a Float32 takes 2 registers, not 3"),
            "{e}"
        );
        let e = one("rawType = \"String\"");
        assert!(e.contains("needs stringRegisterSize"), "{e}");
        let e = one("rawType = \"Bool\"\nisWordSwap = true");
        assert!(e.contains("not for a Bool"), "{e}");
        let e = one("rawType = \"String\"\nstringRegisterSize = 124");
        assert!(e.contains("at most 123"), "{e}");
        let e = one("rawType = \"Bool\"\nbitOffset = 16");
        assert!(e.contains("bits 0 to 15"), "{e}");
        let e = one("rawType = \"Uint16\"\nscale = 0");
        assert!(e.contains("scale"), "{e}");
        assert!(toml::from_str::<Profile>("[[points]]\nname = \"p\"\nprimaryTable = \"HOLDING_REGISTERS\"\nstartingAddress = 0\nrawType = \"Float16\"").is_err());

        let overlap = profile(
            r#"
            [[points]]
            name = "a"
            primaryTable = "HOLDING_REGISTERS"
            startingAddress = 0
            rawType = "Uint32"
            [[points]]
            name = "b"
            primaryTable = "HOLDING_REGISTERS"
            startingAddress = 1
            rawType = "Uint16"
            "#,
        );
        assert_eq!(
            overlap.check(),
            Err(ProfileError::Overlap {
                first: "a".into(),
                second: "b".into(),
                table: Table::HoldingRegisters,
                address: 1
            })
        );
    }
}
