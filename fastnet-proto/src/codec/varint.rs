//! Varint length framing (stub, being written).
#![allow(missing_docs, dead_code)]
#[derive(Debug, Clone)]
pub struct VarintConfig;
#[derive(Debug, Clone)]
pub struct VarintDecoder;
#[derive(Debug, Clone)]
pub struct VarintEncoder;
