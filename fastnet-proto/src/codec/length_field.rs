//! Length field framing (stub, being written).
#![allow(missing_docs, dead_code)]
#[derive(Debug, Clone, Copy)]
pub enum Endian {
    Big,
    Little,
}
#[derive(Debug, Clone)]
pub struct LengthFieldConfig;
#[derive(Debug, Clone)]
pub struct LengthFieldDecoder;
#[derive(Debug, Clone)]
pub struct LengthFieldEncoder;
