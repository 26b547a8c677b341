//! Behaviour of the scheduler in virtual time: `#[tokio::test(start_paused = true)]` and a
//! `TokioClock`, so hours and days pass in milliseconds and no test sleeps for real.

mod helpers;

mod ahead;
mod churn;
mod entries;
mod late;
mod runs;
mod wrappers;
