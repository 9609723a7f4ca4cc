//! Query cancellation. Each client gets its own BackendKeyData from the
//! gateway (its server connection changes from one transaction to the next),
//! and a slot saying which server backend serves it right now. A
//! CancelRequest arrives on a fresh connection carrying the client's key; the
//! registry finds the slot and forwards the request to that backend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::Rng;

use crate::backend::{send_cancel, ServerTarget};

/// The server backend a client is using at the moment, if any.
#[derive(Debug, Default)]
pub struct CancelSlot {
    current: Mutex<Option<(Arc<ServerTarget>, i32, i32)>>,
}

impl CancelSlot {
    pub fn set(&self, target: Option<(Arc<ServerTarget>, i32, i32)>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = target;
    }

    fn get(&self) -> Option<(Arc<ServerTarget>, i32, i32)> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Every logged-in client's cancel key.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    clients: Mutex<HashMap<i32, (i32, Arc<CancelSlot>)>>,
}

/// A client's registration; unregisters on drop.
pub struct CancelKey {
    pub pid: i32,
    pub secret: i32,
    pub slot: Arc<CancelSlot>,
    registry: Arc<CancelRegistry>,
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        self.registry
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.pid);
    }
}

impl CancelRegistry {
    /// Gives a new client a unique (pid, secret) key.
    pub fn register(self: &Arc<Self>) -> CancelKey {
        let mut rng = rand::thread_rng();
        let slot = Arc::new(CancelSlot::default());
        let secret: i32 = rng.gen();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let pid = loop {
            let pid = rng.gen_range(1..i32::MAX);
            if !clients.contains_key(&pid) {
                break pid;
            }
        };
        clients.insert(pid, (secret, slot.clone()));
        CancelKey {
            pid,
            secret,
            slot,
            registry: self.clone(),
        }
    }

    /// Forwards a CancelRequest to the backend serving the client with this key
    /// (nothing happens for an unknown key or an idle client, as in PostgreSQL).
    pub async fn cancel(&self, pid: i32, secret: i32) {
        let slot = {
            let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            match clients.get(&pid) {
                Some((known, slot)) if *known == secret => slot.clone(),
                _ => {
                    tracing::debug!(pid, "cancel request with an unknown key ignored");
                    return;
                }
            }
        };
        if let Some((target, server_pid, server_secret)) = slot.get() {
            if let Err(e) = send_cancel(&target, server_pid, server_secret).await {
                tracing::warn!(server = %target.addr(), error = %e, "could not forward cancel request");
            }
        }
    }
}
