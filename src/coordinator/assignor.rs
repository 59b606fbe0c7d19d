//! Server-side partition assignors of the consumer group protocol (KIP-848): `uniform` (Kafka's default)
//! and `range`. The coordinator runs one of them whenever the group epoch moves past the assignment epoch;
//! the result is the group's *target* assignment, which members then reach step by step (see
//! `consumer.rs`: a partition only moves once its previous owner has revoked it).
//!
//! Both are deterministic for the same input, so a target computed before a restart and one computed
//! after it agree.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

/// Partitions of a member, by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// The names clients may ask for in `group.remote.assignor` / ConsumerGroupHeartbeat's ServerAssignor.
pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";

/// One member as an assignor sees it.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub member_id: String,
    pub instance_id: Option<String>,
    /// Topic ids the member subscribes to that exist (names and regexes already resolved).
    pub topics: BTreeSet<Uuid>,
    /// The member's current target assignment: what stickiness tries to keep.
    pub current: Assignment,
}

/// Computes a target assignment with the named assignor. `topics` maps each subscribed topic id to its
/// partition count. Every member gets an entry, possibly empty.
pub fn assign(
    assignor: &str,
    members: &[MemberSpec],
    topics: &BTreeMap<Uuid, i32>,
) -> HashMap<String, Assignment> {
    match assignor {
        RANGE => range(members, topics),
        _ => uniform(members, topics),
    }
}

/// `uniform`: spreads all partitions of all subscribed topics so that, among members that could take a
/// partition, counts differ by at most one where the subscriptions allow it; a member keeps the partitions
/// it already has unless balance requires moving them (stickiness keeps revocations, and so rebalance
/// time, small).
fn uniform(members: &[MemberSpec], topics: &BTreeMap<Uuid, i32>) -> HashMap<String, Assignment> {
    let n = members.len();
    let mut owned: Vec<Assignment> = vec![Assignment::new(); n];
    let mut counts = vec![0usize; n];
    // Subscribers of each topic, in member order (the input order is sorted by member id).
    let mut subscribers: BTreeMap<Uuid, Vec<usize>> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        for t in &m.topics {
            if topics.contains_key(t) {
                subscribers.entry(*t).or_default().push(i);
            }
        }
    }
    // 1. Stickiness: a member keeps what it had, if it still subscribes and nobody claimed it first.
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    for (i, m) in members.iter().enumerate() {
        for (topic, parts) in &m.current {
            let Some(&count) = topics.get(topic) else {
                continue;
            };
            if !m.topics.contains(topic) {
                continue;
            }
            for &p in parts {
                if p < count && taken.insert((*topic, p)) {
                    owned[i].entry(*topic).or_default().insert(p);
                    counts[i] += 1;
                }
            }
        }
    }
    // 2. Free partitions go to the least-loaded subscriber; topics with the fewest subscribers first,
    //    since they have the fewest places to go.
    let mut order: Vec<(&Uuid, &Vec<usize>)> = subscribers.iter().collect();
    order.sort_by_key(|(topic, subs)| (subs.len(), **topic));
    for (topic, subs) in &order {
        let count = topics.get(*topic).copied().unwrap_or(0);
        for p in 0..count {
            if taken.contains(&(**topic, p)) {
                continue;
            }
            if let Some(&i) = subs.iter().min_by_key(|&&i| (counts[i], i)) {
                owned[i].entry(**topic).or_default().insert(p);
                counts[i] += 1;
                taken.insert((**topic, p));
            }
        }
    }
    // 3. Balance: move a partition from a member to a subscriber of its topic that has at least two
    //    fewer. Each move lowers the sum of squared counts, so this ends.
    loop {
        let mut donors: Vec<usize> = (0..n).collect();
        donors.sort_by_key(|&i| (std::cmp::Reverse(counts[i]), i));
        let mut moved = false;
        'donors: for &a in &donors {
            let topics_of_a: Vec<Uuid> = owned[a].keys().copied().collect();
            for topic in topics_of_a {
                let Some(subs) = subscribers.get(&topic) else {
                    continue;
                };
                let Some(&b) = subs.iter().min_by_key(|&&i| (counts[i], i)) else {
                    continue;
                };
                if counts[b] + 1 >= counts[a] {
                    continue;
                }
                // Give away the highest partition: keeps low partitions with long-standing owners.
                let Some(p) = owned[a]
                    .get(&topic)
                    .and_then(|s| s.iter().next_back().copied())
                else {
                    continue;
                };
                if let Some(set) = owned[a].get_mut(&topic) {
                    set.remove(&p);
                    if set.is_empty() {
                        owned[a].remove(&topic);
                    }
                }
                owned[b].entry(topic).or_default().insert(p);
                counts[a] -= 1;
                counts[b] += 1;
                moved = true;
                break 'donors;
            }
        }
        if !moved {
            break;
        }
    }
    members
        .iter()
        .zip(owned)
        .map(|(m, a)| (m.member_id.clone(), a))
        .collect()
}

/// `range`: per topic, its subscribers (ordered by instance id when they have one, then member id) get
/// contiguous ranges of partitions, the first `partitions % subscribers` one extra. Members that subscribe
/// to the same topics get the same partition numbers of each, which is what co-partitioned joins need.
fn range(members: &[MemberSpec], topics: &BTreeMap<Uuid, i32>) -> HashMap<String, Assignment> {
    let mut result: HashMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.clone(), Assignment::new()))
        .collect();
    for (topic, &count) in topics {
        let mut subs: Vec<&MemberSpec> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .collect();
        if subs.is_empty() || count <= 0 {
            continue;
        }
        subs.sort_by(|a, b| {
            (a.instance_id.is_none(), &a.instance_id, &a.member_id).cmp(&(
                b.instance_id.is_none(),
                &b.instance_id,
                &b.member_id,
            ))
        });
        let per_member = count as usize / subs.len();
        let extra = count as usize % subs.len();
        let mut next = 0i32;
        for (i, m) in subs.iter().enumerate() {
            let take = per_member + usize::from(i < extra);
            if take == 0 {
                continue;
            }
            let parts: BTreeSet<i32> = (next..next + take as i32).collect();
            next += take as i32;
            if let Some(a) = result.get_mut(&m.member_id) {
                a.insert(*topic, parts);
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[Uuid]) -> MemberSpec {
        MemberSpec {
            member_id: id.to_string(),
            instance_id: None,
            topics: topics.iter().copied().collect(),
            current: Assignment::new(),
        }
    }

    fn total(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    fn all_assigned_once(result: &HashMap<String, Assignment>, topics: &BTreeMap<Uuid, i32>) {
        let mut seen = BTreeSet::new();
        for a in result.values() {
            for (t, parts) in a {
                for p in parts {
                    assert!(seen.insert((*t, *p)), "{t}-{p} assigned twice");
                }
            }
        }
        let expected: usize = topics.values().map(|&c| c as usize).sum();
        assert_eq!(seen.len(), expected, "every partition assigned");
    }

    #[test]
    fn uniform_balances_homogeneous_groups() {
        let t1 = Uuid::from_u128(1);
        let t2 = Uuid::from_u128(2);
        let topics = BTreeMap::from([(t1, 7), (t2, 3)]);
        let members: Vec<MemberSpec> = (0..3)
            .map(|i| member(&format!("m{i}"), &[t1, t2]))
            .collect();
        let result = assign(UNIFORM, &members, &topics);
        all_assigned_once(&result, &topics);
        let counts: Vec<usize> = result.values().map(total).collect();
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let t = Uuid::from_u128(7);
        let topics = BTreeMap::from([(t, 100)]);
        let mut members: Vec<MemberSpec> =
            (0..10).map(|i| member(&format!("m{i:02}"), &[t])).collect();
        let first = assign(UNIFORM, &members, &topics);
        for m in &mut members {
            m.current = first[&m.member_id].clone();
        }
        members.push(member("m10", &[t]));
        let second = assign(UNIFORM, &members, &topics);
        all_assigned_once(&second, &topics);
        // With 100 partitions over 11 members, each old member gives up at most one partition.
        let mut moved = 0;
        for m in &members[..10] {
            let before = &first[&m.member_id][&t];
            let after = second[&m.member_id].get(&t).cloned().unwrap_or_default();
            assert!(after.is_subset(before));
            moved += before.len() - after.len();
        }
        assert_eq!(moved, total(&second["m10"]));
        assert!((9..=10).contains(&moved));
    }

    #[test]
    fn uniform_respects_heterogeneous_subscriptions() {
        let t1 = Uuid::from_u128(1);
        let t2 = Uuid::from_u128(2);
        let topics = BTreeMap::from([(t1, 6), (t2, 2)]);
        let members = vec![
            member("a", &[t1]),
            member("b", &[t1, t2]),
            member("c", &[t2]),
        ];
        let result = assign(UNIFORM, &members, &topics);
        all_assigned_once(&result, &topics);
        assert!(!result["a"].contains_key(&t2));
        assert!(!result["c"].contains_key(&t1));
        // 8 partitions: a can only take t1, c only t2 (2 partitions); b balances between them.
        assert_eq!(total(&result["c"]), 2);
        assert_eq!(total(&result["a"]), 3);
        assert_eq!(total(&result["b"]), 3);
    }

    #[test]
    fn range_co_partitions_topics() {
        let t1 = Uuid::from_u128(1);
        let t2 = Uuid::from_u128(2);
        let topics = BTreeMap::from([(t1, 5), (t2, 5)]);
        let members = vec![member("b", &[t1, t2]), member("a", &[t1, t2])];
        let result = assign(RANGE, &members, &topics);
        all_assigned_once(&result, &topics);
        assert_eq!(result["a"][&t1], BTreeSet::from([0, 1, 2]));
        assert_eq!(result["a"][&t2], BTreeSet::from([0, 1, 2]));
        assert_eq!(result["b"][&t1], BTreeSet::from([3, 4]));
    }

    #[test]
    fn members_without_topics_get_nothing() {
        let t = Uuid::from_u128(3);
        let topics = BTreeMap::from([(t, 4)]);
        let members = vec![member("a", &[t]), member("b", &[])];
        for assignor in [UNIFORM, RANGE] {
            let result = assign(assignor, &members, &topics);
            assert_eq!(total(&result["a"]), 4);
            assert_eq!(total(&result["b"]), 0);
        }
    }
}
