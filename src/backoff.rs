//! Waiting between retries of an operation whose service may be down (the lake, a broker):
//! exponential backoff, doubling from a first wait up to a cap, cut short by shutdown.
//!
//! Used by the sink (puts and resume lookups), the stream job (reads, describes, Delta commits):
//! one shape, 100 ms doubling to 5 s by default, so an outage is retried quickly at first and
//! without hammering later.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The next wait of a retry loop.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    /// 100 ms, doubling up to 5 s.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

impl Backoff {
    /// Waits `first`, then twice as long each time, never longer than `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff { first, max, next: first }
    }

    /// How long the next [`Backoff::pause`] sleeps (for log lines).
    pub(crate) fn next_wait(&self) -> Duration {
        self.next
    }

    /// Starts again from the first wait (after a success).
    pub(crate) fn reset(&mut self) {
        self.next = self.first;
    }

    /// Sleeps the next wait and doubles it; false when `shutdown` came first.
    pub(crate) async fn pause(&mut self, shutdown: &CancellationToken) -> bool {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(3));
        let stop = CancellationToken::new();
        let mut waits = Vec::new();
        for _ in 0..4 {
            waits.push(b.next_wait().as_millis());
            assert!(b.pause(&stop).await);
        }
        assert_eq!(waits, [1, 2, 3, 3]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_millis(1));
        stop.cancel();
        assert!(!b.pause(&stop).await, "a cancelled pause says so");
    }
}
