//! The CSV import validator on any bytes: it never panics, and reading the file in small pieces
//! gives the same verdict and the same problems as reading it at once.
#![no_main]

use std::io::Read;

use dbt_secoda::fuzzing::csv::validate;
use libfuzzer_sys::fuzz_target;

struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn verdict<R: Read>(input: R) -> String {
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
