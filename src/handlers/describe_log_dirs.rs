//! DescribeLogDirs (key 35): the broker's log directories with the size of each hosted partition (what
//! `kafka-log-dirs --describe` prints), and from v4 the directory's total and usable bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::security::acl::AclOperation;
use crate::security::authz::Authz;
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    if !Authz::new(broker, ctx).allows_cluster(AclOperation::Describe) {
        // As Kafka: no directories; v0-v2 have no error field, so they just see none.
        let response = DescribeLogDirsResponse::default();
        return if ctx.api_version >= 3 {
            response.with_error_code(ResponseError::ClusterAuthorizationFailed.code())
        } else {
            response
        };
    }
    let image = broker.image();
    // null = every partition hosted here.
    let wanted: Option<BTreeMap<String, BTreeSet<i32>>> = request.topics.as_ref().map(|topics| {
        let mut m: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        for t in topics {
            m.entry(t.topic.to_string())
                .or_default()
                .extend(t.partitions.iter().copied());
        }
        m
    });
    let mut by_dir: BTreeMap<PathBuf, BTreeMap<String, Vec<(i32, i64)>>> = broker
        .config
        .log_dirs
        .iter()
        .map(|d| (PathBuf::from(d), BTreeMap::new()))
        .collect();
    for topic in image.topics.values() {
        for p in &topic.partitions {
            if let Some(w) = &wanted {
                if !w
                    .get(&topic.name)
                    .is_some_and(|ps| ps.contains(&p.partition))
                {
                    continue;
                }
            }
            let Some(partition) = broker.replicas.get_for(topic, p.partition) else {
                continue;
            };
            let log = partition.log().clone();
            let Some(dir) = log.dir().parent().map(Path::to_path_buf) else {
                continue;
            };
            // Sizes come from the segments' in-memory lengths; no disk I/O.
            by_dir
                .entry(dir)
                .or_default()
                .entry(topic.name.clone())
                .or_default()
                .push((p.partition, log.size_bytes() as i64));
        }
    }
    let mut results = Vec::with_capacity(by_dir.len());
    for (dir, topics) in by_dir {
        let (total, usable) = space(&dir).await.unwrap_or((-1, -1));
        results.push(
            DescribeLogDirsResult::default()
                .with_log_dir(str_bytes(dir.display().to_string()))
                .with_total_bytes(total)
                .with_usable_bytes(usable)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            DescribeLogDirsTopic::default()
                                .with_name(TopicName(str_bytes(name)))
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(index, size)| {
                                            // A leader has no lag; replicas' lag comes with the
                                            // cluster.
                                            DescribeLogDirsPartition::default()
                                                .with_partition_index(index)
                                                .with_partition_size(size)
                                                .with_offset_lag(0)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
        );
    }
    DescribeLogDirsResponse::default().with_results(results)
}

/// Total and usable bytes of the file system holding `dir` (statvfs on a blocking thread).
async fn space(dir: &Path) -> Option<(i64, i64)> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    tokio::task::spawn_blocking(move || {
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
        // SAFETY: `path` is a valid NUL-terminated string and `st` points to writable memory of
        // the right type; statvfs only writes into it.
        let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: statvfs returned 0, so it initialised the struct.
        let st = unsafe { st.assume_init() };
        let frsize = st.f_frsize as i64;
        Some((
            (st.f_blocks as i64).saturating_mul(frsize),
            (st.f_bavail as i64).saturating_mul(frsize),
        ))
    })
    .await
    .ok()
    .flatten()
}
