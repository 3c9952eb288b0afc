//! A token bucket in 8 bytes: the tokens as an `f32` and the last refill as a `u32` millisecond
//! tick. The caller passes the clock in, so the arithmetic is tested without sleeping.
//!
//! The tick wraps every 49.7 days; elapsed time is a wrapping difference, and a tick that seems to
//! go backwards (two threads that read the clock in one order and take the lock in the other)
//! counts as no time at all.

/// One client's tokens (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f32,
    last_ms: u32,
}

impl Bucket {
    /// A full bucket: a new client may send `burst` requests at once.
    pub fn full(burst: f32, now_ms: u32) -> Bucket {
        Bucket {
            tokens: burst,
            last_ms: now_ms,
        }
    }

    /// Refills for the time since the last call, then takes one token. When there is none,
    /// returns the whole seconds until there will be one (at least 1: `Retry-After`).
    ///
    /// `rate` is tokens per second (> 0), `burst` the bucket's size; both may differ from the
    /// previous call (a reload): the tokens held are clamped to the new size.
    pub fn take(&mut self, now_ms: u32, rate: f32, burst: f32) -> Result<(), u32> {
        let elapsed = now_ms.wrapping_sub(self.last_ms);
        let elapsed = if elapsed > i32::MAX as u32 {
            0
        } else {
            elapsed
        };
        self.tokens = (self.tokens + elapsed as f32 * rate / 1000.0).min(burst);
        self.last_ms = now_ms;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / rate;
            Err((wait.ceil() as u32).max(1))
        }
    }

    /// Tokens held now (for tests and reports).
    pub fn tokens(&self) -> f32 {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_allows_the_burst_then_refuses() {
        let mut b = Bucket::full(5.0, 1000);
        for _ in 0..5 {
            assert_eq!(b.take(1000, 2.0, 5.0), Ok(()));
        }
        // Empty at 2 tokens/s: one token comes in 0.5 s, rounded up to whole seconds.
        assert_eq!(b.take(1000, 2.0, 5.0), Err(1));
    }

    #[test]
    fn tokens_refill_at_the_rate_and_stop_at_the_burst() {
        let mut b = Bucket::full(10.0, 0);
        for _ in 0..10 {
            b.take(0, 10.0, 10.0).unwrap();
        }
        assert!(b.take(0, 10.0, 10.0).is_err());
        // 300 ms at 10/s: 3 tokens.
        for _ in 0..3 {
            assert_eq!(b.take(300, 10.0, 10.0), Ok(()));
        }
        assert!(b.take(300, 10.0, 10.0).is_err());
        // An hour later: full, not 36,000.
        let mut n = 0;
        while b.take(3_600_300, 10.0, 10.0).is_ok() {
            n += 1;
        }
        assert_eq!(n, 10);
    }

    #[test]
    fn retry_after_is_the_seconds_until_a_token() {
        let mut b = Bucket::full(1.0, 0);
        b.take(0, 0.25, 1.0).unwrap();
        // 0.25 tokens/s: 4 s to the next one.
        assert_eq!(b.take(0, 0.25, 1.0), Err(4));
        // Two seconds on, half a token: 2 s more.
        assert_eq!(b.take(2000, 0.25, 1.0), Err(2));
    }

    #[test]
    fn a_smaller_burst_after_a_reload_clamps_the_tokens() {
        let mut b = Bucket::full(100.0, 0);
        b.take(0, 1.0, 2.0).unwrap();
        assert!(b.tokens() <= 1.0);
    }

    #[test]
    fn the_tick_wraps_and_never_runs_backwards() {
        let mut b = Bucket::full(2.0, u32::MAX - 100);
        b.take(u32::MAX - 100, 10.0, 2.0).unwrap();
        b.take(u32::MAX - 100, 10.0, 2.0).unwrap();
        // 201 ms across the wrap at 10/s: 2 tokens.
        assert_eq!(b.take(100, 10.0, 2.0), Ok(()));
        assert_eq!(b.take(100, 10.0, 2.0), Ok(()));
        // A tick from before the last one adds nothing.
        assert!(b.take(50, 10.0, 2.0).is_err());
    }
}
