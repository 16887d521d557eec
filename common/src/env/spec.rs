//! An environment as a run names it: a registered id and the wrappers the run puts around it.

use std::fmt;

use super::{Env, EnvError, make_stacked};

/// The most frames a run may stack: a bound on what one registration response can make an
/// actor allocate per observation.
pub const MAX_FRAME_STACK: usize = 64;

/// What an actor, an evaluation or the learner builds when a run names an environment: the
/// registry id (inside its time limit) and, for image environments, how many of the last
/// frames each observation stacks on the channel axis ([`super::FrameStack`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvSpec {
    /// Gymnasium-style id of a registered environment.
    pub id: String,
    /// Frames stacked per observation; 1 is the environment's own observation.
    pub frame_stack: usize,
}

impl EnvSpec {
    /// The environment `id` as registered, with nothing stacked.
    pub fn new(id: impl Into<String>) -> Self {
        Self::stacked(id, 1)
    }

    /// `id` with its last `frame_stack` frames stacked; 0 is read as 1.
    pub fn stacked(id: impl Into<String>, frame_stack: usize) -> Self {
        Self {
            id: id.into(),
            frame_stack: frame_stack.max(1),
        }
    }

    /// A fresh copy of the environment, wrapped as specified.
    ///
    /// # Errors
    /// An unknown id, more than [`MAX_FRAME_STACK`] frames, or frame stacking asked of an
    /// environment whose observations are not images.
    pub fn make(&self) -> Result<Box<dyn Env>, EnvError> {
        if self.frame_stack > MAX_FRAME_STACK {
            return Err(EnvError::FrameStack(format!(
                "{} frames asked, at most {MAX_FRAME_STACK}",
                self.frame_stack
            )));
        }
        make_stacked(&self.id, self.frame_stack)
    }
}

/// The id, followed by the stacking when there is any: `MinBreakout-v0 (4 frames stacked)`.
impl fmt::Display for EnvSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.frame_stack {
            0 | 1 => write!(f, "{}", self.id),
            k => write!(f, "{} ({k} frames stacked)", self.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Space;

    #[test]
    fn a_spec_builds_its_environment_with_the_frames_stacked() {
        let plain = EnvSpec::new("Catch-v0");
        assert_eq!(plain, EnvSpec::stacked("Catch-v0", 0));
        assert_eq!(plain.to_string(), "Catch-v0");
        assert_eq!(
            plain.make().unwrap().observation_space(),
            Space::Image {
                channels: 1,
                height: 10,
                width: 5
            }
        );
        let stacked = EnvSpec::stacked("MinBreakout-v0", 4);
        assert_eq!(stacked.to_string(), "MinBreakout-v0 (4 frames stacked)");
        assert_eq!(
            stacked.make().unwrap().observation_space().image_shape(),
            Some([16, 10, 10])
        );
        assert!(EnvSpec::stacked("CartPole-v1", 2).make().is_err());
        assert!(EnvSpec::stacked("Catch-v0", MAX_FRAME_STACK).make().is_ok());
        assert!(
            EnvSpec::stacked("Catch-v0", MAX_FRAME_STACK + 1)
                .make()
                .is_err()
        );
    }
}
