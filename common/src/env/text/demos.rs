//! Demonstrations for the supervised warm start: one example per line, `PROMPT=ANSWER` in the
//! task's characters (`07+35=42`); blank lines and lines starting with `#` are skipped. Each
//! example becomes the observations the environment would show while its answer is generated
//! (teacher forcing), each labelled with the next token, EOS last.

use thiserror::Error;

use super::vocab::{self, EOS, SEP};
use super::{Task, TextEnv};
use crate::rng::Rng;

/// Why a demonstration line was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DemoError {
    /// No `=` between prompt and answer.
    #[error("no `=` between prompt and answer")]
    NoSeparator,
    /// A character outside the vocabulary.
    #[error("`{0}` is not in the vocabulary")]
    Character(char),
    /// Nothing before the `=`.
    #[error("an empty prompt")]
    EmptyPrompt,
    /// `$`, `_` or a second `=` in the text.
    #[error("`$`, `_` and a second `=` are not text")]
    Reserved,
    /// More tokens than the environment's observations hold.
    #[error("{tokens} tokens with its answer, the environment's observations hold {length}")]
    TooLong {
        /// Prompt, `=` and answer.
        tokens: usize,
        /// The observation's ids.
        length: usize,
    },
}

/// One example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demonstration {
    /// The prompt's tokens (without `=`).
    pub prompt: Vec<u8>,
    /// The answer's tokens (without EOS).
    pub answer: Vec<u8>,
}

impl Demonstration {
    /// Reads `PROMPT=ANSWER`.
    ///
    /// # Errors
    /// No `=`, or a character outside the vocabulary.
    pub fn parse(line: &str) -> Result<Self, DemoError> {
        let (prompt, answer) = line.split_once('=').ok_or(DemoError::NoSeparator)?;
        let tokens = |text: &str| vocab::encode(text).map_err(DemoError::Character);
        let (prompt, answer) = (tokens(prompt)?, tokens(answer)?);
        if prompt.is_empty() {
            return Err(DemoError::EmptyPrompt);
        }
        if prompt
            .iter()
            .chain(&answer)
            .any(|&t| t == EOS || t == SEP || t == vocab::PAD)
        {
            return Err(DemoError::Reserved);
        }
        Ok(Self { prompt, answer })
    }

    /// The line [`Demonstration::parse`] reads.
    pub fn line(&self) -> String {
        format!(
            "{}={}",
            vocab::decode(&self.prompt),
            vocab::decode(&self.answer)
        )
    }

    /// The observations (each `length` ids then the text's length, as [`TextEnv`] writes them)
    /// seen while the answer is generated, each with the token that comes next: the answer's,
    /// then EOS.
    ///
    /// # Errors
    /// A text longer than `length` tokens.
    pub fn teacher_forcing(&self, length: usize) -> Result<Vec<(Vec<u8>, u8)>, DemoError> {
        let mut text = self.prompt.clone();
        text.push(SEP);
        if text.len() + self.answer.len() > length {
            return Err(DemoError::TooLong {
                tokens: text.len() + self.answer.len(),
                length,
            });
        }
        let mut rows = Vec::with_capacity(self.answer.len() + 1);
        for &next in self.answer.iter().chain(std::iter::once(&EOS)) {
            let mut row = text.clone();
            row.resize(length, vocab::PAD);
            row.push(text.len() as u8);
            rows.push((row, next));
            text.push(next);
        }
        Ok(rows)
    }
}

/// An answer like `answer` that `task` rejects: one position changed to another token of its
/// kind (a digit for a digit, a letter for a letter), or a token added when that cannot make
/// one wrong.
pub fn corrupt(task: &dyn Task, prompt: &[u8], answer: &[u8], rng: &mut Rng) -> Vec<u8> {
    for _ in 0..64 {
        let mut wrong = answer.to_vec();
        if wrong.is_empty() {
            break;
        }
        let i = rng.below(wrong.len());
        wrong[i] = match vocab::digit_value(wrong[i]) {
            Some(d) => vocab::digit(((d as usize + 1 + rng.below(9)) % 10) as u8),
            None => vocab::letter(rng.below(26)),
        };
        if !task.verify(prompt, &wrong) {
            return wrong;
        }
    }
    let mut longer = answer.to_vec();
    longer.push(answer.last().copied().unwrap_or(vocab::digit(0)));
    longer
}

/// `count` demonstrations of `env`'s task on prompts it draws (its split), each wrong with
/// probability `corrupted`; with whether each is right.
pub fn generate(
    env: &TextEnv,
    count: usize,
    corrupted: f64,
    rng: &mut Rng,
) -> Vec<(Demonstration, bool)> {
    let task = env.task();
    (0..count)
        .filter_map(|_| {
            let prompt = env.draw(rng)?;
            let answer = task.solve(&prompt);
            let right = rng.next_f64() >= corrupted;
            let answer = if right {
                answer
            } else {
                corrupt(task, &prompt, &answer, rng)
            };
            Some((Demonstration { prompt, answer }, right))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{Action, Env};

    /// The rows teacher forcing makes are the observations the environment shows while the
    /// same answer is played, and the labels are the tokens played.
    #[test]
    fn teacher_forcing_shows_what_the_environment_shows() {
        let mut env = TextEnv::open("Text-Addition-v0").unwrap();
        let demo = Demonstration::parse("48+57=105").unwrap();
        assert_eq!(demo.line(), "48+57=105");
        let rows = demo.teacher_forcing(env.length()).unwrap();
        assert_eq!(rows.len(), 4);
        let mut obs = vec![0.0; env.length() + 1];
        let state: Vec<f64> = demo.prompt.iter().map(|&t| t as f64).collect();
        env.reset_to(&state, &mut obs).unwrap();
        for (row, next) in &rows {
            let seen: Vec<u8> = obs.iter().map(|&v| v as u8).collect();
            assert_eq!(&seen, row);
            env.step(Action::Discrete(*next as usize), &mut obs);
        }
        assert_eq!(rows.last().unwrap().1, EOS);
        assert!(Demonstration::parse("48+57").is_err());
        assert!(Demonstration::parse("48+5X=1").is_err());
        assert!(Demonstration::parse("=1").is_err());
        assert!(
            Demonstration::parse("1234+5678=1")
                .unwrap()
                .teacher_forcing(10)
                .is_err()
        );
    }

    #[test]
    fn generated_demonstrations_are_right_unless_corrupted() {
        let env = TextEnv::open("Text-Addition-v0").unwrap();
        let mut rng = Rng::new(5);
        let demos = generate(&env, 1000, 0.3, &mut rng);
        assert_eq!(demos.len(), 1000);
        let wrong = demos.iter().filter(|(_, right)| !right).count();
        assert!((250..350).contains(&wrong), "{wrong}");
        for (d, right) in &demos {
            assert_eq!(
                env.task().verify(&d.prompt, &d.answer),
                *right,
                "{}",
                d.line()
            );
            assert_eq!(Demonstration::parse(&d.line()).as_ref(), Ok(d));
        }
        let pal = TextEnv::open("Text-Palindrome-v0?length=4-6&letters=3").unwrap();
        for (d, right) in generate(&pal, 200, 0.5, &mut rng) {
            assert_eq!(
                pal.task().verify(&d.prompt, &d.answer),
                right,
                "{}",
                d.line()
            );
        }
    }
}
