//! Admin API through librdkafka's `AdminClient`: CreateTopics (with configs, validate-only),
//! DeleteTopics, CreatePartitions, DescribeConfigs, and the errors Kafka returns for each.

mod common;

use std::time::Duration;

use common::{admin, create_topic, producer, topic_name, Broker, RawConn};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{DeleteTopicsRequest, DescribeConfigsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AdminOptions, ConfigSource, NewPartitions, NewTopic, OwnedResourceSpecifier, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaRespErr;

fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

/// Partition count of `topic` from Metadata, or `None` when the broker says it does not exist.
fn partitions_of(broker: &Broker, topic: &str) -> Option<usize> {
    let p = producer(broker, &[]);
    let md = p
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let t = &md.topics()[0];
    match t.error() {
        None => Some(t.partitions().len()),
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => None,
        Some(e) => panic!("unexpected metadata error for {topic}: {e:?}"),
    }
}

#[tokio::test]
async fn create_duplicate_delete_topic() {
    // Metadata must not auto-create the topic behind our back.
    let broker = Broker::start_with(&[("auto.create.topics.enable", "false")]);
    let a = admin(&broker);
    let topic = topic_name("admin");

    let res = a
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &opts(),
        )
        .await
        .expect("CreateTopics");
    assert_eq!(res, vec![Ok(topic.clone())]);
    assert_eq!(partitions_of(&broker, &topic), Some(3));

    let res = a
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &opts(),
        )
        .await
        .expect("CreateTopics duplicate");
    assert_eq!(
        res,
        vec![Err((topic.clone(), RDKafkaErrorCode::TopicAlreadyExists))]
    );

    let res = a
        .delete_topics(&[&topic], &opts())
        .await
        .expect("DeleteTopics");
    assert_eq!(res, vec![Ok(topic.clone())]);
    // Deletion may complete asynchronously in Kafka; give it a moment.
    let mut gone = false;
    for _ in 0..50 {
        if partitions_of(&broker, &topic).is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "topic still in metadata after delete");

    let res = a
        .delete_topics(&[&topic], &opts())
        .await
        .expect("DeleteTopics missing");
    assert_eq!(
        res,
        vec![Err((
            topic.clone(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );

    // The name can be reused after deletion, and starts empty.
    create_topic(&broker, &topic, 1).await;
    assert_eq!(partitions_of(&broker, &topic), Some(1));
}

#[tokio::test]
async fn create_topic_validation_errors() {
    let broker = Broker::start_with(&[("auto.create.topics.enable", "false")]);
    let a = admin(&broker);

    let t = topic_name("rf");
    let res = a
        .create_topics(&[NewTopic::new(&t, 1, TopicReplication::Fixed(3))], &opts())
        .await
        .expect("CreateTopics rf=3");
    assert_eq!(
        res,
        vec![Err((t.clone(), RDKafkaErrorCode::InvalidReplicationFactor))]
    );

    let t = topic_name("zero");
    let res = a
        .create_topics(&[NewTopic::new(&t, 0, TopicReplication::Fixed(1))], &opts())
        .await
        .expect("CreateTopics partitions=0");
    assert_eq!(
        res,
        vec![Err((t.clone(), RDKafkaErrorCode::InvalidPartitions))]
    );

    let t = "bad/name".to_string();
    let res = a
        .create_topics(&[NewTopic::new(&t, 1, TopicReplication::Fixed(1))], &opts())
        .await
        .expect("CreateTopics bad name");
    assert_eq!(res, vec![Err((t.clone(), RDKafkaErrorCode::InvalidTopic))]);

    let t = topic_name("badcfg");
    let res = a
        .create_topics(
            &[NewTopic::new(&t, 1, TopicReplication::Fixed(1)).set("retention.ms", "soon")],
            &opts(),
        )
        .await
        .expect("CreateTopics bad config value");
    assert_eq!(res, vec![Err((t.clone(), RDKafkaErrorCode::InvalidConfig))]);
    assert_eq!(partitions_of(&broker, &t), None);
}

#[tokio::test]
async fn validate_only_creates_nothing() {
    let broker = Broker::start_with(&[("auto.create.topics.enable", "false")]);
    let a = admin(&broker);
    let t = topic_name("validate");
    let res = a
        .create_topics(
            &[NewTopic::new(&t, 4, TopicReplication::Fixed(1))],
            &opts().validate_only(true),
        )
        .await
        .expect("CreateTopics validate-only");
    assert_eq!(res, vec![Ok(t.clone())]);
    assert_eq!(partitions_of(&broker, &t), None);

    // Validation still reports errors.
    let res = a
        .create_topics(
            &[NewTopic::new(&t, 1, TopicReplication::Fixed(2))],
            &opts().validate_only(true),
        )
        .await
        .expect("CreateTopics validate-only rf=2");
    assert_eq!(
        res,
        vec![Err((t.clone(), RDKafkaErrorCode::InvalidReplicationFactor))]
    );
}

#[tokio::test]
async fn create_partitions() {
    let broker = Broker::start_with(&[("auto.create.topics.enable", "false")]);
    let a = admin(&broker);
    let t = topic_name("parts");
    create_topic(&broker, &t, 2).await;

    let res = a
        .create_partitions(&[NewPartitions::new(&t, 5)], &opts())
        .await
        .expect("CreatePartitions");
    assert_eq!(res, vec![Ok(t.clone())]);
    assert_eq!(partitions_of(&broker, &t), Some(5));

    // Shrinking or keeping the count is refused.
    for n in [3, 5] {
        let res = a
            .create_partitions(&[NewPartitions::new(&t, n)], &opts())
            .await
            .expect("CreatePartitions shrink");
        assert_eq!(
            res,
            vec![Err((t.clone(), RDKafkaErrorCode::InvalidPartitions))],
            "to {n}"
        );
    }

    let missing = topic_name("missing");
    let res = a
        .create_partitions(&[NewPartitions::new(&missing, 3)], &opts())
        .await
        .expect("CreatePartitions missing");
    assert_eq!(
        res,
        vec![Err((
            missing.clone(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );

    // validate_only changes nothing.
    let res = a
        .create_partitions(&[NewPartitions::new(&t, 9)], &opts().validate_only(true))
        .await
        .expect("CreatePartitions validate-only");
    assert_eq!(res, vec![Ok(t.clone())]);
    assert_eq!(partitions_of(&broker, &t), Some(5));

    // New partitions are usable.
    let p = producer(&broker, &[]);
    p.send(
        rdkafka::producer::FutureRecord::to(&t)
            .partition(4)
            .key("k")
            .payload("v"),
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|(e, _)| panic!("produce to new partition: {e}"));
}

#[tokio::test]
async fn describe_topic_and_broker_configs() {
    let broker = Broker::start_with(&[("num.partitions", "2")]);
    let a = admin(&broker);
    let t = topic_name("cfg");
    let res = a
        .create_topics(
            &[NewTopic::new(&t, 1, TopicReplication::Fixed(1))
                .set("retention.ms", "12345")
                .set("cleanup.policy", "delete")],
            &opts(),
        )
        .await
        .expect("CreateTopics with configs");
    assert_eq!(res, vec![Ok(t.clone())]);

    let res = a
        .describe_configs(
            &[ResourceSpecifier::Topic(&t), ResourceSpecifier::Broker(0)],
            &opts(),
        )
        .await
        .expect("DescribeConfigs");
    assert_eq!(res.len(), 2);

    let topic_cfg = res[0].as_ref().expect("topic config resource");
    assert_eq!(
        topic_cfg.specifier,
        OwnedResourceSpecifier::Topic(t.clone())
    );
    let m = topic_cfg.entry_map();
    let retention = m.get("retention.ms").expect("retention.ms listed");
    assert_eq!(retention.value.as_deref(), Some("12345"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert!(!retention.is_default);
    let max_bytes = m
        .get("max.message.bytes")
        .expect("max.message.bytes listed");
    assert_eq!(max_bytes.value.as_deref(), Some("1048588"));
    assert!(
        matches!(max_bytes.source, ConfigSource::Default),
        "max.message.bytes source {:?}",
        max_bytes.source
    );
    assert!(m.contains_key("segment.bytes"), "segment.bytes listed");

    let broker_cfg = res[1].as_ref().expect("broker config resource");
    assert_eq!(broker_cfg.specifier, OwnedResourceSpecifier::Broker(0));
    let m = broker_cfg.entry_map();
    let np = m.get("num.partitions").expect("num.partitions listed");
    assert_eq!(np.value.as_deref(), Some("2"));
    assert_eq!(np.source, ConfigSource::StaticBroker);
    let mmb = m
        .get("message.max.bytes")
        .expect("message.max.bytes listed");
    assert_eq!(mmb.value.as_deref(), Some("1048588"));
    assert_eq!(mmb.source, ConfigSource::Default);

    // An unknown topic is a per-resource UNKNOWN_TOPIC_OR_PARTITION, not a failed request.
    // rdkafka 0.39's describe_configs drops per-resource errors (it returns the resource with
    // no entries), so this is checked at the protocol level.
    let missing = topic_name("nocfg");
    let res = a
        .describe_configs(&[ResourceSpecifier::Topic(&missing)], &opts())
        .await
        .expect("DescribeConfigs missing topic");
    assert!(
        res[0].as_ref().map_or(true, |r| r.entries.is_empty()),
        "configs listed for a missing topic: {:?}",
        res[0]
    );
    let mut c = RawConn::connect(&broker);
    let resp = c
        .request(
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_string(missing.clone())),
            ]),
        )
        .expect("raw DescribeConfigs v4");
    assert_eq!(resp.results.len(), 1);
    assert_eq!(resp.results[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert!(resp.results[0].configs.is_empty());
}

#[tokio::test]
async fn delete_disabled_is_refused() {
    let broker = Broker::start_with(&[("delete.topic.enable", "false")]);
    let a = admin(&broker);
    let t = topic_name("keep");
    create_topic(&broker, &t, 1).await;
    // librdkafka sends DeleteTopics v1, and clients before v3 know no TOPIC_DELETION_DISABLED:
    // Kafka answers them INVALID_REQUEST.
    let res = a.delete_topics(&[&t], &opts()).await.expect("DeleteTopics");
    assert_eq!(
        res,
        vec![Err((t.clone(), RDKafkaErrorCode::InvalidRequest))]
    );
    let mut c = RawConn::connect(&broker);
    let resp = c
        .request(
            4,
            &DeleteTopicsRequest::default()
                .with_topic_names(vec![TopicName(StrBytes::from_string(t.clone()))])
                .with_timeout_ms(10_000),
        )
        .expect("raw DeleteTopics v4");
    assert_eq!(resp.responses.len(), 1);
    assert_eq!(
        resp.responses[0].error_code, 73,
        "TOPIC_DELETION_DISABLED for DeleteTopics v4"
    );
    assert_eq!(partitions_of(&broker, &t), Some(1));
}

#[tokio::test]
async fn topics_survive_restart() {
    let mut broker = Broker::start_with(&[("auto.create.topics.enable", "false")]);
    let t = topic_name("durable");
    {
        let a = admin(&broker);
        let res = a
            .create_topics(
                &[NewTopic::new(&t, 3, TopicReplication::Fixed(1)).set("retention.ms", "777777")],
                &opts(),
            )
            .await
            .expect("CreateTopics");
        assert_eq!(res, vec![Ok(t.clone())]);
    }
    broker.kill9();
    broker.restart();
    assert_eq!(partitions_of(&broker, &t), Some(3));
    let a = admin(&broker);
    let res = a
        .describe_configs(&[ResourceSpecifier::Topic(&t)], &opts())
        .await
        .expect("DescribeConfigs after restart");
    let cfg = res[0].as_ref().expect("topic config");
    assert_eq!(
        cfg.entry_map()
            .get("retention.ms")
            .and_then(|e| e.value.as_deref()),
        Some("777777")
    );
}
