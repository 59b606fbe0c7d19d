//! The cluster as the client sees it: bootstrap, the brokers from Metadata, one connection per node, and
//! routing to a node, to a group's coordinator or to any broker.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use uuid::Uuid;

use super::connection::BrokerConnection;
use super::{ClientError, ClientProperties};
use crate::network::PeerSecurity;

/// How long bootstrap tries before it gives up, unless `request.timeout.ms` is shorter.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection settings shared by every connection of one client.
#[derive(Clone)]
pub struct ClientSettings {
    pub security: PeerSecurity,
    pub client_id: String,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl ClientSettings {
    pub fn from_properties(
        properties: &ClientProperties,
        default_client_id: &str,
    ) -> Result<ClientSettings, ClientError> {
        let request_timeout = properties.request_timeout()?;
        Ok(ClientSettings {
            security: properties.security()?,
            client_id: properties.client_id(default_client_id),
            request_timeout,
            connect_timeout: request_timeout.min(DEFAULT_CONNECT_TIMEOUT),
        })
    }

    pub fn connection(&self, address: &str) -> BrokerConnection {
        BrokerConnection::new(
            address,
            self.security.clone(),
            &self.client_id,
            self.request_timeout,
        )
    }
}

/// A broker as Metadata lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerAddress {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerAddress {
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

pub struct KafkaClient {
    settings: ClientSettings,
    /// The connection bootstrap succeeded on; requests for "any broker" go there.
    bootstrap: BrokerConnection,
    bootstrap_addresses: Vec<String>,
    brokers: BTreeMap<i32, BrokerAddress>,
    connections: BTreeMap<i32, BrokerConnection>,
    pub cluster_id: Option<String>,
    pub controller_id: i32,
}

impl KafkaClient {
    /// Connects to the first of `bootstrap_servers` (comma separated `host:port`) that answers ApiVersions
    /// and reads the broker list. Fails with every address's reason when none answers within the connect
    /// timeout.
    pub async fn connect(
        bootstrap_servers: &str,
        settings: ClientSettings,
    ) -> Result<KafkaClient, ClientError> {
        let addresses: Vec<&str> = bootstrap_servers
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        if addresses.is_empty() {
            return Err(ClientError::Config(
                "--bootstrap-server needs at least one HOST:PORT".into(),
            ));
        }
        for address in &addresses {
            if address
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(ClientError::Config(format!(
                    "--bootstrap-server: {address:?} is not HOST:PORT"
                )));
            }
        }
        let mut failures = Vec::new();
        let deadline = tokio::time::Instant::now() + settings.connect_timeout;
        // Each address is tried in turn until the deadline: a cluster that is still starting answers
        // after a few refused attempts.
        loop {
            for address in &addresses {
                let mut connection = settings.connection(address);
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match tokio::time::timeout(left, connection.ensure_ready()).await {
                    Ok(Ok(())) => {
                        let mut client = KafkaClient {
                            settings: settings.clone(),
                            bootstrap_addresses: addresses.iter().map(|a| a.to_string()).collect(),
                            bootstrap: connection,
                            brokers: BTreeMap::new(),
                            connections: BTreeMap::new(),
                            cluster_id: None,
                            controller_id: -1,
                        };
                        client.metadata(Some(Vec::new())).await?;
                        return Ok(client);
                    }
                    Ok(Err(e @ ClientError::Io { .. })) => failures.push(e.to_string()),
                    Ok(Err(e)) => return Err(e),
                    Err(_) => failures.push(format!("{address}: no answer")),
                }
            }
            if tokio::time::Instant::now() + Duration::from_millis(500) >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        failures.dedup();
        let last: Vec<String> = failures
            .iter()
            .rev()
            .take(addresses.len())
            .cloned()
            .collect();
        Err(ClientError::Unreachable(format!(
            "{} within {:?}",
            last.join("; "),
            settings.connect_timeout
        )))
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// The brokers of the last Metadata response.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerAddress> {
        self.brokers.values()
    }

    /// Sends `request` to any broker: the one bootstrap reached, or another one when it is gone.
    pub async fn send_any<R>(&mut self, request: &R) -> Result<R::Response, ClientError>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        match self.bootstrap.send(request).await {
            Err(ClientError::Io { .. }) => {
                self.reconnect_any().await?;
                self.bootstrap.send(request).await
            }
            other => other,
        }
    }

    /// [`Self::send_any`] at `version`.
    async fn send_any_at<R>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ClientError>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        match self.bootstrap.send_at(request, version).await {
            Err(ClientError::Io { .. }) => {
                self.reconnect_any().await?;
                self.bootstrap.send_at(request, version).await
            }
            other => other,
        }
    }

    /// Replaces the "any broker" connection with one to another broker that answers: the brokers of
    /// the last Metadata, then the bootstrap addresses.
    async fn reconnect_any(&mut self) -> Result<(), ClientError> {
        let current = self.bootstrap.address().to_string();
        let candidates: Vec<String> = self
            .brokers
            .values()
            .map(BrokerAddress::address)
            .chain(self.bootstrap_addresses.iter().cloned())
            .filter(|a| *a != current)
            .collect();
        let mut failures = Vec::new();
        for address in candidates {
            let mut connection = self.settings.connection(&address);
            match connection.ensure_ready().await {
                Ok(()) => {
                    self.bootstrap = connection;
                    return Ok(());
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(ClientError::Unreachable(format!(
            "{current} failed and no other broker answers: {}",
            failures.join("; ")
        )))
    }

    /// The bootstrap connection, for requests that depend on the negotiated version.
    pub fn any_connection(&mut self) -> &mut BrokerConnection {
        &mut self.bootstrap
    }

    /// The connection to broker `node`.
    pub fn node(&mut self, node: i32) -> Result<&mut BrokerConnection, ClientError> {
        if !self.connections.contains_key(&node) {
            let broker = self.brokers.get(&node).ok_or_else(|| {
                ClientError::Failed(format!("broker {node} is not in the cluster's metadata"))
            })?;
            let connection = self.settings.connection(&broker.address());
            self.connections.insert(node, connection);
        }
        Ok(self.connections.get_mut(&node).expect("inserted above"))
    }

    /// Sends `request` to broker `node`.
    pub async fn send_to<R>(&mut self, node: i32, request: &R) -> Result<R::Response, ClientError>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        self.node(node)?.send(request).await
    }

    /// Metadata for `topics` (`None`: every topic; `Some(empty)`: brokers only). Refreshes the broker
    /// list, the cluster id and the controller id.
    pub async fn metadata(
        &mut self,
        topics: Option<Vec<String>>,
    ) -> Result<MetadataResponse, ClientError> {
        self.metadata_with(topics, false).await
    }

    /// [`Self::metadata`], asking the broker to create missing topics when `auto_create` (what a
    /// producer does; the broker decides by its `auto.create.topics.enable`).
    pub async fn metadata_with(
        &mut self,
        topics: Option<Vec<String>>,
        auto_create: bool,
    ) -> Result<MetadataResponse, ClientError> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .into_iter()
                    .map(|n| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(n))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(auto_create);
        let response = self.send_any(&request).await?;
        self.brokers = response
            .brokers
            .iter()
            .map(|b| {
                (
                    b.node_id.0,
                    BrokerAddress {
                        id: b.node_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.as_ref().map(|r| r.to_string()),
                    },
                )
            })
            .collect();
        self.connections.retain(|id, c| {
            self.brokers.get(id).map(|b| b.address()).as_deref() == Some(c.address())
        });
        self.cluster_id = response.cluster_id.as_ref().map(|c| c.to_string());
        self.controller_id = response.controller_id.0;
        Ok(response)
    }

    /// Metadata of one topic; `topic 'x' does not exist` when the cluster does not know it.
    pub async fn topic(&mut self, name: &str) -> Result<TopicInfo, ClientError> {
        let response = self.metadata(Some(vec![name.to_string()])).await?;
        let entry = response
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(name));
        match entry.map(|t| t.error_code) {
            None | Some(3) => Err(ClientError::Failed(format!(
                "topic '{name}' does not exist"
            ))),
            Some(0) => topic_infos(&response)
                .into_iter()
                .find(|t| t.name == name)
                .ok_or_else(|| ClientError::Failed(format!("topic '{name}' does not exist"))),
            Some(code) => Err(ClientError::kafka(
                format!("metadata of topic '{name}'"),
                code,
                None,
            )),
        }
    }

    /// The coordinator of group `group` (key type 0) or transactional id (1), retried while the
    /// coordinator is loading or not yet known.
    pub async fn find_coordinator(&mut self, key_type: i8, key: &str) -> Result<i32, ClientError> {
        let version = self
            .bootstrap
            .version_for::<FindCoordinatorRequest>()
            .await?;
        let request = if version >= 4 {
            FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_coordinator_keys(vec![StrBytes::from_string(key.to_string())])
        } else {
            FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_key(StrBytes::from_string(key.to_string()))
        };
        let deadline = tokio::time::Instant::now() + self.settings.request_timeout;
        loop {
            let response = self.send_any_at(&request, version).await?;
            let (code, message, node) = match response.coordinators.first() {
                Some(c) if version >= 4 => (c.error_code, c.error_message.clone(), c.node_id),
                _ => (
                    response.error_code,
                    response.error_message.clone(),
                    response.node_id,
                ),
            };
            // COORDINATOR_NOT_AVAILABLE and COORDINATOR_LOAD_IN_PROGRESS pass.
            if (code == 15 || code == 14) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            super::error::check(code, message.as_deref(), || {
                format!("finding the coordinator of {key:?}")
            })?;
            if !self.brokers.contains_key(&node.0) {
                self.metadata(Some(Vec::new())).await?;
            }
            return Ok(node.0);
        }
    }
}

/// A partition as Metadata describes it.
#[derive(Clone, Debug, Default)]
pub struct PartitionInfo {
    pub index: i32,
    /// -1 when the partition has no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
    pub error_code: i16,
}

/// A topic as Metadata describes it, partitions in index order.
#[derive(Clone, Debug, Default)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub is_internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

/// The topics of a Metadata response (those without an error), sorted by name.
pub fn topic_infos(response: &MetadataResponse) -> Vec<TopicInfo> {
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
    let mut topics: Vec<TopicInfo> = response
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| {
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    index: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: ids(&p.replica_nodes),
                    isr: ids(&p.isr_nodes),
                    offline: ids(&p.offline_replicas),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.index);
            Some(TopicInfo {
                name: t.name.as_ref()?.to_string(),
                id: t.topic_id,
                is_internal: t.is_internal,
                partitions,
            })
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    topics
}
