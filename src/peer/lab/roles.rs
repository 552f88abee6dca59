//! The connection between the lab / `p2ptrace peer` and the real Skylark roles: the one
//! place that names `LoginServer`, `HomeServer`, `SuperNode` and `Client`.
//!
//! PLACEHOLDER on the driver branch: the role modules are built on other branches, so
//! [`factory`] returns `None` and [`REAL_ROLES`] is false (the CLI then says the roles are
//! missing, and the end-to-end lab tests skip). At merge this file is replaced by the real
//! factory: `impl NodeFactory for Roles` mapping each spec onto its role config (`..Default`
//! for the rest, timer overrides onto the matching fields), plus `impl Hosted` for each role
//! forwarding `save`.

use super::factory::NodeFactory;

/// Whether [`factory`] builds the real roles.
pub const REAL_ROLES: bool = false;

/// The factory of the real roles, if this build has them.
pub fn factory() -> Option<Box<dyn NodeFactory>> {
    None
}
