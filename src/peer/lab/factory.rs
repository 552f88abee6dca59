//! How the lab and `p2ptrace peer` build nodes without knowing the role types: a
//! [`NodeFactory`] turns a role-neutral spec (addresses, names, seeds, timer overrides) into
//! a boxed [`Hosted`] node. The real factory (`roles.rs`) maps specs onto the role configs
//! (`LoginServerConfig`, `HomeConfig`, `SuperNodeConfig`, `ClientConfig`); tests use tiny
//! nodes of their own.
//!
//! Must not: open sockets or start anything — building a node is pure configuration (plus
//! the login server's account store on disk, when it has a state directory).

use crate::peer::auth::HashParams;
use crate::peer::driver::Hosted;
use crate::peer::error::PeerError;
use crate::peer::scenario::Timers;
use std::net::SocketAddr;
use std::path::PathBuf;

/// An account the login server must hold at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub user: String,
    pub password: String,
    pub buddies: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginServerSpec {
    pub name: String,
    /// TCP listen address.
    pub addr: SocketAddr,
    pub state_dir: Option<PathBuf>,
    pub seed: u64,
    pub hash_params: HashParams,
    /// Added with `LoginServer::add_account` after construction.
    pub accounts: Vec<Account>,
    /// Bootstrap super nodes handed to clients.
    pub bootstrap: Vec<SocketAddr>,
    pub timers: Timers,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HomeSpec {
    pub name: String,
    /// TCP (HTTP) listen address.
    pub addr: SocketAddr,
    pub latest_version: String,
    pub timers: Timers,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuperNodeSpec {
    pub name: String,
    /// UDP and TCP, same port.
    pub addr: SocketAddr,
    /// The login server's Ed25519 public key (verifies client credentials).
    pub ls_key: [u8; 32],
    /// The other super nodes (partial mesh).
    pub peers: Vec<SocketAddr>,
    pub state_dir: Option<PathBuf>,
    pub seed: u64,
    pub timers: Timers,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSpec {
    /// Also the user name.
    pub name: String,
    pub password: String,
    /// UDP and TCP listen address (the install-time random port).
    pub addr: SocketAddr,
    pub state_dir: Option<PathBuf>,
    pub login_server: SocketAddr,
    pub home: SocketAddr,
    pub bootstrap: Vec<SocketAddr>,
    /// The login server's public key, when known (a client config may use it to check
    /// its saved credential).
    pub ls_key: Option<[u8; 32]>,
    pub version: String,
    pub auto_answer: bool,
    /// Declared uplink; `None`: the role's default.
    pub uplink_kbps: Option<u32>,
    pub seed: u64,
    pub timers: Timers,
}

/// A built login server and its public key (super nodes need it).
pub struct BuiltLoginServer {
    pub node: Box<dyn Hosted>,
    pub public_key: [u8; 32],
}

/// Builds the four roles.
pub trait NodeFactory {
    fn login_server(&self, spec: &LoginServerSpec) -> Result<BuiltLoginServer, PeerError>;
    fn home(&self, spec: &HomeSpec) -> Result<Box<dyn Hosted>, PeerError>;
    fn supernode(&self, spec: &SuperNodeSpec) -> Result<Box<dyn Hosted>, PeerError>;
    fn client(&self, spec: &ClientSpec) -> Result<Box<dyn Hosted>, PeerError>;
}
