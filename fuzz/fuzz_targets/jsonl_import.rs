//! The JSONL import validators (resources, then lineages against the resources' ids) on any
//! bytes: the input is split at its first 0xFF byte (never valid UTF-8) into a resources file
//! and a lineages file. Neither validator panics, and a problem is always reported with a line.
#![no_main]

use dbt_secoda::fuzzing::jsonl::{Outside, validate_lineages, validate_resources};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let (resources, lineages) = match input.iter().position(|b| *b == 0xFF) {
        Some(at) => (&input[..at], Some(&input[at + 1..])),
        None => (input, None),
    };
    let external = ["shop.sales.orders".to_string()];
    match validate_resources(resources, Outside::Declared(&external)) {
        Ok((summary, known)) => {
            assert_eq!(summary.resources, summary.by_type.values().sum::<u64>());
            if let Some(lineages) = lineages {
                if let Err(problems) = validate_lineages(lineages, &known) {
                    assert!(!problems.is_empty());
                    let _ = problems.render("lineages.jsonl");
                }
            }
        }
        Err(problems) => {
            assert!(!problems.is_empty());
            let _ = problems.render("resources.jsonl");
        }
    }
});
