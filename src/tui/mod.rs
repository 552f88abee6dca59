//! Terminal UI (placeholder on this branch: the TUI's own mod.rs replaces it at merge).

pub mod details;
pub mod payload;
