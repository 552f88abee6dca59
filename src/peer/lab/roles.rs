//! The connection between the lab / `p2ptrace peer` and the real Skylark roles: the one
//! place that names `LoginServer`, `HomeServer`, `SuperNode` and `Client`, mapping each
//! role-neutral spec onto its role's config (timer overrides onto the matching fields,
//! `..Default` — the PROTOCOL.md §8.9 defaults — for the rest).

use super::factory::{
    BuiltLoginServer, ClientSpec, HomeSpec, LoginServerSpec, NodeFactory, SuperNodeSpec,
};
use crate::peer::client::{Client, ClientConfig};
use crate::peer::driver::Hosted;
use crate::peer::error::PeerError;
use crate::peer::home::{HomeConfig, HomeServer};
use crate::peer::login_server::{LoginServer, LoginServerConfig};
use crate::peer::supernode::{SuperNode, SuperNodeConfig};

/// The factory of the real roles.
pub fn factory() -> Box<dyn NodeFactory> {
    Box::new(Roles)
}

pub struct Roles;

impl Hosted for LoginServer {
    fn save(&mut self) -> Result<(), PeerError> {
        LoginServer::save(self)
    }
}

impl Hosted for HomeServer {}

impl Hosted for SuperNode {}

impl Hosted for Client {
    fn save(&mut self) -> Result<(), PeerError> {
        Client::save(self)
    }
}

impl NodeFactory for Roles {
    fn login_server(&self, s: &LoginServerSpec) -> Result<BuiltLoginServer, PeerError> {
        let d = LoginServerConfig::default();
        let mut ls = LoginServer::new(LoginServerConfig {
            name: s.name.clone(),
            addr: s.addr,
            state_dir: s.state_dir.clone(),
            seed: s.seed,
            hash_params: s.hash_params,
            bootstrap: s.bootstrap.clone(),
            credential_lifetime_s: s
                .timers
                .credential_lifetime_s
                .unwrap_or(d.credential_lifetime_s),
            ..d
        })?;
        for a in &s.accounts {
            ls.add_account(&a.user, &a.password, &a.buddies)?;
        }
        Ok(BuiltLoginServer {
            public_key: ls.public_key(),
            node: Box::new(ls),
        })
    }

    fn home(&self, s: &HomeSpec) -> Result<Box<dyn Hosted>, PeerError> {
        Ok(Box::new(HomeServer::new(HomeConfig {
            name: s.name.clone(),
            addr: s.addr,
            latest_version: s.latest_version.clone(),
            ..HomeConfig::default()
        })))
    }

    fn supernode(&self, s: &SuperNodeSpec) -> Result<Box<dyn Hosted>, PeerError> {
        Ok(Box::new(SuperNode::new(SuperNodeConfig {
            name: s.name.clone(),
            addr: s.addr,
            ls_key: s.ls_key,
            peers: s.peers.clone(),
            seed: s.seed,
            ..SuperNodeConfig::default()
        })?))
    }

    fn client(&self, s: &ClientSpec) -> Result<Box<dyn Hosted>, PeerError> {
        let (d, t) = (ClientConfig::default(), &s.timers);
        Ok(Box::new(Client::new(ClientConfig {
            name: s.name.clone(),
            password: s.password.clone(),
            addr: s.addr,
            state_dir: s.state_dir.clone(),
            login_server: s.login_server,
            home: s.home,
            bootstrap: s.bootstrap.clone(),
            ls_key: s.ls_key,
            version: s.version.clone(),
            auto_answer: s.auto_answer,
            seed: s.seed,
            telemetry_period_s: t.telemetry_period_s.or(d.telemetry_period_s),
            keepalive_period_s: t.keepalive_s.unwrap_or(d.keepalive_period_s),
            repoll_period_s: t.udp_repoll_s.unwrap_or(d.repoll_period_s),
            full_refresh_s: t.full_refresh_s.unwrap_or(d.full_refresh_s),
            presence_period_s: t.presence_query_s.unwrap_or(d.presence_period_s),
            frame_ms: t
                .frame_ms
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(d.frame_ms),
            uplink_kbps: s.uplink_kbps.unwrap_or(d.uplink_kbps),
            promotion_uptime_s: t.promotion_uptime_s.unwrap_or(d.promotion_uptime_s),
            ..d
        })?))
    }
}
