//! The text tasks: what a prompt is, how one is drawn, and the verifier that judges an answer.
//! A new task is one more [`Task`] here (its prompts and its verifier) and one registry entry.

use super::vocab::{self, PLUS};
use crate::rng::Rng;

/// The sizes a task's prompts are drawn with (the environment's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskShape {
    /// Shortest prompt: characters (Copy, Reverse, Palindrome) or digits per operand
    /// (Addition).
    pub min_len: usize,
    /// Longest prompt, in the same unit.
    pub max_len: usize,
    /// Prompts use the first `letters` letters (`a`, `b`, ...); Addition ignores it.
    pub letters: usize,
}

/// A text task. Prompts are token ids without the `=` that ends them; answers are what the
/// policy generated, without the EOS that ended it.
pub trait Task: Send + Sync {
    /// Draws a prompt.
    fn draw(&self, shape: &TaskShape, rng: &mut Rng) -> Vec<u8>;
    /// Why `prompt` is not one this task draws with `shape`, if it is not.
    fn check(&self, shape: &TaskShape, prompt: &[u8]) -> Result<(), String>;
    /// Most tokens of a prompt (by default `max_len`).
    fn max_prompt(&self, shape: &TaskShape) -> usize {
        shape.max_len
    }
    /// Most tokens of a correct answer (by default `max_len`: as long as the prompt).
    fn max_answer(&self, shape: &TaskShape) -> usize {
        shape.max_len
    }
    /// The length of a correct answer to `prompt` (by default the prompt's).
    fn answer_len(&self, prompt: &[u8]) -> usize {
        prompt.len()
    }
    /// One correct answer to `prompt` (what a demonstration shows).
    fn solve(&self, prompt: &[u8]) -> Vec<u8>;
    /// The verifier: is `answer` a correct answer to `prompt`?
    fn verify(&self, prompt: &[u8], answer: &[u8]) -> bool;
    /// Partial credit in `[0, 1]`: the fraction of positions right; 1 only when
    /// [`Task::verify`] accepts.
    fn credit(&self, prompt: &[u8], answer: &[u8]) -> f64;
}

/// Positions where `answer` equals `reference`, over the longer of the two (1 only when they
/// are equal).
pub fn positional_credit(reference: &[u8], answer: &[u8]) -> f64 {
    let right = reference.iter().zip(answer).filter(|(r, a)| r == a).count();
    right as f64 / reference.len().max(answer.len()).max(1) as f64
}

/// `n` letters drawn from the first `letters`.
fn letters(n: usize, letters: usize, rng: &mut Rng) -> Vec<u8> {
    (0..n).map(|_| vocab::letter(rng.below(letters))).collect()
}

fn draw_len(shape: &TaskShape, rng: &mut Rng) -> usize {
    shape.min_len + rng.below(shape.max_len - shape.min_len + 1)
}

/// Letters only, of the alphabet, in the length range.
fn check_letters(shape: &TaskShape, prompt: &[u8]) -> Result<(), String> {
    if !(shape.min_len..=shape.max_len).contains(&prompt.len()) {
        return Err(format!(
            "{} letters, the settings ask for {}-{}",
            prompt.len(),
            shape.min_len,
            shape.max_len
        ));
    }
    let alphabet = vocab::letter(0)..vocab::letter(0) + shape.letters as u8;
    match prompt.iter().find(|t| !alphabet.contains(t)) {
        Some(&t) => Err(format!(
            "`{}` is not among the first {} letters",
            vocab::char_of(t),
            shape.letters
        )),
        None => Ok(()),
    }
}

/// A task whose one correct answer is a function of the prompt's letters: `Text-Copy`
/// ([`COPY`]) and `Text-Reverse` ([`REVERSE`]).
pub struct Letters {
    answer: fn(&[u8]) -> Vec<u8>,
}

/// `Text-Copy`: answer the prompt's letters as they are (`abc=` → `abc`).
pub const COPY: Letters = Letters {
    answer: |prompt| prompt.to_vec(),
};

/// `Text-Reverse`: answer the prompt's letters backwards (`abc=` → `cba`).
pub const REVERSE: Letters = Letters {
    answer: |prompt| prompt.iter().rev().copied().collect(),
};

impl Task for Letters {
    fn draw(&self, shape: &TaskShape, rng: &mut Rng) -> Vec<u8> {
        let n = draw_len(shape, rng);
        letters(n, shape.letters, rng)
    }
    fn check(&self, shape: &TaskShape, prompt: &[u8]) -> Result<(), String> {
        check_letters(shape, prompt)
    }
    fn solve(&self, prompt: &[u8]) -> Vec<u8> {
        (self.answer)(prompt)
    }
    fn verify(&self, prompt: &[u8], answer: &[u8]) -> bool {
        (self.answer)(prompt) == answer
    }
    fn credit(&self, prompt: &[u8], answer: &[u8]) -> f64 {
        positional_credit(&(self.answer)(prompt), answer)
    }
}

/// `Text-Addition`: two operands of k digits each (leading zeros kept), answered with their
/// sum in decimal without leading zeros (`07+35=` → `42`, `00+00=` → `0`).
pub struct Addition;

impl Addition {
    /// The operands' digits, if `prompt` is `k digits + k digits`.
    fn operands(prompt: &[u8]) -> Option<(&[u8], &[u8])> {
        let plus = prompt.iter().position(|&t| t == PLUS)?;
        let (a, b) = (&prompt[..plus], &prompt[plus + 1..]);
        let digits = |s: &[u8]| s.iter().all(|&t| vocab::digit_value(t).is_some());
        (!a.is_empty() && a.len() == b.len() && digits(a) && digits(b)).then_some((a, b))
    }

    /// The correct answer to `prompt` (empty for a prompt that is not an addition).
    pub fn sum(prompt: &[u8]) -> Vec<u8> {
        let Some((a, b)) = Self::operands(prompt) else {
            return Vec::new();
        };
        let mut digits = Vec::with_capacity(a.len() + 1);
        let mut carry = 0;
        for (x, y) in a.iter().rev().zip(b.iter().rev()) {
            let s = vocab::digit_value(*x).unwrap_or(0) + vocab::digit_value(*y).unwrap_or(0);
            digits.push((s + carry) % 10);
            carry = (s + carry) / 10;
        }
        digits.push(carry);
        while digits.len() > 1 && digits.last() == Some(&0) {
            digits.pop();
        }
        digits.iter().rev().map(|&d| vocab::digit(d)).collect()
    }
}

impl Task for Addition {
    fn draw(&self, shape: &TaskShape, rng: &mut Rng) -> Vec<u8> {
        let k = draw_len(shape, rng);
        let mut prompt: Vec<u8> = (0..k).map(|_| vocab::digit(rng.below(10) as u8)).collect();
        prompt.push(PLUS);
        prompt.extend((0..k).map(|_| vocab::digit(rng.below(10) as u8)));
        prompt
    }
    fn check(&self, shape: &TaskShape, prompt: &[u8]) -> Result<(), String> {
        match Self::operands(prompt) {
            None => Err("not two operands of equally many digits joined by `+`".into()),
            Some((a, _)) if !(shape.min_len..=shape.max_len).contains(&a.len()) => Err(format!(
                "operands of {} digits, the settings ask for {}-{}",
                a.len(),
                shape.min_len,
                shape.max_len
            )),
            Some(_) => Ok(()),
        }
    }
    fn max_prompt(&self, shape: &TaskShape) -> usize {
        2 * shape.max_len + 1
    }
    fn max_answer(&self, shape: &TaskShape) -> usize {
        shape.max_len + 1
    }
    fn answer_len(&self, prompt: &[u8]) -> usize {
        Self::sum(prompt).len()
    }
    fn solve(&self, prompt: &[u8]) -> Vec<u8> {
        Self::sum(prompt)
    }
    fn verify(&self, prompt: &[u8], answer: &[u8]) -> bool {
        Self::sum(prompt) == answer
    }
    fn credit(&self, prompt: &[u8], answer: &[u8]) -> f64 {
        positional_credit(&Self::sum(prompt), answer)
    }
}

/// `Text-Palindrome`: the prompt is a multiset of letters (sorted, e.g. `aabbc=`); any
/// palindrome using exactly those letters is correct (`abcba`, `bacab`). Prompts are drawn so
/// that one exists (at most one letter occurs an odd number of times).
pub struct Palindrome;

impl Palindrome {
    /// Letter counts of `tokens` (non-letters counted apart, in the last slot).
    fn counts(tokens: &[u8]) -> [usize; 27] {
        let mut counts = [0; 27];
        for &t in tokens {
            let slot = if vocab::is_letter(t) {
                (t - vocab::letter(0)) as usize
            } else {
                26
            };
            counts[slot] += 1;
        }
        counts
    }
}

impl Task for Palindrome {
    fn draw(&self, shape: &TaskShape, rng: &mut Rng) -> Vec<u8> {
        let n = draw_len(shape, rng);
        let half = letters(n / 2, shape.letters, rng);
        let mut prompt = half.clone();
        prompt.extend(half);
        if n % 2 == 1 {
            prompt.push(vocab::letter(rng.below(shape.letters)));
        }
        prompt.sort_unstable();
        prompt
    }
    fn check(&self, shape: &TaskShape, prompt: &[u8]) -> Result<(), String> {
        check_letters(shape, prompt)?;
        if !prompt.is_sorted() {
            return Err("the letters are not in order".into());
        }
        if Self::counts(prompt).iter().filter(|&&c| c % 2 == 1).count() > 1 {
            return Err(
                "no palindrome uses these letters (two occur an odd number of times)".into(),
            );
        }
        Ok(())
    }
    /// Half of each letter's pairs in order, the odd letter in the middle, then the mirror.
    fn solve(&self, prompt: &[u8]) -> Vec<u8> {
        let counts = Self::counts(prompt);
        let mut half = Vec::with_capacity(prompt.len() / 2);
        let mut middle = None;
        for (i, &c) in counts[..26].iter().enumerate() {
            half.extend(std::iter::repeat_n(vocab::letter(i), c / 2));
            if c % 2 == 1 {
                middle = Some(vocab::letter(i));
            }
        }
        let mut answer = half.clone();
        answer.extend(middle);
        answer.extend(half.iter().rev());
        answer
    }
    fn verify(&self, prompt: &[u8], answer: &[u8]) -> bool {
        answer.iter().eq(answer.iter().rev()) && Self::counts(answer) == Self::counts(prompt)
    }
    /// Half for the letters used from the multiset, half for the positions that mirror their
    /// counterpart, each over the longer of the answer and the prompt.
    fn credit(&self, prompt: &[u8], answer: &[u8]) -> f64 {
        let longer = prompt.len().max(answer.len()).max(1) as f64;
        let (want, have) = (Self::counts(prompt), Self::counts(answer));
        let shared: usize = want[..26]
            .iter()
            .zip(&have[..26])
            .map(|(w, h)| w.min(h))
            .sum();
        let n = answer.len();
        let mirrored = (0..n).filter(|&i| answer[i] == answer[n - 1 - i]).count();
        0.5 * shared as f64 / longer + 0.5 * mirrored as f64 / longer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::text::vocab::encode;

    fn t(s: &str) -> Vec<u8> {
        encode(s).unwrap()
    }

    #[test]
    fn copy_reverse_and_addition_accept_only_their_answer() {
        assert!(COPY.verify(&t("abc"), &t("abc")));
        assert!(!COPY.verify(&t("abc"), &t("abcc")));
        assert!(REVERSE.verify(&t("abc"), &t("cba")));
        assert!(!REVERSE.verify(&t("abc"), &t("cb")));
        assert_eq!(REVERSE.credit(&t("abc"), &t("cbb")), 2.0 / 3.0);
        assert_eq!(REVERSE.credit(&t("abc"), &t("cbaa")), 0.75);
        assert_eq!(Addition::sum(&t("07+35")), t("42"));
        assert_eq!(Addition::sum(&t("99+99")), t("198"));
        assert_eq!(Addition::sum(&t("00+00")), t("0"));
        assert_eq!(Addition::sum(&t("50+50")), t("100"));
        assert!(Addition.verify(&t("07+35"), &t("42")));
        assert!(!Addition.verify(&t("07+35"), &t("042")));
        assert!(
            Addition
                .check(
                    &TaskShape {
                        min_len: 2,
                        max_len: 2,
                        letters: 26
                    },
                    &t("7+35")
                )
                .is_err()
        );
    }

    /// Every addition of two 2-digit operands against plain integer arithmetic.
    #[test]
    fn addition_agrees_with_integer_arithmetic() {
        for a in 0..100 {
            for b in 0..100 {
                let prompt = t(&format!("{a:02}+{b:02}"));
                assert_eq!(vocab::decode(&Addition::sum(&prompt)), (a + b).to_string());
            }
        }
    }

    /// All letter strings of lengths 0..=6 over `a`..`c`: the verifier accepts exactly the
    /// palindromes that are permutations of the prompt, by brute force.
    #[test]
    fn the_palindrome_verifier_accepts_every_palindrome_of_the_letters_and_nothing_else() {
        for prompt in ["aabbc", "aabb", "a", "abbcc", "aaaa"] {
            let prompt = t(prompt);
            let mut sorted_prompt = prompt.clone();
            sorted_prompt.sort_unstable();
            let mut accepted = 0;
            for n in 0..=6 {
                for code in 0..3usize.pow(n) {
                    let answer: Vec<u8> = (0..n)
                        .map(|i| vocab::letter(code / 3usize.pow(i) % 3))
                        .collect();
                    let palindrome = answer.iter().eq(answer.iter().rev());
                    let mut sorted = answer.clone();
                    sorted.sort_unstable();
                    let expected = palindrome && sorted == sorted_prompt;
                    assert_eq!(
                        Palindrome.verify(&prompt, &answer),
                        expected,
                        "{} for {}",
                        vocab::decode(&answer),
                        vocab::decode(&prompt)
                    );
                    assert_eq!(Palindrome.credit(&prompt, &answer) == 1.0, expected);
                    accepted += usize::from(expected);
                }
            }
            assert!(accepted > 0, "{}", vocab::decode(&prompt));
        }
        // aabbc has exactly two palindromes: abcba and bacab.
        let two: Vec<_> = ["abcba", "bacab", "acbca", "aabbc"]
            .iter()
            .map(|a| Palindrome.verify(&t("aabbc"), &t(a)))
            .collect();
        assert_eq!(two, [true, true, false, false]);
    }

    #[test]
    fn drawn_prompts_pass_their_task_s_check() {
        let shape = TaskShape {
            min_len: 2,
            max_len: 5,
            letters: 3,
        };
        let mut rng = Rng::new(3);
        let tasks: [&dyn Task; 4] = [&COPY, &REVERSE, &Addition, &Palindrome];
        for task in tasks {
            for _ in 0..200 {
                let prompt = task.draw(&shape, &mut rng);
                assert_eq!(
                    task.check(&shape, &prompt),
                    Ok(()),
                    "{}",
                    vocab::decode(&prompt)
                );
                assert!(prompt.len() <= task.max_prompt(&shape));
                assert!(task.answer_len(&prompt) <= task.max_answer(&shape));
                let answer = task.solve(&prompt);
                assert!(task.verify(&prompt, &answer), "{}", vocab::decode(&prompt));
                assert_eq!(answer.len(), task.answer_len(&prompt));
            }
        }
        assert!(Palindrome.check(&shape, &t("abc")).is_err());
        assert!(COPY.check(&shape, &t("abd")).is_err());
    }
}
