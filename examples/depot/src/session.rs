//! What the server keeps per connection. Sessions are `#[hot_state]`: their values live in the
//! runtime's storage, so a patch that changes `Session` migrates every connected client's session
//! instead of dropping it.

use std::collections::BTreeSet;

use hotreload_runtime::hot_state;
use hotreload_runtime::state::{Handle, Singleton};
use serde::{Deserialize, Serialize};

use crate::util::clock::Millis;

/// One connection's session.
#[hot_state(version = 1)]
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct Session {
    /// Server-wide connection number.
    pub id: u64,
    pub peer: String,
    /// The name given with `HELLO`; jobs are reserved under it.
    pub client: Option<String>,
    pub authenticated: bool,
    pub commands: u64,
    pub errors: u64,
    pub subscriptions: BTreeSet<String>,
    /// Jobs this connection reserved and has not finished: given back if it disconnects.
    pub reserved: BTreeSet<u64>,
    pub connected_at: Millis,
    pub last_seen: Millis,
}

impl Session {
    /// The name a connection reserves jobs under: its client name, or its number.
    pub fn worker(&self) -> String {
        match &self.client {
            Some(client) => client.clone(),
            None => format!("conn-{}", self.id),
        }
    }
}

/// Server-wide counts that outlive connections, kept where patches share them.
#[hot_state(version = 1)]
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Lifetime {
    pub sessions_opened: u64,
    pub sessions_closed: u64,
    pub jobs_released_on_disconnect: u64,
}

pub static LIFETIME: Singleton<Lifetime> = Singleton::new("depot.lifetime", Lifetime::default);

/// A new session for connection number `id` from `peer`. Authenticated from the start if the
/// server wants no token.
pub fn open(id: u64, peer: String, needs_auth: bool, now: Millis) -> Handle<Session> {
    if let Ok(mut lifetime) = LIFETIME.write() {
        lifetime.sessions_opened += 1;
    }
    Handle::new(Session {
        id,
        peer,
        authenticated: !needs_auth,
        connected_at: now,
        last_seen: now,
        ..Session::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_name_their_worker() {
        let session = open(3, "127.0.0.1:5".into(), true, 10);
        let mut locked = session.lock();
        let session = locked.get_mut().unwrap();
        assert!(!session.authenticated);
        assert_eq!(session.worker(), "conn-3");
        session.client = Some("mailer".into());
        assert_eq!(session.worker(), "mailer");
        assert!(LIFETIME.read().unwrap().sessions_opened >= 1);
    }
}
