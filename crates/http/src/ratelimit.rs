//! Token buckets, one per tenant (ingest) or per API key (every request): `rate` tokens per
//! second, bursts up to one second's worth. A request of more than a second's worth (a large
//! batch) is let in when the bucket is full and leaves it in debt, so every batch the API accepts
//! can get through and `Retry-After` is true.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
pub struct RateLimiter<K = String> {
    rate: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// `rate == 0` means unlimited.
    pub fn new(rate: u32) -> Self {
        Self {
            rate: rate as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` tokens, or answers how many whole seconds until the request would be let in.
    pub fn take<Q>(&self, bucket: &Q, n: usize) -> Result<(), u64>
    where
        Q: ToOwned<Owned = K> + ?Sized,
    {
        self.take_at(bucket, n, Instant::now())
    }

    fn take_at<Q>(&self, bucket: &Q, n: usize, now: Instant) -> Result<(), u64>
    where
        Q: ToOwned<Owned = K> + ?Sized,
    {
        if self.rate == 0.0 {
            return Ok(());
        }
        let n = n as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = buckets.entry(bucket.to_owned()).or_insert((self.rate, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.rate);
        *last = now;
        // The bucket never holds more than `rate`: wanting more than that means wanting it full.
        let need = n.min(self.rate);
        if *tokens >= need {
            *tokens -= n;
            Ok(())
        } else {
            Err(((need - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills() {
        let rl: RateLimiter = RateLimiter::new(2);
        let t0 = Instant::now();
        assert!(rl.take_at("a", 1, t0).is_ok());
        assert!(rl.take_at("a", 1, t0).is_ok());
        assert_eq!(rl.take_at("a", 1, t0), Err(1));
        assert!(rl.take_at("b", 2, t0).is_ok(), "tenants are independent");
        assert!(rl.take_at("a", 1, t0 + Duration::from_millis(600)).is_ok());
        assert!(RateLimiter::<String>::new(0).take("a", 1_000_000).is_ok());
        let per_key: RateLimiter<u128> = RateLimiter::new(1);
        assert!(per_key.take_at(&7, 1, t0).is_ok());
        assert_eq!(per_key.take_at(&7, 1, t0), Err(1));
    }
}
