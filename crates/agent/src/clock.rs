//! The agent's clock: the system's, shifted by `CRONFLEET_TEST_CLOCK_OFFSET` when that is set.
//!
//! The offset exists for tests of behaviour that spans days (an agent restarted two days after
//! a rule was created, say): a test starts the agent again with a later offset instead of
//! waiting. Everything in the agent that asks for the time asks here; the scheduler gets the
//! same clock. Outside tests the variable is not set and the offset is zero.

use std::sync::OnceLock;

use cronfleet_scheduler::{Clock, Sleep};
use jiff::{tz::TimeZone, SignedDuration, Timestamp, Zoned};

/// The variable holding the offset, a duration like `2d`, `-3h` or `36h 30m`.
pub const OFFSET_VAR: &str = "CRONFLEET_TEST_CLOCK_OFFSET";

fn offset() -> SignedDuration {
    static OFFSET: OnceLock<SignedDuration> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        let Ok(text) = std::env::var(OFFSET_VAR) else { return SignedDuration::ZERO };
        let (negative, text) = match text.trim().strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.trim().trim_start_matches('+')),
        };
        match crate::config::units_duration(text)
            .ok()
            .and_then(|d| SignedDuration::try_from(d).ok())
        {
            Some(d) if negative => -d,
            Some(d) => d,
            None => {
                eprintln!("cronfleet: ignoring {OFFSET_VAR}={text:?}: not a duration");
                SignedDuration::ZERO
            }
        }
    })
}

/// Now.
pub fn now() -> Timestamp {
    Timestamp::now() + offset()
}

/// Now, in the system's zone.
pub fn zoned_now() -> Zoned {
    now().to_zoned(TimeZone::system())
}

/// The agent's clock for its scheduler.
#[derive(Clone, Copy, Debug, Default)]
pub struct AgentClock;

impl Clock for AgentClock {
    fn now(&self) -> Timestamp {
        now()
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        let wait = deadline.duration_since(now());
        let wait = std::time::Duration::try_from(wait).unwrap_or_default();
        cronfleet_scheduler::precise_sleep(wait)
    }

    fn in_real_time(&self) -> bool {
        true
    }
}
