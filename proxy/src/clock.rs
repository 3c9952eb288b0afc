//! Millisecond timestamps that fit in an atomic, for state shared between tasks (connection
//! deadlines, origins marked down).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Milliseconds since the process epoch, plus one so that 0 can mean "not set".
pub(crate) fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

/// The instant a [`now_ms`] value stands for.
pub(crate) fn instant_at(ms: u64) -> tokio::time::Instant {
    tokio::time::Instant::from_std(epoch() + Duration::from_millis(ms.saturating_sub(1)))
}
