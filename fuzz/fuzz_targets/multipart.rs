//! The simulator's multipart parser on any body split at any two points: it never panics, and
//! the parts it yields (names, file names, content) and whether it saw the end are the same as
//! when the body arrives at once. A form built from the input's own parts (a boundary they do
//! not contain) is read back exactly.
#![no_main]

use dbt_secoda::fuzzing::multipart::{Event, Parser};
use libfuzzer_sys::fuzz_target;

type Parts = Vec<(String, Option<String>, Vec<u8>)>;

fn parse(boundary: &str, chunks: &[&[u8]]) -> Result<(Parts, bool), String> {
    let mut parser = Parser::new(boundary);
    let mut events = Vec::new();
    for chunk in chunks {
        parser.push(chunk, &mut events).map_err(|e| e.to_string())?;
    }
    let mut parts: Parts = Vec::new();
    for event in events {
        match event {
            Event::Start {
                name, file_name, ..
            } => parts.push((name, file_name, Vec::new())),
            Event::Data(data) => parts
                .last_mut()
                .expect("data only inside a part")
                .2
                .extend_from_slice(&data),
            Event::End => {}
        }
    }
    Ok((parts, parser.is_done()))
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let (a, b) = (usize::from(input[0]), usize::from(input[1]));
    let body = &input[2..];
    let (first, second) = (a.min(body.len()), (a + b * 4).min(body.len()));
    let once = parse("XyZ", &[body]);
    let split = parse(
        "XyZ",
        &[&body[..first], &body[first..second], &body[second..]],
    );
    assert_eq!(once.is_ok(), split.is_ok(), "split at {first}, {second}");
    if let (Ok(once), Ok(split)) = (&once, &split) {
        assert_eq!(once, split, "split at {first}, {second}");
    }

    // Round trip: the body's pieces between 0x00 bytes as part contents.
    let boundary = "fuzz-b0undary-7f3c";
    let contents: Vec<&[u8]> = body.split(|b| *b == 0).take(4).collect();
    if contents
        .iter()
        .any(|c| c.windows(boundary.len()).any(|w| w == boundary.as_bytes()))
    {
        return;
    }
    let mut form = Vec::new();
    for (i, content) in contents.iter().enumerate() {
        form.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"p{i}\"; filename=\"p{i}.json\"\r\n\r\n"
            )
            .as_bytes(),
        );
        form.extend_from_slice(content);
        form.extend_from_slice(b"\r\n");
    }
    form.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let cut = first.min(form.len());
    let (parts, done) = parse(boundary, &[&form[..cut], &form[cut..]]).expect("a form we built");
    assert!(done);
    assert_eq!(parts.len(), contents.len());
    for (i, ((name, file, data), content)) in parts.iter().zip(&contents).enumerate() {
        assert_eq!(name, &format!("p{i}"));
        assert_eq!(file.as_deref(), Some(format!("p{i}.json").as_str()));
        assert_eq!(data.as_slice(), *content);
    }
});
