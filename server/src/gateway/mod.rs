//! The gateway owns transports: WebSocket sessions and the long-polling fallback. It decodes
//! frames, authenticates, rate-limits, and turns a connection into commands for the hub and a
//! bounded queue of events from it. It knows nothing of SQL.

pub mod longpoll;
pub mod ws;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::http::error::ApiError;

/// Caps the connections held open at once (`protocols.websocket.max_conn`, counting WebSockets
/// and waiting long-polls): past it a new one is refused with `503 unavailable` and the limit
/// in the message, instead of memory and file descriptors growing until the process fails.
#[derive(Debug)]
pub struct ConnLimit {
    live: AtomicUsize,
    max: usize,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnPermit(Arc<ConnLimit>);

impl ConnLimit {
    pub fn new(max: usize) -> Arc<ConnLimit> {
        Arc::new(ConnLimit {
            live: AtomicUsize::new(0),
            max,
        })
    }

    pub fn admit(self: &Arc<Self>) -> Result<ConnPermit, ApiError> {
        if self.live.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.live.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::unavailable(format!(
                "this server already holds its limit of {} open connections \
                 (protocols.websocket.max_conn); try again later",
                self.max
            )));
        }
        Ok(ConnPermit(self.clone()))
    }

    /// Connections open now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_connection_frees_its_place() {
        let limit = ConnLimit::new(2);
        let a = limit.admit().unwrap();
        let _b = limit.admit().unwrap();
        assert!(limit.admit().is_err());
        assert_eq!(limit.live(), 2, "a refusal takes no place");
        drop(a);
        assert!(limit.admit().is_ok());
    }
}
