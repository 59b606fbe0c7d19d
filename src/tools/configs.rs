//! `kavka configs`: Kafka's `kafka-configs` for topics and brokers (DescribeConfigs,
//! IncrementalAlterConfigs) and, through [`super::users`], users' SCRAM credentials.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use super::{key_value, split_config_list, users, AdminConnection};
use crate::client::cluster::topic_infos;
use crate::client::error::check;
use crate::client::{ClientError, KafkaClient};

/// DescribeConfigs / IncrementalAlterConfigs resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Config sources of a DescribeConfigs entry.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EntityType {
    Topics,
    Brokers,
    Users,
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["alter", "describe"])))]
pub struct ConfigsArgs {
    #[command(flatten)]
    pub connection: AdminConnection,
    /// Type of entity: topics, brokers or users (users: SCRAM credentials).
    #[arg(long, value_enum, value_name = "TYPE")]
    pub entity_type: EntityType,
    /// Name of the entity: topic name, broker id or user name (describe: every entity without it).
    #[arg(long, value_name = "NAME", conflicts_with = "entity_default")]
    pub entity_name: Option<String>,
    /// The cluster-wide default entity (brokers).
    #[arg(long)]
    pub entity_default: bool,
    /// List the dynamic configs of the entity (with --all: every config).
    #[arg(long)]
    pub describe: bool,
    /// With --describe: every config, including static and default ones.
    #[arg(long, requires = "describe")]
    pub all: bool,
    /// Change the configs of the entity (--add-config / --delete-config).
    #[arg(long)]
    pub alter: bool,
    /// Configs to set: 'k1=v1,k2=[v1,v2],k3=v3' (square brackets group values with commas).
    #[arg(long = "add-config", value_name = "CONFIGS", requires = "alter")]
    pub add_config: Vec<String>,
    /// Config keys to remove: 'k1,k2'.
    #[arg(long = "delete-config", value_name = "KEYS", requires = "alter")]
    pub delete_config: Vec<String>,
}

/// The entity a command is about.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entity {
    Topic(String),
    Broker(i32),
    BrokerDefault,
}

impl Entity {
    fn resource(&self) -> (i8, String) {
        match self {
            Entity::Topic(name) => (RESOURCE_TOPIC, name.clone()),
            Entity::Broker(id) => (RESOURCE_BROKER, id.to_string()),
            Entity::BrokerDefault => (RESOURCE_BROKER, String::new()),
        }
    }

    fn dynamic_source(&self) -> i8 {
        match self {
            Entity::Topic(_) => DYNAMIC_TOPIC_CONFIG,
            Entity::Broker(_) => DYNAMIC_BROKER_CONFIG,
            Entity::BrokerDefault => DYNAMIC_DEFAULT_BROKER_CONFIG,
        }
    }

    /// `topic X` / `broker 1` as Kafka's messages name it.
    fn describe(&self) -> String {
        match self {
            Entity::Topic(name) => format!("topic {name}"),
            Entity::Broker(id) => format!("broker {id}"),
            Entity::BrokerDefault => "default broker".to_string(),
        }
    }

    fn header(&self, all: bool) -> String {
        match self {
            Entity::BrokerDefault => "Default configs for brokers in the cluster are:".to_string(),
            e => format!(
                "{} configs for {} are:",
                if all { "All" } else { "Dynamic" },
                e.describe()
            ),
        }
    }

    fn completed(&self) -> String {
        match self {
            Entity::BrokerDefault => {
                "Completed updating default config for brokers in the cluster.".to_string()
            }
            e => format!("Completed updating config for {}.", e.describe()),
        }
    }
}

/// Kafka's name of a config source.
pub fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "DYNAMIC_CLIENT_METRICS_CONFIG",
        8 => "DYNAMIC_GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// Kafka's line of one config: `  k=v sensitive=false synonyms={SOURCE:k=v, ...}`.
pub fn config_line(entry: &DescribeConfigsResourceResult) -> String {
    let value = |v: &Option<StrBytes>| v.as_ref().map_or("null".to_string(), |v| v.to_string());
    let synonyms: Vec<String> = entry
        .synonyms
        .iter()
        .map(|s| format!("{}:{}={}", source_name(s.source), s.name, value(&s.value)))
        .collect();
    format!(
        "  {}={} sensitive={} synonyms={{{}}}",
        entry.name,
        value(&entry.value),
        entry.is_sensitive,
        synonyms.join(", ")
    )
}

/// `--add-config` into (key, value) pairs; as Kafka's tool, square brackets are removed from values.
pub fn parse_add_config(items: &[String]) -> Result<Vec<(String, String)>, ClientError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in split_config_list(items) {
        let (k, v) = key_value(&item).map_err(|_| {
            ClientError::Config(format!(
                "Invalid entity config: all configs to be added must be in the format \"key=val\" ({item:?} is not)"
            ))
        })?;
        let v: String = v.chars().filter(|c| *c != '[' && *c != ']').collect();
        out.retain(|(key, _)| key != &k);
        out.push((k, v.trim().to_string()));
    }
    Ok(out)
}

/// `--delete-config` into keys.
pub fn parse_delete_config(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in items.iter().flat_map(|i| i.split(',')) {
        let k = k.trim();
        if !k.is_empty() && !out.iter().any(|o| o == k) {
            out.push(k.to_string());
        }
    }
    out
}

pub async fn run(args: ConfigsArgs) -> Result<(), ClientError> {
    if args.entity_type == EntityType::Users {
        return run_users(args).await;
    }
    if args.entity_default && args.entity_type != EntityType::Brokers {
        return Err(ClientError::Config(
            "--entity-default is only available with --entity-type brokers or users".into(),
        ));
    }
    let named = match (&args.entity_name, args.entity_default) {
        (Some(name), _) => Some(entity(args.entity_type, name)?),
        (None, true) => Some(Entity::BrokerDefault),
        (None, false) => None,
    };
    if args.alter {
        let entity = named.ok_or_else(|| {
            ClientError::Config("--alter needs --entity-name (or --entity-default)".into())
        })?;
        let add = parse_add_config(&args.add_config)?;
        let delete = parse_delete_config(&args.delete_config);
        if add.is_empty() && delete.is_empty() {
            return Err(ClientError::Config(
                "--alter needs --add-config or --delete-config".into(),
            ));
        }
        let mut client = args.connection.connect("kavka-configs").await?;
        check_exists(&mut client, &entity).await?;
        alter(&mut client, &entity, &add, &delete).await?;
        println!("{}", entity.completed());
        return Ok(());
    }
    let mut client = args.connection.connect("kavka-configs").await?;
    let entities = match named {
        Some(entity) => {
            check_exists(&mut client, &entity).await?;
            vec![entity]
        }
        None => match args.entity_type {
            EntityType::Topics => {
                let metadata = client.metadata(None).await?;
                topic_infos(&metadata)
                    .into_iter()
                    .map(|t| Entity::Topic(t.name))
                    .collect()
            }
            _ => {
                let mut all: Vec<Entity> = client.brokers().map(|b| Entity::Broker(b.id)).collect();
                all.push(Entity::BrokerDefault);
                all
            }
        },
    };
    for entity in entities {
        let configs = describe(&mut client, &entity, true, args.all).await?;
        println!("{}", entity.header(args.all));
        for c in &configs {
            println!("{}", config_line(c));
        }
    }
    Ok(())
}

fn entity(entity_type: EntityType, name: &str) -> Result<Entity, ClientError> {
    match entity_type {
        EntityType::Topics => {
            if name.is_empty() {
                return Err(ClientError::Config(
                    "--entity-name must not be empty".into(),
                ));
            }
            Ok(Entity::Topic(name.to_string()))
        }
        _ => name.trim().parse().map(Entity::Broker).map_err(|_| {
            ClientError::Config(format!(
                "The entity name for brokers must be a valid integer broker id, found: {name}"
            ))
        }),
    }
}

/// `topic 'x' does not exist` / `broker 7 is not in the cluster's metadata`.
async fn check_exists(client: &mut KafkaClient, entity: &Entity) -> Result<(), ClientError> {
    match entity {
        Entity::Topic(name) => client.topic(name).await.map(|_| ()),
        Entity::Broker(id) => {
            if client.brokers().any(|b| b.id == *id) {
                Ok(())
            } else {
                Err(ClientError::Failed(format!("broker '{id}' does not exist")))
            }
        }
        Entity::BrokerDefault => Ok(()),
    }
}

/// The entity's configs, sorted by name: the dynamic ones (of the entity's own source), or all.
async fn describe(
    client: &mut KafkaClient,
    entity: &Entity,
    synonyms: bool,
    all: bool,
) -> Result<Vec<DescribeConfigsResourceResult>, ClientError> {
    let (resource_type, resource_name) = entity.resource();
    let request = DescribeConfigsRequest::default()
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(resource_name))
            .with_configuration_keys(None)])
        .with_include_synonyms(synonyms);
    let response = match entity {
        Entity::Broker(id) => client.send_to(*id, &request).await?,
        _ => client.send_any(&request).await?,
    };
    let result = response
        .results
        .into_iter()
        .next()
        .ok_or_else(|| ClientError::Protocol("DescribeConfigs answered no resource".into()))?;
    if result.error_code == 3 {
        if let Entity::Topic(name) = entity {
            return Err(ClientError::Failed(format!(
                "topic '{name}' does not exist"
            )));
        }
    }
    check(result.error_code, result.error_message.as_deref(), || {
        format!("describing the configs of {}", entity.describe())
    })?;
    let source = entity.dynamic_source();
    let mut configs: Vec<DescribeConfigsResourceResult> = result
        .configs
        .into_iter()
        .filter(|c| all || c.config_source == source)
        .collect();
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(configs)
}

async fn alter(
    client: &mut KafkaClient,
    entity: &Entity,
    add: &[(String, String)],
    delete: &[String],
) -> Result<(), ClientError> {
    if !delete.is_empty() {
        let current = describe(client, entity, false, false).await?;
        let invalid: Vec<&str> = delete
            .iter()
            .filter(|k| !current.iter().any(|c| c.name.as_str() == k.as_str()))
            .map(String::as_str)
            .collect();
        if !invalid.is_empty() {
            return Err(ClientError::Config(format!(
                "Invalid config(s): {}",
                invalid.join(",")
            )));
        }
    }
    let configs = delete
        .iter()
        .map(|k| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(OP_DELETE)
                .with_value(None)
        })
        .chain(add.iter().map(|(k, v)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(OP_SET)
                .with_value(Some(StrBytes::from_string(v.clone())))
        }))
        .collect();
    let (resource_type, resource_name) = entity.resource();
    let request = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(resource_name))
            .with_configs(configs)])
        .with_validate_only(false);
    let response = match entity {
        Entity::Broker(id) => client.send_to(*id, &request).await?,
        _ => client.send_any(&request).await?,
    };
    for r in &response.responses {
        check(r.error_code, r.error_message.as_deref(), || {
            format!("updating the configs of {}", entity.describe())
        })?;
    }
    Ok(())
}

/// `--entity-type users`: SCRAM credentials, as `kavka users`.
async fn run_users(args: ConfigsArgs) -> Result<(), ClientError> {
    if args.entity_default {
        return Err(ClientError::Config(
            "The use of --entity-default is not allowed with User SCRAM Credentials using --bootstrap-server.".into(),
        ));
    }
    if args.all {
        return Err(ClientError::Config(
            "--all is not available with --entity-type users".into(),
        ));
    }
    users::run(users::UsersArgs {
        connection: args.connection,
        alter: args.alter,
        describe: args.describe,
        entity_name: args.entity_name,
        add_config: args.add_config,
        delete_config: args.delete_config,
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_configs_response::DescribeConfigsSynonym;

    #[test]
    fn config_lines_are_kafkas() {
        let entry = DescribeConfigsResourceResult::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(Some(StrBytes::from_static_str("3600000")))
            .with_config_source(DYNAMIC_TOPIC_CONFIG)
            .with_synonyms(vec![
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_value(Some(StrBytes::from_static_str("3600000")))
                    .with_source(DYNAMIC_TOPIC_CONFIG),
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_static_str("log.retention.hours"))
                    .with_value(Some(StrBytes::from_static_str("168")))
                    .with_source(5),
            ]);
        assert_eq!(
            config_line(&entry),
            "  retention.ms=3600000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=3600000, \
             DEFAULT_CONFIG:log.retention.hours=168}"
        );
        let secret = DescribeConfigsResourceResult::default()
            .with_name(StrBytes::from_static_str("ssl.key.password"))
            .with_value(None)
            .with_is_sensitive(true);
        assert_eq!(
            config_line(&secret),
            "  ssl.key.password=null sensitive=true synonyms={}"
        );
    }

    #[test]
    fn headers_and_completions() {
        let t = Entity::Topic("t".into());
        assert_eq!(t.header(false), "Dynamic configs for topic t are:");
        assert_eq!(t.header(true), "All configs for topic t are:");
        assert_eq!(t.completed(), "Completed updating config for topic t.");
        assert_eq!(
            Entity::Broker(1).header(false),
            "Dynamic configs for broker 1 are:"
        );
        assert_eq!(
            Entity::BrokerDefault.header(false),
            "Default configs for brokers in the cluster are:"
        );
        assert_eq!(
            Entity::BrokerDefault.completed(),
            "Completed updating default config for brokers in the cluster."
        );
        assert!(entity(EntityType::Brokers, "one").is_err());
        assert_eq!(entity(EntityType::Brokers, "2").unwrap(), Entity::Broker(2));
    }

    #[test]
    fn add_and_delete_config_parse() {
        let items = vec![
            "retention.ms=7200000, max.message.bytes = 200000".to_string(),
            "follower.replication.throttled.replicas=[0:1,1:2]".to_string(),
        ];
        assert_eq!(
            parse_add_config(&items).unwrap(),
            vec![
                ("retention.ms".to_string(), "7200000".to_string()),
                ("max.message.bytes".to_string(), "200000".to_string()),
                (
                    "follower.replication.throttled.replicas".to_string(),
                    "0:1,1:2".to_string()
                ),
            ]
        );
        assert!(parse_add_config(&["novalue".to_string()]).is_err());
        assert_eq!(
            parse_delete_config(&["a,b".to_string(), "b".to_string(), " c ".to_string()]),
            vec!["a", "b", "c"]
        );
    }
}
