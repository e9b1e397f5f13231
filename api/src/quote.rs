//! Values taken from Kubernetes objects, quoted for errors and logs. Anyone who can write a
//! Node can make an annotation a megabyte long; a message quotes at most
//! [`MAX_QUOTED_CHARS`] characters of it, then an ellipsis and the full length.

/// How many characters of a value a message quotes.
pub const MAX_QUOTED_CHARS: usize = 100;

/// `text` as a Rust string literal (`"198.18.1.0/24"`), cut after [`MAX_QUOTED_CHARS`]
/// characters: `"AAAA…"… (1048576 bytes)`.
pub fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &text[..cut], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole() {
        assert_eq!(quoted("198.18.1.0/24"), "\"198.18.1.0/24\"");
        assert_eq!(quoted(""), "\"\"");
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
        let exactly = "x".repeat(MAX_QUOTED_CHARS);
        assert_eq!(quoted(&exactly), format!("{exactly:?}"));
    }

    #[test]
    fn long_values_are_cut_with_their_length() {
        let megabyte = "A".repeat(1 << 20);
        let text = quoted(&megabyte);
        assert_eq!(
            text,
            format!("{:?}… (1048576 bytes)", "A".repeat(MAX_QUOTED_CHARS))
        );
        let multibyte = "é".repeat(MAX_QUOTED_CHARS + 1);
        assert_eq!(
            quoted(&multibyte),
            format!("{:?}… (202 bytes)", "é".repeat(MAX_QUOTED_CHARS))
        );
    }
}
