//! The deterministic network simulator (`p2ptrace sim`): the reference peer's sans-IO roles,
//! unchanged, on simulated hosts joined by links with latency, jitter, loss and bandwidth,
//! NAT boxes and UDP-blocking firewalls; TCP by smoltcp; capture points writing pcapng with
//! ground-truth labels. Same scenario and seed → byte-identical outputs.

pub mod link;
pub mod nat;
pub mod packet;
pub mod run;
pub mod scenario;
pub mod tcp;
pub mod world;
