//! Cutting open exchanges of a newly blocked host.
//!
//! The next request on any connection already sees a new table (it loads the snapshot per
//! request). What a reload cannot reach that way is an exchange already under way: a long
//! download, an SSE stream, an HTTP/2 stream, a WebSocket. Every forwarded exchange is therefore
//! registered here, with the facts its decision was made on, for as long as its response body
//! lives (the [`Guard`] sits in the body). When a new table is swapped in, or an order becomes
//! active by the clock, [`Registry::sweep`] decides every registered exchange again and trips
//! the [`Signal`] of those now blocked: the response body then ends with an error (HTTP/1.1:
//! the connection closes; HTTP/2: the stream is reset) and an upgraded tunnel sends a WebSocket
//! close 1008 and ends.
//!
//! Cost on the request path: one shard lock to register and one to deregister; the shard is
//! picked by the exchange number, so a sweep holding one shard blocks at most a sixteenth of
//! registrations, and only for the time it takes to decide that shard's entries again.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures_util::task::AtomicWaker;
use portcullis_policy::{CompiledPolicy, RequestFacts, Verdict};

const SHARDS: usize = 16;

/// The facts an exchange was decided on, kept to decide it again.
#[derive(Debug, Clone)]
pub struct Facts {
    pub host: Box<str>,
    pub path: Box<str>,
    pub country: Option<[u8; 2]>,
    pub sni: Option<Box<str>>,
}

impl Facts {
    pub fn as_request(&self, now: SystemTime) -> RequestFacts<'_> {
        RequestFacts {
            host: &self.host,
            path: &self.path,
            country: self.country,
            sni: self.sni.as_deref(),
            now,
        }
    }
}

/// Tripped once when the exchange must end.
#[derive(Debug, Default)]
pub struct Signal {
    cut: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }

    /// Whether the exchange is cut; if not, `cx` is woken when it is.
    pub fn poll_cut(&self, cx: &mut Context<'_>) -> bool {
        if self.is_cut() {
            return true;
        }
        self.waker.register(cx.waker());
        self.is_cut()
    }

    /// Cuts the exchange (wakes whoever waits on it).
    pub fn trip(&self) {
        self.cut.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Resolves when the exchange is cut.
    pub fn cut(&self) -> CutFuture<'_> {
        CutFuture { signal: self }
    }
}

/// See [`Signal::cut`].
#[derive(Debug)]
pub struct CutFuture<'a> {
    signal: &'a Signal,
}

impl Future for CutFuture<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.poll_cut(cx) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[derive(Debug)]
struct Entry {
    facts: Facts,
    signal: Arc<Signal>,
}

/// Every forwarded exchange still running.
#[derive(Debug)]
pub struct Registry {
    shards: [Mutex<HashMap<u64, Entry>>; SHARDS],
    next: AtomicU64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            next: AtomicU64::new(0),
        }
    }
}

/// Keeps an exchange registered; dropping it (with the response body) deregisters.
#[derive(Debug)]
pub struct Guard {
    registry: Arc<Registry>,
    key: u64,
    pub signal: Arc<Signal>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.registry.shard(self.key).remove(&self.key);
    }
}

impl Registry {
    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        // A panic while holding a shard cannot leave an entry half-written: keep going.
        self.shards[(key as usize) % SHARDS]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn register(self: &Arc<Self>, facts: Facts) -> Guard {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let signal = Arc::new(Signal::default());
        self.shard(key).insert(
            key,
            Entry {
                facts,
                signal: signal.clone(),
            },
        );
        Guard {
            registry: self.clone(),
            key,
            signal,
        }
    }

    /// Exchanges registered now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decides every registered exchange on `table` at `now`; trips the blocked ones and returns
    /// how many each winning order cut.
    pub fn sweep(&self, table: &CompiledPolicy, now: SystemTime) -> Vec<(String, u64)> {
        let mut cut: HashMap<String, u64> = HashMap::new();
        for i in 0..SHARDS {
            let shard = self.shard(i as u64);
            for entry in shard.values() {
                if entry.signal.is_cut() {
                    continue;
                }
                if let Some(order) = blocking_order(table, &entry.facts, now) {
                    entry.signal.trip();
                    *cut.entry(order).or_default() += 1;
                }
            }
        }
        let mut out: Vec<(String, u64)> = cut.into_iter().collect();
        out.sort();
        out
    }
}

/// The id of the order that blocks these facts on `table`, if any.
pub fn blocking_order(table: &CompiledPolicy, facts: &Facts, now: SystemTime) -> Option<String> {
    match table.decide(&facts.as_request(now)).verdict {
        Verdict::Block { order, .. } => Some(order.id.clone()),
        _ => None,
    }
}

/// A WebSocket close frame from the server (unmasked): code 1008 "policy violation" and a short
/// reason (RFC 6455 §5.5.1, §7.4.1).
pub fn websocket_close_1008() -> Vec<u8> {
    const REASON: &[u8] = b"blocked by a legal order";
    let mut frame = Vec::with_capacity(4 + REASON.len());
    frame.push(0x88); // FIN + opcode close
    frame.push((2 + REASON.len()) as u8);
    frame.extend_from_slice(&1008u16.to_be_bytes());
    frame.extend_from_slice(REASON);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn close_frame_is_1008_with_a_short_reason() {
        let f = websocket_close_1008();
        assert_eq!(f[0], 0x88);
        assert_eq!(usize::from(f[1]), f.len() - 2);
        assert!(f[1] <= 125, "control frames carry at most 125 bytes");
        assert_eq!(u16::from_be_bytes([f[2], f[3]]), 1008);
    }

    #[test]
    fn guards_deregister_and_signals_wake() {
        let reg = Arc::new(Registry::default());
        let g = reg.register(Facts {
            host: "a.example".into(),
            path: "/".into(),
            country: None,
            sni: None,
        });
        assert_eq!(reg.len(), 1);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(!g.signal.poll_cut(&mut cx));
        g.signal.trip();
        assert!(g.signal.poll_cut(&mut cx));
        drop(g);
        assert!(reg.is_empty());
    }
}
