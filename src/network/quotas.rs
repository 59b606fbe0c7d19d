//! Connection limits, as Kafka's `ConnectionQuotas` applies them: `max.connections` bounds the open
//! connections of the node (a listener at the limit stops accepting until one closes; connections on the
//! inter-broker listener are exempt when the node has other listeners), and `max.connections.per.ip`
//! (with `max.connections.per.ip.overrides`) bounds those from one address (a connection over it is
//! closed as soon as it is accepted).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Why a new connection is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("address {ip} already has the configured maximum of {max} connections (max.connections.per.ip)")]
    TooManyConnectionsFromIp { ip: IpAddr, max: usize },
}

/// The limits and open-connection counts shared by the listeners of one side of a node (the broker's
/// listeners, or the controller's, which Kafka counts separately).
pub struct ConnectionQuotas {
    max_connections: usize,
    max_per_ip: usize,
    per_ip_overrides: HashMap<IpAddr, usize>,
    counts: Mutex<Counts>,
    /// Signalled whenever a connection closes.
    slot_freed: Notify,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One open connection as counted by [`ConnectionQuotas`]; dropping it frees the slot.
pub struct ConnectionPermit {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
}

fn limit(n: i32) -> usize {
    usize::try_from(n).unwrap_or(0)
}

/// The address an IPv4 client is known by, whether it reached an IPv4 or a dual-stack socket.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl ConnectionQuotas {
    /// Limits from `max.connections`, `max.connections.per.ip` and the overrides (already resolved to
    /// addresses).
    pub fn new(
        max_connections: i32,
        max_per_ip: i32,
        per_ip_overrides: impl IntoIterator<Item = (IpAddr, i32)>,
    ) -> Arc<ConnectionQuotas> {
        Arc::new(ConnectionQuotas {
            max_connections: limit(max_connections),
            max_per_ip: limit(max_per_ip),
            per_ip_overrides: per_ip_overrides
                .into_iter()
                .map(|(ip, n)| (canonical(ip), limit(n)))
                .collect(),
            counts: Mutex::new(Counts::default()),
            slot_freed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open connections counted now (all addresses).
    pub fn total(&self) -> usize {
        self.lock().total
    }

    /// Counts a new connection from `ip`: waits while the node is at `max.connections` (unless
    /// `protected`, the inter-broker listener), then refuses it if its address is at its own limit.
    pub async fn acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        protected: bool,
    ) -> Result<ConnectionPermit, QuotaError> {
        let ip = canonical(ip);
        loop {
            let freed = self.slot_freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a slot freed in between is not missed.
            freed.as_mut().enable();
            if let Some(result) = self.try_acquire(ip, protected) {
                return result;
            }
            freed.await;
        }
    }

    /// `None` while the node is at `max.connections` (and the listener is not protected).
    fn try_acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        protected: bool,
    ) -> Option<Result<ConnectionPermit, QuotaError>> {
        let mut counts = self.lock();
        if !protected && counts.total >= self.max_connections {
            return None;
        }
        let max = *self.per_ip_overrides.get(&ip).unwrap_or(&self.max_per_ip);
        let from_ip = counts.per_ip.entry(ip).or_insert(0);
        if *from_ip >= max {
            if *from_ip == 0 {
                counts.per_ip.remove(&ip);
            }
            return Some(Err(QuotaError::TooManyConnectionsFromIp { ip, max }));
        }
        *from_ip += 1;
        counts.total += 1;
        Some(Ok(ConnectionPermit {
            quotas: self.clone(),
            ip,
        }))
    }

    fn release(&self, ip: IpAddr) {
        {
            let mut counts = self.lock();
            counts.total = counts.total.saturating_sub(1);
            if let Some(n) = counts.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    counts.per_ip.remove(&ip);
                }
            }
        }
        self.slot_freed.notify_waiters();
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.quotas.release(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[tokio::test]
    async fn per_ip_limit_refuses_and_frees_on_drop() {
        let q = ConnectionQuotas::new(i32::MAX, 2, []);
        let a = q.acquire(ip("10.0.0.1"), false).await.expect("first");
        let _b = q.acquire(ip("10.0.0.1"), false).await.expect("second");
        assert_eq!(
            q.acquire(ip("10.0.0.1"), false).await.err(),
            Some(QuotaError::TooManyConnectionsFromIp {
                ip: ip("10.0.0.1"),
                max: 2
            })
        );
        // Another address is counted on its own.
        let _c = q
            .acquire(ip("10.0.0.2"), false)
            .await
            .expect("other address");
        assert_eq!(q.total(), 3);
        drop(a);
        assert_eq!(q.total(), 2);
        let _d = q.acquire(ip("10.0.0.1"), false).await.expect("slot freed");
    }

    #[tokio::test]
    async fn overrides_and_ipv4_mapped_addresses() {
        let q = ConnectionQuotas::new(i32::MAX, 1, [(ip("10.0.0.9"), 3), (ip("10.0.0.8"), 0)]);
        let _held: Vec<_> = acquire_n(&q, "::ffff:10.0.0.9", 3).await;
        assert!(q.acquire(ip("10.0.0.9"), false).await.is_err());
        assert!(q.acquire(ip("10.0.0.8"), false).await.is_err());
        let _one = q
            .acquire(ip("10.0.0.7"), false)
            .await
            .expect("default limit 1");
        assert!(q.acquire(ip("10.0.0.7"), false).await.is_err());
    }

    async fn acquire_n(q: &Arc<ConnectionQuotas>, addr: &str, n: usize) -> Vec<ConnectionPermit> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(q.acquire(ip(addr), false).await.expect("within limit"));
        }
        out
    }

    #[tokio::test]
    async fn node_limit_waits_for_a_free_slot() {
        let q = ConnectionQuotas::new(2, i32::MAX, []);
        let a = q.acquire(ip("10.0.0.1"), false).await.expect("first");
        let _b = q.acquire(ip("10.0.0.2"), false).await.expect("second");
        let waiting = tokio::spawn({
            let q = q.clone();
            async move { q.acquire(ip("10.0.0.3"), false).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a third connection must wait");
        // The inter-broker listener is not held back by the node-wide limit, but counts towards it.
        let p = q.acquire(ip("10.0.0.4"), true).await.expect("protected");
        drop(a);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "still at the limit: 3 open of 2");
        drop(p);
        tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("woken when a connection closes")
            .expect("task")
            .expect("admitted");
    }
}
