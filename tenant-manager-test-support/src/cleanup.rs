//! Dropping what a test or bench created on the server: databases first (with their sessions),
//! then roles. For `Drop` impls, which run outside any runtime: [`block_on_thread`].

use std::future::Future;

use sqlx::{Connection, PgConnection};

/// A quoted Postgres identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Drops every database, then every role, whose name contains `containing` (when given) or
/// is one of `listed`. Best effort: what is already gone or cannot be dropped is skipped.
pub async fn drop_databases_and_roles(
    admin_url: &str,
    containing: Option<&str>,
    listed: &[String],
) {
    let Ok(mut conn) = PgConnection::connect(admin_url).await else {
        return;
    };
    // An empty needle would match every name: `containing: None` matches none.
    let needle = containing.filter(|c| !c.is_empty());
    let databases = names(
        &mut conn,
        "SELECT datname::text FROM pg_database",
        needle,
        listed,
    )
    .await;
    for database in databases {
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&database)
        );
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await;
    }
    let roles = names(
        &mut conn,
        "SELECT rolname::text FROM pg_roles",
        needle,
        listed,
    )
    .await;
    // Many roles at once (benches make thousands); one by one where a batch fails.
    for chunk in roles.chunks(200) {
        let quoted: Vec<String> = chunk.iter().map(|r| quote_ident(r)).collect();
        let batch = format!("DROP ROLE IF EXISTS {}", quoted.join(", "));
        if sqlx::raw_sql(sqlx::AssertSqlSafe(batch))
            .execute(&mut conn)
            .await
            .is_err()
        {
            for role in quoted {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
    let _ = conn.close().await;
}

/// The names `catalog` (a query of one text column) lists that contain `needle` or are listed.
async fn names(
    conn: &mut PgConnection,
    catalog: &'static str,
    needle: Option<&str>,
    listed: &[String],
) -> Vec<String> {
    let sql = format!(
        "SELECT name FROM ({catalog}) AS c(name) \
         WHERE ($1::text IS NOT NULL AND strpos(name, $1) > 0) OR name = ANY($2)"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(needle)
        .bind(listed)
        .fetch_all(conn)
        .await
        .unwrap_or_default()
}

/// [`drop_databases_and_roles`] from a `Drop` impl.
pub fn drop_databases_and_roles_blocking(
    admin_url: &str,
    containing: Option<&str>,
    listed: &[String],
) {
    let (url, containing, listed) = (
        admin_url.to_owned(),
        containing.map(str::to_owned),
        listed.to_vec(),
    );
    block_on_thread(async move {
        drop_databases_and_roles(&url, containing.as_deref(), &listed).await;
    });
}

/// Runs `work` to completion on a private runtime on its own thread and waits for it: async
/// cleanup from a `Drop` impl, which may run inside or outside a runtime.
pub fn block_on_thread(work: impl Future<Output = ()> + Send + 'static) {
    let handle = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            runtime.block_on(work);
        }
    });
    let _ = handle.join();
}
