//! A streaming multipart/form-data parser for the simulator's upload endpoints.
//!
//! Takes body chunks as they arrive and yields part starts, part data and part ends, keeping at
//! most one delimiter's length of bytes back. It does not know what the parts hold.

use bytes::{Buf, Bytes, BytesMut};

/// What the parser found.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Start {
        name: String,
        file_name: Option<String>,
        content_type: Option<String>,
    },
    Data(Bytes),
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for the first delimiter.
    Preamble,
    /// Right after a delimiter: `\r\n` (a part follows) or `--` (the end).
    AfterDelimiter,
    Headers,
    Body,
    Done,
}

/// The body is not multipart/form-data as declared.
#[derive(Debug, thiserror::Error)]
#[error("multipart form parse error: {0}")]
pub struct MultipartError(pub String);

pub struct Parser {
    delimiter: Vec<u8>,
    state: State,
    buf: BytesMut,
}

impl Parser {
    pub fn new(boundary: &str) -> Parser {
        let mut buf = BytesMut::new();
        // The first delimiter has no CRLF before it; adding one makes every delimiter alike.
        buf.extend_from_slice(b"\r\n");
        Parser {
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            state: State::Preamble,
            buf,
        }
    }

    /// The boundary from a `multipart/form-data; boundary=...` content type.
    pub fn boundary(content_type: &str) -> Option<String> {
        let (mime, params) = content_type.split_once(';')?;
        if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
            return None;
        }
        params.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k.trim().eq_ignore_ascii_case("boundary"))
                .then(|| v.trim().trim_matches('"').to_string())
        })
    }

    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), MultipartError> {
        self.buf.extend_from_slice(chunk);
        loop {
            match self.state {
                State::Preamble | State::Body => {
                    match memchr::memmem::find(&self.buf, &self.delimiter) {
                        Some(at) => {
                            let data = self.buf.split_to(at).freeze();
                            if self.state == State::Body {
                                if !data.is_empty() {
                                    out.push(Event::Data(data));
                                }
                                out.push(Event::End);
                            }
                            self.buf.advance(self.delimiter.len());
                            self.state = State::AfterDelimiter;
                        }
                        None => {
                            let keep = self.delimiter.len() - 1;
                            if self.buf.len() > keep {
                                let data = self.buf.split_to(self.buf.len() - keep).freeze();
                                if self.state == State::Body {
                                    out.push(Event::Data(data));
                                }
                            }
                            return Ok(());
                        }
                    }
                }
                State::AfterDelimiter => {
                    if self.buf.len() < 2 {
                        return Ok(());
                    }
                    match &self.buf[..2] {
                        b"\r\n" => {
                            self.buf.advance(2);
                            self.state = State::Headers;
                        }
                        b"--" => {
                            self.state = State::Done;
                            self.buf.clear();
                            return Ok(());
                        }
                        _ => {
                            return Err(MultipartError(
                                "a boundary is followed by neither CRLF nor --".into(),
                            ));
                        }
                    }
                }
                State::Headers => {
                    let Some(end) = memchr::memmem::find(&self.buf, b"\r\n\r\n") else {
                        if self.buf.len() > 16 * 1024 {
                            return Err(MultipartError("part headers longer than 16 KiB".into()));
                        }
                        return Ok(());
                    };
                    let headers = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                    self.buf.advance(end + 4);
                    let (name, file_name) = disposition(&headers).ok_or_else(|| {
                        MultipartError("a part has no Content-Disposition name".into())
                    })?;
                    let content_type = headers.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim()
                            .eq_ignore_ascii_case("content-type")
                            .then(|| v.trim().to_string())
                    });
                    out.push(Event::Start {
                        name,
                        file_name,
                        content_type,
                    });
                    self.state = State::Body;
                }
                State::Done => {
                    self.buf.clear();
                    return Ok(());
                }
            }
        }
    }

    /// Whether the closing boundary was seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }
}

/// `name` and `filename` from a part's Content-Disposition header.
fn disposition(headers: &str) -> Option<(String, Option<String>)> {
    let line = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
    let param = |key: &str| {
        line.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
    };
    Some((param("name")?, param("filename")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parts_split_anywhere() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"; filename=\"a.json\"\r\nContent-Type: application/json\r\n\r\n{\"x\": 1}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nvalue\r\n--XyZ--\r\n";
        for split in 0..body.len() {
            let mut parser = Parser::new("XyZ");
            let mut events = Vec::new();
            parser.push(&body[..split], &mut events).unwrap();
            parser.push(&body[split..], &mut events).unwrap();
            assert!(parser.is_done());
            let mut parts: Vec<(String, Vec<u8>)> = Vec::new();
            for e in events {
                match e {
                    Event::Start { name, .. } => parts.push((name, Vec::new())),
                    Event::Data(d) => parts.last_mut().unwrap().1.extend_from_slice(&d),
                    Event::End => {}
                }
            }
            assert_eq!(
                parts,
                vec![
                    ("a".into(), b"{\"x\": 1}".to_vec()),
                    ("b".into(), b"value".to_vec())
                ],
                "split {split}"
            );
        }
        assert_eq!(
            Parser::boundary("multipart/form-data; boundary=\"abc\""),
            Some("abc".into())
        );
        assert_eq!(Parser::boundary("application/json"), None);
    }
}
