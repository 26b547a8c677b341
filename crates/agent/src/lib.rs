//! cronfleet: run and watch the scheduled tasks of a fleet of machines.
//!
//! This crate holds the `cronfleet` command. Its schedule engine is the `cronfleet-cron`
//! crate; see ARCHITECTURE.md in the repository for how the parts fit together.
#![warn(missing_docs)]

pub mod agent;
pub mod alerts;
pub mod api;
pub mod children;
pub mod cli;
pub mod clock;
pub mod config;
pub mod import;
pub mod mask;
pub mod metrics;
pub mod pidfile;
pub mod private;
pub mod runner;
pub mod sd_notify;
pub mod store;
#[doc(hidden)]
pub mod testing;
pub mod timearg;
