//! AlterPartition (key 56), served by the active controller on its controller listener: a partition leader
//! asks to shrink or expand the in-sync replica set (see `crate::metadata` for the validation).

use kafka_protocol::messages::alter_partition_response::{PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse, BrokerId};

use crate::metadata::IsrChangeRequest;
use crate::server::Broker;

/// First version whose ISR members carry their broker epochs (KIP-903).
const ISR_WITH_EPOCHS_VERSION: i16 = 3;

pub async fn handle(
    broker: &Broker,
    version: i16,
    request: AlterPartitionRequest,
) -> AlterPartitionResponse {
    let changes: Vec<IsrChangeRequest> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| IsrChangeRequest {
                topic_id: t.topic_id,
                partition: p.partition_index,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                new_isr: if version >= ISR_WITH_EPOCHS_VERSION {
                    p.new_isr_with_epochs
                        .iter()
                        .map(|b| (b.broker_id.0, b.broker_epoch))
                        .collect()
                } else {
                    p.new_isr.iter().map(|id| (id.0, -1)).collect()
                },
            })
        })
        .collect();
    let (broker_id, broker_epoch) = (request.broker_id.0, request.broker_epoch);
    let results = match broker
        .with_controller(move |c| c.alter_partition(broker_id, broker_epoch, changes))
        .await
    {
        Ok(results) => results,
        Err(e) => return AlterPartitionResponse::default().with_error_code(e.code()),
    };
    let mut topics: Vec<TopicData> = Vec::new();
    for r in results {
        let partition = PartitionData::default()
            .with_partition_index(r.partition)
            .with_error_code(r.error.map_or(0, |e| e.code()))
            .with_leader_id(BrokerId(r.leader))
            .with_leader_epoch(r.leader_epoch)
            .with_isr(r.isr.into_iter().map(BrokerId).collect())
            .with_partition_epoch(r.partition_epoch);
        match topics.iter_mut().find(|t| t.topic_id == r.topic_id) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(
                TopicData::default()
                    .with_topic_id(r.topic_id)
                    .with_partitions(vec![partition]),
            ),
        }
    }
    AlterPartitionResponse::default().with_topics(topics)
}
