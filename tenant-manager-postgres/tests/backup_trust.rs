//! Backups never hand tenant-shaped data or code to a superuser, and restores trust only the
//! catalogue: against the real Postgres and the real pg_dump / pg_restore.
//!
//! - A tenant's CHECK constraint calls a function of the tenant's that, run with a superuser
//!   at hand, makes the tenant's role a superuser (it first `RESET ROLE`s, to get past a
//!   `pg_restore --role`). After a backup and a restore the role is still unprivileged, and
//!   the function did run during the restore, as a login that is not the admin.
//! - A tampered artifact whose store checksum (trailer) was made to match it is refused.
//! - No login made for an operation is left behind; no work file is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use sqlx::{Connection, PgConnection};
use tenant_manager_core::backup_store::ObjectBackupStore;
use tenant_manager_core::{Backup, BackupRecord, Isolation, Tenant};
use tenant_manager_postgres::{BackupConfig, PgDumpBackup};

use common::{Env, add_companies, company_names};

struct Setup {
    env: Env,
    backup: PgDumpBackup,
    dir: PathBuf,
}

impl Setup {
    async fn new() -> Self {
        let env = Env::new().await;
        let dir = std::env::temp_dir().join(format!("tmbackuptrust_{}", env.tag));
        let store = Arc::new(ObjectBackupStore::local(dir.join("store")));
        let config = BackupConfig::default().with_work_dir(dir.join("work"));
        let backup = PgDumpBackup::new(env.storage.clone(), store, config);
        Self { env, backup, dir }
    }

    /// An active tenant `name` with the company Initech, backed up, then given Hooli: the
    /// tenant and its backup's record.
    async fn backed_up_then_changed(
        &self,
        name: &str,
        isolation: Isolation,
    ) -> (Tenant, BackupRecord) {
        let tenant = self.env.active(name, isolation).await;
        add_companies(&self.env, &tenant, &["Initech"]).await;
        let record = self.backup.backup(&tenant).await.expect("backup");
        add_companies(&self.env, &tenant, &["Hooli"]).await;
        (tenant, record)
    }

    fn work_entries(&self) -> usize {
        std::fs::read_dir(self.dir.join("work"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn role_of(tenant: &Tenant) -> String {
    tenant
        .role_name()
        .expect("database and schema tenants have a role")
}

/// The schema the tenant's objects live in.
fn schema_of(tenant: &Tenant) -> String {
    match tenant.isolation {
        Isolation::Schema => tenant.placement.schema.clone().expect("schema"),
        _ => "public".to_owned(),
    }
}

/// Where the trap records who called it: inside the tenant's database for database
/// isolation (the restore replaces the whole database, so its calls are restored there), and
/// outside the tenant's schema for schema isolation (a restore stages the schema under
/// another name before it takes its place).
fn log_table(tenant: &Tenant) -> String {
    match tenant.isolation {
        Isolation::Schema => format!("\"trap_{}\".calls", tenant.slug.as_str()),
        _ => "\"public\".calls".to_owned(),
    }
}

/// As the tenant's role (an admin session that `SET ROLE`s, as the pools do): a table whose
/// CHECK calls the tenant's function, with a row; then the function is swapped for one that
/// escalates whenever the session it runs in belongs to a superuser.
async fn plant_trap(env: &Env, tenant: &Tenant) {
    let role = role_of(tenant);
    let schema = schema_of(tenant);
    let log = log_table(tenant);
    let mut conn = env.admin(&tenant.placement.database).await;
    if tenant.isolation == Isolation::Schema {
        let side = format!("trap_{}", tenant.slug.as_str());
        exec(
            &mut conn,
            &format!(
                "CREATE SCHEMA \"{side}\"; CREATE TABLE {log} (who text NOT NULL); \
                 GRANT USAGE ON SCHEMA \"{side}\" TO PUBLIC; \
                 GRANT SELECT, INSERT ON {log} TO PUBLIC"
            ),
        )
        .await;
    }
    exec(&mut conn, &format!("SET ROLE \"{role}\"")).await;
    if tenant.isolation != Isolation::Schema {
        exec(
            &mut conn,
            &format!("CREATE TABLE {log} (who text NOT NULL)"),
        )
        .await;
    }
    exec(
        &mut conn,
        &format!(
            "CREATE FUNCTION \"{schema}\".tm_check(x int) RETURNS boolean LANGUAGE sql \
               AS 'SELECT true'; \
             CREATE TABLE \"{schema}\".guarded (x int CHECK (\"{schema}\".tm_check(x))); \
             INSERT INTO \"{schema}\".guarded VALUES (1)"
        ),
    )
    .await;
    exec(
        &mut conn,
        &format!(
            "CREATE OR REPLACE FUNCTION \"{schema}\".tm_check(x int) RETURNS boolean \
             LANGUAGE plpgsql AS $f$ \
             DECLARE was text := current_user; \
             BEGIN \
               EXECUTE 'RESET ROLE'; \
               IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN \
                 EXECUTE 'ALTER ROLE \"{role}\" SUPERUSER'; \
               END IF; \
               BEGIN INSERT INTO {log} VALUES (session_user); \
               EXCEPTION WHEN undefined_table THEN NULL; END; \
               EXECUTE pg_catalog.format('SET ROLE %I', was); \
               RETURN true; \
             END $f$"
        ),
    )
    .await;
    let _ = conn.close().await;
}

async fn is_superuser(env: &Env, role: &str) -> bool {
    let mut conn = env.admin("postgres").await;
    let sup: bool = sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = $1")
        .bind(role)
        .fetch_one(&mut conn)
        .await
        .expect("role");
    let _ = conn.close().await;
    sup
}

/// Who ran the tenant's function, as recorded by it in the restored storage.
async fn callers(env: &Env, tenant: &Tenant) -> Vec<String> {
    let mut conn = env.admin(&tenant.placement.database).await;
    let who: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT who FROM {} ORDER BY who",
        log_table(tenant)
    )))
    .fetch_all(&mut conn)
    .await
    .expect("calls");
    let _ = conn.close().await;
    who
}

async fn operation_logins(env: &Env) -> i64 {
    let mut conn = env.admin("postgres").await;
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid \
         JOIN pg_roles t ON t.oid = m.roleid \
         WHERE r.rolname LIKE 'tm\\_backup\\_%' AND t.rolname LIKE $1",
    )
    .bind(format!("%{}%", env.tag))
    .fetch_one(&mut conn)
    .await
    .expect("count");
    let _ = conn.close().await;
    n
}

async fn restore_runs_tenant_code_unprivileged(isolation: Isolation) {
    let s = Setup::new().await;
    let tenant = s.env.active("trap", isolation).await;
    add_companies(&s.env, &tenant, &["Initech"]).await;
    plant_trap(&s.env, &tenant).await;
    let role = role_of(&tenant);
    assert!(!is_superuser(&s.env, &role).await);

    let record = s.backup.backup(&tenant).await.expect("backup");
    s.backup.restore(record.id, &tenant).await.expect("restore");

    assert!(
        !is_superuser(&s.env, &role).await,
        "the tenant's function ran with a superuser's session during backup or restore"
    );
    let who = callers(&s.env, &tenant).await;
    assert!(
        who.iter().any(|w| w.starts_with("tm_backup_")),
        "the trap never ran during the restore: {who:?}"
    );
    assert!(
        who.iter().all(|w| w.starts_with("tm_backup_")),
        "the tenant's function ran in a session of {who:?}"
    );
    assert_eq!(company_names(&s.env, &tenant).await, ["Initech"]);
    assert_eq!(operation_logins(&s.env).await, 0, "operation login left");
    assert_eq!(s.work_entries(), 0, "work files left");
    // What the restore created belongs to the tenant's role.
    let mut conn = s.env.admin(&tenant.placement.database).await;
    let owners: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT pg_get_userbyid(c.relowner)::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
    )
    .bind(schema_of(&tenant))
    .fetch_all(&mut conn)
    .await
    .expect("owners");
    let _ = conn.close().await;
    assert_eq!(owners, [role]);
}

#[tokio::test]
async fn a_database_tenants_check_function_never_runs_as_a_superuser() {
    restore_runs_tenant_code_unprivileged(Isolation::Database).await;
}

#[tokio::test]
async fn a_schema_tenants_check_function_never_runs_as_a_superuser() {
    restore_runs_tenant_code_unprivileged(Isolation::Schema).await;
}

#[tokio::test]
async fn a_tampered_artifact_with_a_matching_store_checksum_is_refused() {
    let s = Setup::new().await;
    let (tenant, record) = s.backed_up_then_changed("tamper", Isolation::Shared).await;

    // The local store keeps the content followed by a 75-byte `tm-sha256:<hex>\n` trailer:
    // tamper with the content and write the trailer that matches it.
    let artifact = s.dir.join("store").join(&record.key);
    let stored = std::fs::read(&artifact).expect("artifact");
    let mut bytes = stored[..stored.len() - 75].to_vec();
    let i = bytes.len() / 3;
    bytes[i] ^= 0x01;
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    bytes.extend_from_slice(format!("tm-sha256:{sha}\n").as_bytes());
    std::fs::write(&artifact, &bytes).expect("tamper");

    let err = s
        .backup
        .restore(record.id, &tenant)
        .await
        .expect_err("refused");
    assert_eq!(err.field(), Some("backup"), "{err}");
    assert_eq!(
        company_names(&s.env, &tenant).await,
        ["Hooli", "Initech"],
        "the tenant's rows were touched"
    );
    assert_eq!(s.work_entries(), 0, "work files left");
}

#[tokio::test]
async fn shared_rows_are_restored_under_row_level_security_without_a_superuser() {
    let s = Setup::new().await;
    let tenant = s.env.active("rows", Isolation::Shared).await;
    let neighbour = s.env.active("next", Isolation::Shared).await;
    add_companies(&s.env, &tenant, &["Initech"]).await;
    add_companies(&s.env, &neighbour, &["Umbrella"]).await;
    let record = s.backup.backup(&tenant).await.expect("backup");
    add_companies(&s.env, &tenant, &["Hooli"]).await;
    // Who writes the rows back, and in which verified tenant context.
    let mut conn = s.env.admin(&tenant.placement.database).await;
    exec(
        &mut conn,
        "CREATE TABLE public.restore_log (who text, superuser boolean, bypass_rls boolean, \
           scope text); \
         GRANT INSERT ON public.restore_log TO PUBLIC; \
         CREATE FUNCTION public.log_restore() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN \
           INSERT INTO public.restore_log SELECT session_user, r.rolsuper, r.rolbypassrls, \
             (SELECT s.tenant::text FROM wall.sessions s WHERE s.pid = pg_backend_pid() \
                AND s.token = currval('wall.session_token')) FROM pg_catalog.pg_roles r \
             WHERE r.rolname = session_user; \
           RETURN NEW; END $f$; \
         CREATE TRIGGER log_restore BEFORE INSERT ON public.companies \
           FOR EACH ROW EXECUTE FUNCTION public.log_restore()",
    )
    .await;
    let _ = conn.close().await;
    s.backup.restore(record.id, &tenant).await.expect("restore");
    assert_eq!(company_names(&s.env, &tenant).await, ["Initech"]);
    assert_eq!(company_names(&s.env, &neighbour).await, ["Umbrella"]);
    let mut conn = s.env.admin(&tenant.placement.database).await;
    let log: Vec<(String, bool, bool, Option<String>)> =
        sqlx::query_as("SELECT who, superuser, bypass_rls, scope FROM public.restore_log")
            .fetch_all(&mut conn)
            .await
            .expect("log");
    let _ = conn.close().await;
    assert_eq!(log.len(), 1, "{log:?}");
    let (who, superuser, bypass_rls, scope) = &log[0];
    assert!(who.starts_with("tm_backup_"), "restored by {who}");
    assert!(!superuser && !bypass_rls, "{log:?}");
    assert_eq!(scope.as_deref(), Some(tenant.id.to_string().as_str()));
    // The operation's login was granted the shared tables, and is gone with its grants.
    let mut conn = s.env.admin(&tenant.placement.database).await;
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.role_table_grants \
         WHERE grantee LIKE 'tm\\_backup\\_%'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("count");
    let _ = conn.close().await;
    assert_eq!(left, 0);
}

/// A login a crashed operation left (an hour old, no session) is dropped by the next backup,
/// also when it holds grants on the shared tables; a recent one is left to its operation.
#[tokio::test]
async fn logins_left_by_a_crash_are_swept_and_recent_ones_kept() {
    let s = Setup::new().await;
    let tenant = s.env.active("sweep", Isolation::Schema).await;
    let shared = s.env.active("sweeprows", Isolation::Shared).await;
    let suffix = &tenant_manager_test_support::unique_suffix()[..8];
    let stale = format!("tm_backup_stale{suffix}");
    let stale_rows = format!("tm_backup_rows{suffix}");
    let recent = format!("tm_backup_recent{suffix}");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut conn = s.env.admin("postgres").await;
    for (name, created) in [
        (&stale, now - 7200),
        (&stale_rows, now - 7200),
        (&recent, now),
    ] {
        exec(
            &mut conn,
            &format!(
                "CREATE ROLE \"{name}\" LOGIN IN ROLE \"{}\"; \
                 COMMENT ON ROLE \"{name}\" IS 'tenant-manager:backup-login:{created}'",
                role_of(&tenant)
            ),
        )
        .await;
    }
    let mut shared_db = s.env.admin(&shared.placement.database).await;
    exec(
        &mut shared_db,
        &format!("GRANT SELECT ON public.companies TO \"{stale_rows}\""),
    )
    .await;
    let _ = shared_db.close().await;

    s.backup.backup(&tenant).await.expect("schema backup");
    s.backup.backup(&shared).await.expect("shared backup");

    let left: Vec<String> = sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1) ORDER BY rolname",
    )
    .bind(vec![stale.clone(), stale_rows.clone(), recent.clone()])
    .fetch_all(&mut conn)
    .await
    .expect("roles");
    exec(&mut conn, &format!("DROP ROLE IF EXISTS \"{recent}\"")).await;
    let _ = conn.close().await;
    assert_eq!(left, [recent]);
}

/// Without `session_replication_role` (a superuser's setting), foreign keys among a shared
/// tenant's rows still let a restore through: parents are inserted before children and
/// deleted after them, whichever order the tables' names give.
#[tokio::test]
async fn shared_rows_with_foreign_keys_are_restored_in_key_order() {
    let s = Setup::new().await;
    let tenant = s.env.active("fkeys", Isolation::Shared).await;
    let mut conn = s.env.admin(&tenant.placement.database).await;
    // Deleting `fk_a_parent` first and inserting `fk_c_child` first both violate a key.
    exec(
        &mut conn,
        "CREATE TABLE public.fk_a_parent (tenant_id uuid, id int, PRIMARY KEY (tenant_id, id)); \
         CREATE TABLE public.fk_b_child (tenant_id uuid, id int, parent int, \
           FOREIGN KEY (tenant_id, parent) REFERENCES public.fk_a_parent (tenant_id, id)); \
         CREATE TABLE public.fk_d_parent (tenant_id uuid, id int, PRIMARY KEY (tenant_id, id)); \
         CREATE TABLE public.fk_c_child (tenant_id uuid, id int, parent int, \
           FOREIGN KEY (tenant_id, parent) REFERENCES public.fk_d_parent (tenant_id, id))",
    )
    .await;
    let t = tenant.id.to_string();
    exec(
        &mut conn,
        &format!(
            "INSERT INTO public.fk_a_parent VALUES ('{t}', 1), ('{t}', 2); \
             INSERT INTO public.fk_b_child VALUES ('{t}', 10, 1); \
             INSERT INTO public.fk_d_parent VALUES ('{t}', 1); \
             INSERT INTO public.fk_c_child VALUES ('{t}', 20, 1), ('{t}', 21, 1)"
        ),
    )
    .await;
    let record = s.backup.backup(&tenant).await.expect("backup");
    exec(
        &mut conn,
        &format!(
            "INSERT INTO public.fk_b_child VALUES ('{t}', 11, 2); \
             DELETE FROM public.fk_c_child WHERE id = 21"
        ),
    )
    .await;
    s.backup.restore(record.id, &tenant).await.expect("restore");
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM public.fk_a_parent), (SELECT count(*) FROM public.fk_b_child), \
                (SELECT count(*) FROM public.fk_d_parent), (SELECT count(*) FROM public.fk_c_child)",
    )
    .fetch_one(&mut conn)
    .await
    .expect("counts");
    let _ = conn.close().await;
    assert_eq!(counts, (2, 1, 1, 2));
}

/// A schema restore interrupted at its last step (the restore into the tenant's database:
/// the future dropped, its `pg_restore` killed, as when the process dies) leaves the tenant's
/// schema and rows as they were, and the restore can simply be run again.
#[cfg(unix)]
#[tokio::test]
async fn an_interrupted_schema_restore_leaves_the_tenant_intact_and_can_be_rerun() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new().await;
    let (tenant, record) = s.backed_up_then_changed("halt", Isolation::Schema).await;

    // Tools that stop for good at the restore into the tenant's database.
    let bin = s.dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let marker = s.dir.join("halted");
    let real = |tool: &str| {
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .expect("which");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    // The first pg_restore stages the backup in a scratch database; the second writes into
    // the tenant's database: that one never ends.
    let count = s.dir.join("restores");
    std::fs::write(
        bin.join("pg_restore"),
        format!(
            "#!/bin/sh\ncase \"$1\" in --version) exec '{real}' \"$@\";; esac\n\
             n=$(cat '{count}' 2>/dev/null || echo 0); n=$((n + 1)); echo $n > '{count}'\n\
             if [ $n -ge 2 ]; then touch '{marker}'; exec sleep 600; fi\n\
             exec '{real}' \"$@\"\n",
            real = real("pg_restore"),
            count = count.display(),
            marker = marker.display(),
        ),
    )
    .expect("pg_restore");
    std::fs::write(
        bin.join("pg_dump"),
        format!("#!/bin/sh\nexec '{}' \"$@\"\n", real("pg_dump")),
    )
    .expect("pg_dump");
    for tool in ["pg_restore", "pg_dump"] {
        std::fs::set_permissions(bin.join(tool), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    let store = Arc::new(ObjectBackupStore::local(s.dir.join("store")));
    let halting = PgDumpBackup::new(
        s.env.storage.clone(),
        store,
        BackupConfig::default()
            .with_work_dir(s.dir.join("work"))
            .with_tools(tenant_manager_postgres::PgTools::from_path().with_bin_dir(&bin)),
    );
    {
        let restore = halting.restore(record.id, &tenant);
        tokio::pin!(restore);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !marker.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "never reached the last step"
            );
            tokio::select! {
                done = &mut restore => panic!("the restore ended: {done:?}"),
                () = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
            }
        }
    }
    // The interrupted restore's login is left to the sweep (an hour later); dropped here.
    let mut conn = s.env.admin("postgres").await;
    let logins: Vec<String> = sqlx::query_scalar(
        "SELECT r.rolname::text FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid \
         JOIN pg_roles t ON t.oid = m.roleid WHERE r.rolname LIKE 'tm\\_backup\\_%' AND t.rolname = $1",
    )
    .bind(role_of(&tenant))
    .fetch_all(&mut conn)
    .await
    .expect("logins");
    for login in logins {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{login}'; \
             DROP ROLE IF EXISTS \"{login}\""
        )))
        .execute(&mut conn)
        .await;
    }
    let _ = conn.close().await;

    assert_eq!(
        company_names(&s.env, &tenant).await,
        ["Hooli", "Initech"],
        "the tenant's rows after an interrupted restore"
    );
    s.backup
        .restore(record.id, &tenant)
        .await
        .expect("run again");
    assert_eq!(company_names(&s.env, &tenant).await, ["Initech"]);
    let mut conn = s.env.admin(&tenant.placement.database).await;
    let staging: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tm\\_new\\_%' OR nspname LIKE 'tm\\_old\\_%'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("schemas");
    let _ = conn.close().await;
    assert_eq!(staging, 0, "staging schemas left");
}
