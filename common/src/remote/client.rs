//! Worlds served over dm_env_rpc as a run's environment copies ([`RemoteWorlds`]): one world
//! per copy, each on its own stream of one connection, stepped concurrently (every copy's
//! request is sent before any response is awaited). Every response is checked against the
//! world's specs before a value reaches the caller: a world that sends a wrong shape or type,
//! a NaN, an unknown observation or an error ends the copies with an error naming it.

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;

use crate::env::{Action, EnvCopies, EnvError, Space, Step};
use crate::env_rpc_proto::dm_env_rpc::v1::{self as rpc, DataType, EnvironmentStateType as State};

use super::specs::{ActionEncoding, WorldLayout, checked};
use super::tensor;
use super::{RemoteEnv, RemoteError};

/// `num_envs` worlds of one served environment, driven by a thread of their own (so the copies
/// can be stepped from synchronous code, inside or outside an async runtime).
pub struct RemoteWorlds {
    layout: WorldLayout,
    url: String,
    n: usize,
    commands: mpsc::Sender<Command>,
    replies: std_mpsc::Receiver<Result<Vec<Option<rpc::StepResponse>>, RemoteError>>,
    driver: Option<JoinHandle<()>>,
}

pub(super) enum Command {
    /// One step request per world (`None`: that world sits this one out).
    Step(Vec<Option<rpc::StepRequest>>),
}

impl RemoteWorlds {
    /// Connects to the server `env` names and creates and joins `num_envs` worlds, world `i`
    /// with the URL's settings and seed `derive_seed(seed, i)`. Every world must announce the
    /// same specs. The worlds are not stepped yet ([`EnvCopies::reset`] starts them).
    pub fn open(url: &str, num_envs: usize, seed: u64) -> Result<Self, RemoteError> {
        let env = RemoteEnv::parse(url)?;
        // One command in flight at a time: each waits for its reply.
        let (commands, command_rx) = mpsc::channel(1);
        let (reply_tx, replies) = std_mpsc::channel();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let driver = std::thread::Builder::new()
            .name("dm-env-rpc".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(RemoteError::Lost(e.to_string())));
                        return;
                    }
                };
                runtime.block_on(super::driver::drive(
                    env, num_envs, seed, ready_tx, command_rx, reply_tx,
                ));
            })
            .map_err(|e| RemoteError::Lost(e.to_string()))?;
        let layout = ready_rx
            .recv()
            .map_err(|_| RemoteError::Lost("the driver thread ended".into()))??;
        Ok(Self {
            layout,
            url: crate::text::bounded_to(url, super::MAX_PEER_TEXT),
            n: num_envs,
            commands,
            replies,
            driver: Some(driver),
        })
    }

    /// What the worlds announced, as shoal reads it.
    pub fn layout(&self) -> &WorldLayout {
        &self.layout
    }

    fn exchange(
        &mut self,
        requests: Vec<Option<rpc::StepRequest>>,
    ) -> Result<Vec<Option<rpc::StepResponse>>, RemoteError> {
        self.commands
            .try_send(Command::Step(requests))
            .map_err(|_| RemoteError::Lost("the driver thread ended".into()))?;
        self.replies
            .recv()
            .map_err(|_| RemoteError::Lost("the driver thread ended".into()))?
    }

    /// The observation UIDs a step asks for: the observation, and the reward unless the step
    /// starts an episode (which has none).
    fn requested(&self, reward: bool) -> Vec<u64> {
        let mut uids = vec![self.layout.observation_uid];
        if reward {
            uids.extend(self.layout.reward_uid);
        }
        uids
    }

    fn encode(&self, action: Action<'_>) -> Result<rpc::Tensor, RemoteError> {
        let bad = |why: String| RemoteError::Tensor {
            name: "(action)".into(),
            why,
        };
        match (&self.layout.action, action) {
            (ActionEncoding::Integer { dtype, offset }, Action::Discrete(a)) => {
                tensor::integer(*dtype, offset + a as i64)
                    .ok_or_else(|| bad(format!("{a} does not fit {}", dtype.as_str_name())))
            }
            (ActionEncoding::Real { dtype, scalar }, Action::Continuous(x)) => {
                let shape: &[usize] = if *scalar { &[] } else { &[x.len()] };
                let Space::Box { low, high } = &self.layout.action_space else {
                    return Err(bad("a continuous action for a discrete space".into()));
                };
                // Clipped again in the type sent: a bound rounded to f32 may lie outside the
                // f64 bound (0.1f32 > 0.1).
                let clipped = x
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| f64::from(v).clamp(low[k], high[k]));
                Ok(match dtype {
                    DataType::Double => tensor::doubles(clipped.collect(), shape),
                    _ => tensor::floats(
                        clipped
                            .enumerate()
                            .map(|(k, v)| clamp_f32(v, low[k], high[k]))
                            .collect(),
                        shape,
                    ),
                })
            }
            _ => Err(bad(
                "the action does not match the world's action space".into()
            )),
        }
    }

    /// Checks world `i`'s response and writes its observation into `row`; returns the state and
    /// the reward (0 when `reward` is false: not asked for).
    fn decode(
        &self,
        i: usize,
        response: Option<rpc::StepResponse>,
        row: &mut [f32],
        reward: bool,
    ) -> Result<(State, f64), RemoteError> {
        let response = response
            .ok_or_else(|| RemoteError::Protocol(format!("world {i} sent no step response")))?;
        let state = State::try_from(response.state)
            .ok()
            .filter(|s| *s != State::InvalidEnvironmentState)
            .ok_or_else(|| {
                RemoteError::Protocol(format!("world {i} sent state {}", response.state))
            })?;
        let reward_uid = self.layout.reward_uid.filter(|_| reward);
        if let Some(uid) = response
            .observations
            .keys()
            .find(|&&uid| uid != self.layout.observation_uid && Some(uid) != reward_uid)
        {
            return Err(RemoteError::Protocol(format!(
                "world {i} sent observation UID {uid}, which was not requested"
            )));
        }
        let spec = &self.layout.observation_spec;
        let obs = response
            .observations
            .get(&self.layout.observation_uid)
            .ok_or_else(|| {
                RemoteError::Protocol(format!("world {i} did not send `{}`", spec.name))
            })?;
        let values = checked(obs, spec, row.len())?;
        for (dst, v) in row.iter_mut().zip(values) {
            *dst = v as f32;
        }
        let reward = match reward_uid {
            None => 0.0,
            Some(uid) => {
                let t = response.observations.get(&uid).ok_or_else(|| {
                    RemoteError::Protocol(format!("world {i} did not send `reward`"))
                })?;
                let value = tensor::numbers(t).filter(|v| v.len() == 1).ok_or_else(|| {
                    RemoteError::Tensor {
                        name: super::specs::REWARD.into(),
                        why: "not a numeric scalar".into(),
                    }
                })?[0];
                let (low, high) = self.layout.reward_range;
                if !value.is_finite() || value < low || value > high {
                    return Err(RemoteError::Tensor {
                        name: super::specs::REWARD.into(),
                        why: format!("{value} is outside [{low}, {high}]"),
                    });
                }
                value
            }
        };
        Ok((state, reward))
    }

    fn fail(&self, source: RemoteError) -> EnvError {
        EnvError::Remote {
            env: self.url.clone(),
            source,
        }
    }
}

/// `v` as the nearest `f32` inside `[low, high]` (rounding to f32 may cross a bound).
fn clamp_f32(v: f64, low: f64, high: f64) -> f32 {
    let x = v as f32;
    if f64::from(x) > high {
        x.next_down()
    } else if f64::from(x) < low {
        x.next_up()
    } else {
        x
    }
}

impl EnvCopies for RemoteWorlds {
    fn len(&self) -> usize {
        self.n
    }

    fn observation_space(&self) -> Space {
        self.layout.observation_space.clone()
    }

    fn action_space(&self) -> Space {
        self.layout.action_space.clone()
    }

    fn reset(&mut self, which: &[usize], obs: &mut [f32]) -> Result<(), EnvError> {
        // A step from a non-running state ignores its (empty) actions and starts a sequence.
        let requested = self.requested(false);
        let mut requests: Vec<Option<rpc::StepRequest>> = vec![None; self.n];
        for &i in which {
            requests[i] = Some(rpc::StepRequest {
                actions: HashMap::new(),
                requested_observations: requested.clone(),
            });
        }
        let mut responses = self.exchange(requests).map_err(|e| self.fail(e))?;
        let d = obs.len() / self.n;
        for &i in which {
            let (state, _) = self
                .decode(i, responses[i].take(), &mut obs[i * d..(i + 1) * d], false)
                .map_err(|e| self.fail(e))?;
            if state != State::Running {
                return Err(self.fail(RemoteError::Protocol(format!(
                    "world {i} answered the first step of a sequence with {}",
                    state.as_str_name()
                ))));
            }
        }
        Ok(())
    }

    fn step<'a>(
        &mut self,
        action: &dyn Fn(usize) -> Action<'a>,
        obs: &mut [f32],
        steps: &mut [Step],
    ) -> Result<(), EnvError> {
        let requested = self.requested(true);
        let uid = self.layout.action_uid;
        let requests = (0..self.n)
            .map(|i| {
                Ok(Some(rpc::StepRequest {
                    actions: HashMap::from([(uid, self.encode(action(i))?)]),
                    requested_observations: requested.clone(),
                }))
            })
            .collect::<Result<Vec<_>, RemoteError>>()
            .map_err(|e| self.fail(e))?;
        let responses = self.exchange(requests).map_err(|e| self.fail(e))?;
        let d = obs.len() / self.n;
        for (i, response) in responses.into_iter().enumerate() {
            let (state, reward) = self
                .decode(i, response, &mut obs[i * d..(i + 1) * d], true)
                .map_err(|e| self.fail(e))?;
            steps[i] = Step {
                reward,
                terminated: state == State::Terminated,
                truncated: state == State::Interrupted,
            };
        }
        Ok(())
    }
}

impl Drop for RemoteWorlds {
    fn drop(&mut self) {
        // Closing the command channel tells the driver to leave and destroy its worlds.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.commands, closed));
        if let Some(driver) = self.driver.take() {
            let _ = driver.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Arc;

    use tokio_stream::Stream;
    use tokio_stream::wrappers::ReceiverStream;
    use tonic::{Request, Response, Status, Streaming};

    use super::*;
    use crate::env::{VecEnv, VecStep};
    use crate::env_rpc_proto::dm_env_rpc::v1::environment_server::{
        Environment, EnvironmentServer,
    };
    use crate::env_rpc_proto::dm_env_rpc::v1::{
        EnvironmentRequest, EnvironmentResponse, environment_request::Payload as Req,
        environment_response::Payload as Resp,
    };
    use crate::env_rpc_proto::google::rpc::Status as RpcStatus;
    use crate::remote::world::{Conversation as Served, Worlds};

    /// How a test server misbehaves once its worlds have stepped a few times.
    #[derive(Debug, Clone, Copy)]
    enum Fault {
        ExtraElement,
        Nan,
        UnknownObservation,
        WrongType,
        Refuse,
        Disconnect,
    }

    /// shoal's own worlds, served faithfully for `after` steps per conversation, then with
    /// `fault`.
    struct Faulty {
        worlds: Arc<Worlds>,
        fault: Fault,
        after: usize,
    }

    type Responses = Pin<Box<dyn Stream<Item = Result<EnvironmentResponse, Status>> + Send>>;

    #[tonic::async_trait]
    impl Environment for Faulty {
        type ProcessStream = Responses;

        async fn process(
            &self,
            request: Request<Streaming<EnvironmentRequest>>,
        ) -> Result<Response<Responses>, Status> {
            let mut requests = request.into_inner();
            let (tx, rx) = mpsc::channel(4);
            let mut served = Served::new(self.worlds.clone());
            let (fault, after) = (self.fault, self.after);
            tokio::spawn(async move {
                let mut steps = 0;
                while let Ok(Some(request)) = requests.message().await {
                    let is_step = matches!(request.payload, Some(Req::Step(_)));
                    let mut response = served.handle(request);
                    if is_step {
                        steps += 1;
                        if steps > after {
                            if let Fault::Disconnect = fault {
                                break;
                            }
                            spoil(&mut response, fault);
                        }
                    }
                    if tx.send(Ok(response)).await.is_err() {
                        break;
                    }
                }
                served.close();
            });
            Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
        }
    }

    fn spoil(response: &mut EnvironmentResponse, fault: Fault) {
        let Some(Resp::Step(step)) = response.payload.as_mut() else {
            return;
        };
        let obs = step.observations.get_mut(&1).expect("observation");
        let floats = |t: &mut rpc::Tensor| match t.payload.as_mut() {
            Some(rpc::tensor::Payload::Floats(a)) => a.array.clone(),
            _ => panic!("CartPole sends floats"),
        };
        match fault {
            Fault::ExtraElement => {
                let mut v = floats(obs);
                v.push(0.0);
                *obs = tensor::floats(v, &[4]);
            }
            Fault::Nan => {
                let mut v = floats(obs);
                v[2] = f32::NAN;
                *obs = tensor::floats(v, &[4]);
            }
            Fault::UnknownObservation => {
                step.observations.insert(99, tensor::floats(vec![0.0], &[]));
            }
            Fault::WrongType => {
                let v = floats(obs);
                *obs = tensor::doubles(v.iter().map(|&x| f64::from(x)).collect(), &[4]);
            }
            Fault::Refuse => {
                response.payload = Some(Resp::Error(RpcStatus {
                    code: tonic::Code::Internal as i32,
                    message: "the emulator crashed".into(),
                    details: vec![],
                }))
            }
            Fault::Disconnect => unreachable!("handled by ending the stream"),
        }
    }

    #[test]
    fn a_misbehaving_world_stops_the_copies_with_the_reason() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        for (fault, reason) in [
            (Fault::ExtraElement, "5 elements for shape [4]"),
            (Fault::Nan, "element 2 is NaN"),
            (Fault::UnknownObservation, "observation UID 99"),
            (Fault::WrongType, "DOUBLE sent, the spec says FLOAT"),
            (Fault::Refuse, "the emulator crashed"),
            (Fault::Disconnect, "closed the stream"),
        ] {
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            let address = listener.local_addr().unwrap();
            let server = EnvironmentServer::new(Faulty {
                worlds: Arc::new(Worlds::default()),
                fault,
                after: 5,
            });
            let serving = runtime.spawn(
                tonic::transport::Server::builder()
                    .add_service(server)
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
            );
            let url = format!("dm_env_rpc://{address}?env=CartPole-v1");
            let worlds = RemoteWorlds::open(&url, 2, 1).unwrap();
            let mut venv = VecEnv::of(Box::new(worlds)).unwrap();
            let mut out = VecStep::default();
            // The first step of each world started it; four good steps follow.
            for _ in 0..4 {
                venv.step_discrete(&[0, 1], &mut out).unwrap();
            }
            let err = venv
                .step_discrete(&[0, 1], &mut out)
                .unwrap_err()
                .to_string();
            assert!(err.contains(reason), "{fault:?}: {err}");
            assert!(err.contains(&address.to_string()), "{fault:?}: {err}");
            drop(venv);
            serving.abort();
        }
    }

    #[test]
    fn an_unreachable_server_is_named() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = RemoteWorlds::open(&format!("dm_env_rpc://127.0.0.1:{port}?env=Catch-v0"), 1, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(err.contains("cannot reach"), "{err}");
    }
}
