//! The size limit of requests: the largest message a well-behaved actor of the run sends, with
//! room to spare; larger ones are refused by the transport (OUT_OF_RANGE) before they are
//! decoded.

use shoal_common::config::RunConfig;
use shoal_common::model::ModelSpec;

/// The largest request this run accepts: twice the largest rollout, gradient or transition
/// batch of a run of `config` with model `spec`, plus 64 KiB.
pub fn max_request_bytes(config: &RunConfig, spec: &ModelSpec) -> usize {
    let (t, n) = (config.n_steps, config.num_envs);
    let (o, a) = (spec.obs_dim, spec.action.outputs());
    let rollout = 4 * t * n * (o + a + 8) + 4 * n + 8 * t * n + 32 * (o + 1);
    let gradient = 4 * spec.layout().num_floats();
    let transitions = 4 * t * n * (2 * o + 3) + 8 * t * n;
    2 * rollout.max(gradient).max(transitions) + 64 * 1024
}
