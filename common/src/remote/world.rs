//! The server side of dm_env_rpc, free of networking: the worlds a server holds (one shoal
//! environment each, one agent at a time) and one client's conversation with them, request by
//! request. A request that fails changes nothing and is answered with an error; the
//! conversation goes on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tonic::Code;

use crate::env::{Action, Env, EnvSpec, Space, info};
use crate::env_rpc_proto::dm_env_rpc::v1::{
    self as rpc, ActionObservationSpecs, DataType, EnvironmentRequest, EnvironmentResponse,
    EnvironmentStateType as State, Tensor, environment_request::Payload as Req,
    environment_response::Payload as Resp,
};
use crate::env_rpc_proto::google::rpc::Status;
use crate::rng::Rng;
use crate::text::bounded;

use super::announce::announce;
use super::specs::{self, ACTION_UID, OBSERVATION_UID, REWARD_UID};
use super::tensor;
use super::{MAX_SETTINGS, SEED_SETTING};

/// Most worlds one server holds at once (each holds an environment; creation beyond this is
/// refused with RESOURCE_EXHAUSTED).
pub(crate) const MAX_WORLDS: usize = 4096;

/// The settings `CreateWorld` takes.
const ENV_SETTING: &str = "env";
const FRAME_STACK_SETTING: &str = "frame_stack";

/// A failed request: the status sent back.
#[derive(Debug)]
struct Refusal {
    code: Code,
    message: String,
}

fn refuse(code: Code, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// One world: an environment, its episode state and whether an agent has joined.
struct World {
    env: Box<dyn Env>,
    rng: Rng,
    obs: Vec<f32>,
    observation_space: Space,
    action_space: Space,
    specs: ActionObservationSpecs,
    state: State,
    /// A `ResetWorld` cut the agent's episode: its next step reports `INTERRUPTED` (with the
    /// last observation) before the next episode starts.
    cut: bool,
    reward: f64,
    joined: bool,
}

impl World {
    fn create(settings: &HashMap<String, Tensor>) -> Result<Self, Refusal> {
        if settings.len() > MAX_SETTINGS {
            return Err(refuse(Code::InvalidArgument, "too many settings"));
        }
        let mut env_id = None;
        let mut seed = 0u64;
        let mut frame_stack = 1usize;
        let mut names: Vec<&String> = settings.keys().collect();
        names.sort();
        for name in names {
            let value = &settings[name];
            match name.as_str() {
                ENV_SETTING => {
                    env_id = Some(tensor::as_string(value).ok_or_else(|| {
                        refuse(Code::InvalidArgument, "setting `env` must be a string")
                    })?)
                }
                SEED_SETTING => {
                    // Any integer type; an INT64 carries a u64 seed's bits.
                    seed = tensor::as_integer(value).ok_or_else(|| {
                        refuse(
                            Code::InvalidArgument,
                            "setting `seed` must be an integer scalar",
                        )
                    })? as u64
                }
                FRAME_STACK_SETTING => {
                    frame_stack = tensor::as_integer(value)
                        .and_then(|k| usize::try_from(k).ok())
                        .filter(|k| (1..=crate::env::MAX_FRAME_STACK).contains(k))
                        .ok_or_else(|| {
                            refuse(
                                Code::InvalidArgument,
                                format!(
                                    "setting `frame_stack` must be an integer in 1..={}",
                                    crate::env::MAX_FRAME_STACK
                                ),
                            )
                        })?
                }
                other => {
                    return Err(refuse(
                        Code::InvalidArgument,
                        format!(
                            "unknown setting `{}`; shoal's worlds take `env` (required), \
                             `seed` and `frame_stack`",
                            bounded(other)
                        ),
                    ));
                }
            }
        }
        let id = env_id.ok_or_else(|| {
            refuse(
                Code::InvalidArgument,
                "setting `env` (a registered environment id, e.g. \"CartPole-v1\") is required",
            )
        })?;
        let spec = EnvSpec::stacked(id, frame_stack);
        let env = spec
            .make()
            .map_err(|e| refuse(Code::InvalidArgument, e.to_string()))?;
        let reward_range = info(id).map(|i| i.reward_range).unwrap_or((0.0, 0.0));
        let observation_space = env.observation_space();
        let action_space = env.action_space();
        Ok(Self {
            specs: announce(&observation_space, &action_space, reward_range),
            obs: vec![0.0; observation_space.flat_dim()],
            observation_space,
            action_space,
            env,
            rng: Rng::new(seed),
            state: State::Interrupted,
            cut: false,
            reward: 0.0,
            joined: false,
        })
    }

    /// The action a step request carries, checked against the spec.
    fn action(&self, actions: &HashMap<u64, Tensor>) -> Result<ActionValue, Refusal> {
        if let Some(uid) = actions.keys().find(|&&uid| uid != ACTION_UID) {
            return Err(refuse(
                Code::InvalidArgument,
                format!("no action has UID {uid}; the action is UID {ACTION_UID}"),
            ));
        }
        let t = actions.get(&ACTION_UID).ok_or_else(|| {
            refuse(
                Code::InvalidArgument,
                format!("every step needs the action (UID {ACTION_UID})"),
            )
        })?;
        let spec = &self.specs.actions[&ACTION_UID];
        let values = specs::checked(t, spec, self.action_space.flat_dim())
            .map_err(|e| refuse(Code::InvalidArgument, format!("action: {e}")))?;
        Ok(match self.action_space {
            Space::Discrete(_) => ActionValue::Discrete(values[0] as usize),
            _ => ActionValue::Continuous(values.iter().map(|&x| x as f32).collect()),
        })
    }

    /// The observations asked for, in the order asked, duplicates once.
    fn observations(&self, uids: &[u64]) -> HashMap<u64, Tensor> {
        let mut out = HashMap::new();
        for &uid in uids {
            out.entry(uid).or_insert_with(|| match uid {
                OBSERVATION_UID => match self.observation_space {
                    Space::Image {
                        channels,
                        height,
                        width,
                    } => tensor::bytes(
                        self.obs.iter().map(|&x| x as u8).collect(),
                        &[channels, height, width],
                    ),
                    Space::Tokens { length, .. } => {
                        tensor::bytes(self.obs.iter().map(|&x| x as u8).collect(), &[length + 1])
                    }
                    Space::Discrete(_) => {
                        tensor::integer(DataType::Int32, self.obs[0] as i64).expect("int32")
                    }
                    Space::Box { .. } => tensor::floats(self.obs.clone(), &[self.obs.len()]),
                },
                _ => tensor::doubles(vec![self.reward], &[]),
            });
        }
        out
    }
}

enum ActionValue {
    Discrete(usize),
    Continuous(Vec<f32>),
}

/// The worlds of one server, shared by its conversations.
#[derive(Default)]
pub(crate) struct Worlds {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    created: u64,
    worlds: BTreeMap<String, Arc<Mutex<World>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while a world was locked leaves nothing half-written that a request relies on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Worlds {
    fn get(&self, name: &str) -> Result<Arc<Mutex<World>>, Refusal> {
        lock(&self.table).worlds.get(name).cloned().ok_or_else(|| {
            refuse(
                Code::NotFound,
                format!("no world is named `{}`", bounded(name)),
            )
        })
    }

    /// Number of worlds held.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.table).worlds.len()
    }
}

/// One client's conversation: the world it joined and the worlds it created (destroyed when
/// it ends, so a client that vanishes leaves nothing behind).
pub(crate) struct Conversation {
    worlds: Arc<Worlds>,
    joined: Option<Arc<Mutex<World>>>,
    created: Vec<String>,
}

impl Conversation {
    pub(crate) fn new(worlds: Arc<Worlds>) -> Self {
        Self {
            worlds,
            joined: None,
            created: Vec::new(),
        }
    }

    /// Answers one request.
    pub(crate) fn handle(&mut self, request: EnvironmentRequest) -> EnvironmentResponse {
        let payload = match request.payload {
            None => Err(refuse(Code::InvalidArgument, "an empty request")),
            Some(Req::CreateWorld(r)) => self.create_world(r).map(Resp::CreateWorld),
            Some(Req::JoinWorld(r)) => self.join_world(r).map(Resp::JoinWorld),
            Some(Req::Step(r)) => self.step(r).map(Resp::Step),
            Some(Req::Reset(r)) => self.reset(r).map(Resp::Reset),
            Some(Req::ResetWorld(r)) => self.reset_world(r).map(Resp::ResetWorld),
            Some(Req::LeaveWorld(_)) => {
                self.leave();
                Ok(Resp::LeaveWorld(rpc::LeaveWorldResponse {}))
            }
            Some(Req::DestroyWorld(r)) => self.destroy_world(&r.world_name).map(Resp::DestroyWorld),
            Some(Req::Extension(_)) => Err(refuse(
                Code::Unimplemented,
                "shoal's environment server has no extensions",
            )),
        };
        EnvironmentResponse {
            payload: Some(payload.unwrap_or_else(|r| {
                Resp::Error(Status {
                    code: r.code as i32,
                    message: r.message,
                    details: Vec::new(),
                })
            })),
        }
    }

    fn create_world(
        &mut self,
        r: rpc::CreateWorldRequest,
    ) -> Result<rpc::CreateWorldResponse, Refusal> {
        let world = World::create(&r.settings)?;
        let mut table = lock(&self.worlds.table);
        if table.worlds.len() >= MAX_WORLDS {
            return Err(refuse(
                Code::ResourceExhausted,
                format!("the server holds {MAX_WORLDS} worlds, its most"),
            ));
        }
        table.created += 1;
        let name = format!("world-{}", table.created);
        table
            .worlds
            .insert(name.clone(), Arc::new(Mutex::new(world)));
        self.created.push(name.clone());
        Ok(rpc::CreateWorldResponse { world_name: name })
    }

    fn join_world(&mut self, r: rpc::JoinWorldRequest) -> Result<rpc::JoinWorldResponse, Refusal> {
        if self.joined.is_some() {
            return Err(refuse(
                Code::FailedPrecondition,
                "already joined to a world; leave it first",
            ));
        }
        no_settings(&r.settings, "JoinWorld")?;
        let world = self.worlds.get(&r.world_name)?;
        let specs = {
            let mut w = lock(&world);
            if w.joined {
                return Err(refuse(
                    Code::FailedPrecondition,
                    format!(
                        "world `{}` already has its agent (shoal's worlds are single-agent)",
                        bounded(&r.world_name)
                    ),
                ));
            }
            w.joined = true;
            // The first step after joining starts a sequence.
            w.state = State::Interrupted;
            w.cut = false;
            w.specs.clone()
        };
        self.joined = Some(world);
        Ok(rpc::JoinWorldResponse { specs: Some(specs) })
    }

    fn joined(&self) -> Result<MutexGuard<'_, World>, Refusal> {
        self.joined
            .as_ref()
            .map(|w| lock(w))
            .ok_or_else(|| refuse(Code::FailedPrecondition, "join a world first"))
    }

    fn step(&mut self, r: rpc::StepRequest) -> Result<rpc::StepResponse, Refusal> {
        let mut w = self.joined()?;
        if let Some(uid) = r
            .requested_observations
            .iter()
            .find(|uid| !w.specs.observations.contains_key(uid))
        {
            return Err(refuse(
                Code::InvalidArgument,
                format!(
                    "no observation has UID {uid}; they are {OBSERVATION_UID} (observation) \
                     and {REWARD_UID} (reward)"
                ),
            ));
        }
        let w = &mut *w;
        if w.cut {
            // The episode was cut by a ResetWorld: say so, with the last observation; the next
            // step starts a new one.
            w.cut = false;
            w.state = State::Interrupted;
            w.reward = 0.0;
        } else if w.state == State::Running {
            let action = w.action(&r.actions)?;
            let step = match &action {
                ActionValue::Discrete(a) => w.env.step(Action::Discrete(*a), &mut w.obs),
                ActionValue::Continuous(a) => w.env.step(Action::Continuous(a), &mut w.obs),
            };
            w.reward = step.reward;
            w.state = if step.terminated {
                State::Terminated
            } else if step.truncated {
                State::Interrupted
            } else {
                State::Running
            };
        } else {
            // From a non-running state the actions are ignored and the next sequence starts.
            w.env.reset(&mut w.rng, &mut w.obs);
            w.reward = 0.0;
            w.state = State::Running;
        }
        Ok(rpc::StepResponse {
            state: w.state as i32,
            observations: w.observations(&r.requested_observations),
        })
    }

    fn reset(&mut self, r: rpc::ResetRequest) -> Result<rpc::ResetResponse, Refusal> {
        no_settings(&r.settings, "Reset")?;
        let mut w = self.joined()?;
        if w.state == State::Running {
            w.state = State::Interrupted;
        }
        w.cut = false;
        Ok(rpc::ResetResponse {
            specs: Some(w.specs.clone()),
        })
    }

    fn reset_world(
        &mut self,
        r: rpc::ResetWorldRequest,
    ) -> Result<rpc::ResetWorldResponse, Refusal> {
        no_settings(&r.settings, "ResetWorld")?;
        let world = self.worlds.get(&r.world_name)?;
        let mut w = lock(&world);
        if w.state == State::Running {
            w.cut = true;
        }
        Ok(rpc::ResetWorldResponse {})
    }

    fn leave(&mut self) {
        if let Some(world) = self.joined.take() {
            lock(&world).joined = false;
        }
    }

    fn destroy_world(&mut self, name: &str) -> Result<rpc::DestroyWorldResponse, Refusal> {
        let world = self.worlds.get(name)?;
        if lock(&world).joined {
            return Err(refuse(
                Code::FailedPrecondition,
                format!(
                    "world `{}` has an agent; it must leave first",
                    bounded(name)
                ),
            ));
        }
        lock(&self.worlds.table).worlds.remove(name);
        self.created.retain(|n| n != name);
        Ok(rpc::DestroyWorldResponse {})
    }

    /// Ends the conversation: leaves its world and destroys the worlds it created.
    pub(crate) fn close(mut self) {
        self.leave();
        let mut table = lock(&self.worlds.table);
        for name in self.created.drain(..) {
            table.worlds.remove(&name);
        }
    }
}

fn no_settings(settings: &HashMap<String, Tensor>, request: &str) -> Result<(), Refusal> {
    match settings.keys().next() {
        None => Ok(()),
        Some(name) => Err(refuse(
            Code::InvalidArgument,
            format!(
                "unknown setting `{}`: shoal's {request} takes none",
                bounded(name)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::EnvSpec;

    fn send(c: &mut Conversation, payload: Req) -> Resp {
        c.handle(EnvironmentRequest {
            payload: Some(payload),
        })
        .payload
        .unwrap()
    }

    fn create(c: &mut Conversation, env: &str, seed: i64) -> String {
        let settings = HashMap::from([
            (ENV_SETTING.to_string(), tensor::string(env)),
            (
                SEED_SETTING.to_string(),
                tensor::integer(DataType::Int64, seed).unwrap(),
            ),
        ]);
        match send(c, Req::CreateWorld(rpc::CreateWorldRequest { settings })) {
            Resp::CreateWorld(r) => r.world_name,
            other => panic!("{other:?}"),
        }
    }

    fn join(c: &mut Conversation, world: &str) -> Resp {
        send(
            c,
            Req::JoinWorld(rpc::JoinWorldRequest {
                world_name: world.into(),
                settings: HashMap::new(),
            }),
        )
    }

    fn step(c: &mut Conversation, action: Option<Tensor>) -> Resp {
        send(
            c,
            Req::Step(rpc::StepRequest {
                actions: action
                    .map(|a| HashMap::from([(ACTION_UID, a)]))
                    .unwrap_or_default(),
                requested_observations: vec![OBSERVATION_UID, REWARD_UID],
            }),
        )
    }

    fn code(resp: &Resp) -> Option<Code> {
        match resp {
            Resp::Error(s) => Some(Code::from_i32(s.code)),
            _ => None,
        }
    }

    #[test]
    fn a_served_world_steps_exactly_like_the_environment_itself() {
        let worlds = Arc::new(Worlds::default());
        let mut c = Conversation::new(worlds.clone());
        let name = create(&mut c, "CartPole-v1", 42);
        assert!(matches!(join(&mut c, &name), Resp::JoinWorld(_)));
        let mut native = EnvSpec::new("CartPole-v1").make().unwrap();
        let mut rng = Rng::new(42);
        let mut obs = vec![0.0f32; 4];
        native.reset(&mut rng, &mut obs);
        let floats = |r: &Resp| match r {
            Resp::Step(s) => (
                State::try_from(s.state).unwrap(),
                tensor::numbers(&s.observations[&OBSERVATION_UID]).unwrap(),
                tensor::numbers(&s.observations[&REWARD_UID]).unwrap()[0],
            ),
            other => panic!("{other:?}"),
        };
        // The first step ignores its action and starts the episode.
        let (state, first, reward) = floats(&step(&mut c, None));
        assert_eq!((state, reward), (State::Running, 0.0));
        assert_eq!(first, obs.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
        let mut ended = false;
        for _ in 0..200 {
            let s = native.step(Action::Discrete(1), &mut obs);
            let (state, seen, reward) = floats(&step(&mut c, tensor::integer(DataType::Int32, 1)));
            assert_eq!(seen, obs.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
            assert_eq!(reward, s.reward);
            if s.terminated {
                assert_eq!(state, State::Terminated);
                ended = true;
                break;
            }
            assert_eq!(state, State::Running);
        }
        assert!(ended, "pushing right ends a CartPole episode");
        // The next step starts the next episode, drawn from the same seeded generator.
        native.reset(&mut rng, &mut obs);
        let (state, next, _) = floats(&step(&mut c, tensor::integer(DataType::Int32, 0)));
        assert_eq!(state, State::Running);
        assert_eq!(next, obs.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
        c.close();
        assert_eq!(
            worlds.len(),
            0,
            "a closed conversation's worlds are destroyed"
        );
    }

    #[test]
    fn bad_requests_are_refused_and_change_nothing() {
        let worlds = Arc::new(Worlds::default());
        let mut c = Conversation::new(worlds.clone());
        // Before joining.
        assert_eq!(code(&step(&mut c, None)), Some(Code::FailedPrecondition));
        let bad_create = |settings: HashMap<String, Tensor>| {
            Req::CreateWorld(rpc::CreateWorldRequest { settings })
        };
        for settings in [
            HashMap::new(),
            HashMap::from([("env".to_string(), tensor::string("Pong-v9"))]),
            HashMap::from([
                ("env".to_string(), tensor::string("Catch-v0")),
                ("colour".to_string(), tensor::string("red")),
            ]),
            HashMap::from([
                ("env".to_string(), tensor::string("CartPole-v1")),
                (
                    "frame_stack".to_string(),
                    tensor::integer(DataType::Int32, 2).unwrap(),
                ),
            ]),
        ] {
            assert_eq!(
                code(&send(&mut c, bad_create(settings))),
                Some(Code::InvalidArgument)
            );
        }
        assert_eq!(code(&join(&mut c, "nowhere")), Some(Code::NotFound));
        let name = create(&mut c, "Catch-v0", 1);
        join(&mut c, &name);
        assert_eq!(code(&join(&mut c, &name)), Some(Code::FailedPrecondition));
        let mut other = Conversation::new(worlds.clone());
        assert_eq!(
            code(&join(&mut other, &name)),
            Some(Code::FailedPrecondition)
        );
        step(&mut c, None);
        // Wrong type, out of range, wrong shape, unknown UID, no action: all refused.
        for action in [
            tensor::floats(vec![1.0], &[]),
            tensor::integer(DataType::Int32, 3).unwrap(),
            tensor::integer(DataType::Int32, -1).unwrap(),
            Tensor {
                shape: vec![1],
                ..tensor::integer(DataType::Int32, 0).unwrap()
            },
        ] {
            assert_eq!(
                code(&step(&mut c, Some(action))),
                Some(Code::InvalidArgument)
            );
        }
        let unknown = Req::Step(rpc::StepRequest {
            actions: HashMap::from([(9, tensor::integer(DataType::Int32, 0).unwrap())]),
            requested_observations: vec![],
        });
        assert_eq!(code(&send(&mut c, unknown)), Some(Code::InvalidArgument));
        let unknown_obs = Req::Step(rpc::StepRequest {
            actions: HashMap::new(),
            requested_observations: vec![77],
        });
        match send(&mut c, unknown_obs) {
            Resp::Error(s) => assert!(s.message.contains("77"), "{}", s.message),
            other => panic!("{other:?}"),
        }
        // None of that moved the episode: nine good steps still end Catch.
        let mut last = State::Running;
        for _ in 0..9 {
            match step(&mut c, tensor::integer(DataType::Int32, 1)) {
                Resp::Step(s) => last = State::try_from(s.state).unwrap(),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(last, State::Terminated);
        // A joined world cannot be destroyed; after leaving it can, once.
        let destroy = |n: &str| {
            Req::DestroyWorld(rpc::DestroyWorldRequest {
                world_name: n.into(),
            })
        };
        assert_eq!(
            code(&send(&mut c, destroy(&name))),
            Some(Code::FailedPrecondition)
        );
        send(&mut c, Req::LeaveWorld(rpc::LeaveWorldRequest {}));
        assert!(matches!(
            send(&mut c, destroy(&name)),
            Resp::DestroyWorld(_)
        ));
        assert_eq!(code(&send(&mut c, destroy(&name))), Some(Code::NotFound));
        assert_eq!(
            code(&send(&mut c, Req::Extension(prost_types::Any::default()))),
            Some(Code::Unimplemented)
        );
    }

    #[test]
    fn a_world_reset_by_another_client_interrupts_its_agents_episode() {
        let worlds = Arc::new(Worlds::default());
        let mut agent = Conversation::new(worlds.clone());
        let name = create(&mut agent, "Catch-v0", 3);
        join(&mut agent, &name);
        step(&mut agent, None);
        step(&mut agent, tensor::integer(DataType::Int32, 0));
        let mut admin = Conversation::new(worlds);
        let reset = Req::ResetWorld(rpc::ResetWorldRequest {
            world_name: name.clone(),
            settings: HashMap::new(),
        });
        assert!(matches!(send(&mut admin, reset), Resp::ResetWorld(_)));
        let state = |r: Resp| match r {
            Resp::Step(s) => State::try_from(s.state).unwrap(),
            other => panic!("{other:?}"),
        };
        // The agent learns that its episode was cut, then the next one starts.
        assert_eq!(
            state(step(&mut agent, tensor::integer(DataType::Int32, 0))),
            State::Interrupted
        );
        assert_eq!(state(step(&mut agent, None)), State::Running);
    }

    #[test]
    fn a_reset_starts_the_next_sequence_on_the_next_step() {
        let mut c = Conversation::new(Arc::new(Worlds::default()));
        let name = create(&mut c, "Catch-v0", 3);
        join(&mut c, &name);
        step(&mut c, None);
        step(&mut c, tensor::integer(DataType::Int32, 0));
        let reset = send(
            &mut c,
            Req::Reset(rpc::ResetRequest {
                settings: HashMap::new(),
            }),
        );
        assert!(matches!(
            reset,
            Resp::Reset(rpc::ResetResponse { specs: Some(_) })
        ));
        // Actions after a reset are ignored: even an invalid one.
        let first = step(&mut c, tensor::integer(DataType::Int32, 99));
        assert!(matches!(first, Resp::Step(s) if s.state == State::Running as i32));
    }
}
