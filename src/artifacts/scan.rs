//! A streaming JSON validator that can pick a few strings out as it goes.
//!
//! It owns one job: decide, in constant memory and at close to memory speed, whether a byte
//! stream is one complete JSON document (RFC 8259: grammar, string escapes, UTF-8), while the
//! bytes are on their way somewhere else (the upload body, the simulator's receiver, a sha256).
//! A [`Visitor`] sees object keys and may ask for the string values under chosen keys; that is how
//! file paths and test targets are read out of a manifest without parsing it into memory.
//! It does not build values, decode numbers, or know anything about dbt.

use std::fmt;

/// Deepest nesting accepted. dbt artifacts nest about 10 levels; the cap keeps memory constant
/// on hostile input.
const MAX_DEPTH: usize = 1024;
/// Longest key or captured string kept; longer ones are reported as not captured.
const MAX_CAPTURE: usize = 64 * 1024;

/// Receives object keys and the captured string values of one scan.
pub trait Visitor {
    /// Whether keys at `depth` may interest [`Visitor::key`]; false skips the call entirely.
    /// Called for every key, so it must be cheap.
    #[inline(always)]
    fn wants_keys(&self, _depth: usize) -> bool {
        true
    }
    /// An object key at `depth` (1 = keys of the top-level object), raw (escapes not decoded).
    /// Return true to capture the value when it is a string, or each string element when it is
    /// an array.
    fn key(&mut self, depth: usize, key: &[u8]) -> bool;
    /// A captured string (raw JSON string contents, escapes not decoded) for the key last
    /// accepted at `depth`.
    fn string(&mut self, depth: usize, raw: &[u8]);
    /// A captured number, `true`, `false` or `null`, as written.
    fn scalar(&mut self, _depth: usize, _raw: &[u8]) {}
    /// An object whose keys were at `depth` has closed.
    fn close_object(&mut self, _depth: usize) {}
}

/// A visitor that captures nothing: plain validation.
#[derive(Debug)]
pub struct NoCapture;

impl Visitor for NoCapture {
    fn wants_keys(&self, _: usize) -> bool {
        false
    }
    fn key(&mut self, _: usize, _: &[u8]) -> bool {
        false
    }
    fn string(&mut self, _: usize, _: &[u8]) {}
}

/// Why the bytes are not one complete JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset of the problem from the start of the stream.
    pub offset: u64,
    pub kind: SyntaxErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntaxErrorKind {
    /// The stream ended inside a value: the file is truncated (or still being written).
    UnexpectedEnd,
    /// Nothing but whitespace.
    Empty,
    /// A UTF-8 byte-order mark before the document.
    ByteOrderMark,
    UnexpectedByte(u8),
    /// A second value after the complete document.
    TrailingData,
    InvalidEscape,
    ControlCharacterInString,
    InvalidUtf8,
    InvalidNumber,
    InvalidLiteral,
    TooDeep,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SyntaxErrorKind::*;
        let at = self.offset;
        match self.kind {
            UnexpectedEnd => write!(f, "the JSON ends early at byte {at}: the file is truncated"),
            Empty => write!(f, "the file holds no JSON at all"),
            ByteOrderMark => write!(
                f,
                "the file starts with a UTF-8 byte-order mark, which JSON parsers reject"
            ),
            UnexpectedByte(b) if b.is_ascii_graphic() => {
                write!(f, "unexpected '{}' at byte {at}", b as char)
            }
            UnexpectedByte(b) => write!(f, "unexpected byte 0x{b:02x} at byte {at}"),
            TrailingData => write!(
                f,
                "more data after the end of the JSON document at byte {at}"
            ),
            InvalidEscape => write!(f, "invalid escape sequence in a string at byte {at}"),
            ControlCharacterInString => {
                write!(f, "unescaped control character in a string at byte {at}")
            }
            InvalidUtf8 => write!(f, "invalid UTF-8 at byte {at}"),
            InvalidNumber => write!(f, "malformed number at byte {at}"),
            InvalidLiteral => write!(f, "malformed literal (true/false/null) at byte {at}"),
            TooDeep => write!(f, "nesting deeper than {MAX_DEPTH} levels at byte {at}"),
        }
    }
}

impl std::error::Error for SyntaxError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the top-level value (a byte-order mark is looked for here).
    Start,
    /// A value is required (after ':' or ',' in an array).
    Value,
    /// After '[': a value or ']'.
    ValueOrEnd,
    /// After '{': a key or '}'.
    KeyOrEnd,
    /// After ',' in an object: a key.
    Key,
    /// After a key: ':'.
    Colon,
    /// After a value in a container: ',' or the closing bracket.
    AfterValue,
    /// The top-level value is complete: whitespace only.
    Done,
    String,
    /// After a backslash.
    Escape,
    /// Inside \uXXXX, with this many hex digits still to come.
    Unicode(u8),
    /// Inside a multi-byte UTF-8 sequence, with this many continuation bytes to come.
    Utf8 {
        left: u8,
        lo: u8,
        hi: u8,
    },
    Number(Num),
    Literal {
        word: u8,
        pos: u8,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpInt,
}

const LITERALS: [&[u8]; 3] = [b"true", b"false", b"null"];

/// Where the current string started in the current chunk, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// The string is not being kept.
    No,
    /// Kept; started at this index of the current chunk.
    From(usize),
    /// Kept; started in an earlier chunk, the bytes so far are in `buf`.
    Buffered,
}

/// The bytes of one kept token, which may span chunks.
struct Kept {
    keep: Keep,
    buf: Vec<u8>,
    overflow: bool,
}

impl Kept {
    /// The token, which ends just before `chunk[end]`; None when nothing is kept or it was too
    /// long. Call `release` once done with the bytes.
    #[inline(always)]
    fn take<'a>(&'a mut self, chunk: &'a [u8], end: usize) -> Option<&'a [u8]> {
        match std::mem::replace(&mut self.keep, Keep::No) {
            Keep::No => None,
            Keep::From(start) => Some(&chunk[start..end]),
            Keep::Buffered => {
                self.push(&chunk[..end]);
                (!self.overflow).then_some(self.buf.as_slice())
            }
        }
    }

    #[inline(always)]
    fn release(&mut self) {
        if !self.buf.is_empty() || self.overflow {
            self.buf.clear();
            self.overflow = false;
        }
    }

    /// The chunk ends inside a kept token: move its bytes so far to the buffer.
    fn carry_over(&mut self, chunk: &[u8]) {
        match self.keep {
            Keep::No => {}
            Keep::From(start) => {
                self.push(&chunk[start.min(chunk.len())..]);
                self.keep = Keep::Buffered;
            }
            Keep::Buffered => self.push(chunk),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.buf.len() + bytes.len() > MAX_CAPTURE {
            self.overflow = true;
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }
}

/// Validates a JSON stream fed in chunks of any size.
pub struct Scanner<V> {
    visitor: V,
    state: State,
    /// One byte per open container: b'{' or b'['.
    stack: Vec<u8>,
    /// The innermost open container (b'{' or b'['), 0 at the top level: the stack's last byte,
    /// kept in a field because it is asked after every value.
    top: u8,
    /// Bytes consumed before the current chunk.
    offset: u64,
    /// The current string is an object key.
    in_key: bool,
    /// The bytes of the current key or captured value.
    kept: Kept,
    /// The visitor asked to capture the value of the key just read.
    capture_next: bool,
    /// Depth of the key whose array value is being captured, and the array's stack depth.
    capture_array: Option<(usize, usize)>,
    /// Depth of the key whose string value is being captured.
    capture_depth: usize,
}

impl<V: Visitor> Scanner<V> {
    pub fn new(visitor: V) -> Self {
        Scanner {
            visitor,
            state: State::Start,
            stack: Vec::with_capacity(32),
            top: 0,
            offset: 0,
            in_key: false,
            kept: Kept {
                keep: Keep::No,
                buf: Vec::new(),
                overflow: false,
            },
            capture_next: false,
            capture_array: None,
            capture_depth: 0,
        }
    }

    pub fn visitor(&self) -> &V {
        &self.visitor
    }

    /// True once the top-level value is complete (only whitespace may follow).
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// Ends the stream: succeeds only if exactly one complete JSON value was fed.
    pub fn finish(self) -> Result<V, SyntaxError> {
        match self.state {
            State::Done => Ok(self.visitor),
            State::Number(Num::Zero | Num::Int | Num::Frac | Num::ExpInt)
                if self.stack.is_empty() =>
            {
                Ok(self.visitor)
            }
            State::Start | State::Value if self.stack.is_empty() => Err(SyntaxError {
                offset: self.offset,
                kind: SyntaxErrorKind::Empty,
            }),
            _ => Err(SyntaxError {
                offset: self.offset,
                kind: SyntaxErrorKind::UnexpectedEnd,
            }),
        }
    }

    fn err(&self, at: usize, kind: SyntaxErrorKind) -> SyntaxError {
        SyntaxError {
            offset: self.offset + at as u64,
            kind,
        }
    }

    /// Feeds the next chunk.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), SyntaxError> {
        let mut i = 0;
        let n = chunk.len();
        while i < n {
            // Most bytes are inside strings: a direct branch, not the jump table below.
            if matches!(self.state, State::String) {
                i = skip_plain_string_bytes(chunk, i);
                let Some(&b) = chunk.get(i) else { break };
                match b {
                    b'"' => i = self.end_string(chunk, i)?,
                    b'\\' => {
                        if let Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') =
                            chunk.get(i + 1)
                        {
                            i += 2;
                        } else {
                            self.state = State::Escape;
                            i += 1;
                        }
                    }
                    0x00..=0x1f => {
                        return Err(self.err(i, SyntaxErrorKind::ControlCharacterInString));
                    }
                    _ => {
                        self.state = utf8_lead(b)
                            .ok_or_else(|| self.err(i, SyntaxErrorKind::InvalidUtf8))?;
                        i += 1;
                    }
                }
                continue;
            }
            let b = chunk[i];
            match self.state {
                State::String => unreachable!("handled above"),
                State::Escape => {
                    self.state = match b {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => State::String,
                        b'u' => State::Unicode(4),
                        _ => return Err(self.err(i, SyntaxErrorKind::InvalidEscape)),
                    };
                    i += 1;
                }
                State::Unicode(left) => {
                    if !b.is_ascii_hexdigit() {
                        return Err(self.err(i, SyntaxErrorKind::InvalidEscape));
                    }
                    self.state = if left == 1 {
                        State::String
                    } else {
                        State::Unicode(left - 1)
                    };
                    i += 1;
                }
                State::Utf8 { left, lo, hi } => {
                    if b < lo || b > hi {
                        return Err(self.err(i, SyntaxErrorKind::InvalidUtf8));
                    }
                    self.state = if left == 1 {
                        State::String
                    } else {
                        State::Utf8 {
                            left: left - 1,
                            lo: 0x80,
                            hi: 0xbf,
                        }
                    };
                    i += 1;
                }
                State::Number(num) => match number_step(num, chunk, i) {
                    Step::Continue(num, next) => {
                        self.state = State::Number(num);
                        i = next;
                    }
                    Step::Ended => {
                        // This byte belongs to what follows the number.
                        self.emit_kept_scalar(chunk, i);
                        i = self.value_done(chunk, i);
                    }
                    Step::Invalid(at) => return Err(self.err(at, SyntaxErrorKind::InvalidNumber)),
                },
                State::Literal { word, pos } => {
                    let lit = LITERALS[word as usize];
                    if b != lit[pos as usize] {
                        return Err(self.err(i, SyntaxErrorKind::InvalidLiteral));
                    }
                    i += 1;
                    if pos as usize + 1 == lit.len() {
                        if self.kept.keep != Keep::No {
                            self.kept.keep = Keep::No;
                            self.kept.release();
                            self.visitor.scalar(self.capture_depth, lit);
                        }
                        i = self.value_done(chunk, i);
                    } else {
                        self.state = State::Literal { word, pos: pos + 1 };
                    }
                }
                State::Start => {
                    if b == 0xef {
                        return Err(self.err(i, SyntaxErrorKind::ByteOrderMark));
                    }
                    self.state = State::Value;
                }
                State::Value | State::ValueOrEnd => match b {
                    b' ' | b'\n' | b'\r' | b'\t' => i += 1,
                    b']' if self.state == State::ValueOrEnd => i = self.close(chunk, i)?,
                    _ => i = self.begin_value(chunk, i)?,
                },
                State::KeyOrEnd | State::Key => match b {
                    b' ' | b'\n' | b'\r' | b'\t' => i += 1,
                    b'}' if self.state == State::KeyOrEnd => i = self.close(chunk, i)?,
                    b'"' => i = self.begin_key(i),
                    _ => return Err(self.err(i, SyntaxErrorKind::UnexpectedByte(b))),
                },
                State::Colon => match b {
                    b' ' | b'\n' | b'\r' | b'\t' => i += 1,
                    b':' => {
                        self.state = State::Value;
                        i += 1;
                    }
                    _ => return Err(self.err(i, SyntaxErrorKind::UnexpectedByte(b))),
                },
                State::AfterValue => match b {
                    b' ' | b'\n' | b'\r' | b'\t' => i += 1,
                    b',' => {
                        self.state = if self.top == b'{' {
                            State::Key
                        } else {
                            State::Value
                        };
                        i += 1;
                    }
                    b'}' | b']' => i = self.close(chunk, i)?,
                    _ => return Err(self.err(i, SyntaxErrorKind::UnexpectedByte(b))),
                },
                State::Done => match b {
                    b' ' | b'\n' | b'\r' | b'\t' => i += 1,
                    _ => return Err(self.err(i, SyntaxErrorKind::TrailingData)),
                },
            }
        }
        // A kept string or number that continues into the next chunk moves to the buffer.
        self.kept.carry_over(chunk);
        self.offset += n as u64;
        Ok(())
    }

    fn emit_kept_scalar(&mut self, chunk: &[u8], end: usize) {
        if let Some(raw) = self.kept.take(chunk, end) {
            self.visitor.scalar(self.capture_depth, raw);
        }
        self.kept.release();
    }

    #[inline(always)]
    fn after_value(&self) -> State {
        if self.top == 0 {
            State::Done
        } else {
            State::AfterValue
        }
    }

    /// A value ended just before `chunk[i]`: set the state, and take `, "` (the next key, as dbt
    /// writes it) in the same step. Returns the index to go on from.
    #[inline(always)]
    fn value_done(&mut self, chunk: &[u8], i: usize) -> usize {
        if self.top == b'{' && chunk.get(i..i + 3) == Some(b", \"") {
            return self.begin_key(i + 2);
        }
        self.state = self.after_value();
        i
    }

    /// A key string opens at `chunk[i]`.
    #[inline(always)]
    fn begin_key(&mut self, i: usize) -> usize {
        self.in_key = true;
        // Most keys are deeper than any visitor looks: do not even keep their bytes.
        self.kept.keep = if self.visitor.wants_keys(self.stack.len()) {
            Keep::From(i + 1)
        } else {
            Keep::No
        };
        self.state = State::String;
        i + 1
    }

    /// A value starts at `chunk[i]` (not whitespace). Numbers and literals that end inside the
    /// chunk are taken whole. Returns the index to go on from.
    #[inline(always)]
    fn begin_value(&mut self, chunk: &[u8], i: usize) -> Result<usize, SyntaxError> {
        let depth = self.stack.len();
        // Most values are captured by nobody: one test for both ways of asking.
        let (capture, keep) = if self.capture_next || self.capture_array.is_some() {
            self.capture_value(depth)
        } else {
            (false, false)
        };
        match chunk[i] {
            b'"' => {
                self.in_key = false;
                self.kept.keep = if keep { Keep::From(i + 1) } else { Keep::No };
                self.state = State::String;
                Ok(i + 1)
            }
            b @ (b'{' | b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(self.err(i, SyntaxErrorKind::TooDeep));
                }
                self.stack.push(b);
                self.top = b;
                if b == b'[' {
                    if capture {
                        self.capture_array = Some((self.capture_depth, depth + 1));
                    }
                    self.state = State::ValueOrEnd;
                    Ok(i + 1)
                } else if chunk.get(i + 1) == Some(&b'"') {
                    Ok(self.begin_key(i + 1))
                } else {
                    self.state = State::KeyOrEnd;
                    Ok(i + 1)
                }
            }
            b'-' | b'0'..=b'9' => {
                let first = if chunk[i] == b'-' {
                    Num::Minus
                } else if chunk[i] == b'0' {
                    Num::Zero
                } else {
                    Num::Int
                };
                let mut num = first;
                let mut j = i + 1;
                loop {
                    match number_step(num, chunk, j) {
                        Step::Continue(next, at) => {
                            num = next;
                            j = at;
                        }
                        Step::Ended => {
                            if keep {
                                self.visitor.scalar(self.capture_depth, &chunk[i..j]);
                            }
                            return Ok(self.value_done(chunk, j));
                        }
                        Step::Invalid(at) => {
                            return Err(self.err(at, SyntaxErrorKind::InvalidNumber));
                        }
                    }
                    if j >= chunk.len() {
                        // The number may go on in the next chunk.
                        self.kept.keep = if keep { Keep::From(i) } else { Keep::No };
                        self.state = State::Number(num);
                        return Ok(j);
                    }
                }
            }
            b @ (b't' | b'f' | b'n') => {
                let word = match b {
                    b't' => 0,
                    b'f' => 1,
                    _ => 2,
                };
                let lit = LITERALS[word as usize];
                // Compared whole, not byte by byte: dbt writes a null or a boolean for most
                // config values.
                let head = chunk.get(i..i + 4).and_then(|w| w.try_into().ok());
                let whole = match head.map(u32::from_le_bytes) {
                    Some(w) if w == u32::from_le_bytes(*b"true") => true,
                    Some(w) if w == u32::from_le_bytes(*b"null") => true,
                    Some(w) if w == u32::from_le_bytes(*b"fals") => chunk.get(i + 4) == Some(&b'e'),
                    _ => false,
                };
                if whole {
                    if keep {
                        self.visitor.scalar(self.capture_depth, lit);
                    }
                    return Ok(self.value_done(chunk, i + lit.len()));
                }
                self.kept.keep = if keep { Keep::From(i) } else { Keep::No };
                self.state = State::Literal { word, pos: 1 };
                Ok(i + 1)
            }
            b => Err(self.err(i, SyntaxErrorKind::UnexpectedByte(b))),
        }
    }

    /// Whether the value starting at `depth` was asked for as the key's value, and whether it
    /// is kept (asked for, or an element of an array asked for).
    fn capture_value(&mut self, depth: usize) -> (bool, bool) {
        let capture = std::mem::take(&mut self.capture_next);
        let in_captured_array = matches!(self.capture_array, Some((_, d)) if d == depth);
        if in_captured_array && !capture {
            self.capture_depth = self.capture_array.map_or(0, |(k, _)| k);
        }
        (capture, capture || in_captured_array)
    }

    /// A closing bracket at `chunk[i]`.
    #[inline(always)]
    fn close(&mut self, chunk: &[u8], i: usize) -> Result<usize, SyntaxError> {
        let b = chunk[i];
        let open = if b == b'}' { b'{' } else { b'[' };
        if self.top != open {
            return Err(self.err(i, SyntaxErrorKind::UnexpectedByte(b)));
        }
        if matches!(self.capture_array, Some((_, d)) if d == self.stack.len()) {
            self.capture_array = None;
        }
        self.stack.pop();
        self.top = self.stack.last().copied().unwrap_or(0);
        if open == b'{' {
            self.visitor.close_object(self.stack.len() + 1);
        }
        Ok(self.value_done(chunk, i + 1))
    }

    /// The closing quote of a string is at `chunk[end]`. Returns the index to go on from.
    #[inline(always)]
    fn end_string(&mut self, chunk: &[u8], end: usize) -> Result<usize, SyntaxError> {
        let depth = self.stack.len();
        let i = end + 1;
        if self.in_key {
            self.capture_next = false;
            if self.kept.keep != Keep::No {
                let key = self.kept.take(chunk, end);
                self.capture_next = key.is_some_and(|key| self.visitor.key(depth, key));
                self.kept.release();
                if self.capture_next {
                    self.capture_depth = depth;
                }
            }
            // dbt writes `"key": value`: take the separator and the value's first byte now.
            if i + 2 < chunk.len() && chunk[i] == b':' && chunk[i + 1] == b' ' {
                let v = chunk[i + 2];
                if !matches!(v, b' ' | b'\n' | b'\r' | b'\t') {
                    return self.begin_value(chunk, i + 2);
                }
            }
            self.state = State::Colon;
            Ok(i)
        } else {
            if self.kept.keep != Keep::No {
                if let Some(raw) = self.kept.take(chunk, end) {
                    self.visitor.string(self.capture_depth, raw);
                }
                self.kept.release();
            }
            Ok(self.value_done(chunk, i))
        }
    }
}

/// What one step of the number grammar found at `chunk[i]`.
enum Step {
    /// Still inside the number: its state and the index after the consumed bytes.
    Continue(Num, usize),
    /// The number ended before `chunk[i]`.
    Ended,
    /// Not a number: the offending index.
    Invalid(usize),
}

#[inline(always)]
fn number_step(num: Num, chunk: &[u8], i: usize) -> Step {
    let Some(&b) = chunk.get(i) else {
        return Step::Continue(num, i);
    };
    let next = match (num, b) {
        (Num::Minus, b'0') => Num::Zero,
        (Num::Minus, b'1'..=b'9') => Num::Int,
        (Num::Int, b'0'..=b'9') => return Step::Continue(Num::Int, skip_digits(chunk, i)),
        (Num::Zero | Num::Int, b'.') => Num::Dot,
        (Num::Dot | Num::Frac, b'0'..=b'9') => {
            return Step::Continue(Num::Frac, skip_digits(chunk, i));
        }
        (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Num::Exp,
        (Num::Exp, b'+' | b'-') => Num::ExpSign,
        (Num::Exp | Num::ExpSign | Num::ExpInt, b'0'..=b'9') => {
            return Step::Continue(Num::ExpInt, skip_digits(chunk, i));
        }
        (Num::Zero | Num::Int | Num::Frac | Num::ExpInt, _) => return Step::Ended,
        _ => return Step::Invalid(i),
    };
    Step::Continue(next, i + 1)
}

/// The state after a non-ASCII lead byte, or None when it cannot start a UTF-8 sequence.
fn utf8_lead(b: u8) -> Option<State> {
    let (left, lo, hi) = match b {
        0xc2..=0xdf => (1, 0x80, 0xbf),
        0xe0 => (2, 0xa0, 0xbf),
        0xe1..=0xec | 0xee..=0xef => (2, 0x80, 0xbf),
        0xed => (2, 0x80, 0x9f),
        0xf0 => (3, 0x90, 0xbf),
        0xf1..=0xf3 => (3, 0x80, 0xbf),
        0xf4 => (3, 0x80, 0x8f),
        _ => return None,
    };
    Some(State::Utf8 { left, lo, hi })
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// A mask with the high bit set in the lowest byte of `w` that is '"', '\\', a control
/// character or non-ASCII (bits above it may be set too: only the lowest one is exact).
///
/// Below the first such byte every byte is ASCII and at least 0x20, so none of the
/// subtractions borrows and none sets a high bit: the usual `& !x` of the zero-byte trick is not
/// needed, as non-ASCII bytes are flagged by `w` itself.
#[inline(always)]
fn special_mask(w: u64) -> u64 {
    let is_quote = (w ^ (ONES * b'"' as u64)).wrapping_sub(ONES);
    let is_backslash = (w ^ (ONES * b'\\' as u64)).wrapping_sub(ONES);
    let is_control = w.wrapping_sub(ONES * 0x20);
    (is_quote | is_backslash | is_control | w) & HIGH
}

/// Index of the first byte at or after `i` that a string cannot take as is.
#[inline(always)]
fn skip_plain_string_bytes(chunk: &[u8], mut i: usize) -> usize {
    let word = |at: usize| u64::from_le_bytes(chunk[at..at + 8].try_into().unwrap_or([0; 8]));
    while i + 16 <= chunk.len() {
        let (a, b) = (special_mask(word(i)), special_mask(word(i + 8)));
        if a != 0 {
            return i + (a.trailing_zeros() / 8) as usize;
        }
        if b != 0 {
            return i + 8 + (b.trailing_zeros() / 8) as usize;
        }
        i += 16;
    }
    while let Some(&b) = chunk.get(i) {
        if b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b) {
            return i;
        }
        i += 1;
    }
    i
}

#[inline(always)]
fn skip_digits(chunk: &[u8], mut i: usize) -> usize {
    while chunk.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// Validates a whole in-memory document.
pub fn validate(bytes: &[u8]) -> Result<(), SyntaxError> {
    let mut scanner = Scanner::new(NoCapture);
    scanner.feed(bytes)?;
    scanner.finish().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_all_splits(doc: &[u8]) -> Result<(), SyntaxError> {
        let whole = validate(doc);
        for split in 0..=doc.len() {
            let mut s = Scanner::new(NoCapture);
            let r = s
                .feed(&doc[..split])
                .and_then(|_| s.feed(&doc[split..]))
                .and_then(|_| s.finish().map(|_| ()));
            assert_eq!(
                r.is_ok(),
                whole.is_ok(),
                "split at {split} of {:?}",
                String::from_utf8_lossy(doc)
            );
        }
        whole
    }

    #[test]
    fn agrees_with_serde_json_on_valid_and_invalid_documents() {
        let cases: &[&str] = &[
            r#"{}"#,
            r#"[]"#,
            r#"0"#,
            r#"-0.5e+10"#,
            r#""a""#,
            r#"true"#,
            r#"null"#,
            r#"{"a": [1, 2.5, -3e2, true, false, null, "x\"y\\z\u00e9\n"], "b": {"c": {}}}"#,
            "{\"k\": \"caf\u{e9} \u{1f600}\"}",
            " \n\t{\"a\" : 1 } \n",
            r#"{"a": 1,}"#,
            r#"{"a" 1}"#,
            r#"[1 2]"#,
            r#"[1,]"#,
            r#"{"a": 01}"#,
            r#"{"a": 1.}"#,
            r#"{"a": .5}"#,
            r#"{"a": -}"#,
            r#"{"a": 1e}"#,
            r#"{"a": tru}"#,
            r#"{"a": nul}"#,
            r#"{"a": "\x"}"#,
            r#"{"a": "\u12G4"}"#,
            "{\"a\": \"\u{1}\"}",
            r#"{"a": 1} {}"#,
            r#"{"a": 1}]"#,
            r#"[}"#,
            r#"{]"#,
            r#"{"a": [1}"#,
            r#""#,
            r#"   "#,
            r#"{"a": "x"#,
            r#"{1: 2}"#,
            r#"{"a": 1"#,
            r#"["#,
            r#"-"#,
            r#"1 2"#,
            r#"{"a":[{"b":[[]]}]}"#,
        ];
        for case in cases {
            let ours = check_all_splits(case.as_bytes()).is_ok();
            let theirs = serde_json::from_str::<serde_json::Value>(case).is_ok();
            assert_eq!(ours, theirs, "{case:?}");
        }
    }

    #[test]
    fn rejects_invalid_utf8_and_byte_order_marks() {
        assert!(check_all_splits(b"{\"a\": \"\xff\"}").is_err());
        assert!(
            check_all_splits(b"{\"a\": \"\xed\xa0\x80\"}").is_err(),
            "surrogate"
        );
        assert!(
            check_all_splits(b"{\"a\": \"\xc0\xaf\"}").is_err(),
            "overlong"
        );
        assert!(
            check_all_splits(b"{\"a\": \"\xe2\x82\"}").is_err(),
            "cut sequence"
        );
        let bom = validate(b"\xef\xbb\xbf{}").unwrap_err();
        assert_eq!(bom.kind, SyntaxErrorKind::ByteOrderMark);
    }

    #[test]
    fn truncation_is_reported_as_unexpected_end_at_the_cut() {
        let doc = br#"{"metadata": {"invocation_id": "abc"}, "nodes": {"x": [1, 2, 3]}}"#;
        for cut in 1..doc.len() {
            let mut s = Scanner::new(NoCapture);
            s.feed(&doc[..cut])
                .expect("a prefix is never wrong before its end");
            let e = s.finish().unwrap_err();
            assert_eq!(e.kind, SyntaxErrorKind::UnexpectedEnd, "cut at {cut}");
            assert_eq!(e.offset, cut as u64);
        }
        assert_eq!(validate(b"").unwrap_err().kind, SyntaxErrorKind::Empty);
    }

    #[derive(Default, Debug)]
    struct Collect(Vec<(usize, String)>);
    impl Visitor for Collect {
        fn key(&mut self, depth: usize, key: &[u8]) -> bool {
            depth == 2 && (key == b"want" || key == b"list")
        }
        fn string(&mut self, depth: usize, raw: &[u8]) {
            self.0
                .push((depth, String::from_utf8_lossy(raw).into_owned()));
        }
        fn scalar(&mut self, depth: usize, raw: &[u8]) {
            self.0
                .push((depth, format!("={}", String::from_utf8_lossy(raw))));
        }
    }

    #[test]
    fn captures_strings_and_string_arrays_across_chunk_boundaries() {
        let doc = br#"{"a": {"want": "x\"y", "skip": "no", "list": ["p", 1, "q", {"want": "deep"}, null], "n": {"want": "z"}, "want": -12.5e3, "want":null}, "want": "top"}"#;
        for split in 0..=doc.len() {
            let mut s = Scanner::new(Collect::default());
            s.feed(&doc[..split]).unwrap();
            s.feed(&doc[split..]).unwrap();
            let got = s.finish().unwrap().0;
            let want = vec![
                (2, r#"x\"y"#.to_string()),
                (2, "p".into()),
                (2, "=1".into()),
                (2, "q".into()),
                (2, "=null".into()),
                (2, "=-12.5e3".into()),
                (2, "=null".into()),
            ];
            assert_eq!(got, want, "split at {split}");
        }
    }

    /// A tiny deterministic generator (xorshift64*), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn space(rng: &mut Rng, out: &mut Vec<u8>) {
        for _ in 0..rng.below(3).saturating_sub(1) {
            out.push(b" \n\t\r"[rng.below(4)]);
        }
    }

    fn string(rng: &mut Rng, out: &mut Vec<u8>) {
        out.push(b'"');
        let len = [0, 3, 20, 90, 300][rng.below(5)];
        for _ in 0..len {
            match rng.below(40) {
                0 => out.extend_from_slice(b"\\n"),
                1 => out.extend_from_slice(b"\\\""),
                2 => out.extend_from_slice(b"\\\\"),
                3 => out.extend_from_slice(b"\\u00e9"),
                4 => out.extend_from_slice("é".as_bytes()),
                5 => out.extend_from_slice("😀".as_bytes()),
                6 => out.extend_from_slice(b"\\/"),
                _ => out.push(b"abcdefghij klmnopqrstuvwxyz_.{}[]:,0123456789"[rng.below(45)]),
            }
        }
        out.push(b'"');
    }

    fn value(rng: &mut Rng, depth: usize, out: &mut Vec<u8>) {
        space(rng, out);
        match rng.below(if depth > 4 { 4 } else { 7 }) {
            0 => string(rng, out),
            1 => {
                let n = [
                    "0",
                    "-1",
                    "42",
                    "3.25",
                    "-0.5e-3",
                    "1E+9",
                    "1795849850.6639948",
                    "12345678901234",
                ];
                out.extend_from_slice(n[rng.below(n.len())].as_bytes());
            }
            2 => out.extend_from_slice([&b"true"[..], b"false", b"null"][rng.below(3)]),
            3 => string(rng, out),
            4 | 5 => {
                out.push(b'{');
                for i in 0..rng.below(6) {
                    if i > 0 {
                        out.push(b',');
                    }
                    space(rng, out);
                    string(rng, out);
                    space(rng, out);
                    out.push(b':');
                    value(rng, depth + 1, out);
                }
                space(rng, out);
                out.push(b'}');
            }
            _ => {
                out.push(b'[');
                for i in 0..rng.below(6) {
                    if i > 0 {
                        out.push(b',');
                    }
                    value(rng, depth + 1, out);
                }
                space(rng, out);
                out.push(b']');
            }
        }
        space(rng, out);
    }

    fn scan_in_pieces(doc: &[u8], rng: &mut Rng) -> Result<Collect, SyntaxError> {
        let mut scanner = Scanner::new(Collect::default());
        let mut at = 0;
        while at < doc.len() {
            let size = [1, 7, 63, 64, 65, 130, 1000][rng.below(7)];
            let end = (at + size).min(doc.len());
            scanner.feed(&doc[at..end])?;
            at = end;
        }
        scanner.finish()
    }

    #[test]
    fn random_documents_and_corruptions_agree_with_serde_json_in_any_pieces() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..3000 {
            let mut doc = Vec::new();
            value(&mut rng, 0, &mut doc);
            match round % 5 {
                0 => {}
                1 => doc.truncate(rng.below(doc.len() + 1)),
                2 => {
                    let i = rng.below(doc.len());
                    doc[i] = (rng.next() & 0xff) as u8;
                }
                3 => {
                    let i = rng.below(doc.len() + 1);
                    let extra = b"\"{}[]:,\\ a0-e\x01\xff\xc3";
                    doc.insert(i, extra[rng.below(extra.len())]);
                }
                _ => {
                    let i = rng.below(doc.len());
                    doc.remove(i);
                }
            }
            let parsed = serde_json::from_slice::<serde_json::Value>(&doc);
            if parsed
                .as_ref()
                .is_err_and(|e| e.to_string().contains("out of range"))
            {
                // Valid JSON grammar that serde_json cannot represent (e.g. 12e345678): not a
                // question of validity.
                continue;
            }
            let expected = parsed.is_ok();
            let whole = scan_in_pieces(&doc, &mut Rng(1)).map(|c| c.0);
            assert_eq!(
                whole.is_ok(),
                expected,
                "round {round}: {:?}",
                String::from_utf8_lossy(&doc)
            );
            for seed in 2..5 {
                let pieces = scan_in_pieces(&doc, &mut Rng(seed)).map(|c| c.0);
                assert_eq!(
                    pieces, whole,
                    "round {round}, seed {seed}: captures differ when cut differently"
                );
            }
        }
    }
}
