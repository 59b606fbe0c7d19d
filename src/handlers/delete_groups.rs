//! DeleteGroups (key 42): deletes empty groups and their committed offsets (tombstones in
//! `__consumer_offsets`).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::coordinator::records::OffsetsKey;
use crate::coordinator::{offset_tombstone, write_group_records, OffsetsRecord};
use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let authz = Authz::new(broker, ctx);
    let mut results = Vec::with_capacity(request.groups_names.len());
    for id in request.groups_names {
        let group = id.to_string();
        if !authz.allows(AclOperation::Delete, ResourceType::Group, &group) {
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code()),
            );
            continue;
        }
        let is_consumer_group = broker.consumers.contains(&group);
        let known = broker.groups.group(&group).or_else(|| {
            (is_consumer_group || broker.membership.describe(&group).is_some())
                .then(Default::default)
        });
        let coordinator = crate::coordinator::loading::check(broker, &group);
        let code = match known {
            _ if coordinator.is_err() => coordinator.err().map_or(0, |e| e.code()),
            _ if broker.membership.has_members(&group) || broker.consumers.has_members(&group) => {
                ResponseError::NonEmptyGroup.code()
            }
            None => ResponseError::GroupIdNotFound.code(),
            Some(existing) => {
                let mut changes: Vec<OffsetsRecord> = existing
                    .offsets
                    .keys()
                    .map(|(topic, partition)| offset_tombstone(&group, topic, *partition))
                    .collect();
                changes.push((
                    OffsetsKey::GroupMetadata {
                        group: group.clone(),
                    },
                    None,
                ));
                let written = match write_group_records(broker, &group, changes).await {
                    // A consumer group's own records are tombstoned too.
                    Ok(()) if is_consumer_group => {
                        broker.consumers.remove_group(&group);
                        broker.persist_consumer_groups(vec![group.clone()]).await
                    }
                    other => other,
                };
                match written {
                    Ok(()) => {
                        broker.membership.remove_group(&group);
                        tracing::info!(group = %group, "group deleted");
                        0
                    }
                    Err(code) => code,
                }
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
