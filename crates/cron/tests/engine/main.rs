//! Behaviour tests of the schedule engine, one binary.

mod differential;
mod dst;
mod errors;
mod helpers;
mod intervals;
mod props;
mod syntax;
mod written;
