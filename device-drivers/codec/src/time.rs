//! Event times as the input writes them, to milliseconds since the Unix epoch.

use crate::number::parse_i64;
use crate::settings::TimeFormat;

/// A time from an integer in the input.
pub(crate) fn from_i64(v: i64, format: TimeFormat) -> Result<i64, String> {
    match format {
        TimeFormat::UnixMs => Ok(v),
        TimeFormat::UnixS => v
            .checked_mul(1000)
            .ok_or_else(|| format!("{v} s is out of range")),
        TimeFormat::UnixUs => Ok(v.div_euclid(1000)),
        TimeFormat::UnixNs => Ok(v.div_euclid(1_000_000)),
        TimeFormat::Rfc3339 => Err(format!(
            "expected an RFC 3339 timestamp string, found the number {v}"
        )),
    }
}

/// A time from a float in the input (rounded down to the millisecond).
pub(crate) fn from_f64(v: f64, format: TimeFormat) -> Result<i64, String> {
    let ms = match format {
        TimeFormat::UnixMs => v,
        TimeFormat::UnixS => v * 1e3,
        TimeFormat::UnixUs => v / 1e3,
        TimeFormat::UnixNs => v / 1e6,
        TimeFormat::Rfc3339 => {
            return Err(format!(
                "expected an RFC 3339 timestamp string, found the number {v}"
            ));
        }
    }
    .floor();
    // i64::MAX as f64 rounds up to 2^63, which is out of range itself.
    if ms.is_finite() && ms >= i64::MIN as f64 && ms < i64::MAX as f64 {
        Ok(ms as i64)
    } else {
        Err(format!("time {v} is out of range"))
    }
}

/// A time from a string in the input: digits for the `unix_*` formats, a
/// timestamp for `rfc3339`.
pub(crate) fn from_str(s: &str, format: TimeFormat) -> Result<i64, String> {
    if format == TimeFormat::Rfc3339 {
        return rfc3339(s).ok_or_else(|| {
            format!("expected an RFC 3339 timestamp such as 2026-01-01T00:00:00Z, found {s:?}")
        });
    }
    // Most times are plain digits, read without `str::parse`'s generality.
    if let Some(i) = parse_i64(s.trim_ascii().as_bytes()) {
        return from_i64(i, format);
    }
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return from_i64(i, format);
    }
    match t.parse::<f64>() {
        Ok(f) => from_f64(f, format),
        Err(_) => Err(format!(
            "expected a number of {} since the Unix epoch, found {s:?}",
            unit(format)
        )),
    }
}

fn unit(format: TimeFormat) -> &'static str {
    match format {
        TimeFormat::UnixMs => "milliseconds",
        TimeFormat::UnixS => "seconds",
        TimeFormat::UnixUs => "microseconds",
        TimeFormat::UnixNs => "nanoseconds",
        TimeFormat::Rfc3339 => "RFC 3339",
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (a space or `t` may
/// stand for `T`, `z` for `Z`); milliseconds since the Unix epoch.
fn rfc3339(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0i64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // 60 is a leap second, counted as the next second's first instant.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                ms = ms * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            ms *= 10;
        }
    }
    let offset_minutes = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |d: &u8| d.is_ascii_digit().then(|| i64::from(d - b'0'));
            let minutes = (digit(h1)? * 10 + digit(h2)?) * 60 + digit(m1)? * 10 + digit(m2)?;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + ms)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps_with_offsets_and_fractions() {
        // 2026-01-01T00:00:00Z is 1767225600 s after the epoch (date -d @1767225600).
        assert_eq!(rfc3339("2026-01-01T00:00:00Z"), Some(1_767_225_600_000));
        assert_eq!(
            rfc3339("2026-01-01T01:00:00.25+01:00"),
            Some(1_767_225_600_250)
        );
        assert_eq!(
            rfc3339("2025-12-31 19:00:00.123456-05:00"),
            Some(1_767_225_600_123)
        );
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339("1969-12-31T23:59:59.999Z"), Some(-1));
        assert_eq!(rfc3339("2024-02-29T12:00:00Z"), Some(1_709_208_000_000));
        for bad in [
            "2023-02-29T12:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00.Z",
            "yesterday",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn unix_times_in_every_unit() {
        assert_eq!(
            from_i64(1_767_225_600, TimeFormat::UnixS),
            Ok(1_767_225_600_000)
        );
        assert_eq!(
            from_f64(1_767_225_600.5, TimeFormat::UnixS),
            Ok(1_767_225_600_500)
        );
        assert_eq!(
            from_i64(1_767_225_600_123_456, TimeFormat::UnixUs),
            Ok(1_767_225_600_123)
        );
        assert_eq!(from_i64(-1, TimeFormat::UnixNs), Ok(-1));
        assert_eq!(
            from_str(" 1767225600000 ", TimeFormat::UnixMs),
            Ok(1_767_225_600_000)
        );
        assert!(from_i64(i64::MAX, TimeFormat::UnixS).is_err());
        assert!(from_f64(f64::NAN, TimeFormat::UnixMs).is_err());
        assert!(from_f64(1e30, TimeFormat::UnixMs).is_err());
        assert!(
            from_str("soon", TimeFormat::UnixMs)
                .unwrap_err()
                .contains("milliseconds")
        );
    }

    proptest::proptest! {
        #[test]
        fn integer_times_read_as_std_reads_them(text in "[-+ ]?[0-9]{0,21}[ x]?") {
            let std = text.trim_ascii().parse::<i64>().ok();
            if let Some(i) = parse_i64(text.trim_ascii().as_bytes()) {
                proptest::prop_assert_eq!(Some(i), std);
            }
            // What reading the text with `str::parse` alone gives.
            let by_parse = match text.trim().parse::<i64>() {
                Ok(i) => from_i64(i, TimeFormat::UnixMs),
                Err(_) => text
                    .trim()
                    .parse::<f64>()
                    .map_err(|e| e.to_string())
                    .and_then(|f| from_f64(f, TimeFormat::UnixMs)),
            };
            proptest::prop_assert_eq!(from_str(&text, TimeFormat::UnixMs).ok(), by_parse.ok());
        }
    }
}
