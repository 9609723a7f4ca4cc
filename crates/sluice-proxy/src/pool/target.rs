//! Where a pool's servers are and who logs in to them: the limits and the
//! [`ServerTarget`] a pool takes from the configuration. The user's secret
//! is its auth_file entry or, for a user that is not in the file, the one
//! `auth_query` found (see [`crate::auth::query`]).

use std::sync::Arc;

use super::{Limits, PoolKey};
use crate::auth::UserSecret;
use crate::backend::ServerTarget;
use crate::config::{Config, PoolSettings};
use crate::net::Connector;

/// A pool's limits and server, from the configuration; `found` is the
/// secret auth_query found for a user the auth_file does not have.
pub(super) fn pool_config(
    key: &PoolKey,
    settings: &PoolSettings,
    config: &Config,
    connector: Arc<dyn Connector>,
    found: Option<&UserSecret>,
) -> (Limits, Arc<ServerTarget>) {
    let p = &config.proxy;
    let secret = config.auth.get(&key.user).or(found);
    let limits = Limits {
        pool_size: settings.pool_size,
        min_pool_size: p.min_pool_size.min(settings.pool_size),
        reserve_pool_size: p.reserve_pool_size,
        reserve_pool_timeout: p.reserve_pool_timeout.0,
        query_wait_timeout: p.query_wait_timeout.0,
        server_idle_timeout: p.server_idle_timeout.0,
        server_lifetime: p.server_lifetime.0,
        server_check_query: p.server_check_query.clone(),
        server_check_delay: p.server_check_delay.0,
        server_reset_query: p.server_reset_query.clone(),
    };
    let target = server_target(settings, &key.user, secret, config, connector);
    (limits, Arc::new(target))
}

/// Logging in to the server of `settings` as `user` with `secret`.
pub fn server_target(
    settings: &PoolSettings,
    user: &str,
    secret: Option<&UserSecret>,
    config: &Config,
    connector: Arc<dyn Connector>,
) -> ServerTarget {
    let mut target = ServerTarget {
        host: settings.host.as_str().into(),
        port: settings.port,
        dbname: settings.dbname.clone(),
        user: user.to_string(),
        password: None,
        pass_through: None,
        md5: None,
        connect_timeout: config.proxy.server_connect_timeout.0,
        connector,
        tls: config.server_tls.clone(),
    };
    log_in_with(&mut target, secret);
    target
}

/// Sets how `target` logs in: with the password if known, else by SCRAM
/// pass-through or the md5 hash, whichever the server asks for.
pub(super) fn log_in_with(target: &mut ServerTarget, secret: Option<&UserSecret>) {
    target.password = secret.and_then(|s| s.password.clone());
    target.pass_through = secret.and_then(|s| s.pass_through());
    target.md5 = secret
        .filter(|s| s.password.is_none())
        .and_then(|s| s.md5.clone());
}
