//! `kavka topics`: Kafka's `kafka-topics` (CreateTopics, Metadata, DescribeConfigs, CreatePartitions,
//! DeleteTopics).

use std::collections::BTreeSet;

use base64::Engine;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{key_value, AdminConnection};
use crate::client::cluster::{topic_infos, PartitionInfo, TopicInfo};
use crate::client::error::check;
use crate::client::{ClientError, KafkaClient};

/// DescribeConfigs' config source for a topic's own (dynamic) setting.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
/// DescribeConfigs' resource type of a topic.
const TOPIC_RESOURCE: i8 = 2;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["create", "list", "describe", "delete", "alter"])))]
pub struct TopicsArgs {
    #[command(flatten)]
    pub connection: AdminConnection,
    /// Create a topic (--topic, optional --partitions, --replication-factor, --config).
    #[arg(long)]
    pub create: bool,
    /// List topic names (all, or those matching --topic as a regular expression).
    #[arg(long)]
    pub list: bool,
    /// Describe topics: partitions, leaders, replicas, in-sync replicas and configs.
    #[arg(long)]
    pub describe: bool,
    /// Delete the topics --topic names (a regular expression).
    #[arg(long)]
    pub delete: bool,
    /// Add partitions to a topic (--topic and --partitions).
    #[arg(long)]
    pub alter: bool,
    /// The topic: a name for --create and --alter, a regular expression for the others.
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// Number of partitions (--create: default the broker's num.partitions; --alter: the new total).
    #[arg(long, value_name = "N")]
    pub partitions: Option<i32>,
    /// Replication factor of a new topic (default the broker's default.replication.factor).
    #[arg(long, value_name = "R")]
    pub replication_factor: Option<i16>,
    /// A topic config for --create, as key=value (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub configs: Vec<String>,
    /// With --create: succeed without doing anything if the topic exists.
    #[arg(long)]
    pub if_not_exists: bool,
    /// With --alter or --delete: succeed without doing anything if the topic does not exist.
    #[arg(long)]
    pub if_exists: bool,
    /// With --describe: only partitions whose in-sync replicas are fewer than their replicas.
    #[arg(long)]
    pub under_replicated_partitions: bool,
    /// With --describe: only partitions without a live leader.
    #[arg(long)]
    pub unavailable_partitions: bool,
    /// With --list and --describe: leave out internal topics (__consumer_offsets).
    #[arg(long)]
    pub exclude_internal: bool,
}

pub async fn run(args: TopicsArgs) -> Result<(), ClientError> {
    let mut client = args.connection.connect("kavka-topics").await?;
    if args.create {
        create(&mut client, &args).await
    } else if args.list {
        for t in matching_topics(&mut client, &args).await? {
            println!("{}", t.name);
        }
        Ok(())
    } else if args.describe {
        describe(&mut client, &args).await
    } else if args.delete {
        delete(&mut client, &args).await
    } else {
        alter(&mut client, &args).await
    }
}

fn required_topic(args: &TopicsArgs) -> Result<&str, ClientError> {
    args.topic
        .as_deref()
        .ok_or_else(|| ClientError::Config("--topic is required".into()))
}

async fn create(client: &mut KafkaClient, args: &TopicsArgs) -> Result<(), ClientError> {
    let name = required_topic(args)?;
    let mut configs = Vec::new();
    for item in &args.configs {
        let (k, v) = key_value(item)?;
        configs.push(
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k))
                .with_value(Some(StrBytes::from_string(v))),
        );
    }
    if args.partitions.is_some_and(|p| p < 1) {
        return Err(ClientError::Config(
            "--partitions must be at least 1".into(),
        ));
    }
    if args.replication_factor.is_some_and(|r| r < 1) {
        return Err(ClientError::Config(
            "--replication-factor must be at least 1".into(),
        ));
    }
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())))
        .with_num_partitions(args.partitions.unwrap_or(-1))
        .with_replication_factor(args.replication_factor.unwrap_or(-1))
        .with_configs(configs);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(30_000);
    let response = client.send_any(&request).await?;
    let result = response
        .topics
        .first()
        .ok_or_else(|| ClientError::Protocol("CreateTopics answered no topic".into()))?;
    match result.error_code {
        0 => {
            println!("Created topic {name}.");
            Ok(())
        }
        36 if args.if_not_exists => Ok(()),
        36 => Err(ClientError::Failed(format!(
            "topic '{name}' already exists"
        ))),
        code => check(code, result.error_message.as_deref(), || {
            format!("creating topic '{name}'")
        }),
    }
}

/// The topics `--topic` matches (a regular expression matching the whole name), or all.
async fn matching_topics(
    client: &mut KafkaClient,
    args: &TopicsArgs,
) -> Result<Vec<TopicInfo>, ClientError> {
    let metadata = client.metadata(None).await?;
    let pattern = match &args.topic {
        Some(t) => Some(
            regex::Regex::new(&format!("^(?:{t})$"))
                .map_err(|e| ClientError::Config(format!("--topic {t:?}: {e}")))?,
        ),
        None => None,
    };
    Ok(topic_infos(&metadata)
        .into_iter()
        .filter(|t| !(args.exclude_internal && t.is_internal))
        .filter(|t| pattern.as_ref().is_none_or(|p| p.is_match(&t.name)))
        .collect())
}

async fn describe(client: &mut KafkaClient, args: &TopicsArgs) -> Result<(), ClientError> {
    let topics = matching_topics(client, args).await?;
    if topics.is_empty() {
        if let Some(t) = &args.topic {
            return Err(ClientError::Failed(format!("topic '{t}' does not exist")));
        }
    }
    let live: BTreeSet<i32> = client.brokers().map(|b| b.id).collect();
    let filtered = args.under_replicated_partitions || args.unavailable_partitions;
    let configs = if filtered {
        Vec::new()
    } else {
        topic_configs(client, &topics).await?
    };
    for (i, topic) in topics.iter().enumerate() {
        if !filtered {
            let replication = topic.partitions.first().map_or(0, |p| p.replicas.len());
            println!(
                "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
                topic.name,
                topic_id_text(&topic.id),
                topic.partitions.len(),
                replication,
                configs.get(i).map(String::as_str).unwrap_or("")
            );
        }
        for p in &topic.partitions {
            let under = p.isr.len() < p.replicas.len();
            let unavailable = p.leader < 0 || !live.contains(&p.leader);
            if (args.under_replicated_partitions && !under)
                || (args.unavailable_partitions && !unavailable)
            {
                continue;
            }
            println!("{}", partition_line(&topic.name, p));
        }
    }
    Ok(())
}

/// Kafka's text form of a topic id: URL-safe base64 without padding.
pub fn topic_id_text(id: &uuid::Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// One partition line of `--describe`, as `kafka-topics` prints it.
pub fn partition_line(topic: &str, p: &PartitionInfo) -> String {
    let list = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let leader = if p.leader < 0 {
        "none".to_string()
    } else {
        p.leader.to_string()
    };
    let mut line = format!(
        "\tTopic: {topic}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}",
        p.index,
        list(&p.replicas),
        list(&p.isr)
    );
    if !p.offline.is_empty() {
        line.push_str(&format!("\tOffline: {}", list(&p.offline)));
    }
    line
}

/// Each topic's own configs as `k=v,k=v` (what `kafka-topics --describe` shows).
async fn topic_configs(
    client: &mut KafkaClient,
    topics: &[TopicInfo],
) -> Result<Vec<String>, ClientError> {
    if topics.is_empty() {
        return Ok(Vec::new());
    }
    let request = DescribeConfigsRequest::default().with_resources(
        topics
            .iter()
            .map(|t| {
                DescribeConfigsResource::default()
                    .with_resource_type(TOPIC_RESOURCE)
                    .with_resource_name(StrBytes::from_string(t.name.clone()))
                    .with_configuration_keys(None)
            })
            .collect(),
    );
    let response = client.send_any(&request).await?;
    let mut out = Vec::new();
    for t in topics {
        let Some(result) = response
            .results
            .iter()
            .find(|r| r.resource_name.as_str() == t.name)
        else {
            out.push(String::new());
            continue;
        };
        check(result.error_code, result.error_message.as_deref(), || {
            format!("describing the configs of topic '{}'", t.name)
        })?;
        let items: Vec<String> = result
            .configs
            .iter()
            .filter(|c| c.config_source == DYNAMIC_TOPIC_CONFIG)
            .map(|c| {
                let value = if c.is_sensitive {
                    "[hidden]".to_string()
                } else {
                    c.value.as_deref().unwrap_or("null").to_string()
                };
                format!("{}={value}", c.name.as_str())
            })
            .collect();
        out.push(items.join(","));
    }
    Ok(out)
}

async fn delete(client: &mut KafkaClient, args: &TopicsArgs) -> Result<(), ClientError> {
    let pattern = required_topic(args)?;
    let topics: Vec<TopicInfo> = matching_topics(client, args)
        .await?
        .into_iter()
        .filter(|t| !t.is_internal)
        .collect();
    if topics.is_empty() {
        return if args.if_exists {
            Ok(())
        } else {
            Err(ClientError::Failed(format!(
                "topic '{pattern}' does not exist"
            )))
        };
    }
    let request = DeleteTopicsRequest::default()
        .with_topic_names(
            topics
                .iter()
                .map(|t| TopicName(StrBytes::from_string(t.name.clone())))
                .collect(),
        )
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    DeleteTopicState::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
                })
                .collect(),
        )
        .with_timeout_ms(30_000);
    let response = client.send_any(&request).await?;
    for r in &response.responses {
        let name = r.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
        topic_outcome(
            r.error_code,
            r.error_message.as_deref(),
            &name,
            args,
            "deleting",
        )?;
    }
    Ok(())
}

/// A per-topic result of DeleteTopics or CreatePartitions: an unknown topic is an error unless
/// --if-exists.
fn topic_outcome(
    code: i16,
    message: Option<&str>,
    name: &str,
    args: &TopicsArgs,
    doing: &str,
) -> Result<(), ClientError> {
    match code {
        3 if args.if_exists => Ok(()),
        3 => Err(ClientError::Failed(format!(
            "topic '{name}' does not exist"
        ))),
        code => check(code, message, || format!("{doing} topic '{name}'")),
    }
}

async fn alter(client: &mut KafkaClient, args: &TopicsArgs) -> Result<(), ClientError> {
    let name = required_topic(args)?;
    if !args.configs.is_empty() {
        return Err(ClientError::Config(
            "--alter changes partitions only; change configs with `kavka configs --alter`".into(),
        ));
    }
    let Some(count) = args.partitions else {
        return Err(ClientError::Config("--alter needs --partitions".into()));
    };
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_count(count)
            .with_assignments(None)])
        .with_timeout_ms(30_000);
    let response = client.send_any(&request).await?;
    for r in &response.results {
        topic_outcome(
            r.error_code,
            r.error_message.as_deref(),
            name,
            args,
            "adding partitions to",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_lines_follow_kafka_topics() {
        let p = PartitionInfo {
            index: 0,
            leader: 3,
            replicas: vec![3, 2, 1],
            isr: vec![3, 2, 1],
            ..Default::default()
        };
        assert_eq!(
            partition_line("temperature", &p),
            "\tTopic: temperature\tPartition: 0\tLeader: 3\tReplicas: 3,2,1\tIsr: 3,2,1"
        );
        let offline = PartitionInfo {
            index: 2,
            leader: -1,
            replicas: vec![1, 2],
            isr: vec![1],
            offline: vec![2],
            ..Default::default()
        };
        assert_eq!(
            partition_line("t", &offline),
            "\tTopic: t\tPartition: 2\tLeader: none\tReplicas: 1,2\tIsr: 1\tOffline: 2"
        );
    }

    #[test]
    fn topic_ids_print_as_kafka_does() {
        let id = uuid::Uuid::from_bytes([0; 16]);
        assert_eq!(topic_id_text(&id), "AAAAAAAAAAAAAAAAAAAAAA");
    }
}
