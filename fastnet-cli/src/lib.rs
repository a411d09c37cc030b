//! The pieces of the `fastnet` binary, as a library so they can be tested:
//! the codec spec grammar ([`spec`]) and the verifying load generator
//! ([`load`]) and the echo server on either driver ([`echo`]), the TLS
//! settings of both ([`tls`]), and the duration grammar of their options
//! ([`duration`]).

pub mod duration;
pub mod echo;
pub mod load;
pub mod spec;
pub mod tls;
