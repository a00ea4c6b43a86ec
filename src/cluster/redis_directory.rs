//! [`Directory`] over one Redis (a primary, with replicas if wanted; not Redis Cluster: the scripts
//! read the owner's node key, which they cannot declare in advance).
//!
//! Keys, under a prefix (`wt:` by default):
//! - `node:{id}` — the node lease: a string holding the incarnation's token, with a `PX` expiry of
//!   the lease's length, renewed by a compare-and-`PEXPIRE`;
//! - `owner:{msisdn}` — a hash `{node, token, epoch}`; a released number keeps its epoch with an empty
//!   node, so that the epoch only grows;
//! - `owned:{id}` — the set of numbers the node owns, with the lease's expiry, so that `leave`
//!   releases them all and a dead node's set goes with its lease.
//!
//! The epoch of a claim is `max(previous + 1, Redis TIME in ms)`: it grows with each change of owner
//! and stays meaningful across a flushed store.

use super::directory::{Claim, Directory, DirectoryError, NodeId, Owner};
use crate::core::Msisdn;
use std::time::Duration;
use tokio::sync::Mutex;

/// How long one store command may take before it counts as failed (a renewal must fail fast).
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

const JOIN: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0";

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 1
end
return 0";

const CLAIM: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return {-1} end
local cur = redis.call('HMGET', KEYS[1], 'node', 'token', 'epoch')
local node, token, epoch = cur[1], cur[2], tonumber(cur[3]) or 0
if node == ARGV[1] and token == ARGV[2] then return {1, node, epoch} end
if node and node ~= '' and redis.call('GET', ARGV[3] .. 'node:' .. node) == token then
  return {0, node, epoch}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local next = math.max(epoch + 1, now)
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'token', ARGV[2], 'epoch', next)
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[3], redis.call('PTTL', KEYS[2]))
if node and node ~= '' and node ~= ARGV[1] then
  redis.call('SREM', ARGV[3] .. 'owned:' .. node, ARGV[4])
end
return {1, ARGV[1], next}";

const OWNER: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'node', 'token', 'epoch')
local node, token = cur[1], cur[2]
if node and node ~= '' and redis.call('GET', ARGV[1] .. 'node:' .. node) == token then
  return {node, tonumber(cur[3])}
end
return false";

const RELEASE: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'node', 'token')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then
  redis.call('HSET', KEYS[1], 'node', '', 'token', '')
  redis.call('SREM', KEYS[2], ARGV[3])
  return 1
end
return 0";

const LEAVE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for _, msisdn in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local key = ARGV[2] .. 'owner:' .. msisdn
  local cur = redis.call('HMGET', key, 'node', 'token')
  if cur[1] == ARGV[3] and cur[2] == ARGV[1] then
    redis.call('HSET', key, 'node', '', 'token', '')
  end
end
redis.call('DEL', KEYS[2], KEYS[1])
return 1";

/// A node's handle on the Redis [`Directory`].
pub struct RedisDirectory {
    client: redis::Client,
    connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
    node: NodeId,
    prefix: String,
    lease: Duration,
    /// This incarnation's token: random, new with every [`Directory::join`].
    token: std::sync::Mutex<String>,
    scripts: Scripts,
}

struct Scripts {
    join: redis::Script,
    renew: redis::Script,
    claim: redis::Script,
    owner: redis::Script,
    release: redis::Script,
    leave: redis::Script,
}

impl RedisDirectory {
    /// A handle for `node` on the Redis at `url` (`redis://…`), keys under `prefix`, leases of
    /// `lease`. Connects lazily; a URL that does not parse is an error.
    pub fn new(
        url: &str,
        prefix: &str,
        node: NodeId,
        lease: Duration,
    ) -> Result<RedisDirectory, DirectoryError> {
        let client = redis::Client::open(url).map_err(|e| DirectoryError::Store(e.to_string()))?;
        Ok(RedisDirectory {
            client,
            connection: Mutex::new(None),
            node,
            prefix: prefix.to_owned(),
            lease,
            token: std::sync::Mutex::new(String::new()),
            scripts: Scripts {
                join: redis::Script::new(JOIN),
                renew: redis::Script::new(RENEW),
                claim: redis::Script::new(CLAIM),
                owner: redis::Script::new(OWNER),
                release: redis::Script::new(RELEASE),
                leave: redis::Script::new(LEAVE),
            },
        })
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}:{name}", self.prefix)
    }

    fn token(&self) -> String {
        self.token.lock().expect("not poisoned").clone()
    }

    fn lease_ms(&self) -> u64 {
        self.lease.as_millis().max(1) as u64
    }

    /// Runs `invocation` on the shared connection, connecting first when there is none; a failed
    /// command drops the connection so that the next one reconnects.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, DirectoryError> {
        let mut slot = self.connection.lock().await;
        if slot.is_none() {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT));
            let connection = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| DirectoryError::Store(e.to_string()))?;
            *slot = Some(connection);
        }
        let connection = slot.as_mut().expect("set above");
        match invocation.invoke_async(connection).await {
            Ok(value) => Ok(value),
            Err(e) => {
                *slot = None;
                Err(DirectoryError::Store(e.to_string()))
            }
        }
    }
}

impl Directory for RedisDirectory {
    async fn join(&self) -> Result<(), DirectoryError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut invocation = self.scripts.join.prepare_invoke();
        invocation
            .key(self.key("node", self.node.as_str()))
            .key(self.key("owned", self.node.as_str()))
            .arg(&token)
            .arg(self.lease_ms());
        let joined: i64 = self.invoke(invocation).await?;
        if joined == 1 {
            *self.token.lock().expect("not poisoned") = token;
            Ok(())
        } else {
            Err(DirectoryError::NodeIdTaken(self.node.clone()))
        }
    }

    async fn renew(&self) -> Result<bool, DirectoryError> {
        let mut invocation = self.scripts.renew.prepare_invoke();
        invocation
            .key(self.key("node", self.node.as_str()))
            .key(self.key("owned", self.node.as_str()))
            .arg(self.token())
            .arg(self.lease_ms());
        let renewed: i64 = self.invoke(invocation).await?;
        Ok(renewed == 1)
    }

    async fn claim(&self, msisdn: &Msisdn) -> Result<Claim, DirectoryError> {
        let mut invocation = self.scripts.claim.prepare_invoke();
        invocation
            .key(self.key("owner", msisdn.as_str()))
            .key(self.key("node", self.node.as_str()))
            .key(self.key("owned", self.node.as_str()))
            .arg(self.node.as_str())
            .arg(self.token())
            .arg(&self.prefix)
            .arg(msisdn.as_str());
        let reply: Vec<redis::Value> = self.invoke(invocation).await?;
        let garbled = || DirectoryError::Store(format!("a claim answered {reply:?}"));
        let status: i64 = reply
            .first()
            .and_then(|v| redis::from_redis_value_ref(v).ok())
            .ok_or_else(garbled)?;
        if status == -1 {
            return Err(DirectoryError::NoLease);
        }
        let node: String = reply
            .get(1)
            .and_then(|v| redis::from_redis_value_ref(v).ok())
            .ok_or_else(garbled)?;
        let epoch: u64 = reply
            .get(2)
            .and_then(|v| redis::from_redis_value_ref(v).ok())
            .ok_or_else(garbled)?;
        if status == 1 {
            Ok(Claim::Ours { epoch })
        } else {
            Ok(Claim::Theirs(Owner {
                node: NodeId::parse(&node)?,
                epoch,
            }))
        }
    }

    async fn owner(&self, msisdn: &Msisdn) -> Result<Option<Owner>, DirectoryError> {
        let mut invocation = self.scripts.owner.prepare_invoke();
        invocation
            .key(self.key("owner", msisdn.as_str()))
            .arg(&self.prefix);
        let reply: Option<(String, u64)> = self.invoke(invocation).await?;
        reply
            .map(|(node, epoch)| {
                Ok(Owner {
                    node: NodeId::parse(&node)?,
                    epoch,
                })
            })
            .transpose()
    }

    async fn release(&self, msisdn: &Msisdn) -> Result<bool, DirectoryError> {
        let mut invocation = self.scripts.release.prepare_invoke();
        invocation
            .key(self.key("owner", msisdn.as_str()))
            .key(self.key("owned", self.node.as_str()))
            .arg(self.node.as_str())
            .arg(self.token())
            .arg(msisdn.as_str());
        let released: i64 = self.invoke(invocation).await?;
        Ok(released == 1)
    }

    async fn leave(&self) -> Result<(), DirectoryError> {
        let mut invocation = self.scripts.leave.prepare_invoke();
        invocation
            .key(self.key("node", self.node.as_str()))
            .key(self.key("owned", self.node.as_str()))
            .arg(self.token())
            .arg(&self.prefix)
            .arg(self.node.as_str());
        let _left: i64 = self.invoke(invocation).await?;
        Ok(())
    }
}
