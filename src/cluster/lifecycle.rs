//! The broker side of Kafka's broker lifecycle: register with the active controller, heartbeat every
//! `broker.heartbeat.interval.ms` (the controller fences a broker it has not heard from within
//! `broker.session.timeout.ms`), register again when the controller no longer knows this incarnation, and
//! ask to be fenced on a clean stop so leaderships move before the process exits.
//!
//! When this node is itself the active controller the requests are decided locally; otherwise they go to
//! the controller's listener as BrokerRegistration and BrokerHeartbeat requests.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::broker_registration_request::Listener;
use kafka_protocol::messages::{BrokerHeartbeatRequest, BrokerId, BrokerRegistrationRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;
use uuid::Uuid;

use crate::metadata::{
    BrokerEndpoint, BrokerHeartbeatInput, BrokerRegistrationInput, ControllerError, HeartbeatReply,
};
use crate::server::Broker;

/// File in the first log dir holding the broker epoch of the last clean shutdown (Kafka's
/// `kafka_cleanshutdown`): missing at start-up, the last stop was a crash and unflushed records may be
/// gone, which the controller must know (KIP-966).
const CLEAN_SHUTDOWN_FILE: &str = "kavka_cleanshutdown";

/// Reads and removes the clean-shutdown record: the broker epoch it names, or -1. Removed (durably)
/// before this process registers, so a crash from here on is never taken for a clean stop.
pub fn take_clean_shutdown_epoch(log_dir: &std::path::Path) -> i64 {
    let path = log_dir.join(CLEAN_SHUTDOWN_FILE);
    let epoch = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .unwrap_or(-1);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            if let Err(e) = std::fs::File::open(log_dir).and_then(|d| d.sync_all()) {
                tracing::warn!(error = %e, "cannot sync the log dir after removing the clean-shutdown record");
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(error = %e, "cannot remove the clean-shutdown record"),
    }
    epoch
}

/// Records a clean shutdown under broker `epoch`, once every log is flushed and closed.
pub fn write_clean_shutdown_epoch(log_dir: &std::path::Path, epoch: i64) {
    let (path, tmp) = (
        log_dir.join(CLEAN_SHUTDOWN_FILE),
        log_dir.join(format!("{CLEAN_SHUTDOWN_FILE}.tmp")),
    );
    let written = std::fs::write(&tmp, format!("{epoch}\n"))
        .and_then(|()| std::fs::File::open(&tmp).and_then(|f| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .and_then(|()| std::fs::File::open(log_dir).and_then(|d| d.sync_all()));
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot record the clean shutdown; the next start counts as a crash");
    }
}

/// How soon a failed heartbeat is retried.
const HEARTBEAT_RETRY: Duration = Duration::from_millis(250);

/// This broker process's registration: its incarnation and the epoch the controller gave it.
pub struct BrokerLifecycle {
    incarnation_id: Uuid,
    /// The broker epoch of the last clean shutdown, -1 after a crash (BrokerRegistration's
    /// PreviousBrokerEpoch).
    previous_epoch: i64,
    endpoints: Vec<BrokerEndpoint>,
    epoch: AtomicI64,
    /// Set when the controlled shutdown begins: from then on only shutdown heartbeats are sent, so a
    /// late regular one cannot ask the controller to unfence this broker again.
    shutting_down: AtomicBool,
}

impl BrokerLifecycle {
    /// A new incarnation announcing `endpoints` (the advertised client listeners, as bound).
    pub fn new(endpoints: Vec<BrokerEndpoint>, previous_epoch: i64) -> BrokerLifecycle {
        BrokerLifecycle {
            incarnation_id: Uuid::new_v4(),
            previous_epoch,
            endpoints,
            epoch: AtomicI64::new(-1),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// The broker epoch, or -1 before registration.
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Acquire)
    }
}

/// Registers and heartbeats until the controller unfences this broker, or `timeout` passes (then the
/// broker serves anyway and keeps trying in the background: clients just do not see it yet).
pub async fn start(broker: &Broker, timeout: Duration) {
    let attempt = async {
        loop {
            match register_and_heartbeat(broker).await {
                Ok(reply) if !reply.is_fenced => return,
                Ok(_) => {}
                Err(e) => tracing::info!(error = %e, "broker not unfenced yet; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    if tokio::time::timeout(timeout, attempt).await.is_err() {
        tracing::warn!(
            timeout_ms = timeout.as_millis() as u64,
            "broker still fenced after start-up; serving anyway while registration continues"
        );
    }
}

/// Heartbeats every `broker.heartbeat.interval.ms` until shutdown.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_millis(broker.config.broker_heartbeat_interval_ms.max(1) as u64);
    let mut wait = interval;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        if broker.lifecycle.shutting_down.load(Ordering::Acquire) {
            return;
        }
        wait = match register_and_heartbeat(&broker).await {
            Ok(_) => interval,
            Err(e) => {
                tracing::warn!(error = %e, "broker heartbeat failed");
                // The controller may have just moved: a newly elected one gives brokers only a short
                // grace to be heard from (see `Controller::fence_expired_brokers`).
                interval.min(HEARTBEAT_RETRY)
            }
        };
    }
}

/// One round of the lifecycle: registers this incarnation if the controller does not know it, then
/// heartbeats. When the controller lost or replaced the registration, the next round registers again.
async fn register_and_heartbeat(broker: &Broker) -> Result<HeartbeatReply, ControllerError> {
    if broker.lifecycle.epoch() < 0 {
        register(broker).await?;
    }
    let result = heartbeat(broker, false).await;
    if let Err(ControllerError::StaleBrokerEpoch(_) | ControllerError::BrokerIdNotRegistered(_)) =
        &result
    {
        tracing::warn!(
            epoch = broker.lifecycle.epoch(),
            "broker registration unknown to the controller; registering again"
        );
        broker.lifecycle.epoch.store(-1, Ordering::Release);
    }
    result
}

/// A clean stop: asks the controller to fence this broker and move its leaderships, waiting up to
/// `timeout` (a broker that cannot reach the controller simply stops and is fenced by session expiry).
pub async fn controlled_shutdown(broker: &Broker, timeout: Duration) {
    broker
        .lifecycle
        .shutting_down
        .store(true, Ordering::Release);
    if broker.lifecycle.epoch() < 0 {
        return;
    }
    let attempt = async {
        loop {
            match heartbeat(broker, true).await {
                Ok(reply) if reply.should_shut_down => return,
                Ok(_) => {}
                Err(e) => tracing::info!(error = %e, "controlled shutdown not accepted yet"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(()) => tracing::info!("controlled shutdown: leaderships moved, broker fenced"),
        Err(_) => tracing::warn!("controlled shutdown not confirmed in time; stopping anyway"),
    }
}

async fn register(broker: &Broker) -> Result<i64, ControllerError> {
    let lifecycle = &broker.lifecycle;
    let epoch = if broker.lifecycle_channel.remote_controller().is_none() {
        let input = BrokerRegistrationInput {
            broker_id: broker.node_id,
            incarnation_id: lifecycle.incarnation_id,
            endpoints: lifecycle.endpoints.clone(),
            rack: broker.config.broker_rack.clone(),
            previous_broker_epoch: lifecycle.previous_epoch,
        };
        let session = Duration::from_millis(broker.config.broker_session_timeout_ms.max(1) as u64);
        broker
            .with_controller(move |c| c.register_broker(input, session))
            .await?
    } else {
        let request = BrokerRegistrationRequest::default()
            .with_broker_id(BrokerId(broker.node_id))
            .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
            .with_incarnation_id(lifecycle.incarnation_id)
            .with_listeners(
                lifecycle
                    .endpoints
                    .iter()
                    .map(|e| {
                        Listener::default()
                            .with_name(StrBytes::from_string(e.name.clone()))
                            .with_host(StrBytes::from_string(e.host.clone()))
                            .with_port(e.port)
                            .with_security_protocol(e.security_protocol)
                    })
                    .collect(),
            )
            .with_rack(broker.config.broker_rack.clone().map(StrBytes::from_string))
            .with_previous_broker_epoch(lifecycle.previous_epoch);
        let response = broker
            .lifecycle_channel
            .request(&request, 4)
            .await
            .map_err(|e| ControllerError::NotController(e.to_string()))?;
        if response.error_code != 0 {
            return Err(remote_error(response.error_code));
        }
        response.broker_epoch
    };
    lifecycle.epoch.store(epoch, Ordering::Release);
    tracing::info!(epoch, "broker registered with the controller");
    Ok(epoch)
}

async fn heartbeat(
    broker: &Broker,
    want_shut_down: bool,
) -> Result<HeartbeatReply, ControllerError> {
    let input = BrokerHeartbeatInput {
        broker_id: broker.node_id,
        broker_epoch: broker.lifecycle.epoch(),
        metadata_offset: broker.quorum.image().metadata_offset as i64,
        want_fence: false,
        want_shut_down,
    };
    if broker.lifecycle_channel.remote_controller().is_none() {
        return broker
            .with_controller(move |c| c.broker_heartbeat(input))
            .await;
    }
    let request = BrokerHeartbeatRequest::default()
        .with_broker_id(BrokerId(input.broker_id))
        .with_broker_epoch(input.broker_epoch)
        .with_current_metadata_offset(input.metadata_offset)
        .with_want_fence(input.want_fence)
        .with_want_shut_down(input.want_shut_down);
    let response = broker
        .lifecycle_channel
        .request(&request, 1)
        .await
        .map_err(|e| ControllerError::NotController(e.to_string()))?;
    if response.error_code != 0 {
        return Err(remote_error(response.error_code));
    }
    Ok(HeartbeatReply {
        is_caught_up: response.is_caught_up,
        is_fenced: response.is_fenced,
        should_shut_down: response.should_shut_down,
    })
}

/// The controller's error code as the controller error it stands for.
fn remote_error(code: i16) -> ControllerError {
    let message = ResponseError::try_from_code(code)
        .map(|e| e.to_string())
        .unwrap_or_else(|| format!("error code {code}"));
    if code == ResponseError::StaleBrokerEpoch.code() {
        ControllerError::StaleBrokerEpoch(message)
    } else if code == ResponseError::BrokerIdNotRegistered.code() {
        ControllerError::BrokerIdNotRegistered(-1)
    } else {
        ControllerError::Remote { code, message }
    }
}
