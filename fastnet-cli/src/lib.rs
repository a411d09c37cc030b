//! The pieces of the `fastnet` binary, as a library so they can be tested:
//! the codec spec grammar ([`spec`]) and the verifying load generator
//! ([`load`]).

pub mod load;
pub mod spec;
