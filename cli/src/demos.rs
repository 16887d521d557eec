//! `shoal demos`: demonstrations of a text task for `shoal pretrain`, some deliberately wrong
//! (to see what the KL-leashed RL fine-tuning does with a flawed warm start).

use shoal_common::env::EnvError;
use shoal_common::env::text::TextEnv;
use shoal_common::env::text::demos::generate;
use shoal_common::rng::Rng;

/// `count` lines `PROMPT=ANSWER` of the text task `env_id` (prompts from its settings and
/// split), each wrong with probability `corrupted` (in `[0, 1]`), drawn from `seed`; a header
/// comment says how many are wrong.
pub fn demonstrations(
    env_id: &str,
    count: usize,
    corrupted: f64,
    seed: u64,
) -> Result<String, EnvError> {
    let env = TextEnv::open(env_id)?;
    let demos = generate(&env, count, corrupted, &mut Rng::new(seed));
    let wrong = demos.iter().filter(|(_, right)| !right).count();
    let mut out = format!(
        "# {} demonstrations of {env_id} (seed {seed}), {wrong} of them wrong\n",
        demos.len()
    );
    for (demo, _) in &demos {
        out.push_str(&demo.line());
        out.push('\n');
    }
    Ok(out)
}
