//! Units and wording shared by every rendering: durations as typed on the command line, byte
//! sizes, counted nouns, and clipping long text.
//!
//! A leaf: it imports nothing from the crate. It does not decide what is printed or where.

use std::fmt::Write;
use std::time::Duration;

use serde::Serializer;

/// Parses `500ms`, `30s`, `10m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: use e.g. 500ms, 30s, 10m or 1h"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is out of range"))
}

/// Like [`parse_duration`], refusing anything shorter than `min`.
pub fn parse_duration_at_least(text: &str, min: Duration) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < min {
        return Err(format!(
            "{text:?} is too short: the least is {}",
            format_duration(min)
        ));
    }
    Ok(d)
}

/// Shows a duration the way it is typed on the command line.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) && ms >= 60_000 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Serializes a duration as seconds with millisecond precision.
pub fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Sizes for people: 512 B, 758.3 KiB, 1.0 GiB.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `n` and the noun, plural unless `n` is 1: "1 test", "3 tests", "2 entities".
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    format!("{n} {}", noun_for(n, noun))
}

/// The noun alone, plural unless `n` is 1.
pub fn noun_for(n: u64, noun: &str) -> String {
    if n == 1 {
        return noun.to_string();
    }
    match noun.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'o', 'u']) => format!("{stem}ies"),
        _ => format!("{noun}s"),
    }
}

/// `text` cut to `max` characters, with "…" when cut.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// `text` safe to print: control characters (an escape sequence that would recolour or clear a
/// terminal, a bell) and the Unicode controls that reorder text shown as `\u{1b}`; line breaks
/// and tabs become spaces. For text that came from a server.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() || bidi => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// `text` on one line (runs of whitespace become one space), cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    clip(&text.split_whitespace().collect::<Vec<_>>().join(" "), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print_as_typed() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("inf").is_err());
        assert!(parse_duration_at_least("0", Duration::from_millis(100)).is_err());
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(200)), "200ms");
    }

    #[test]
    fn sizes_counts_and_clips_read_naturally() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(776_465), "758.3 KiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
        assert_eq!(count(1u64, "test"), "1 test");
        assert_eq!(count(3u64, "test"), "3 tests");
        assert_eq!(count(2u64, "entity"), "2 entities");
        assert_eq!(count(2u64, "key"), "2 keys");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(one_line("a\n  b\tc", 10), "a b c");
        assert_eq!(
            printable("\u{1b}]0;x\u{7}\u{1b}[31mred\nnext\u{202e}"),
            "\\u{1b}]0;x\\u{7}\\u{1b}[31mred next\\u{202e}"
        );
    }
}
