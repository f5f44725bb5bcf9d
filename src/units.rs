//! Human sizes and durations on the command line: `--max-frame 1M`,
//! `--timeout 500ms`.

use std::time::Duration;

/// Parses a byte count: `1048576`, `64k`, `64KiB`, `1M`, `1MiB`, `4G`
/// (k/M/G are powers of 1024, as for memory). Must fit 32 bits, the width
/// of the `size` field.
pub fn parse_size(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 1048576, 64k, 1M)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {s:?} (use k, M or G)"
            ));
        }
    };
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    u32::try_from(bytes).map_err(|_| {
        format!("{s:?} is more than 4294967295 bytes, the most a 32-bit size field can say")
    })
}

/// Parses a duration: `3` (seconds), `3s`, `500ms`, `1.5s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 3s, 500ms)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        other => {
            return Err(format!(
                "unknown time unit {other:?} in {s:?} (use ms, s or m)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// `1.234 ms` style.
pub fn micros(us: u64) -> String {
    let mut s = String::new();
    push_micros(&mut s, us);
    s
}

/// [`micros`], appended to `out`.
pub fn push_micros(out: &mut String, us: u64) {
    use std::fmt::Write as _;
    // Integer arithmetic: float formatting with a precision is slow, and
    // this runs for every echo.
    let _ = if us >= 1_000_000 {
        let ms = us.saturating_add(500) / 1000; // rounded to the millisecond
        write!(out, "{}.{:03} s", ms / 1000, ms % 1000)
    } else if us >= 1000 {
        write!(out, "{}.{:03} ms", us / 1000, us % 1000)
    } else {
        write!(out, "{us} µs")
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_microseconds_read_as_people_write_them() {
        assert_eq!(micros(999), "999 µs");
        assert_eq!(micros(1234), "1.234 ms");
        assert_eq!(micros(1_000), "1.000 ms");
        assert_eq!(micros(2_500_400), "2.500 s");
        assert_eq!(micros(2_500_600), "2.501 s");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("4G").unwrap_err().contains("32-bit"));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3h").is_err());
    }
}
