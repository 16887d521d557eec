//! Frame stacking for image environments: the last k observations on the channel axis.
//!
//! As Gymnasium's `FrameStackObservation` with `padding_type="reset"`: after a reset every one
//! of the k slots holds the first observation; each step drops the oldest frame and appends the
//! newest. Frames are ordered oldest first, newest last, so an inner `Image { c, h, w }` becomes
//! `Image { c·k, h, w }` whose last c channels are the current frame. Rewards and end flags pass
//! through unchanged.

use super::{Action, Env, EnvError, Space, Step};
use crate::rng::Rng;

/// An image environment whose observation is its last k frames.
pub struct FrameStack {
    inner: Box<dyn Env>,
    k: usize,
    /// Size of one inner frame.
    frame: usize,
    /// The k frames, oldest first.
    frames: Vec<f32>,
    space: Space,
}

impl FrameStack {
    /// Stacks the last `k` observations of `inner`.
    ///
    /// # Errors
    /// [`EnvError::FrameStack`] when `inner`'s observations are not images or `k` is 0.
    pub fn new(inner: Box<dyn Env>, k: usize) -> Result<Self, EnvError> {
        let inner_space = inner.observation_space();
        let Some([channels, height, width]) = inner_space.image_shape() else {
            return Err(EnvError::FrameStack(format!(
                "it needs an image observation space, not {inner_space}"
            )));
        };
        if k == 0 {
            return Err(EnvError::FrameStack("it needs k ≥ 1 frames".into()));
        }
        let frame = inner_space.flat_dim();
        Ok(Self {
            inner,
            k,
            frame,
            frames: vec![0.0; k * frame],
            space: Space::Image {
                channels: channels * k,
                height,
                width,
            },
        })
    }

    /// Fills every slot with the frame the inner environment just wrote into the newest one.
    fn pad_with_newest(&mut self, obs: &mut [f32]) {
        let newest = (self.k - 1) * self.frame;
        for slot in 0..self.k - 1 {
            self.frames
                .copy_within(newest..newest + self.frame, slot * self.frame);
        }
        obs.copy_from_slice(&self.frames);
    }
}

impl Env for FrameStack {
    fn observation_space(&self) -> Space {
        self.space.clone()
    }

    fn action_space(&self) -> Space {
        self.inner.action_space()
    }

    fn reset(&mut self, rng: &mut Rng, obs: &mut [f32]) {
        let newest = (self.k - 1) * self.frame;
        self.inner.reset(rng, &mut self.frames[newest..]);
        self.pad_with_newest(obs);
    }

    fn reset_to(&mut self, state: &[f64], obs: &mut [f32]) -> Result<(), EnvError> {
        let newest = (self.k - 1) * self.frame;
        self.inner.reset_to(state, &mut self.frames[newest..])?;
        self.pad_with_newest(obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Step {
        self.frames.copy_within(self.frame.., 0);
        let newest = (self.k - 1) * self.frame;
        let step = self.inner.step(action, &mut self.frames[newest..]);
        obs.copy_from_slice(&self.frames);
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1×1×2 image environment whose frame after t steps is `[t, 100 + t]` plus the start
    /// value, with reward t and termination at step 3.
    struct Counter {
        start: f32,
        t: f32,
    }

    impl Counter {
        fn write(&self, obs: &mut [f32]) {
            obs[0] = self.start + self.t;
            obs[1] = self.start + 100.0 + self.t;
        }
    }

    impl Env for Counter {
        fn observation_space(&self) -> Space {
            Space::Image {
                channels: 1,
                height: 1,
                width: 2,
            }
        }
        fn action_space(&self) -> Space {
            Space::Discrete(1)
        }
        fn reset(&mut self, _rng: &mut Rng, obs: &mut [f32]) {
            self.t = 0.0;
            self.write(obs);
        }
        fn reset_to(&mut self, state: &[f64], obs: &mut [f32]) -> Result<(), EnvError> {
            self.start = state[0] as f32;
            self.t = 0.0;
            self.write(obs);
            Ok(())
        }
        fn step(&mut self, _action: Action<'_>, obs: &mut [f32]) -> Step {
            self.t += 1.0;
            self.write(obs);
            Step {
                reward: self.t as f64,
                terminated: self.t == 3.0,
                truncated: self.t == 2.0,
            }
        }
    }

    fn counter() -> Box<dyn Env> {
        Box::new(Counter { start: 0.0, t: 0.0 })
    }

    #[test]
    fn stacks_oldest_first_padding_with_the_first_frame() {
        let mut env = FrameStack::new(counter(), 3).unwrap();
        assert_eq!(
            env.observation_space(),
            Space::Image {
                channels: 3,
                height: 1,
                width: 2
            }
        );
        assert_eq!(env.action_space(), Space::Discrete(1));
        let mut obs = [0f32; 6];
        env.reset(&mut Rng::new(0), &mut obs);
        assert_eq!(obs, [0.0, 100.0, 0.0, 100.0, 0.0, 100.0]);
        let steps = [
            [0.0, 100.0, 0.0, 100.0, 1.0, 101.0],
            [0.0, 100.0, 1.0, 101.0, 2.0, 102.0],
            [1.0, 101.0, 2.0, 102.0, 3.0, 103.0],
        ];
        for (t, want) in steps.iter().enumerate() {
            let step = env.step(Action::Discrete(0), &mut obs);
            assert_eq!(&obs, want, "step {}", t + 1);
            assert_eq!(
                (step.reward, step.truncated, step.terminated),
                ((t + 1) as f64, t == 1, t == 2)
            );
        }
        // A new episode forgets the old frames.
        env.reset_to(&[10.0], &mut obs).unwrap();
        assert_eq!(obs, [10.0, 110.0, 10.0, 110.0, 10.0, 110.0]);
        env.step(Action::Discrete(0), &mut obs);
        assert_eq!(obs, [10.0, 110.0, 10.0, 110.0, 11.0, 111.0]);
    }

    #[test]
    fn one_frame_is_the_inner_environment() {
        let mut env = FrameStack::new(counter(), 1).unwrap();
        let mut obs = [0f32; 2];
        env.reset(&mut Rng::new(0), &mut obs);
        env.step(Action::Discrete(0), &mut obs);
        assert_eq!(obs, [1.0, 101.0]);
    }

    #[test]
    fn refuses_vector_observations_and_zero_frames() {
        let err = FrameStack::new(super::super::make("CartPole-v1").unwrap(), 4)
            .err()
            .unwrap();
        assert!(err.to_string().contains("image"), "{err}");
        assert!(matches!(
            FrameStack::new(counter(), 0),
            Err(EnvError::FrameStack(_))
        ));
    }

    #[test]
    fn make_stacked_wraps_catch_inside_its_time_limit() {
        use super::super::{make, make_stacked};
        let mut plain = make("Catch-v0").unwrap();
        let mut stacked = make_stacked("Catch-v0", 4).unwrap();
        assert_eq!(
            stacked.observation_space(),
            Space::Image {
                channels: 4,
                height: 10,
                width: 5
            }
        );
        assert_eq!(
            make_stacked("Catch-v0", 1).unwrap().observation_space(),
            plain.observation_space()
        );
        let err = make_stacked("CartPole-v1", 4).err().unwrap().to_string();
        assert!(
            err.contains("CartPole-v1") && err.contains("image"),
            "{err}"
        );

        let (mut a, mut b) = (Rng::new(5), Rng::new(5));
        let mut one = [0f32; 50];
        let mut four = [0f32; 200];
        plain.reset(&mut a, &mut one);
        stacked.reset(&mut b, &mut four);
        let mut history = vec![one; 4];
        for t in 0..9 {
            let action = Action::Discrete(t % 3);
            let want = plain.step(action, &mut one);
            history.remove(0);
            history.push(one);
            assert_eq!(stacked.step(action, &mut four), want, "step {t}");
            assert_eq!(four.as_slice(), history.concat().as_slice(), "step {t}");
        }
    }
}
