//! Client-supplied text made safe to log or echo ([`bounded`]): at most a few dozen characters,
//! control characters escaped, and the length of what was cut said, so that no client can
//! inflate a log line, an error message or a metric label.

/// The characters of client text kept in logs, errors and labels.
pub const MAX_CLIENT_TEXT: usize = 64;

/// `text` with control characters escaped, cut to [`MAX_CLIENT_TEXT`] characters; a cut text
/// ends with `…(N bytes)`, N the original length.
pub fn bounded(text: &str) -> String {
    bounded_to(text, MAX_CLIENT_TEXT)
}

/// [`bounded`] with another limit: for a peer's error messages, which are worth a sentence.
pub fn bounded_to(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == max_chars {
            out.push_str(&format!("…({} bytes)", text.len()));
            return out;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_and_control_characters_escaped() {
        assert_eq!(bounded("actor-0"), "actor-0");
        assert_eq!(bounded("a\nb\u{1b}[2J"), "a\\nb\\u{1b}[2J");
        let long = "x".repeat(100_000);
        let cut = bounded(&long);
        assert_eq!(cut, format!("{}…(100000 bytes)", "x".repeat(64)));
        assert!(bounded(&"é".repeat(1000)).starts_with("éé"));
    }
}
