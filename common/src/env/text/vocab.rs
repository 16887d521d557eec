//! The character vocabulary every text task shares: token ids, their characters, and text ↔ ids.
//!
//! | ids | tokens |
//! |---|---|
//! | 0 | `<pad>` (written `_`): fills the observation after the text |
//! | 1 | `<eos>` (written `$`): ends the generated answer |
//! | 2 | `=`: ends a prompt |
//! | 3 | `+` |
//! | 4..=13 | the digits `0`..`9` |
//! | 14..=39 | the letters `a`..`z` |
//!
//! Ids travel as one byte each (`u8` on the wire), never as one-hot floats.

/// Padding after the text.
pub const PAD: u8 = 0;
/// End of the answer.
pub const EOS: u8 = 1;
/// Ends every prompt.
pub const SEP: u8 = 2;
/// The addition sign.
pub const PLUS: u8 = 3;
/// Number of tokens: the policy's `Discrete(VOCAB)` actions.
pub const VOCAB: usize = 40;

const FIRST_DIGIT: u8 = 4;
const FIRST_LETTER: u8 = 14;

/// The token of digit `d` (0..=9).
pub fn digit(d: u8) -> u8 {
    debug_assert!(d < 10);
    FIRST_DIGIT + d
}

/// The digit a token stands for, if it is one.
pub fn digit_value(token: u8) -> Option<u8> {
    (FIRST_DIGIT..FIRST_DIGIT + 10)
        .contains(&token)
        .then(|| token - FIRST_DIGIT)
}

/// The token of the `i`-th letter (0 = `a`, ..., 25 = `z`).
pub fn letter(i: usize) -> u8 {
    debug_assert!(i < 26);
    FIRST_LETTER + i as u8
}

/// True for a letter token.
pub fn is_letter(token: u8) -> bool {
    (FIRST_LETTER..FIRST_LETTER + 26).contains(&token)
}

/// The character a token is written as (`?` for an id outside the vocabulary).
pub fn char_of(token: u8) -> char {
    match token {
        PAD => '_',
        EOS => '$',
        SEP => '=',
        PLUS => '+',
        t if digit_value(t).is_some() => (b'0' + t - FIRST_DIGIT) as char,
        t if is_letter(t) => (b'a' + t - FIRST_LETTER) as char,
        _ => '?',
    }
}

/// The token a character stands for.
pub fn token_of(c: char) -> Option<u8> {
    match c {
        '_' => Some(PAD),
        '$' => Some(EOS),
        '=' => Some(SEP),
        '+' => Some(PLUS),
        '0'..='9' => Some(digit(c as u8 - b'0')),
        'a'..='z' => Some(letter((c as u8 - b'a') as usize)),
        _ => None,
    }
}

/// `text` as token ids, or the first character outside the vocabulary.
pub fn encode(text: &str) -> Result<Vec<u8>, char> {
    text.chars().map(|c| token_of(c).ok_or(c)).collect()
}

/// Token ids as text.
pub fn decode(tokens: &[u8]) -> String {
    tokens.iter().map(|&t| char_of(t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_round_trips_through_its_character() {
        for t in 0..VOCAB as u8 {
            assert_eq!(token_of(char_of(t)), Some(t), "token {t}");
        }
        assert_eq!(encode("ab=ba$").unwrap(), vec![14, 15, SEP, 15, 14, EOS]);
        assert_eq!(decode(&encode("12+9=21$__").unwrap()), "12+9=21$__");
        assert_eq!(encode("aB"), Err('B'));
        assert_eq!(char_of(200), '?');
        assert_eq!(digit_value(digit(7)), Some(7));
        assert_eq!(digit_value(letter(0)), None);
    }
}
