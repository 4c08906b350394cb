//! hearth: discover, fetch, run, serve, benchmark and compare open-source language models
//! on your own machine.
//!
//! Data flows one way: `cli` → (`server` | `bench`) → `engine`; `bench` → `store` → `report`.
//! Each module below is one room with one reason to change.

pub mod atomic_file;
pub mod bench;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod engine;
pub mod env;
pub mod error_chain;
pub mod eval;
pub mod gguf;
pub mod loader;
pub mod openai;
pub mod process;
pub mod profiles;
pub mod report;
pub mod server;
pub mod stats;
pub mod store;
pub mod synth;
pub mod text;
pub mod tune;
pub mod variants;
