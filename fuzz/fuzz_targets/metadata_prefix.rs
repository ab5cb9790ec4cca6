//! The metadata prefix reader (`artifacts::metadata::read_prefix`) on any bytes, read in chunks
//! of any size: it never panics, gives the same answer however the bytes arrive, and only
//! finds a block in what starts as a JSON object whose first key is "metadata".
#![no_main]

use dbt_secoda::artifacts::metadata::{Prefix, read_prefix};
use libfuzzer_sys::fuzz_target;
use trickle::Trickle;

mod trickle;

fn summary(prefix: &Prefix) -> String {
    match prefix {
        Prefix::Found(meta) => format!("found {meta:?}"),
        Prefix::NotFirst => "not first".into(),
        Prefix::NotJson(e) => format!("not json {e:?}"),
        Prefix::Incomplete => "incomplete".into(),
        Prefix::TooLong => "too long".into(),
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&step, data)) = input.split_first() else {
        return;
    };
    let whole = read_prefix(&mut &data[..]).expect("reading a slice cannot fail");
    let chunked = read_prefix(&mut Trickle {
        data,
        step: usize::from(step % 64) + 1,
    })
    .expect("reading a slice cannot fail");
    assert_eq!(summary(&whole), summary(&chunked));
    if let Prefix::Found(_) = whole {
        let text = String::from_utf8_lossy(data);
        let rest = text.trim_start_matches([' ', '\t', '\n', '\r']);
        let rest = rest
            .strip_prefix('{')
            .expect("a block is found only in an object");
        let rest = rest.trim_start_matches([' ', '\t', '\n', '\r']);
        assert!(rest.starts_with("\"metadata\""), "{text:?}");
    }
});
