//! Metadata (key 3): brokers, controller and topic/partition leadership, served from the metadata image.
//! Unknown topics are auto-created when `auto.create.topics.enable` and the request allow it.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::metadata::{validate_topic_name, NewTopic, TopicImage, INTERNAL_TOPICS};
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_RESOURCE_NAME};
use crate::security::authz::Authz;
use crate::server::Broker;

/// Kafka's "authorized operations not requested" marker.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Kafka's rule for creating a topic: CREATE on the cluster or on the topic. The cluster check is not
/// logged, since a topic-level grant is the usual way and would otherwise leave a false alarm.
pub(crate) fn may_create_topic(authz: &Authz<'_>, name: &str) -> bool {
    authz.can_see(
        AclOperation::Create,
        ResourceType::Cluster,
        CLUSTER_RESOURCE_NAME,
    ) || authz.allows(AclOperation::Create, ResourceType::Topic, name)
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = ctx.api_version;
    // v0 has no null: an empty list means all topics. From v1 null means all and empty means none.
    let requested: Option<Vec<(Option<String>, Uuid)>> = match &request.topics {
        None => None,
        Some(topics) if topics.is_empty() && version == 0 => None,
        Some(topics) => Some(
            topics
                .iter()
                .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
                .collect(),
        ),
    };
    let allow_auto_create = broker.config.auto_create_topics_enable
        && (version < 4 || request.allow_auto_topic_creation);
    let include_topic_ops = request.include_topic_authorized_operations;
    let authz = Authz::new(broker, ctx);
    let ops = |name: &str| {
        if include_topic_ops {
            authz.operations(ResourceType::Topic, name)
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        }
    };

    let mut topics = Vec::new();
    match requested {
        None => {
            let image = broker.image();
            // A listing shows what may be described, without logging what it leaves out.
            for topic in image.topics.values() {
                if authz.can_see(AclOperation::Describe, ResourceType::Topic, &topic.name) {
                    topics.push(topic_metadata(broker, topic, ops(&topic.name)));
                }
            }
        }
        Some(requested) => {
            for (name, id) in requested {
                topics.push(match name {
                    Some(name) => {
                        lookup_or_create(broker, &authz, &name, allow_auto_create, &ops).await
                    }
                    None => match broker.image().topic_by_id(&id) {
                        Some(topic)
                            if authz.allows(
                                AclOperation::Describe,
                                ResourceType::Topic,
                                &topic.name,
                            ) =>
                        {
                            topic_metadata(broker, topic, ops(&topic.name))
                        }
                        // Kafka hides the name of a topic the requester may not describe.
                        Some(_) => MetadataResponseTopic::default()
                            .with_topic_id(id)
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
                        None => MetadataResponseTopic::default()
                            .with_topic_id(id)
                            .with_error_code(ResponseError::UnknownTopicId.code()),
                    },
                });
            }
        }
    }
    MetadataResponse::default()
        .with_brokers(live_brokers(broker, ctx))
        .with_cluster_id(Some(str_bytes(broker.cluster_id.clone())))
        // As Kafka's brokers do, name a live broker (this one) rather than the active controller:
        // brokers forward controller requests, and a client never chases a controller that just died.
        .with_controller_id(BrokerId(broker.node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            authz.cluster_authorized_operations()
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}

/// The unfenced brokers, each at its endpoint for the listener this client connected to (Kafka answers
/// with the endpoints of the request's listener).
pub fn live_brokers(broker: &Broker, ctx: &RequestContext<'_>) -> Vec<MetadataResponseBroker> {
    let image = broker.image();
    image
        .live_brokers()
        .filter_map(|b| {
            let endpoint = b.endpoint(&ctx.connection.listener_name)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.broker_id))
                    .with_host(str_bytes(endpoint.host.clone()))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(b.rack.clone().map(str_bytes)),
            )
        })
        .collect()
}

async fn lookup_or_create(
    broker: &Broker,
    authz: &Authz<'_>,
    name: &str,
    allow_auto_create: bool,
    ops: &impl Fn(&str) -> i32,
) -> MetadataResponseTopic {
    let error_topic = |code: i16| {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(str_bytes(name))))
            .with_error_code(code)
    };
    let describable = authz.allows(AclOperation::Describe, ResourceType::Topic, name);
    if let Some(topic) = broker.image().topic(name) {
        return if describable {
            topic_metadata(broker, topic, ops(name))
        } else {
            error_topic(ResponseError::TopicAuthorizationFailed.code())
        };
    }
    // Kafka answers an unknown topic the requester could not describe as unauthorized, so that
    // existence is not revealed, and never creates it.
    if !describable {
        return error_topic(ResponseError::TopicAuthorizationFailed.code());
    }
    if validate_topic_name(name).is_err() {
        return error_topic(ResponseError::InvalidTopicException.code());
    }
    // Internal topics need their own partition counts (offsets.topic.num.partitions, ...); they are created
    // by the coordinators that own them, never with num.partitions by a client's lookup.
    if !allow_auto_create || INTERNAL_TOPICS.contains(&name) {
        return error_topic(ResponseError::UnknownTopicOrPartition.code());
    }
    if !may_create_topic(authz, name) {
        return error_topic(ResponseError::TopicAuthorizationFailed.code());
    }
    // As Kafka 4: the answer that triggers creation says LEADER_NOT_AVAILABLE; the client asks again
    // and then sees the topic (clients such as librdkafka time out on that first answer).
    match auto_create_topic(broker, name).await {
        Ok(()) => error_topic(ResponseError::LeaderNotAvailable.code()),
        Err(code) => error_topic(code),
    }
}

/// Creates a topic with the broker defaults (num.partitions, default.replication.factor). A concurrent
/// creation of the same topic is success.
pub async fn auto_create_topic(broker: &Broker, name: &str) -> Result<(), i16> {
    let topic = NewTopic {
        name: name.to_string(),
        num_partitions: -1,
        replication_factor: -1,
        assignments: Vec::new(),
        configs: BTreeMap::new(),
    };
    match broker.create_topic(topic).await {
        Ok(_) => {
            tracing::info!(topic = name, "topic auto-created");
            Ok(())
        }
        Err(crate::metadata::ControllerError::TopicAlreadyExists(_)) => Ok(()),
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "auto-creation failed");
            Err(e.code())
        }
    }
}

/// `operations`: the topic's authorized-operations field, already decided.
fn topic_metadata(broker: &Broker, topic: &TopicImage, operations: i32) -> MetadataResponseTopic {
    let image = broker.image();
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            // A leader is usable when it is a live broker and, if it is this one, its log is open here.
            let available = if p.leader == broker.node_id {
                broker.replicas.get_for(topic, p.partition).is_some()
            } else {
                image.live_broker(p.leader).is_some()
            };
            MetadataResponsePartition::default()
                .with_error_code(if available {
                    0
                } else {
                    ResponseError::LeaderNotAvailable.code()
                })
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(if available { p.leader } else { -1 }))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
                .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
                // As Kafka's KRaft brokers report them: replicas on brokers that are not alive.
                .with_offline_replicas(
                    p.replicas
                        .iter()
                        .filter(|r| image.live_broker(**r).is_none())
                        .map(|r| BrokerId(*r))
                        .collect(),
                )
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.topic_id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(operations)
}
