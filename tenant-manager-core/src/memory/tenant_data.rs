//! `InMemoryTenantData`: each tenant's records in embedded mode.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{TenantId, validate_identifier};
use crate::error::{Entity, Error, Result};

/// Default largest record, serialized: 1 MiB.
const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Longest record id, in bytes.
const MAX_ID_LEN: usize = 128;

/// One record of a collection: its id and its JSON value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TenantRecord {
    /// Id, unique within its collection.
    pub id: String,
    /// The record.
    pub value: Value,
}

/// A tenant's collections: name -> (record id -> record).
type Collections = BTreeMap<String, BTreeMap<String, Value>>;

/// A whole tenant's data as written by [`InMemoryTenantData::snapshot`].
#[derive(Deserialize)]
struct Snapshot {
    collections: Collections,
}

/// One tenant's space: its collections and their accounted size.
#[derive(Debug, Default)]
struct Space {
    collections: RwLock<Collections>,
    bytes: AtomicU64,
}

impl Space {
    fn read(&self) -> RwLockReadGuard<'_, Collections> {
        // A panic while holding the lock cannot leave a map half-updated: every write is a
        // single insert, remove or swap. So a poisoned lock is still consistent.
        self.collections
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Collections> {
        self.collections
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Per-tenant storage for embedded mode: named collections of JSON records keyed by id.
///
/// A tenant's data is reachable only through its [`TenantId`], and only once its space has
/// been created by [`InMemoryProvisioner`](super::InMemoryProvisioner); an operation on a
/// tenant without a space fails with `NotFound` (entity `Tenant`). Collections are created by
/// the first insert and listed in id order.
///
/// Concurrency: one lock per tenant (no global lock); a tenant's lookups share it, its
/// writes take it exclusively for one map operation.
///
/// Size accounting: [`size_bytes`](Self::size_bytes) is the sum, over records, of id length plus
/// serialized JSON length; hosts feed it to a storage quota.
#[derive(Debug)]
pub struct InMemoryTenantData {
    spaces: DashMap<TenantId, Arc<Space>>,
    max_record_bytes: usize,
}

impl Default for InMemoryTenantData {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryTenantData {
    /// An empty store with no tenant spaces; records are limited to 1 MiB each.
    pub fn new() -> Self {
        Self {
            spaces: DashMap::new(),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }

    /// Sets the largest record accepted, in serialized bytes.
    #[must_use]
    pub fn with_max_record_bytes(mut self, max: usize) -> Self {
        self.max_record_bytes = max;
        self
    }

    /// Inserts a new record.
    ///
    /// # Errors
    /// `InvalidInput` (`collection`, `id`, `record`) for bad names or an oversized record;
    /// `Conflict` (entity `Record`, field `id`) when the id is taken; `NotFound` (entity
    /// `Tenant`) when the tenant has no space.
    pub fn insert(&self, tenant: TenantId, collection: &str, id: &str, value: Value) -> Result<()> {
        validate_collection(collection)?;
        validate_id(id)?;
        let size = self.record_size(id, &value)?;
        let space = self.space(tenant)?;
        let mut collections = space.write();
        let records = collections.entry(collection.to_owned()).or_default();
        if records.contains_key(id) {
            return Err(Error::conflict(
                Entity::Record,
                "id",
                format!("a record with id {id} exists in {collection}"),
            ));
        }
        records.insert(id.to_owned(), value);
        space.bytes.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }

    /// The record with this id.
    ///
    /// # Errors
    /// `NotFound` (entity `Record`) when absent; `NotFound` (entity `Tenant`) when the tenant
    /// has no space; `InvalidInput` for bad names.
    pub fn get(&self, tenant: TenantId, collection: &str, id: &str) -> Result<Value> {
        validate_collection(collection)?;
        validate_id(id)?;
        let space = self.space(tenant)?;
        let collections = space.read();
        collections
            .get(collection)
            .and_then(|records| records.get(id))
            .cloned()
            .ok_or_else(|| Error::not_found(Entity::Record, format!("{collection}/{id}")))
    }

    /// Up to `limit` records of a collection in id order, starting after the id `after`.
    ///
    /// # Errors
    /// `InvalidInput` for bad names or a `limit` of 0; `NotFound` (entity `Tenant`) when the
    /// tenant has no space.
    pub fn list(
        &self,
        tenant: TenantId,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TenantRecord>> {
        validate_collection(collection)?;
        if let Some(after) = after {
            validate_id(after)?;
        }
        if limit == 0 {
            return Err(Error::invalid("limit", "must be at least 1"));
        }
        let space = self.space(tenant)?;
        let collections = space.read();
        let Some(records) = collections.get(collection) else {
            return Ok(Vec::new());
        };
        let range = match after {
            Some(after) => records
                .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => records.range::<str, _>(..),
        };
        Ok(range
            .take(limit)
            .map(|(id, value)| TenantRecord {
                id: id.clone(),
                value: value.clone(),
            })
            .collect())
    }

    /// Replaces an existing record.
    ///
    /// # Errors
    /// `NotFound` (entity `Record`) when absent, plus the errors of [`insert`](Self::insert).
    pub fn update(&self, tenant: TenantId, collection: &str, id: &str, value: Value) -> Result<()> {
        validate_collection(collection)?;
        validate_id(id)?;
        let size = self.record_size(id, &value)?;
        let space = self.space(tenant)?;
        let mut collections = space.write();
        let slot = collections
            .get_mut(collection)
            .and_then(|records| records.get_mut(id))
            .ok_or_else(|| Error::not_found(Entity::Record, format!("{collection}/{id}")))?;
        let old = std::mem::replace(slot, value);
        let old_size = record_size_unchecked(id, &old);
        space.bytes.fetch_add(size, Ordering::Relaxed);
        space.bytes.fetch_sub(old_size, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes a record; returns whether it existed.
    ///
    /// # Errors
    /// `InvalidInput` for bad names; `NotFound` (entity `Tenant`) when the tenant has no space.
    pub fn delete(&self, tenant: TenantId, collection: &str, id: &str) -> Result<bool> {
        validate_collection(collection)?;
        validate_id(id)?;
        let space = self.space(tenant)?;
        let mut collections = space.write();
        let Some(records) = collections.get_mut(collection) else {
            return Ok(false);
        };
        let Some(old) = records.remove(id) else {
            return Ok(false);
        };
        if records.is_empty() {
            collections.remove(collection);
        }
        space
            .bytes
            .fetch_sub(record_size_unchecked(id, &old), Ordering::Relaxed);
        Ok(true)
    }

    /// Bytes the tenant's records take (ids plus serialized JSON).
    ///
    /// # Errors
    /// `NotFound` (entity `Tenant`) when the tenant has no space.
    pub fn size_bytes(&self, tenant: TenantId) -> Result<u64> {
        Ok(self.space(tenant)?.bytes.load(Ordering::Relaxed))
    }

    /// Whether the tenant has a space.
    pub fn contains(&self, tenant: TenantId) -> bool {
        self.spaces.contains_key(&tenant)
    }

    /// The tenant's whole data as JSON, consistent at one instant (`{"collections": {...}}`).
    ///
    /// # Errors
    /// `NotFound` (entity `Tenant`) when the tenant has no space; `Internal` if serialization
    /// fails.
    pub fn snapshot(&self, tenant: TenantId) -> Result<Vec<u8>> {
        let space = self.space(tenant)?;
        let collections = space.read();
        serde_json::to_vec(&SnapshotRef {
            collections: &collections,
        })
        .map_err(|e| Error::internal_with("cannot serialize tenant data", e))
    }

    /// Replaces the tenant's whole data with a snapshot taken by [`snapshot`](Self::snapshot),
    /// possibly of another tenant (a clone). All or nothing: the snapshot is checked first.
    ///
    /// # Errors
    /// `InvalidInput` (field `snapshot`) when it is not a snapshot or holds bad names or
    /// records; `NotFound` (entity `Tenant`) when the tenant has no space.
    pub fn restore(&self, tenant: TenantId, snapshot: &[u8]) -> Result<()> {
        let snapshot: Snapshot = serde_json::from_slice(snapshot)
            .map_err(|_| Error::invalid("snapshot", "is not a tenant data snapshot"))?;
        let mut total = 0u64;
        for (collection, records) in &snapshot.collections {
            validate_collection(collection).map_err(|_| bad_snapshot())?;
            for (id, value) in records {
                validate_id(id).map_err(|_| bad_snapshot())?;
                total += self.record_size(id, value).map_err(|_| bad_snapshot())?;
            }
        }
        let mut collections = snapshot.collections;
        collections.retain(|_, records| !records.is_empty());
        let space = self.space(tenant)?;
        let mut current = space.write();
        *current = collections;
        space.bytes.store(total, Ordering::Relaxed);
        Ok(())
    }

    /// Creates the tenant's empty space; returns whether it was created (false if it existed).
    pub(crate) fn create_space(&self, tenant: TenantId) -> bool {
        match self.spaces.entry(tenant) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(slot) => {
                slot.insert(Arc::default());
                true
            }
        }
    }

    /// Drops the tenant's space and all its data; returns whether it existed.
    pub(crate) fn drop_space(&self, tenant: TenantId) -> bool {
        self.spaces.remove(&tenant).is_some()
    }

    fn space(&self, tenant: TenantId) -> Result<Arc<Space>> {
        self.spaces
            .get(&tenant)
            .map(|space| Arc::clone(&space))
            .ok_or_else(|| Error::not_found(Entity::Tenant, format!("{tenant} (no data space)")))
    }

    fn record_size(&self, id: &str, value: &Value) -> Result<u64> {
        let size = record_size_unchecked(id, value);
        if size > self.max_record_bytes as u64 {
            return Err(Error::invalid("record", "is too large"));
        }
        Ok(size)
    }
}

/// The records of each collection of a snapshot taken by [`InMemoryTenantData::snapshot`]
/// (collections without records are left out).
///
/// # Errors
/// `InvalidInput` (field `snapshot`) when it is not a snapshot.
pub(crate) fn snapshot_rows(snapshot: &[u8]) -> Result<BTreeMap<String, u64>> {
    let snapshot: Snapshot = serde_json::from_slice(snapshot)
        .map_err(|_| Error::invalid("snapshot", "is not a tenant data snapshot"))?;
    Ok(snapshot
        .collections
        .into_iter()
        .filter(|(_, records)| !records.is_empty())
        .map(|(name, records)| (name, records.len() as u64))
        .collect())
}

/// Borrowing twin of [`Snapshot`], so a snapshot is serialized without cloning the data.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    collections: &'a Collections,
}

fn bad_snapshot() -> Error {
    Error::invalid("snapshot", "holds a bad collection name, id or record")
}

fn record_size_unchecked(id: &str, value: &Value) -> u64 {
    let json = serde_json::to_vec(value).map_or(0, |v| v.len());
    (id.len() + json) as u64
}

/// A collection name: a lowercase identifier (1 to 63 lowercase letters, digits or `_`,
/// starting with a letter), so it fits a Postgres table name.
fn validate_collection(name: &str) -> Result<()> {
    validate_identifier(name, "collection")
}

/// A record id: 1 to 128 ASCII letters, digits, `-`, `_`, `.` or `:`.
fn validate_id(id: &str) -> Result<()> {
    let ok = (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "id",
            "must be 1 to 128 ASCII letters, digits, -, _, . or :",
        ))
    }
}
