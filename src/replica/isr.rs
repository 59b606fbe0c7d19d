//! Sends the ISR changes partition leaders propose to the active controller (AlterPartition), and checks
//! periodically for followers that fell out of sync. The controller's answer is not applied here: the
//! change reaches every node, this one included, through the metadata image.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_request::{BrokerState, PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, BrokerId};
use tokio::sync::watch;

use crate::handlers::now_ms;
use crate::metadata::{ControllerError, IsrChangeRequest, IsrChangeResult};
use crate::server::Broker;

/// AlterPartition version sent: ISR members with their broker epochs (KIP-903).
const ALTER_PARTITION_VERSION: i16 = 3;

/// Runs until shutdown: forwards proposed changes in batches and, every `replica.lag.time.max.ms / 2`,
/// proposes to drop followers that have not caught up within `replica.lag.time.max.ms`.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let Some(mut proposals) = broker.replicas.take_isr_changes() else {
        return;
    };
    let lag_max_ms = broker.config.replica_lag_time_max_ms.max(1);
    let mut lag_check =
        tokio::time::interval(Duration::from_millis((lag_max_ms / 2).max(1) as u64));
    lag_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut batch = Vec::new();
        tokio::select! {
            _ = shutdown.changed() => return,
            received = proposals.recv() => match received {
                Some(change) => batch.push(change),
                None => return,
            },
            _ = lag_check.tick() => {
                let now = now_ms();
                batch.extend(
                    broker
                        .replicas
                        .partitions()
                        .iter()
                        .filter_map(|p| p.propose_isr_shrink(now, lag_max_ms)),
                );
            }
        }
        while let Ok(change) = proposals.try_recv() {
            batch.push(change);
        }
        if !batch.is_empty() {
            send(&broker, batch).await;
        }
    }
}

/// One AlterPartition round; every change that fails is released so that it can be proposed again.
async fn send(broker: &Broker, changes: Vec<IsrChangeRequest>) {
    let based_on: Vec<(uuid::Uuid, i32, i32)> = changes
        .iter()
        .map(|c| (c.topic_id, c.partition, c.partition_epoch))
        .collect();
    let outcome = alter_partition(broker, changes).await;
    let release = |topic_id: &uuid::Uuid, partition: i32| {
        let image = broker.image();
        let found = image
            .topic_by_id(topic_id)
            .and_then(|t| broker.replicas.get_for(t, partition));
        if let Some((_, _, epoch)) = based_on
            .iter()
            .find(|(t, p, _)| t == topic_id && *p == partition)
        {
            if let Some(p) = found {
                p.isr_change_failed(*epoch);
            }
        }
    };
    match outcome {
        Ok(results) => {
            for r in results.iter().filter(|r| r.error.is_some()) {
                tracing::info!(topic_id = %r.topic_id, partition = r.partition, error = ?r.error, "ISR change refused by the controller");
                release(&r.topic_id, r.partition);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "ISR change not delivered to the controller; will retry");
            for (topic_id, partition, _) in &based_on {
                release(topic_id, *partition);
            }
        }
    }
}

/// AlterPartition at the active controller: decided locally when that is this node.
async fn alter_partition(
    broker: &Broker,
    changes: Vec<IsrChangeRequest>,
) -> Result<Vec<IsrChangeResult>, ControllerError> {
    let (node_id, epoch) = (broker.node_id, broker.lifecycle.epoch());
    if broker.isr_channel.remote_controller().is_none() {
        return broker
            .with_controller(move |c| c.alter_partition(node_id, epoch, changes))
            .await;
    }
    let mut topics: Vec<TopicData> = Vec::new();
    for c in &changes {
        let partition = PartitionData::default()
            .with_partition_index(c.partition)
            .with_leader_epoch(c.leader_epoch)
            .with_partition_epoch(c.partition_epoch)
            .with_new_isr_with_epochs(
                c.new_isr
                    .iter()
                    .map(|(id, epoch)| {
                        BrokerState::default()
                            .with_broker_id(BrokerId(*id))
                            .with_broker_epoch(*epoch)
                    })
                    .collect(),
            );
        match topics.iter_mut().find(|t| t.topic_id == c.topic_id) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(
                TopicData::default()
                    .with_topic_id(c.topic_id)
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let request = AlterPartitionRequest::default()
        .with_broker_id(BrokerId(node_id))
        .with_broker_epoch(epoch)
        .with_topics(topics);
    let response = broker
        .isr_channel
        .request(&request, ALTER_PARTITION_VERSION)
        .await
        .map_err(|e| ControllerError::NotController(e.to_string()))?;
    if response.error_code != 0 {
        return Err(ControllerError::Remote {
            code: response.error_code,
            message: ResponseError::try_from_code(response.error_code)
                .map(|e| e.to_string())
                .unwrap_or_default(),
        });
    }
    Ok(response
        .topics
        .into_iter()
        .flat_map(|t| {
            t.partitions.into_iter().map(move |p| IsrChangeResult {
                topic_id: t.topic_id,
                partition: p.partition_index,
                error: (p.error_code != 0)
                    .then(|| ResponseError::try_from_code(p.error_code))
                    .flatten(),
                leader: p.leader_id.0,
                leader_epoch: p.leader_epoch,
                isr: p.isr.into_iter().map(|b| b.0).collect(),
                partition_epoch: p.partition_epoch,
            })
        })
        .collect())
}
