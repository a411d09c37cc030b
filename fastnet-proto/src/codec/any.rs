//! Run-time choice of codec (stub, being written).
#![allow(missing_docs, dead_code)]
#[derive(Debug, Clone)]
pub struct CodecSpec;
#[derive(Debug, Clone)]
pub struct AnyDecoder;
#[derive(Debug, Clone)]
pub struct AnyEncoder;
