//! hearth's integration tests, one binary (as ripgrep keeps them): every test binary links
//! llama.cpp, so fifteen of them made linking most of the test command's build. A module per
//! topic; `common` holds one harness per kind (engine, server, bench, HTTP, OpenAPI schemas, the
//! `hearth` command). Run one topic with `cargo test --test it server::`.

mod common;

mod bench_cli;
mod bench_mock;
mod cli;
mod download;
mod engine;
mod gemma;
mod gpu_kit;
mod judge;
mod prompt_disk;
mod routing;
mod server;
mod service;
mod speculative;
mod store;
mod structured;
mod synth;
mod tune;
mod ui;
mod upstream;
mod variants;
