//! Getting a server connection for a pending request and making it look
//! like this client's own: its parameters `SET`, its cancel requests
//! pointed at it. With load balancing, the host comes first: the one the
//! request's verdict and the session's sticky position choose, with a
//! failed replica marked down and the request sent to another one, then
//! the primary, and the primary tried with backoff.

use std::sync::Arc;

use super::request::request_executes;
use super::{ClientStream, Session};
use crate::backend::params;
use crate::balance::classify::Classification;
use crate::balance::retry::PrimaryRetry;
use crate::pool::{Checkout, NoConn, Pool, PoolError};

impl<S: ClientStream> Session<S> {
    /// Without load balancing: a server of the client's pool. The common
    /// case, an idle server (or one handed over after a wait) that already
    /// runs with this client's parameters, is taken without a boxed future.
    pub(super) async fn check_out(&mut self) -> Result<Checkout, PoolError> {
        match self.pool.acquire(&self.client.wait_slot).await {
            Ok(checkout)
                if !checkout.needs_check && Arc::ptr_eq(&checkout.params, &self.params) =>
            {
                self.route_cancels_to(&checkout);
                Ok(checkout)
            }
            acquired => {
                let pool = self.pool.clone();
                Box::pin(self.finish_checkout(&pool, acquired)).await
            }
        }
    }

    /// With load balancing: a server on the host `verdict` (the pending
    /// request's classification) and the session's routing state choose.
    pub(super) async fn check_out_balanced(
        &mut self,
        verdict: Classification,
    ) -> Result<Checkout, PoolError> {
        let mut target = self.choose_host(&verdict).await;
        let mut primary = PrimaryRetry::default();
        loop {
            let lb = self
                .balancing
                .as_ref()
                .expect("a verdict implies balancing");
            let pool = lb.replica_pool(target).unwrap_or(&self.pool).clone();
            match self.checkout_from(&pool).await {
                Ok(checkout) => {
                    let writes =
                        verdict.may_write && super::request::runs_something(self.conn.pending());
                    let pending = self.conn.scanned;
                    let lb = self
                        .balancing
                        .as_mut()
                        .expect("a verdict implies balancing");
                    lb.started(target, writes, pending);
                    return Ok(checkout);
                }
                Err(PoolError::Backend(error)) if error.is_connection_failure() => match target {
                    Some(index) => {
                        let lb = self
                            .balancing
                            .as_mut()
                            .expect("a verdict implies balancing");
                        lb.replica_unreachable(index, &error.to_string());
                        tracing::info!(pool = ?pool.key, %error, "replica failed; routing again");
                        target = self.choose_host(&verdict).await;
                    }
                    None => match primary.next_delay() {
                        Some(delay) => {
                            tracing::warn!(pool = ?pool.key, %error, ?delay, "primary unreachable; retrying");
                            tokio::time::sleep(delay).await;
                        }
                        None => {
                            return Err(PoolError::Unreachable {
                                tries: primary.tries(),
                                source: error,
                            })
                        }
                    },
                },
                Err(error) => return Err(error),
            }
        }
    }

    /// Where a request with this classification goes: `Some(i)` for
    /// replica `i`, `None` for the primary.
    async fn choose_host(&self, verdict: &Classification) -> Option<usize> {
        let lb = self.balancing.as_deref()?;
        let sticky = if self.mode == crate::config::PoolMode::Transaction {
            lb.sticky_requirement(self.shared.router.store.as_ref())
                .await
        } else {
            None
        };
        let executes = request_executes(self.conn.request());
        lb.choose(self.mode, verdict, sticky, executes)
    }

    /// From now on this client's CancelRequest reaches `checkout`'s backend.
    fn route_cancels_to(&self, checkout: &Checkout) {
        self.client.serve_with(Some(checkout.info.clone()));
    }

    /// Checks a server out of `pool` and brings its parameters in line.
    async fn checkout_from(&mut self, pool: &Arc<Pool>) -> Result<Checkout, PoolError> {
        let acquired = pool.acquire(&self.client.wait_slot).await;
        self.finish_checkout(pool, acquired).await
    }

    /// Opens the connection `acquired` may be a permit for, and brings the
    /// server's parameters in line with this client's.
    async fn finish_checkout(
        &mut self,
        pool: &Arc<Pool>,
        acquired: Result<Checkout, NoConn>,
    ) -> Result<Checkout, PoolError> {
        let mut checkout = pool.complete(acquired).await?;
        if let Err(e) = sync_params(&self.params, &mut checkout).await {
            checkout.broken = true;
            return Err(e.into());
        }
        self.route_cancels_to(&checkout);
        Ok(checkout)
    }
}

/// Brings a server connection's parameters in line with the client's, with
/// one round trip of `SET`/`RESET`, only when they differ.
pub async fn sync_params(
    wanted: &crate::backend::Params,
    server: &mut Checkout,
) -> Result<(), crate::backend::BackendError> {
    if Arc::ptr_eq(wanted, &server.params) {
        return Ok(());
    }
    let sql = params::sync_sql(wanted, &server.params);
    if !sql.is_empty() {
        server.run_housekeeping(&sql).await?;
    }
    server.params = wanted.clone();
    Ok(())
}
