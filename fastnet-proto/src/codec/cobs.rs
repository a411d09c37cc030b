//! COBS framing (stub, being written).
#![allow(missing_docs, dead_code)]
#[derive(Debug, Clone)]
pub struct CobsDecoder;
#[derive(Debug, Clone)]
pub struct CobsEncoder;
