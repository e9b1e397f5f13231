//! A cursor over a JSON text that walks objects and arrays, skips the values nobody reads
//! while checking them as strictly as serde_json does, takes plain strings (no escapes) and
//! booleans as they stand, and hands any other value that is read to serde_json where it
//! starts. Skipping is most of an AdmissionReview (the request's `resource`, `requestKind`,
//! `requestResource`, `options`, the old object of an update, the objects' metadata), and
//! serde_json skips token by token through its generic visitors; this is one loop over the
//! tokens, strings eight bytes at a time.
//!
//! Every method returns `None` on anything it does not take, and the caller then decodes the
//! body with serde_json alone, which says what is wrong. So the cursor may refuse what
//! serde_json accepts (nesting deeper than [`MAX_SKIP_DEPTH`]; for its callers, keys spelled
//! with escapes) but never takes what serde_json refuses: whatever it skips is JSON as
//! serde_json reads it — no control characters in strings, only the defined escapes (`\u`
//! with four hex digits, surrogates unchecked as serde_json leaves them when it skips),
//! numbers in JSON's grammar, no trailing commas, only JSON's four whitespace bytes. The text
//! is a `&str`, so it is UTF-8 already.

use serde::Deserialize;

/// Nesting a skipped value may have; deeper ones are left to serde_json (and its own limit).
pub const MAX_SKIP_DEPTH: usize = 64;

/// A position in a JSON text.
pub struct Skim<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Skim<'a> {
    pub fn new(text: &'a str) -> Self {
        Self { text, at: 0 }
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.space();
        self.at == self.text.len()
    }

    /// Walks the object that comes next, calling `field` with each key when the cursor is at
    /// its value (`None` for a key spelled with escapes, which a reader of named fields must
    /// refuse: `"\u0075id"` is `uid`); `field` must consume the value.
    pub fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, Option<&'a str>) -> Option<()>,
    ) -> Option<()> {
        self.expect(b'{')?;
        if self.take(b'}') {
            return Some(());
        }
        loop {
            let key = self.key()?;
            self.expect(b':')?;
            field(self, key)?;
            if !self.take(b',') {
                return self.expect(b'}');
            }
        }
    }

    /// The next value, decoded by serde_json from where it starts.
    pub fn value<T: Deserialize<'a>>(&mut self) -> Option<T> {
        let rest = self.text.get(self.at..)?;
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<T>();
        let value = stream.next()?.ok()?;
        self.at += stream.byte_offset();
        Some(value)
    }

    /// Walks the array that comes next, calling `item` when the cursor is at each value;
    /// `item` must consume it.
    pub fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.expect(b'[')?;
        if self.take(b']') {
            return Some(());
        }
        loop {
            item(self)?;
            if !self.take(b',') {
                return self.expect(b']');
            }
        }
    }

    /// The next value when it is a string without escapes, as it stands in the text;
    /// otherwise `None`, the cursor left where it was (for serde_json to read the value).
    pub fn plain_str(&mut self) -> Option<&'a str> {
        self.space();
        let start = self.at;
        match self.string() {
            Some(false) => self.text.get(start + 1..self.at - 1),
            _ => {
                self.at = start;
                None
            }
        }
    }

    /// The next value when it is `true` or `false`; otherwise `None`, the cursor left where
    /// it was.
    pub fn plain_bool(&mut self) -> Option<bool> {
        self.space();
        match self.peek()? {
            b't' => self.literal("true").map(|()| true),
            b'f' => self.literal("false").map(|()| false),
            _ => None,
        }
    }

    /// Takes a `null` if it comes next.
    pub fn null(&mut self) -> bool {
        self.space();
        self.literal("null").is_some()
    }

    /// Skips the next value; its text, or `None` for `null`.
    pub fn raw_or_null(&mut self) -> Option<Option<&'a str>> {
        self.space();
        let start = self.at;
        self.skip()?;
        let raw = self.text.get(start..self.at)?;
        Some((raw != "null").then_some(raw))
    }

    /// Skips the next value, checking it: one loop over its tokens, with the open arrays and
    /// objects kept as bits (1: object) of a word.
    pub fn skip(&mut self) -> Option<()> {
        let (mut open, mut depth) = (0u64, 0);
        loop {
            self.space();
            let byte = self.peek()?;
            match byte {
                b'{' | b'[' if depth == MAX_SKIP_DEPTH => return None,
                b'{' | b'[' => {
                    self.at += 1;
                    let object = byte == b'{';
                    if !self.take(if object { b'}' } else { b']' }) {
                        (open, depth) = (open << 1 | u64::from(object), depth + 1);
                        if object {
                            self.member_key()?;
                        }
                        continue;
                    }
                }
                b'"' => drop(self.string()?),
                b't' => self.literal("true")?,
                b'f' => self.literal("false")?,
                b'n' => self.literal("null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            // After a value: close what it ends, or go on to the next member.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let in_object = open & 1 == 1;
                self.space();
                match self.peek()? {
                    b',' => {
                        self.at += 1;
                        if in_object {
                            self.member_key()?;
                        }
                        break;
                    }
                    b'}' if in_object => {}
                    b']' if !in_object => {}
                    _ => return None,
                }
                self.at += 1;
                (open, depth) = (open >> 1, depth - 1);
            }
        }
    }

    /// A member's key (any string) and its colon.
    #[inline(always)]
    fn member_key(&mut self) -> Option<()> {
        self.space();
        self.string()?;
        self.expect(b':')
    }

    /// An object key; `None` inside when it has escapes.
    #[inline(always)]
    fn key(&mut self) -> Option<Option<&'a str>> {
        self.space();
        let start = self.at + 1;
        match self.string()? {
            false => Some(self.text.get(start..self.at - 1)),
            true => Some(None),
        }
    }

    /// Skips a string; whether it held an escape. Inlined, with [`plain_len`], into each loop
    /// that reads strings: as a call it cost 30-odd instructions a string before the first byte.
    #[inline(always)]
    fn string(&mut self) -> Option<bool> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let mut at = self.at + 1;
        let mut escaped = false;
        loop {
            at += plain_len(bytes.get(at..)?);
            match *bytes.get(at)? {
                b'"' => break,
                b'\\' => {
                    at += escape_len(bytes.get(at + 1..)?)?;
                    escaped = true;
                }
                _ => return None,
            }
        }
        self.at = at + 1;
        Some(escaped)
    }

    /// Skips a number in JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        self.take_byte(b'-');
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.take_byte(b'.') {
            self.some_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            let _ = self.take_byte(b'+') || self.take_byte(b'-');
            self.some_digits()?;
        }
        Some(())
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }

    fn digits(&mut self) {
        let rest = &self.text.as_bytes()[self.at..];
        self.at += rest.iter().take_while(|b| b.is_ascii_digit()).count();
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let rest = self.text.get(self.at..)?;
        rest.starts_with(word).then(|| self.at += word.len())
    }

    /// Skips whitespace, then takes `byte` if it comes next.
    #[inline]
    fn take(&mut self, byte: u8) -> bool {
        self.space();
        self.take_byte(byte)
    }

    #[inline]
    fn take_byte(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.at += usize::from(next);
        next
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.take(byte).then_some(())
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    #[inline]
    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.at += 1;
        }
    }
}

/// The length of the escape at the start of `rest` (after its backslash), backslash included.
fn escape_len(rest: &[u8]) -> Option<usize> {
    match rest.first()? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(2),
        b'u' => rest
            .get(1..5)?
            .iter()
            .all(u8::is_ascii_hexdigit)
            .then_some(6),
        _ => None,
    }
}

/// How many bytes at the start of `bytes` a string holds as they are: eight at a time, as
/// serde_json does (a quote, a backslash or a control character sets the top bit of its byte
/// in [`special`]; bytes above the first such one may be set wrongly, so only the lowest counts).
#[inline(always)]
fn plain_len(bytes: &[u8]) -> usize {
    let mut words = bytes.chunks_exact(8);
    let mut len = 0;
    for word in &mut words {
        let found = special(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        if found != 0 {
            return len + (found.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    let rest = words.remainder();
    len + rest.iter().take_while(|&&b| PLAIN[usize::from(b)]).count()
}

const ONES: u64 = 0x0101_0101_0101_0101;
const TOPS: u64 = 0x8080_8080_8080_8080;

/// The top bit of each byte of `word` that is a quote, a backslash or below 0x20.
fn special(word: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    let quote = zero(word ^ (ONES * u64::from(b'"')));
    let backslash = zero(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    (quote | backslash | control) & TOPS
}

/// The bytes a string holds as they are: not a quote, a backslash or a control character.
static PLAIN: [bool; 256] = {
    let mut plain = [true; 256];
    let mut byte = 0;
    while byte < 0x20 {
        plain[byte] = false;
        byte += 1;
    }
    plain[b'"' as usize] = false;
    plain[b'\\' as usize] = false;
    plain
};
