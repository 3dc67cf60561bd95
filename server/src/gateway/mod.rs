//! The gateway owns transports: WebSocket sessions and the long-polling fallback. It decodes
//! frames, authenticates, rate-limits, and turns a connection into commands for the hub and a
//! bounded queue of events from it. It knows nothing of SQL.

pub mod longpoll;
pub mod ws;
