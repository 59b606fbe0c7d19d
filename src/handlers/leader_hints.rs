//! KIP-951 leader hints: a Produce (v10+) or Fetch (v16+) partition answered NOT_LEADER_OR_FOLLOWER or
//! FENCED_LEADER_EPOCH also names the partition's current leader and epoch, and the response carries
//! that leader's endpoint, so the client moves to it without a full metadata refresh.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;

use crate::metadata::{MetadataImage, TopicImage};

/// Error codes that come with a leader hint.
pub fn wants_hint(error_code: i16) -> bool {
    error_code == ResponseError::NotLeaderOrFollower.code()
        || error_code == ResponseError::FencedLeaderEpoch.code()
}

/// The current leader and leader epoch of a partition, when it has a live leader.
pub fn current_leader(
    image: &MetadataImage,
    topic: &TopicImage,
    partition: i32,
) -> Option<(i32, i32)> {
    let p = topic.partitions.get(usize::try_from(partition).ok()?)?;
    image
        .live_broker(p.leader)
        .map(|_| (p.leader, p.leader_epoch))
}

/// The endpoints (node id, host, port, rack) of `leaders` on the client's listener.
pub fn endpoints(
    image: &MetadataImage,
    leaders: &BTreeSet<i32>,
    listener: &str,
) -> Vec<(i32, String, i32, Option<String>)> {
    leaders
        .iter()
        .filter_map(|id| {
            let broker = image.live_broker(*id)?;
            let endpoint = broker.endpoint(listener)?;
            Some((
                *id,
                endpoint.host.clone(),
                i32::from(endpoint.port),
                broker.rack.clone(),
            ))
        })
        .collect()
}
