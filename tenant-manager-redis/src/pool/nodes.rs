//! Where the cache's subscriber connects: the configured server or cluster seeds, then, on a
//! Redis Cluster, the nodes learned from `CLUSTER SLOTS` (masters and replicas). A subscriber
//! seeded with one node thus reconnects after that node went away (a failover, a node removed):
//! `PUBLISH` reaches every node of a cluster, so any live node will do.

use std::sync::{Mutex, PoisonError};

use redis::{Client, ConnectionAddr, ConnectionInfo, Value};

use super::clients::client;
use crate::config::RedisConfig;

/// The pub/sub clients, tried in order: the seeds, then the learned nodes.
pub(super) struct PubSubTargets {
    seeds: Vec<Client>,
    /// The first seed's settings (credentials, TLS), copied for the learned nodes.
    template: Option<(ConnectionInfo, bool)>,
    learned: Mutex<Vec<(String, u16, Client)>>,
}

impl PubSubTargets {
    /// The seeds' clients, and the settings of the first.
    pub(super) fn new(seeds: Vec<Client>, template: Option<(ConnectionInfo, bool)>) -> Self {
        Self {
            seeds,
            template,
            learned: Mutex::new(Vec::new()),
        }
    }

    /// Every client to try, seeds first.
    pub(super) fn clients(&self) -> Vec<Client> {
        let learned = self.learned.lock().unwrap_or_else(PoisonError::into_inner);
        self.seeds
            .iter()
            .cloned()
            .chain(learned.iter().map(|(_, _, c)| c.clone()))
            .collect()
    }

    /// How many nodes were learned.
    pub(super) fn learned(&self) -> usize {
        self.learned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Replaces the learned nodes with those of a `CLUSTER SLOTS` reply (an unusable address
    /// is skipped).
    pub(super) fn learn(&self, config: &RedisConfig, reply: &Value) {
        let Some((template, tls)) = &self.template else {
            return;
        };
        let mut nodes = Vec::new();
        for (host, port) in addresses(reply) {
            let addr = match template.addr() {
                ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                _ => ConnectionAddr::Tcp(host.clone(), port),
            };
            if let Ok(c) = client(config, template.clone().set_addr(addr), *tls) {
                nodes.push((host, port, c));
            }
        }
        *self.learned.lock().unwrap_or_else(PoisonError::into_inner) = nodes;
    }
}

/// The distinct `(host, port)` of every node in a `CLUSTER SLOTS` reply: each slot range is
/// `[start, end, [host, port, id, ...] (master), [host, port, id, ...] (replicas)...]`.
fn addresses(reply: &Value) -> Vec<(String, u16)> {
    let mut found: Vec<(String, u16)> = Vec::new();
    let Value::Array(ranges) = reply else {
        return found;
    };
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        for node in fields.iter().skip(2) {
            let Value::Array(node) = node else {
                continue;
            };
            let host = match node.first() {
                Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                _ => continue,
            };
            let port = match node.get(1) {
                Some(Value::Int(port)) => u16::try_from(*port).ok(),
                _ => None,
            };
            if let Some(port) = port
                && !host.is_empty()
                && !found.iter().any(|(h, p)| *h == host && *p == port)
            {
                found.push((host, port));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn masters_and_replicas_of_every_range_once() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(100),
                node("10.0.0.1", 7000),
                node("10.0.0.4", 7003),
            ]),
            Value::Array(vec![
                Value::Int(101),
                Value::Int(200),
                node("10.0.0.2", 7001),
            ]),
            Value::Array(vec![
                Value::Int(201),
                Value::Int(300),
                node("10.0.0.1", 7000),
                node("", 7009),
            ]),
        ]);
        assert_eq!(
            addresses(&reply),
            vec![
                ("10.0.0.1".to_owned(), 7000),
                ("10.0.0.4".to_owned(), 7003),
                ("10.0.0.2".to_owned(), 7001),
            ]
        );
        assert!(addresses(&Value::Nil).is_empty());
    }
}
