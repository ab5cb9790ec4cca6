//! The CSV import validator on any bytes: it never panics, and reading the file in small pieces
//! gives the same verdict and the same problems as reading it at once.
#![no_main]

use dbt_secoda::fuzzing::csv::validate;
use libfuzzer_sys::fuzz_target;
use trickle::Trickle;

mod trickle;

fn verdict<R: std::io::Read>(input: R) -> String {
    match validate(input) {
        Ok(summary) => format!("ok {summary:?}"),
        Err(problems) => problems.render("f.csv"),
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&step, data)) = input.split_first() else {
        return;
    };
    let whole = verdict(data);
    let chunked = verdict(Trickle {
        data,
        step: usize::from(step % 32) + 1,
    });
    assert_eq!(whole, chunked);
});
