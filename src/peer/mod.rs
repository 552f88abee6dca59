//! The Skylark reference peer (DESIGN.md §1, `dissectors/PROTOCOL.md` §8): login server, home
//! server, super node and client, each a sans-IO state machine, plus the drivers that run
//! them over real sockets (and, later, inside the simulator).
//!
//! Every role implements [`Node`]: the driver feeds [`Input`]s (datagrams, TCP events, user
//! commands, timeouts) with the current time and drains [`Output`]s (datagrams, TCP actions,
//! events) until [`Output::Timeout`]. Nodes own no sockets, clocks or threads; randomness
//! comes from a seeded RNG in their configuration. Every message a node sends carries its
//! ground-truth [`Label`], written by what the node *meant* to send, never re-parsed.

pub mod accounts;
pub mod auth;
pub mod client;
pub mod conns;
pub mod driver;
pub mod error;
pub mod home;
pub mod io;
pub mod lab;
pub mod login_server;
pub mod outbox;
pub mod scenario;
pub mod stream;
pub mod supernode;
pub mod truth;

pub use error::PeerError;
pub use io::{ConnId, Datagram, Input, Listen, Node, Output, TcpEvent, TcpOut};
pub use truth::{Event, EventKind, Label, MediaPath, Role};
