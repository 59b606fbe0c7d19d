//! ListGroups (key 16): the groups this coordinator knows, with state (v4+) and type (v5+) filters. Groups
//! that exist only through committed offsets are classic groups in state Empty with no protocol type, as
//! in Kafka. Consumer-protocol groups are listed with type and protocol type "consumer".

use std::collections::BTreeSet;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_RESOURCE_NAME};
use crate::security::authz::Authz;
use crate::server::Broker;

pub const SIMPLE_GROUP_STATE: &str = "Empty";
pub const CLASSIC_GROUP_TYPE: &str = "classic";
/// A KIP-848 group: its type and its protocol type are both "consumer".
pub const CONSUMER_GROUP_TYPE: &str = "consumer";

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    // Kafka matches state and type filters case-insensitively, ignoring surrounding blanks.
    let type_ok = |group_type: &str| {
        request.types_filter.is_empty()
            || request
                .types_filter
                .iter()
                .any(|t| t.trim().eq_ignore_ascii_case(group_type))
    };
    let mut ids: BTreeSet<String> = broker.groups.group_ids().into_iter().collect();
    ids.extend(broker.membership.group_ids());
    ids.extend(broker.consumers.group_ids());
    let authz = Authz::new(broker, ctx);
    // DESCRIBE on the cluster shows every group; otherwise only those the requester may describe,
    // without logging the ones left out (a listing is not a refused request).
    let all_visible = authz.can_see(
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_RESOURCE_NAME,
    );
    let groups = ids
        .into_iter()
        .filter(|id| all_visible || authz.can_see(AclOperation::Describe, ResourceType::Group, id))
        .filter_map(|id| {
            let (state, protocol_type, group_type) =
                if let Some(desc) = broker.consumers.describe(&id) {
                    (
                        desc.state,
                        CONSUMER_GROUP_TYPE.to_string(),
                        CONSUMER_GROUP_TYPE,
                    )
                } else {
                    match broker.membership.describe(&id) {
                        Some(desc) => (desc.phase.name(), desc.protocol_type, CLASSIC_GROUP_TYPE),
                        None if broker.groups.group(&id).is_some() => {
                            (SIMPLE_GROUP_STATE, String::new(), CLASSIC_GROUP_TYPE)
                        }
                        None => return None,
                    }
                };
            let state_ok = request.states_filter.is_empty()
                || request
                    .states_filter
                    .iter()
                    .any(|s| s.trim().eq_ignore_ascii_case(state));
            (state_ok && type_ok(group_type)).then(|| {
                ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(id)))
                    .with_protocol_type(str_bytes(protocol_type))
                    .with_group_state(str_bytes(state))
                    .with_group_type(str_bytes(group_type))
            })
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
