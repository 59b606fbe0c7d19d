//! A producer for one topic: records are batched per partition (`batch.size`, `linger.ms`), each
//! partition has at most one Produce request in flight (so its records stay in order without
//! idempotence), and requests to different partitions run concurrently, up to
//! `max.in.flight.requests.per.connection` per broker. Retriable errors refresh the metadata and resend
//! until `delivery.timeout.ms`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use tokio::sync::{oneshot, Notify};

use super::cluster::ClientSettings;
use super::connection::BrokerConnection;
use super::partitioner::partition_for_key;
use super::records::{encode_batch, parse_compression, OutgoingRecord};
use super::{ClientError, ClientProperties, KafkaClient};

/// Where a record was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    pub partition: i32,
    /// -1 with acks=0.
    pub offset: i64,
}

pub type Delivery = oneshot::Receiver<Result<RecordMetadata, ClientError>>;

/// The Java producer's settings this producer honours (same names and defaults).
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    pub acks: i16,
    pub compression: Compression,
    pub linger: Duration,
    pub batch_size: usize,
    pub max_in_flight: usize,
    pub delivery_timeout: Duration,
    pub retry_backoff: Duration,
    pub max_block: Duration,
}

impl ProducerConfig {
    pub fn from_properties(p: &ClientProperties) -> Result<ProducerConfig, ClientError> {
        let acks = match p.get("acks").map(str::trim).unwrap_or("all") {
            "all" | "-1" => -1,
            "0" => 0,
            "1" => 1,
            other => {
                return Err(ClientError::Config(format!(
                    "acks: {other:?} is not one of all, -1, 0, 1"
                )))
            }
        };
        let positive = |key: &str, default: i64| -> Result<usize, ClientError> {
            let v = p.get_i64(key, default)?;
            usize::try_from(v)
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| ClientError::Config(format!("{key}: {v} must be positive")))
        };
        Ok(ProducerConfig {
            acks,
            compression: parse_compression(p.get("compression.type").unwrap_or("none"))?,
            linger: p.get_ms("linger.ms", Duration::from_millis(5))?,
            batch_size: positive("batch.size", 16384)?,
            max_in_flight: positive("max.in.flight.requests.per.connection", 5)?,
            delivery_timeout: p.get_ms("delivery.timeout.ms", Duration::from_secs(120))?,
            retry_backoff: p.get_ms("retry.backoff.ms", Duration::from_millis(100))?,
            max_block: p.get_ms("max.block.ms", Duration::from_secs(60))?,
        })
    }
}

struct Pending {
    record: OutgoingRecord,
    size: usize,
    enqueued: Instant,
    done: oneshot::Sender<Result<RecordMetadata, ClientError>>,
}

#[derive(Default)]
struct PartitionQueue {
    leader: i32,
    records: VecDeque<Pending>,
    bytes: usize,
    in_flight: bool,
}

struct State {
    partitions: Vec<PartitionQueue>,
    /// Broker id to address, from the last metadata.
    addresses: BTreeMap<i32, String>,
    /// Requests in flight per broker.
    in_flight: BTreeMap<i32, usize>,
    idle: BTreeMap<i32, Vec<BrokerConnection>>,
    flush: bool,
    closing: bool,
    metadata_stale: bool,
    round_robin: usize,
}

struct Shared {
    topic: String,
    /// Produce v13+ names the topic by id.
    topic_id: uuid::Uuid,
    config: ProducerConfig,
    settings: ClientSettings,
    produce_version: i16,
    state: Mutex<State>,
    wake: Notify,
    idle: Notify,
}

pub struct Producer {
    shared: Arc<Shared>,
    sender: tokio::task::JoinHandle<()>,
}

impl Producer {
    /// A producer of `topic`, which must exist (or be auto-created by the cluster within
    /// `max.block.ms`).
    pub async fn new(
        mut client: KafkaClient,
        topic: &str,
        config: ProducerConfig,
    ) -> Result<Producer, ClientError> {
        let produce_version = client
            .any_connection()
            .version_for::<ProduceRequest>()
            .await?;
        let (topic_id, leaders) = topic_leaders(&mut client, topic, config.max_block).await?;
        let addresses = client.brokers().map(|b| (b.id, b.address())).collect();
        let state = State {
            partitions: leaders
                .into_iter()
                .map(|leader| PartitionQueue {
                    leader,
                    ..Default::default()
                })
                .collect(),
            addresses,
            in_flight: BTreeMap::new(),
            idle: BTreeMap::new(),
            flush: false,
            closing: false,
            metadata_stale: false,
            round_robin: 0,
        };
        let shared = Arc::new(Shared {
            topic: topic.to_string(),
            topic_id,
            settings: client.settings().clone(),
            config,
            produce_version,
            state: Mutex::new(state),
            wake: Notify::new(),
            idle: Notify::new(),
        });
        let sender = tokio::spawn(run_sender(shared.clone(), client));
        Ok(Producer { shared, sender })
    }

    pub fn partition_count(&self) -> i32 {
        self.shared.lock().partitions.len() as i32
    }

    /// Queues `record` for `partition` (else the key's partition, else round robin) and returns where
    /// it will be acknowledged.
    pub fn send(
        &self,
        record: OutgoingRecord,
        partition: Option<i32>,
    ) -> Result<Delivery, ClientError> {
        let (tx, rx) = oneshot::channel();
        let mut state = self.shared.lock();
        let count = state.partitions.len() as i32;
        let partition = match (partition, &record.key) {
            (Some(p), _) if (0..count).contains(&p) => p,
            (Some(p), _) => {
                return Err(ClientError::Failed(format!(
                    "partition {p} of topic '{}' does not exist (it has {count})",
                    self.shared.topic
                )))
            }
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => {
                // Whole batches round robin, as the Java client's sticky partitioner does.
                let current = state.round_robin % count as usize;
                if state.partitions[current].bytes >= self.shared.config.batch_size {
                    state.round_robin += 1;
                }
                (state.round_robin % count as usize) as i32
            }
        };
        let size = record.size_estimate();
        let queue = &mut state.partitions[partition as usize];
        queue.bytes += size;
        queue.records.push_back(Pending {
            record,
            size,
            enqueued: Instant::now(),
            done: tx,
        });
        let ready = queue.bytes >= self.shared.config.batch_size || queue.records.len() == 1;
        drop(state);
        if ready {
            self.shared.wake.notify_one();
        }
        Ok(rx)
    }

    /// Sends everything queued now and waits until it is acknowledged or failed.
    pub async fn flush(&self) {
        loop {
            let idle = self.shared.idle.notified();
            {
                let mut state = self.shared.lock();
                if state
                    .partitions
                    .iter()
                    .all(|p| p.records.is_empty() && !p.in_flight)
                {
                    state.flush = false;
                    return;
                }
                state.flush = true;
            }
            self.shared.wake.notify_one();
            idle.await;
        }
    }

    /// Flushes, then stops the sender.
    pub async fn close(self) {
        self.flush().await;
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        let _ = self.sender.await;
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The leader of each partition of `topic`, retried while the topic is being created or has no leader.
async fn topic_leaders(
    client: &mut KafkaClient,
    topic: &str,
    max_block: Duration,
) -> Result<(uuid::Uuid, Vec<i32>), ClientError> {
    let deadline = Instant::now() + max_block.min(Duration::from_secs(5));
    loop {
        let metadata = client
            .metadata_with(Some(vec![topic.to_string()]), true)
            .await?;
        let t = metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic));
        let topic_id = t.map(|t| t.topic_id).unwrap_or_default();
        let (code, mut partitions) = match t {
            Some(t) => (
                t.error_code,
                t.partitions
                    .iter()
                    .map(|p| (p.partition_index, p.leader_id.0))
                    .collect::<Vec<_>>(),
            ),
            None => (3, Vec::new()),
        };
        partitions.sort();
        if code == 0 && !partitions.is_empty() {
            return Ok((
                topic_id,
                partitions.into_iter().map(|(_, leader)| leader).collect(),
            ));
        }
        // UNKNOWN_TOPIC_OR_PARTITION (auto-creation may be under way) and LEADER_NOT_AVAILABLE pass.
        if (code == 3 || code == 5 || code == 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        if code == 3 {
            return Err(ClientError::Failed(format!(
                "topic '{topic}' does not exist"
            )));
        }
        return super::error::check(code, None, || format!("metadata of topic '{topic}'"))
            .map(|_| (topic_id, Vec::new()));
    }
}

/// One Produce request's worth for one partition.
struct Batch {
    partition: i32,
    records: Vec<Pending>,
}

async fn run_sender(shared: Arc<Shared>, mut client: KafkaClient) {
    loop {
        if std::mem::take(&mut shared.lock().metadata_stale) {
            tokio::time::sleep(shared.config.retry_backoff).await;
            refresh_leaders(&shared, &mut client).await;
        }
        let (requests, next_deadline, done) = take_ready(&shared);
        for (leader, batches) in requests {
            let shared = shared.clone();
            tokio::spawn(async move { send_request(shared, leader, batches).await });
        }
        if done {
            return;
        }
        let wake = shared.wake.notified();
        match next_deadline {
            Some(at) => {
                let _ = tokio::time::timeout_at(at.into(), wake).await;
            }
            None => wake.await,
        }
    }
}

/// Batches that may be sent now, grouped per leader; when the next lingering batch is due; and whether
/// the producer is closed with nothing left.
#[allow(clippy::type_complexity)]
fn take_ready(shared: &Shared) -> (Vec<(i32, Vec<Batch>)>, Option<Instant>, bool) {
    let config = &shared.config;
    let mut state = shared.lock();
    let now = Instant::now();
    let mut next: Option<Instant> = None;
    let mut per_leader: BTreeMap<i32, Vec<Batch>> = BTreeMap::new();
    let flush = state.flush || state.closing;
    let State {
        partitions,
        in_flight,
        ..
    } = &mut *state;
    for (index, queue) in partitions.iter_mut().enumerate() {
        let Some(first) = queue.records.front() else {
            continue;
        };
        if queue.in_flight {
            continue;
        }
        let due = first.enqueued + config.linger;
        if !(flush || queue.bytes >= config.batch_size || due <= now) {
            next = Some(next.map_or(due, |n| n.min(due)));
            continue;
        }
        let leader = queue.leader;
        let busy = in_flight.get(&leader).copied().unwrap_or(0)
            + usize::from(per_leader.contains_key(&leader));
        if leader < 0 || busy >= config.max_in_flight {
            continue;
        }
        let mut records = Vec::new();
        let mut bytes = 0;
        while let Some(p) = queue.records.front() {
            if !records.is_empty() && bytes + p.size > config.batch_size {
                break;
            }
            bytes += p.size;
            records.push(queue.records.pop_front().expect("front exists"));
        }
        queue.bytes -= bytes;
        queue.in_flight = true;
        per_leader.entry(leader).or_default().push(Batch {
            partition: index as i32,
            records,
        });
    }
    for leader in per_leader.keys() {
        *in_flight.entry(*leader).or_default() += 1;
    }
    let idle = partitions
        .iter()
        .all(|p| p.records.is_empty() && !p.in_flight);
    if idle {
        shared.idle.notify_waiters();
    }
    let done = state.closing && idle;
    if partitions_waiting_on_leaders(&state) {
        next = Some(now + config.retry_backoff);
    }
    (per_leader.into_iter().collect(), next, done)
}

fn partitions_waiting_on_leaders(state: &State) -> bool {
    state
        .partitions
        .iter()
        .any(|p| p.leader < 0 && !p.records.is_empty())
}

async fn refresh_leaders(shared: &Shared, client: &mut KafkaClient) {
    match topic_leaders(client, &shared.topic, Duration::from_millis(0)).await {
        Ok((_, leaders)) => {
            let addresses: BTreeMap<i32, String> =
                client.brokers().map(|b| (b.id, b.address())).collect();
            let mut state = shared.lock();
            for (queue, leader) in state.partitions.iter_mut().zip(leaders) {
                queue.leader = leader;
            }
            state.addresses = addresses;
        }
        Err(e) => {
            tracing::debug!(error = %e, "metadata refresh failed; retrying");
            shared.lock().metadata_stale = true;
        }
    }
    shared.wake.notify_one();
}

async fn send_request(shared: Arc<Shared>, leader: i32, batches: Vec<Batch>) {
    let (connection, address) = {
        let mut state = shared.lock();
        let address = state.addresses.get(&leader).cloned();
        (state.idle.get_mut(&leader).and_then(Vec::pop), address)
    };
    let mut connection = match (connection, address) {
        (Some(c), _) => c,
        (None, Some(address)) => shared.settings.connection(&address),
        (None, None) => {
            let e = ClientError::Failed(format!("broker {leader} is not in the metadata"));
            finish(&shared, leader, None, batches, Err(e));
            return;
        }
    };
    let mut topic = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_string(shared.topic.clone())))
        .with_topic_id(shared.topic_id);
    for batch in &batches {
        let records: Vec<OutgoingRecord> = batch.records.iter().map(|p| p.record.clone()).collect();
        match encode_batch(&records, shared.config.compression) {
            Ok(bytes) => topic.partition_data.push(
                PartitionProduceData::default()
                    .with_index(batch.partition)
                    .with_records(Some(bytes)),
            ),
            Err(e) => {
                finish(&shared, leader, Some(connection), batches, Err(e));
                return;
            }
        }
    }
    let timeout_ms = shared
        .settings
        .request_timeout
        .as_millis()
        .min(i32::MAX as u128) as i32;
    let request = ProduceRequest::default()
        .with_acks(shared.config.acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![topic]);
    let outcome = if shared.config.acks == 0 {
        // No response comes for acks=0: the request is written and the records count as sent.
        connection
            .send_oneway(&request, shared.produce_version)
            .await
            .map(|_| None)
    } else {
        connection
            .send_at(&request, shared.produce_version)
            .await
            .map(Some)
    };
    finish(&shared, leader, Some(connection), batches, outcome);
}

/// Completes (or requeues) each batch of a finished request.
fn finish(
    shared: &Shared,
    leader: i32,
    connection: Option<BrokerConnection>,
    batches: Vec<Batch>,
    outcome: Result<Option<kafka_protocol::messages::ProduceResponse>, ClientError>,
) {
    let mut state = shared.lock();
    if let Some(n) = state.in_flight.get_mut(&leader) {
        *n = n.saturating_sub(1);
    }
    let connection_ok = outcome.is_ok();
    if let (Some(c), true) = (connection, connection_ok) {
        state.idle.entry(leader).or_default().push(c);
    }
    for batch in batches {
        let index = batch.partition as usize;
        let result: Result<i64, (ClientError, bool)> = match &outcome {
            Err(e) => Err((ClientError::Failed(e.to_string()), true)),
            Ok(None) => Ok(-1),
            Ok(Some(response)) => partition_result(response, batch.partition),
        };
        match result {
            Ok(base) => {
                for (i, p) in batch.records.into_iter().enumerate() {
                    let offset = if base < 0 { -1 } else { base + i as i64 };
                    let _ = p.done.send(Ok(RecordMetadata {
                        partition: batch.partition,
                        offset,
                    }));
                }
            }
            Err((error, retriable)) => {
                let expired = batch
                    .records
                    .first()
                    .is_some_and(|p| p.enqueued.elapsed() >= shared.config.delivery_timeout);
                if retriable && !expired {
                    state.metadata_stale = true;
                    let queue = &mut state.partitions[index];
                    for p in batch.records.into_iter().rev() {
                        queue.bytes += p.size;
                        queue.records.push_front(p);
                    }
                } else {
                    let message = error.to_string();
                    for p in batch.records {
                        let _ = p.done.send(Err(ClientError::Failed(message.clone())));
                    }
                }
            }
        }
        state.partitions[index].in_flight = false;
    }
    drop(state);
    shared.wake.notify_one();
}

/// The base offset of `partition` in a Produce response, or its error and whether to retry.
fn partition_result(
    response: &kafka_protocol::messages::ProduceResponse,
    partition: i32,
) -> Result<i64, (ClientError, bool)> {
    let found = response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == partition);
    let Some(p) = found else {
        return Err((
            ClientError::Protocol(format!("the Produce response has no partition {partition}")),
            true,
        ));
    };
    if p.error_code == 0 {
        return Ok(p.base_offset);
    }
    let retriable = kafka_protocol::ResponseError::try_from_code(p.error_code)
        .is_some_and(|e| e.is_retriable());
    Err((
        ClientError::kafka(
            format!("producing to partition {partition}"),
            p.error_code,
            p.error_message.as_deref(),
        ),
        retriable,
    ))
}
