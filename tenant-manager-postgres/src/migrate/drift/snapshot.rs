//! A schema's shape as the catalogue describes it, normalised so two schemas of different names
//! compare equal when they hold the same objects.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::{Connection, PgConnection};
use tenant_manager_core::{Entity, Result, TenantId};

use super::super::outcome::current_version;
use crate::ident::Ident;
use crate::pg::SqlxResultExt;

/// The migration history: bookkeeping of sqlx, not part of the host's schema.
const HISTORY: &str = "_sqlx_migrations";

/// What stands in for a schema tenant's id in the text of its policies.
const TENANT_PLACEHOLDER: &str = "<tenant>";

/// A kind of schema object the drift check compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ObjectKind {
    /// The version of the migration history against the version the registry recorded.
    MigrationVersion,
    /// The tenant's database or schema itself.
    Storage,
    /// A table or view, with its row-level security switches (enabled, forced).
    Table,
    /// A column: type (`format_type`), nullability, default, identity, generation.
    Column,
    /// An index (`pg_get_indexdef`, validity).
    Index,
    /// A constraint (`pg_get_constraintdef`).
    Constraint,
    /// A row-level security policy: command, permissive or restrictive, roles, USING and
    /// WITH CHECK.
    Policy,
    /// An enum or domain type of the schema.
    Type,
}

impl ObjectKind {
    /// Every kind, in report order.
    pub const ALL: [ObjectKind; 8] = [
        ObjectKind::MigrationVersion,
        ObjectKind::Storage,
        ObjectKind::Table,
        ObjectKind::Column,
        ObjectKind::Index,
        ObjectKind::Constraint,
        ObjectKind::Policy,
        ObjectKind::Type,
    ];

    /// The snake_case name (as in JSON and metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::MigrationVersion => "migration_version",
            ObjectKind::Storage => "storage",
            ObjectKind::Table => "table",
            ObjectKind::Column => "column",
            ObjectKind::Index => "index",
            ObjectKind::Constraint => "constraint",
            ObjectKind::Policy => "policy",
            ObjectKind::Type => "type",
        }
    }
}

/// Identity of one object in a snapshot: kind, table (for objects of a table) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ObjectKey {
    pub(crate) kind: ObjectKind,
    pub(crate) table: Option<String>,
    pub(crate) name: String,
}

/// A schema's objects, each with its normalised definition, in a deterministic order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) objects: BTreeMap<ObjectKey, String>,
    /// Newest version of the schema's migration history (0 without one).
    pub(crate) version: i64,
}

impl Snapshot {
    pub(super) fn put(
        &mut self,
        kind: ObjectKind,
        table: Option<&str>,
        name: &str,
        definition: String,
    ) {
        let key = ObjectKey {
            kind,
            table: table.map(str::to_owned),
            name: name.to_owned(),
        };
        self.objects.insert(key, definition);
    }
}

/// How to normalise the text the catalogue prints: the schema's own qualification is dropped,
/// and a schema tenant's id (embedded in its wall policy) becomes a placeholder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Normalise {
    /// The tenant whose id appears in the schema's policies, if any.
    pub(crate) tenant: Option<TenantId>,
}

type ColumnRow = (String, String, String, bool, Option<String>, String, String);
type PolicyRow = (
    String,
    String,
    String,
    bool,
    Vec<String>,
    Option<String>,
    Option<String>,
);

/// The snapshot of `schema` on `conn`'s database, read in a read-only transaction; `None` when
/// the schema does not exist.
pub(crate) async fn snapshot(
    conn: &mut PgConnection,
    schema: &Ident,
    normalise: Normalise,
) -> Result<Option<Snapshot>> {
    let mut tx = conn.begin().await.map_db(Entity::Tenant)?;
    let read = async {
        sqlx::query("SET TRANSACTION READ ONLY")
            .execute(&mut *tx)
            .await
            .map_db(Entity::Tenant)?;
        // With the schema alone on the search path, the catalogue prints its objects unqualified.
        let quoted: Option<String> = sqlx::query_scalar(
            "SELECT set_config('search_path', quote_ident(nspname), true) \
             FROM pg_namespace WHERE nspname = $1",
        )
        .bind(schema.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_db(Entity::Tenant)?;
        let Some(quoted) = quoted else {
            return Ok(None);
        };
        let text = Text {
            prefix: format!("{quoted}."),
            tenant: normalise.tenant.map(|t| t.to_string()),
        };
        let mut snap = read_objects(&mut tx, schema, &text).await?;
        snap.version = current_version(&mut tx).await?;
        Ok(Some(snap))
    }
    .await;
    let _ = tx.rollback().await;
    read
}

/// Normalises definitions.
struct Text {
    prefix: String,
    tenant: Option<String>,
}

impl Text {
    fn clean(&self, raw: &str) -> String {
        let text = raw.replace(&self.prefix, "");
        match &self.tenant {
            Some(id) => text.replace(id, TENANT_PLACEHOLDER),
            None => text,
        }
    }
}

async fn read_objects(conn: &mut PgConnection, schema: &Ident, text: &Text) -> Result<Snapshot> {
    let mut snap = Snapshot::default();
    let name = schema.as_str();
    let tables: Vec<(String, String, bool, bool, Option<String>)> = sqlx::query_as(
        "SELECT c.relname::text, c.relkind::text, c.relrowsecurity, c.relforcerowsecurity, \
                CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname <> $2",
    )
    .bind(name)
    .bind(HISTORY)
    .fetch_all(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    for (table, kind, enabled, forced, view) in tables {
        let what = match kind.as_str() {
            "v" => "view",
            "m" => "materialized view",
            "f" => "foreign table",
            "p" => "partitioned table",
            _ => "table",
        };
        let mut definition = format!(
            "{what}; row security {}, {}",
            if enabled { "enabled" } else { "disabled" },
            if forced { "forced" } else { "not forced" }
        );
        if let Some(view) = view {
            definition.push_str(&format!("; {}", text.clean(view.trim())));
        }
        snap.put(ObjectKind::Table, None, &table, definition);
    }

    let columns: Vec<ColumnRow> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), \
                a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, \
                a.attgenerated::text \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname <> $2 \
           AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(name)
    .bind(HISTORY)
    .fetch_all(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    for (table, column, ty, not_null, default, identity, generated) in columns {
        let mut definition = text.clean(&ty);
        if not_null {
            definition.push_str(" not null");
        }
        match (generated.as_str(), default) {
            ("s", Some(expr)) => {
                definition.push_str(&format!(" generated always as ({})", text.clean(&expr)))
            }
            (_, Some(expr)) => definition.push_str(&format!(" default {}", text.clean(&expr))),
            _ => {}
        }
        match identity.as_str() {
            "a" => definition.push_str(" generated always as identity"),
            "d" => definition.push_str(" generated by default as identity"),
            _ => {}
        }
        snap.put(ObjectKind::Column, Some(&table), &column, definition);
    }

    let indexes: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT t.relname::text, i.relname::text, pg_get_indexdef(x.indexrelid), x.indisvalid \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = $1 AND t.relname <> $2",
    )
    .bind(name)
    .bind(HISTORY)
    .fetch_all(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    for (table, index, def, valid) in indexes {
        let mut definition = text.clean(&def);
        if !valid {
            definition.push_str(" (invalid)");
        }
        snap.put(ObjectKind::Index, Some(&table), &index, definition);
    }

    let constraints: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT t.relname::text, k.conname::text, pg_get_constraintdef(k.oid) \
         FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = $1 AND t.relname <> $2",
    )
    .bind(name)
    .bind(HISTORY)
    .fetch_all(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    for (table, constraint, def) in constraints {
        snap.put(
            ObjectKind::Constraint,
            Some(&table),
            &constraint,
            text.clean(&def),
        );
    }

    let policies: Vec<PolicyRow> = sqlx::query_as(
        "SELECT c.relname::text, p.polname::text, p.polcmd::text, p.polpermissive, \
                ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END \
                      FROM unnest(p.polroles) r ORDER BY 1), \
                pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid) \
         FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    for (table, policy, cmd, permissive, roles, using, check) in policies {
        let command = match cmd.as_str() {
            "r" => "select",
            "a" => "insert",
            "w" => "update",
            "d" => "delete",
            _ => "all",
        };
        let mut definition = format!(
            "{} for {command} to {}",
            if permissive {
                "permissive"
            } else {
                "restrictive"
            },
            roles.join(", ")
        );
        if let Some(using) = using {
            definition.push_str(&format!(" using ({})", text.clean(&using)));
        }
        if let Some(check) = check {
            definition.push_str(&format!(" with check ({})", text.clean(&check)));
        }
        snap.put(ObjectKind::Policy, Some(&table), &policy, definition);
    }

    let types: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT t.typname::text, t.typtype::text, \
                CASE t.typtype \
                  WHEN 'e' THEN array_to_string(ARRAY(SELECT e.enumlabel::text FROM pg_enum e \
                                WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder), ', ') \
                  WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod) END \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE n.nspname = $1 AND t.typtype IN ('e', 'd')",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .map_db(Entity::Tenant)?;
    for (ty, kind, body) in types {
        let what = if kind == "e" { "enum" } else { "domain" };
        let body = text.clean(body.as_deref().unwrap_or(""));
        snap.put(ObjectKind::Type, None, &ty, format!("{what} ({body})"));
    }
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_and_the_tenant_are_normalised_away() {
        let id = TenantId::new();
        let text = Text {
            prefix: "tm_t_acme.".to_owned(),
            tenant: Some(id.to_string()),
        };
        assert_eq!(
            text.clean(&format!(
                "CREATE INDEX i ON tm_t_acme.companies USING btree (x) WHERE t = '{id}'"
            )),
            "CREATE INDEX i ON companies USING btree (x) WHERE t = '<tenant>'"
        );
    }
}
