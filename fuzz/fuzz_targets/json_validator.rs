//! The streaming JSON validator (`artifacts::scan`) against serde_json, on any bytes split into
//! any chunks: both say "valid" or both say "invalid", and where it fails does not depend on
//! how the bytes arrived. serde_json refuses two things RFC 8259 allows and dbt-secoda accepts
//! on purpose (numbers beyond f64, lone surrogate escapes, which Python writes and reads):
//! those are compared on the rest of the verdict only.
#![no_main]

use dbt_secoda::artifacts::scan::{NoCapture, Scanner, validate};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

/// serde_json's verdict, read into a `Value`: ignoring (`IgnoredAny`) skips strings without
/// checking their UTF-8, which the fuzzer found at once.
fn serde_verdict(data: &[u8]) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_slice(data);
    de.disable_recursion_limit();
    let parsed = serde_json::Value::deserialize(&mut de).map(drop);
    parsed.and_then(|()| de.end()).map_err(|e| e.to_string())
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, data)) = input.split_first() else {
        return;
    };
    let whole = validate(data);

    // Fed in chunks of a size the input picks, the verdict and the place are the same.
    let step = usize::from(split) + 1;
    let mut scanner = Scanner::new(NoCapture);
    let chunked = data
        .chunks(step)
        .try_for_each(|chunk| scanner.feed(chunk))
        .and_then(|()| scanner.finish().map(|_| ()));
    assert_eq!(whole, chunked, "split every {step} bytes");

    match (whole, serde_verdict(data)) {
        (Ok(()), Ok(())) | (Err(_), Err(_)) => {}
        (Ok(()), Err(theirs))
            if theirs.contains("number out of range")
                || theirs.contains("lone leading surrogate")
                || theirs.contains("unexpected end of hex escape")
                || theirs.contains("invalid unicode code point") =>
        {
            // RFC 8259 allows both; serde_json's own limits.
        }
        (ours, theirs) => panic!(
            "the validator says {ours:?}, serde_json {theirs:?}: {:?}",
            String::from_utf8_lossy(data)
        ),
    }
});
