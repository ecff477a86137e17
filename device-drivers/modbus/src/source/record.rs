//! A device's responses become one record: no I/O here.

use eddy_driver::{Record, Value};

use crate::{Point, PointValue, Request};

/// What one read request brought back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Response {
    /// Registers, from the request's first address on.
    Registers(Vec<u16>),
    /// Bits, from the request's first address on.
    Bits(Vec<bool>),
}

/// A point's value as a record field: integers that fit are integers, an
/// unsigned 64-bit value past `i64::MAX` is a float, as is anything scaled.
pub(crate) fn field(value: PointValue) -> Value {
    match value {
        PointValue::Bool(b) => Value::Bool(b),
        PointValue::Int(i) => i64::try_from(i).map_or(Value::F64(i as f64), Value::I64),
        PointValue::Float(f) => Value::F64(f),
        PointValue::Text(s) => Value::Str(s.into()),
    }
}

/// The record of one poll of `device`, keyed `key`, from the responses to
/// its `requests` in order, at `time_ms`. A response that does not hold
/// what a point takes is an error naming the point: the poll gives no
/// record then.
pub(crate) fn assemble(
    key: &str,
    points: &[Point],
    requests: &[Request],
    responses: &[Response],
    time_ms: i64,
) -> Result<Record, String> {
    let mut record = Record::new(key, time_ms);
    for (request, response) in requests.iter().zip(responses) {
        for &i in &request.points {
            let point = &points[i];
            let skip = usize::from(point.address - request.address);
            let value = match response {
                Response::Registers(words) => {
                    point.decode_registers(words.get(skip..).unwrap_or_default())
                }
                Response::Bits(bits) => point.decode_bits(bits.get(skip..).unwrap_or_default()),
            }
            .map_err(|e| format!("short response: {e}"))?;
            record = record.with(point.name.as_str(), field(value));
        }
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan;

    fn points(text: &str) -> Vec<Point> {
        #[derive(serde::Deserialize)]
        struct P {
            points: Vec<Point>,
        }
        toml::from_str::<P>(text).unwrap().points
    }

    #[test]
    fn a_coalesced_response_is_cut_into_its_points() {
        let points = points(
            r#"
            points = [
              { name = "a", primaryTable = "HOLDING_REGISTERS", startingAddress = 10, rawType = "Int16" },
              { name = "b", primaryTable = "HOLDING_REGISTERS", startingAddress = 11, rawType = "Uint32" },
              { name = "c", primaryTable = "COILS", startingAddress = 3, rawType = "Bool" },
            ]"#,
        );
        let requests = plan(&points, 125, 0);
        assert_eq!(requests.len(), 2);
        // Coils come first in table order.
        let responses = [
            Response::Bits(vec![true]),
            Response::Registers(vec![0xFFFF, 0x0001, 0x0002]),
        ];
        let record = assemble("dev", &points, &requests, &responses, 7).unwrap();
        assert_eq!(record.key.as_ref(), "dev");
        assert_eq!(record.time, 7);
        assert_eq!(record.get("a"), Some(&Value::I64(-1)));
        assert_eq!(record.get("b"), Some(&Value::I64(0x0001_0002)));
        assert_eq!(record.get("c"), Some(&Value::Bool(true)));
    }

    #[test]
    fn a_short_response_gives_no_record() {
        let points = points(
            r#"points = [{ name = "f", primaryTable = "INPUT_REGISTERS", startingAddress = 0, rawType = "Float32" }]"#,
        );
        let requests = plan(&points, 125, 0);
        let error =
            assemble("d", &points, &requests, &[Response::Registers(vec![1])], 0).unwrap_err();
        assert!(error.contains("`f`"), "{error}");
    }

    #[test]
    fn unsigned_values_past_i64_become_floats() {
        assert_eq!(
            field(PointValue::Int(u64::MAX.into())),
            Value::F64(u64::MAX as f64)
        );
        assert_eq!(field(PointValue::Int(5)), Value::I64(5));
    }
}
