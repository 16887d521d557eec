//! What an algorithm is to the actor (`ActorAlgorithm`): its environments and exploration
//! state, kept across reconnects, and what it does with one connection to the learner, given
//! the [`Link`] to work with.

use std::future::Future;
use std::pin::Pin;

use shoal_common::settings::ActorSettings;
use tokio_util::sync::CancellationToken;

use crate::connection::Client;
use crate::error::{SessionEnd, SessionError};
use crate::summary::ActorSummary;

/// What a session works with: the connection, the learner's settings, the actor's running
/// summary and its cancellation.
pub struct Link<'a> {
    /// The registered client.
    pub client: &'a mut Client,
    /// What the learner said at registration.
    pub settings: &'a ActorSettings,
    /// Counts pushes and steps; makes the reports pushes carry.
    pub summary: &'a mut ActorSummary,
    /// Stops the actor.
    pub shutdown: &'a CancellationToken,
}

/// How a session ends.
pub(crate) type SessionResult = Result<SessionEnd, SessionError>;

/// A session in progress.
pub(crate) type Session<'a> = Pin<Box<dyn Future<Output = SessionResult> + 'a>>;

/// One algorithm on the actor: its environments and exploration state, kept across
/// reconnects.
pub(crate) trait ActorAlgorithm {
    /// Updates the id after a re-registration gave another one.
    fn set_actor_id(&mut self, actor_id: u32);

    /// One connection's worth of work, until the run ends, the connection is lost or the actor
    /// is cancelled.
    fn session<'a>(&'a mut self, link: Link<'a>) -> Session<'a>;
}
