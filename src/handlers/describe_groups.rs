//! DescribeGroups (key 15): state, protocol and members of classic groups. Groups known only through
//! committed offsets are Empty with no members; an unknown group is Dead (and GROUP_ID_NOT_FOUND from v6).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::list_groups::SIMPLE_GROUP_STATE;
use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

const GROUP_ID_NOT_FOUND_VERSION: i16 = 6;

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let authz = Authz::new(broker, ctx);
    let groups = request
        .groups
        .iter()
        .map(|id| {
            let described = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_protocol_type(str_bytes(""))
                .with_protocol_data(str_bytes(""))
                .with_authorized_operations(i32::MIN);
            if !authz.allows(AclOperation::Describe, ResourceType::Group, id) {
                return described
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code())
                    .with_group_state(str_bytes(""));
            }
            let described = if request.include_authorized_operations {
                described.with_authorized_operations(authz.operations(ResourceType::Group, id))
            } else {
                described
            };
            // No such classic group: Dead, and GROUP_ID_NOT_FOUND from v6.
            let not_found = |described: DescribedGroup, why: &str| {
                let described = described.with_group_state(str_bytes("Dead"));
                if ctx.api_version >= GROUP_ID_NOT_FOUND_VERSION {
                    described
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(str_bytes(format!(
                            "Group {} {why}.",
                            id.as_str()
                        ))))
                } else {
                    described
                }
            };
            if let Err(e) = crate::coordinator::loading::check(broker, id.as_str()) {
                described.with_error_code(e.code())
            } else if broker.consumers.contains(id.as_str()) {
                // DescribeGroups is the classic API; consumer groups answer to ConsumerGroupDescribe
                // (the Java admin client switches on this error).
                not_found(described, "is not a classic group")
            } else if let Some(desc) = broker.membership.describe(id.as_str()) {
                described
                    .with_group_state(str_bytes(desc.phase.name()))
                    .with_protocol_type(str_bytes(desc.protocol_type))
                    .with_protocol_data(str_bytes(desc.protocol))
                    .with_members(
                        desc.members
                            .into_iter()
                            .map(|(member, instance, client, host, metadata, assignment)| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(member))
                                    .with_group_instance_id(instance.map(str_bytes))
                                    .with_client_id(str_bytes(client))
                                    .with_client_host(str_bytes(host))
                                    .with_member_metadata(metadata)
                                    .with_member_assignment(assignment)
                            })
                            .collect(),
                    )
            } else if broker.groups.group(id.as_str()).is_some() {
                described.with_group_state(str_bytes(SIMPLE_GROUP_STATE))
            } else {
                not_found(described, "not found")
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
