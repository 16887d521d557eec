//! Text generation as an environment: the state is the prompt and the text generated so far,
//! each action appends one token, and a verifier judges the answer when the episode ends.
//!
//! Every task shares the character vocabulary of [`vocab`]. An episode:
//! - starts with a prompt drawn from the copy's seed, ended by `=` (`abc=`);
//! - each step appends the action's token; the episode ends (terminated) at EOS, or when the
//!   answer has one token more than the longest correct answer (it can no longer be right);
//! - the only reward comes at the end: 1 for an answer the verifier accepts, otherwise
//!   `partial` × the fraction of positions right ([`Task::credit`]), minus `penalty` when the
//!   answer is longer than a correct one.
//!
//! The observation ([`Space::Tokens`]) is the text so far (prompt, `=`, answer) padded with
//! `<pad>` to its most tokens, then the text's length; it travels as one byte per value.
//!
//! Settings, after the id: `length=N` or `length=A-B` (prompt characters; digits per operand
//! for Addition), `letters=N` (the prompts' alphabet: the first N letters), `partial=X` and
//! `penalty=X` (in `[0, 1]`, default 0), and `split=train|test|all`: a fixed fifth of all
//! prompts (by a hash of the prompt) is held out, `train` never draws it and `test` draws only
//! from it.

pub mod demos;
pub mod tasks;
pub mod vocab;

use super::options::Options;
use super::{Action, Env, EnvError, Space, Step};
use crate::rng::Rng;
pub use tasks::{Task, TaskShape};

/// A registered text task: its verifier and prompts, and the prompt length when the id does
/// not set one.
#[derive(Clone, Copy)]
pub struct TextTask {
    /// The task.
    pub task: &'static dyn Task,
    /// `length` when not given.
    pub default_len: usize,
}

impl std::fmt::Debug for TextTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TextTask(length {})", self.default_len)
    }
}

/// `Text-Copy-v0`.
pub const COPY: TextTask = TextTask {
    task: &tasks::COPY,
    default_len: 3,
};
/// `Text-Reverse-v0`.
pub const REVERSE: TextTask = TextTask {
    task: &tasks::REVERSE,
    default_len: 3,
};
/// `Text-Addition-v0` (2-digit operands unless `length` says otherwise).
pub const ADDITION: TextTask = TextTask {
    task: &tasks::Addition,
    default_len: 2,
};
/// `Text-Palindrome-v0`.
pub const PALINDROME: TextTask = TextTask {
    task: &tasks::Palindrome,
    default_len: 5,
};

/// Which prompts a copy draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Every prompt.
    All,
    /// All but the held-out fifth.
    Train,
    /// The held-out fifth only.
    Test,
}

impl Split {
    /// Whether `prompt` belongs to this split.
    pub fn holds(self, prompt: &[u8]) -> bool {
        match self {
            Split::All => true,
            Split::Train => !held_out(prompt),
            Split::Test => held_out(prompt),
        }
    }
}

/// Whether `prompt` is in the held-out fifth: FNV-1a of its tokens, mixed by MurmurHash3's
/// finaliser (FNV's low bits alone split short prompts badly), modulo 5, is 0.
pub fn held_out(prompt: &[u8]) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &t in prompt {
        h ^= u64::from(t);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h.is_multiple_of(5)
}

/// How a text environment draws and scores (its settings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextSettings {
    /// The prompts' sizes.
    pub shape: TaskShape,
    /// Weight of partial credit for a wrong answer, in `[0, 1]`.
    pub partial: f64,
    /// Subtracted when the answer is longer than a correct one, in `[0, 1]`.
    pub penalty: f64,
    /// Which prompts are drawn.
    pub split: Split,
}

/// Most characters of a prompt (bounds the observation: ids and lengths fit a byte).
pub const MAX_LENGTH: usize = 60;
/// Draws tried for a prompt of the split before giving up.
const DRAWS: usize = 10_000;

impl TextSettings {
    /// Reads the settings of an id, with `length` defaulting to `default_len`.
    fn read(options: &mut Options, default_len: usize) -> Result<Self, EnvError> {
        let (min_len, max_len) = match options.take::<String>("length")? {
            None => (default_len, default_len),
            Some(text) => {
                let parse = |s: &str| s.trim().parse::<usize>().ok();
                let range = match text.split_once('-') {
                    Some((a, b)) => parse(a).zip(parse(b)),
                    None => parse(&text).map(|n| (n, n)),
                };
                match range {
                    Some((a, b)) if 1 <= a && a <= b && b <= MAX_LENGTH => (a, b),
                    _ => {
                        return Err(options.invalid(
                            "length",
                            &format!("must be N or A-B with 1 <= A <= B <= {MAX_LENGTH}"),
                        ));
                    }
                }
            }
        };
        let letters = options.take::<usize>("letters")?.unwrap_or(26);
        if !(1..=26).contains(&letters) {
            return Err(options.invalid("letters", "must be 1 to 26"));
        }
        let mut unit = |key: &str| -> Result<f64, EnvError> {
            let x = options.take::<f64>(key)?.unwrap_or(0.0);
            if (0.0..=1.0).contains(&x) {
                Ok(x)
            } else {
                Err(options.invalid(key, "must be in [0, 1]"))
            }
        };
        let (partial, penalty) = (unit("partial")?, unit("penalty")?);
        let split = match options.take::<String>("split")?.as_deref() {
            None | Some("all") => Split::All,
            Some("train") => Split::Train,
            Some("test") => Split::Test,
            Some(_) => return Err(options.invalid("split", "must be train, test or all")),
        };
        Ok(Self {
            shape: TaskShape {
                min_len,
                max_len,
                letters,
            },
            partial,
            penalty,
            split,
        })
    }
}

/// The reward of `answer` (without its EOS) to `prompt`: 1 when the verifier accepts it,
/// otherwise `partial` × its credit, minus `penalty` when it is longer than a correct answer.
pub fn score(task: &dyn Task, settings: &TextSettings, prompt: &[u8], answer: &[u8]) -> f64 {
    if task.verify(prompt, answer) {
        return 1.0;
    }
    let over = answer.len() > task.answer_len(prompt);
    settings.partial * task.credit(prompt, answer) - if over { settings.penalty } else { 0.0 }
}

/// A text task as an environment.
pub struct TextEnv {
    task: &'static dyn Task,
    settings: TextSettings,
    /// Prompt, `=`, then the answer so far.
    text: Vec<u8>,
    /// Tokens of the prompt.
    prompt_len: usize,
    /// Tokens of the observation's text part.
    length: usize,
    /// A prompt of the split (found when the environment was made): what a reset uses when
    /// it finds none, which only a tiny split makes likely.
    fallback: Vec<u8>,
}

impl TextEnv {
    /// The text environment registered as `id` (with its settings).
    ///
    /// # Errors
    /// An unknown id, one that is not a text task, or bad settings.
    pub fn open(id: &str) -> Result<Self, EnvError> {
        let info = super::info(id)?;
        let options = Options::of_id(id)?;
        match info.text {
            Some(task) => Self::new(task, options),
            None => Err(EnvError::Options {
                id: info.id.to_string(),
                why: "is not a text task".into(),
            }),
        }
    }

    /// `task` with the settings in `options`.
    ///
    /// # Errors
    /// A setting out of range or unknown, or a split that holds no prompt of these settings.
    pub fn new(task: TextTask, mut options: Options) -> Result<Self, EnvError> {
        let settings = TextSettings::read(&mut options, task.default_len)?;
        let mut env = Self::with_settings(task.task, settings);
        match env.draw(&mut Rng::new(0)) {
            Some(prompt) => env.fallback = prompt,
            None => return Err(options.invalid("split", "holds no prompt with these settings")),
        }
        options.finish()?;
        Ok(env)
    }

    /// `task` with `settings` (not checked for a non-empty split: a reset that finds no
    /// prompt of the split then draws from all prompts).
    pub fn with_settings(task: &'static dyn Task, settings: TextSettings) -> Self {
        let shape = &settings.shape;
        let length = task.max_prompt(shape) + 1 + task.max_answer(shape) + 1;
        Self {
            task,
            settings,
            text: Vec::with_capacity(length),
            prompt_len: 0,
            length,
            fallback: Vec::new(),
        }
    }

    /// The task.
    pub fn task(&self) -> &'static dyn Task {
        self.task
    }

    /// The settings.
    pub fn settings(&self) -> &TextSettings {
        &self.settings
    }

    /// Token ids per observation (before the length).
    pub fn length(&self) -> usize {
        self.length
    }

    /// A prompt of the split, if one turns up in 10,000 draws.
    pub fn draw(&self, rng: &mut Rng) -> Option<Vec<u8>> {
        (0..DRAWS)
            .map(|_| self.task.draw(&self.settings.shape, rng))
            .find(|p| self.settings.split.holds(p))
    }

    /// The answer generated so far (EOS included if it was generated).
    pub fn answer(&self) -> &[u8] {
        &self.text[(self.prompt_len + 1).min(self.text.len())..]
    }

    fn start(&mut self, prompt: &[u8], obs: &mut [f32]) {
        self.text.clear();
        self.text.extend_from_slice(prompt);
        self.text.push(vocab::SEP);
        self.prompt_len = prompt.len();
        self.write(obs);
    }

    fn write(&self, obs: &mut [f32]) {
        let (ids, length) = obs.split_at_mut(self.length);
        for (o, t) in ids
            .iter_mut()
            .zip(self.text.iter().chain(std::iter::repeat(&vocab::PAD)))
        {
            *o = f32::from(*t);
        }
        length[0] = self.text.len() as f32;
    }
}

impl Env for TextEnv {
    fn observation_space(&self) -> Space {
        Space::Tokens {
            length: self.length,
            vocab: vocab::VOCAB,
        }
    }

    fn action_space(&self) -> Space {
        Space::Discrete(vocab::VOCAB)
    }

    fn reset(&mut self, rng: &mut Rng, obs: &mut [f32]) {
        // `new` found a prompt of the split; an empty draw can only be very bad luck with a
        // tiny split, and then that prompt (still of the split) beats stopping the actor.
        let prompt = match self.draw(rng) {
            Some(prompt) => prompt,
            None if !self.fallback.is_empty() => self.fallback.clone(),
            None => self.task.draw(&self.settings.shape, rng),
        };
        self.start(&prompt, obs);
    }

    /// `state`: the prompt's token ids, without the `=`.
    fn reset_to(&mut self, state: &[f64], obs: &mut [f32]) -> Result<(), EnvError> {
        let prompt: Vec<u8> = state
            .iter()
            .map(|&x| u8::try_from(x as i64).ok().filter(|_| x.fract() == 0.0))
            .collect::<Option<_>>()
            .ok_or_else(|| EnvError::InvalidState("token ids are integers 0..=255".into()))?;
        self.task
            .check(&self.settings.shape, &prompt)
            .map_err(|why| EnvError::InvalidState(format!("{}: {why}", vocab::decode(&prompt))))?;
        self.start(&prompt, obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Step {
        let token = match action {
            Action::Discrete(a) => u8::try_from(a).unwrap_or(vocab::PAD),
            Action::Continuous(_) => vocab::PAD,
        };
        self.text.push(token);
        self.write(obs);
        let answer = self.answer();
        let full = answer.len() > self.task.max_answer(&self.settings.shape);
        if token != vocab::EOS && !full {
            return Step {
                reward: 0.0,
                terminated: false,
                truncated: false,
            };
        }
        let answer = answer.strip_suffix(&[vocab::EOS]).unwrap_or(answer);
        let prompt = &self.text[..self.prompt_len];
        Step {
            reward: score(self.task, &self.settings, prompt, answer),
            terminated: true,
            truncated: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vocab::{decode, encode};

    fn env(id: &str) -> Box<dyn Env> {
        crate::env::make(id).unwrap()
    }

    /// Plays `actions` (characters) from the prompt `prompt`; returns the observations as text
    /// with their length, and each step's reward and end.
    fn play(id: &str, prompt: &str, actions: &str) -> (Vec<String>, Vec<(f64, bool)>) {
        let mut env = env(id);
        let mut obs = vec![0.0; env.observation_space().flat_dim()];
        let state: Vec<f64> = encode(prompt).unwrap().iter().map(|&t| t as f64).collect();
        env.reset_to(&state, &mut obs).unwrap();
        let show = |obs: &[f32]| {
            let (ids, len) = obs.split_at(obs.len() - 1);
            let ids: Vec<u8> = ids.iter().map(|&v| v as u8).collect();
            format!("{} {}", decode(&ids), len[0])
        };
        let mut seen = vec![show(&obs)];
        let mut steps = Vec::new();
        for a in encode(actions).unwrap() {
            let step = env.step(Action::Discrete(a as usize), &mut obs);
            seen.push(show(&obs));
            steps.push((step.reward, step.terminated));
            assert!(!step.truncated);
        }
        (seen, steps)
    }

    #[test]
    fn reverse_observes_prompt_and_answer_and_pays_at_the_end() {
        let (seen, steps) = play("Text-Reverse-v0?length=3-4", "abc", "cba$");
        assert_eq!(
            seen,
            [
                "abc=______ 4",
                "abc=c_____ 5",
                "abc=cb____ 6",
                "abc=cba___ 7",
                "abc=cba$__ 8"
            ]
        );
        assert_eq!(
            steps,
            [(0.0, false), (0.0, false), (0.0, false), (1.0, true)]
        );
        // A wrong answer: partial credit for the right positions.
        let (_, steps) = play("Text-Reverse-v0?length=3-4&partial=0.5", "abcd", "dcab$");
        assert_eq!(steps.last(), Some(&(0.25, true)));
        // Without partial credit, nothing.
        let (_, steps) = play("Text-Reverse-v0?length=3-4", "abcd", "dcab$");
        assert_eq!(steps.last(), Some(&(0.0, true)));
    }

    #[test]
    fn an_answer_without_eos_ends_one_token_past_the_longest_and_pays_the_penalty() {
        let (seen, steps) = play("Text-Copy-v0?length=3&partial=1&penalty=0.5", "abc", "abca");
        assert_eq!(seen.last().unwrap(), "abc=abca 8");
        assert_eq!(steps.last(), Some(&(0.75 - 0.5, true)));
        assert!(steps[..3].iter().all(|&(r, end)| r == 0.0 && !end));
        // Short answers end at EOS with no penalty.
        let (_, steps) = play("Text-Copy-v0?length=3&partial=1&penalty=0.5", "abc", "a$");
        assert_eq!(steps, [(0.0, false), (1.0 / 3.0, true)]);
    }

    #[test]
    fn addition_and_palindrome_episodes() {
        let (seen, steps) = play("Text-Addition-v0", "48+57", "105$");
        assert_eq!(seen[0], "48+57=____ 6");
        assert_eq!(steps.last(), Some(&(1.0, true)));
        let (_, steps) = play("Text-Palindrome-v0?length=5&letters=3", "aabbc", "bacab$");
        assert_eq!(steps.last(), Some(&(1.0, true)));
        let (_, steps) = play("Text-Palindrome-v0?length=5&letters=3", "aabbc", "abcab$");
        assert_eq!(steps.last(), Some(&(0.0, true)));
    }

    #[test]
    fn settings_are_checked() {
        for bad in [
            "Text-Copy-v0?length=0",
            "Text-Copy-v0?length=4-3",
            "Text-Copy-v0?letters=27",
            "Text-Copy-v0?partial=2",
            "Text-Copy-v0?split=dev",
            "Text-Copy-v0?colour=red",
            "Text-Copy-v0?length=1&letters=1&split=test",
            "CartPole-v1?length=3",
        ] {
            assert!(crate::env::make(bad).is_err(), "{bad}");
        }
        let mut env = env("Text-Copy-v0?length=3&letters=2");
        let mut obs = vec![0.0; env.observation_space().flat_dim()];
        assert!(
            env.reset_to(&[14.0, 15.0, 16.0], &mut obs).is_err(),
            "c is not among a, b"
        );
        assert!(env.reset_to(&[14.0, 15.0], &mut obs).is_err(), "too short");
    }

    /// Seeded copies draw the same prompts; the train and test splits never meet and together
    /// draw every prompt of a small alphabet.
    #[test]
    fn prompts_are_seeded_and_the_splits_are_disjoint() {
        let first_prompts = |id: &str, seed: u64| {
            let mut env = env(id);
            let mut obs = vec![0.0; env.observation_space().flat_dim()];
            let mut rng = Rng::new(seed);
            (0..400)
                .map(|_| {
                    env.reset(&mut rng, &mut obs);
                    obs[..4].iter().map(|&v| v as u8).collect::<Vec<u8>>()
                })
                .collect::<std::collections::BTreeSet<_>>()
        };
        let id = "Text-Reverse-v0?length=3&letters=3";
        assert_eq!(first_prompts(id, 1), first_prompts(id, 1));
        let train = first_prompts(&format!("{id}&split=train"), 1);
        let test = first_prompts(&format!("{id}&split=test"), 2);
        assert!(train.is_disjoint(&test));
        assert_eq!(train.len() + test.len(), 27, "3 letters, 3 places");
        assert!((3..=9).contains(&test.len()), "{}", test.len());
    }
}
