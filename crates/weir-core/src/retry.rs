//! Retry policy and Airflow's retry-delay formula (exponential backoff, deterministic jitter, cap).

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// Airflow caps any computed backoff at one day before applying `max_retry_delay`.
const MAX_RETRY_DELAY_SECS: i64 = 24 * 60 * 60;

/// How often and how patiently a task is retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Retries after the first try: a task runs at most `retries + 1` times.
    pub retries: u32,
    /// The base delay before a retry.
    pub retry_delay: SignedDuration,
    /// Exponential backoff multiplier (Airflow's `retry_exponential_backoff`; `true` there is 2.0).
    /// `None` means a fixed delay.
    pub backoff_multiplier: Option<f64>,
    /// Upper bound on any computed delay.
    pub max_retry_delay: Option<SignedDuration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 0,
            retry_delay: SignedDuration::from_secs(300),
            backoff_multiplier: None,
            max_retry_delay: None,
        }
    }
}

/// Identifies the try whose successor's delay is being computed; it seeds the jitter.
#[derive(Debug, Clone, Copy)]
pub struct TryKey<'a> {
    pub dag_id: &'a str,
    pub task_id: &'a str,
    pub logical_date: Timestamp,
    /// The try that just failed, starting at 1.
    pub try_number: u32,
}

impl RetryPolicy {
    /// Whether a task whose try `try_number` (1-based) just failed gets another try.
    pub fn should_retry(&self, try_number: u32) -> bool {
        try_number <= self.retries
    }

    /// Delay before the next try, after try `key.try_number` failed.
    ///
    /// Without backoff this is `retry_delay`. With backoff it is Airflow's formula:
    /// `min = ceil(retry_delay * multiplier^(try-1))` seconds (at least 1), plus a deterministic
    /// jitter `sha1("dag#task#logical_date#try") mod min`, capped at one day and then at
    /// `max_retry_delay`. The same try always gets the same delay.
    pub fn delay_after(&self, key: TryKey<'_>) -> SignedDuration {
        let Some(multiplier) = self.backoff_multiplier else {
            return cap(self.retry_delay, self.max_retry_delay);
        };
        let exponent = key.try_number.saturating_sub(1) as i32;
        let base = self.retry_delay.as_secs_f64() * multiplier.powi(exponent);
        let min_backoff = if base.is_finite() {
            base.ceil().min(i64::MAX as f64) as i64
        } else {
            i64::MAX
        };
        let min_backoff = min_backoff.clamp(1, MAX_RETRY_DELAY_SECS * 2);
        let seed = format!(
            "{}#{}#{}#{}",
            key.dag_id,
            key.task_id,
            key.logical_date.strftime("%Y-%m-%dT%H:%M:%S%:z"),
            key.try_number
        );
        let digest = sha1_smol::Sha1::from(seed.as_bytes()).digest().bytes();
        // The hash as a big integer modulo min_backoff, computed byte by byte.
        let modulus = min_backoff as u128;
        let jitter = digest
            .iter()
            .fold(0u128, |acc, &b| (acc * 256 + b as u128) % modulus) as i64;
        let secs = (min_backoff + jitter).min(MAX_RETRY_DELAY_SECS);
        cap(SignedDuration::from_secs(secs), self.max_retry_delay)
    }
}

fn cap(delay: SignedDuration, max: Option<SignedDuration>) -> SignedDuration {
    match max {
        Some(max) if delay > max => max,
        _ => delay,
    }
}
