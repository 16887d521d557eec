//! What a network reads: `f32` vectors, `u8` images or token sequences.

use crate::obs::ObsFormat;

/// The kind and shape of the observations a network reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Input {
    /// `f32` vectors (possibly normalised).
    #[default]
    Vector,
    /// `u8` images `[C, H, W]`, scaled to `[0, 1]` by the network's first operation.
    Image([usize; 3]),
    /// Token sequences: `length` ids below `vocab`, then the text's length (one byte each);
    /// the sequence encoder embeds the ids.
    Tokens {
        /// Ids per observation.
        length: usize,
        /// Vocabulary size.
        vocab: usize,
    },
}

impl Input {
    /// `[C, H, W]` of image inputs.
    pub fn image(&self) -> Option<[usize; 3]> {
        match *self {
            Input::Image(shape) => Some(shape),
            _ => None,
        }
    }

    /// How observations travel and are stored: bytes for images and tokens, `f32` otherwise.
    pub fn obs_format(&self) -> ObsFormat {
        match self {
            Input::Vector => ObsFormat::F32,
            Input::Image(_) | Input::Tokens { .. } => ObsFormat::U8,
        }
    }

    /// The input of an environment's observation space: images and token sequences as such,
    /// any other space as a vector.
    pub fn of(space: &crate::env::Space) -> Self {
        match (space.image_shape(), space.token_shape()) {
            (Some(shape), _) => Input::Image(shape),
            (_, Some((length, vocab))) => Input::Tokens { length, vocab },
            _ => Input::Vector,
        }
    }
}
