//! PROTOCOL.md section 14, ownership: nodes' leases and numbers' owners in a real `redis-server`
//! (`tests/support/redis.rs`), through `cluster::RedisDirectory` and the `LeaseKeeper` task.
//! Exactly one owner per number however nodes race; epochs that only grow; a dead node's numbers
//! free only once its lease lapses; and a node that cannot renew fences itself before its lease can
//! lapse, even while Redis is frozen.

#[path = "support/redis.rs"]
mod redis_support;

use redis_support::RedisServer;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use webterminal_core::cluster::{
    Claim, Directory, DirectoryError, LeaseKeeper, LeaseState, NodeId, RedisDirectory,
};
use webterminal_core::core::Msisdn;

const PREFIX: &str = "wt-test:";

fn node(redis: &RedisServer, name: &str, lease: Duration) -> Arc<RedisDirectory> {
    Arc::new(
        RedisDirectory::new(&redis.url(), PREFIX, NodeId::parse(name).unwrap(), lease).unwrap(),
    )
}

fn number(i: usize) -> Msisdn {
    Msisdn::parse(&format!("+4798{i:06}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_racing_for_the_same_thousand_numbers_get_exactly_one_owner_each() {
    let redis = RedisServer::start();
    let nodes: Vec<_> = ["node-1", "node-2", "node-3"]
        .iter()
        .map(|name| node(&redis, name, Duration::from_secs(30)))
        .collect();
    for node in &nodes {
        node.join().await.unwrap();
    }
    // Each node claims all 1,000 in its own order, 50 claims in flight at once.
    let mut racers = Vec::new();
    for (n, directory) in nodes.iter().enumerate() {
        let directory = directory.clone();
        racers.push(tokio::spawn(async move {
            // Multipliers prime to 1,000: each order is a permutation.
            let step = [1, 3, 7][n];
            let order: Vec<usize> = (0..1000).map(|i| (i * step + 7 * n) % 1000).collect();
            let mut claims = HashMap::new();
            for chunk in order.chunks(50) {
                let results = futures_util::future::join_all(chunk.iter().map(|&i| {
                    let directory = directory.clone();
                    async move { (i, directory.claim(&number(i)).await.unwrap()) }
                }))
                .await;
                claims.extend(results);
            }
            claims
        }));
    }
    let mut claims = Vec::new();
    for racer in racers {
        claims.push(racer.await.unwrap());
    }
    for i in 0..1000 {
        let ours: Vec<usize> = (0..3)
            .filter(|&n| matches!(claims[n][&i], Claim::Ours { .. }))
            .collect();
        assert_eq!(
            ours.len(),
            1,
            "number {i}: {:?}",
            [&claims[0][&i], &claims[1][&i], &claims[2][&i]]
        );
        let winner = ours[0];
        let Claim::Ours { epoch } = claims[winner][&i] else {
            unreachable!()
        };
        let owner = nodes[0].owner(&number(i)).await.unwrap().expect("an owner");
        assert_eq!(owner.node, *nodes[winner].node());
        assert_eq!(owner.epoch, epoch);
        for n in (0..3).filter(|&n| n != winner) {
            assert_eq!(claims[n][&i], Claim::Theirs(owner.clone()), "number {i}");
        }
    }
    // Claiming what one owns already changes nothing.
    let owner = nodes[0].owner(&number(0)).await.unwrap().unwrap();
    let winner = nodes.iter().find(|n| *n.node() == owner.node).unwrap();
    assert_eq!(
        winner.claim(&number(0)).await.unwrap(),
        Claim::Ours { epoch: owner.epoch }
    );
}

#[tokio::test]
async fn epochs_only_grow_through_releases_and_changes_of_owner() {
    let redis = RedisServer::start();
    let a = node(&redis, "a", Duration::from_secs(30));
    let b = node(&redis, "b", Duration::from_secs(30));
    a.join().await.unwrap();
    b.join().await.unwrap();
    let msisdn = number(1);
    let mut last = 0;
    for round in 0..50 {
        let (claimer, other) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let Claim::Ours { epoch } = claimer.claim(&msisdn).await.unwrap() else {
            panic!("round {round}: the number is free, the claim must win");
        };
        assert!(epoch > last, "round {round}: epoch {epoch} after {last}");
        last = epoch;
        assert!(
            !other.release(&msisdn).await.unwrap(),
            "only the owner releases"
        );
        assert!(claimer.release(&msisdn).await.unwrap());
        assert_eq!(claimer.owner(&msisdn).await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_dead_nodes_numbers_are_free_only_once_its_lease_lapses() {
    let redis = RedisServer::start();
    let lease = Duration::from_millis(1500);
    let dead = node(&redis, "dead", lease);
    let survivor = node(&redis, "survivor", lease);
    dead.join().await.unwrap();
    survivor.join().await.unwrap();
    let Claim::Ours { epoch: first } = dead.claim(&number(7)).await.unwrap() else {
        panic!("a free number");
    };
    let joined = Instant::now();
    // The dead node renews no more; the survivor keeps its own lease alive.
    let keeper = tokio::spawn({
        let survivor = survivor.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                assert!(survivor.renew().await.unwrap());
            }
        }
    });
    match survivor.claim(&number(7)).await.unwrap() {
        Claim::Theirs(owner) => assert_eq!((owner.node.as_str(), owner.epoch), ("dead", first)),
        other => panic!("claimed a live node's number: {other:?}"),
    }
    tokio::time::sleep_until(joined + lease + Duration::from_millis(200)).await;
    assert_eq!(
        survivor.owner(&number(7)).await.unwrap(),
        None,
        "no live owner"
    );
    let Claim::Ours { epoch } = survivor.claim(&number(7)).await.unwrap() else {
        panic!("the lapsed node's number is free");
    };
    assert!(epoch > first);
    // The dead node, back, holds no lease: it may not claim, and renewing says so.
    assert_eq!(dead.claim(&number(8)).await, Err(DirectoryError::NoLease));
    assert!(!dead.renew().await.unwrap());
    keeper.abort();
}

#[tokio::test]
async fn a_node_id_is_held_by_one_incarnation_and_leave_frees_everything() {
    let redis = RedisServer::start();
    let first = node(&redis, "node-1", Duration::from_secs(30));
    let second = node(&redis, "node-1", Duration::from_secs(30));
    let other = node(&redis, "node-2", Duration::from_secs(30));
    first.join().await.unwrap();
    other.join().await.unwrap();
    assert!(matches!(
        second.join().await,
        Err(DirectoryError::NodeIdTaken(_))
    ));
    for i in 0..20 {
        assert!(matches!(
            first.claim(&number(i)).await.unwrap(),
            Claim::Ours { .. }
        ));
    }
    first.leave().await.unwrap();
    for i in 0..20 {
        assert_eq!(other.owner(&number(i)).await.unwrap(), None, "number {i}");
        assert!(matches!(
            other.claim(&number(i)).await.unwrap(),
            Claim::Ours { .. }
        ));
    }
    // The id is free again: a new incarnation joins, and claims nothing another node owns.
    second.join().await.unwrap();
    assert!(matches!(
        second.claim(&number(0)).await.unwrap(),
        Claim::Theirs(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_renew_fences_itself_before_its_lease_can_lapse() {
    let redis = RedisServer::start();
    // Long enough that one renewal lost to a busy machine does not fence (renewals every second,
    // the fence at 2.55 s).
    let lease = Duration::from_secs(3);
    let fenced_node = node(&redis, "frozen-out", lease);
    let mut state = LeaseKeeper::start(fenced_node.clone(), lease);
    let serving = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let LeaseState::Serving { until } = *state.borrow_and_update() {
                return until;
            }
            state.changed().await.unwrap();
        }
    })
    .await
    .expect("the node joins");
    assert!(serving > Instant::now());
    assert!(matches!(
        fenced_node.claim(&number(3)).await.unwrap(),
        Claim::Ours { .. }
    ));
    // Renewals go on: after four seconds (more than the lease) it still serves.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let now = *state.borrow();
    assert!(matches!(now, LeaseState::Serving { .. }), "{now:?}");

    // Redis freezes: no renewal can succeed.
    redis.pause();
    let frozen = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), async {
        while *state.borrow_and_update() != LeaseState::Fenced {
            state.changed().await.unwrap();
        }
    })
    .await
    .expect("the node fences");
    let fenced_after = frozen.elapsed();
    // The last renewal that succeeded was sent before the freeze, and at most a renewal period
    // before it; the fence comes 85 % of the lease after that send (give or take the scheduler),
    // while the lease lapses 100 % of it after Redis processed that renewal, which is later still.
    let fence_after = lease.mul_f64(0.85);
    let scheduling = Duration::from_millis(150);
    assert!(
        fenced_after <= fence_after + scheduling,
        "fenced {fenced_after:?} after the freeze"
    );
    assert!(
        fenced_after + Duration::from_secs(1) + scheduling >= fence_after,
        "fenced too early: {fenced_after:?} after the freeze"
    );
    // Redis thaws once the lease has lapsed: another node may take the number, with a higher
    // epoch, and the fenced node stays fenced.
    tokio::time::sleep_until(frozen + lease + Duration::from_millis(500)).await;
    redis.unpause();
    let other = node(&redis, "other", lease);
    other.join().await.unwrap();
    assert!(matches!(
        other.claim(&number(3)).await.unwrap(),
        Claim::Ours { .. }
    ));
    assert_eq!(*state.borrow(), LeaseState::Fenced);
    drop(redis);
}
