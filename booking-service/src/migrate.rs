//! The database schema: `booking-service migrate` applies the migrations and exits, and the service
//! applies them at start-up the same way (docs/OPERATIONS.md, "Roles" and "Deploying").
//!
//! On PostgreSQL the whole run is one transaction that first takes a transaction-level advisory
//! lock, so instances starting at once apply each migration exactly once (the others wait, then
//! find nothing to do), and it works through PgBouncer in transaction pooling mode, where a
//! session-level lock (what sqlx's migrator takes by itself) could be left behind on a pooled
//! server connection. When nothing is pending nothing is written: a login role that owns nothing
//! can start the service once the owner has migrated.
//!
//! Versions in the database that this binary does not know are accepted (with a warning): a newer
//! release migrated first, and an older instance must still start during a staged rollout or a
//! rollback. Migrations are therefore written to be compatible with the release before them.

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Connection, PgPool};
use std::collections::HashMap;

/// The embedded migrations of each database, to run under the lock taken here (sqlx's own is a
/// session lock) and accepting versions a newer release added.
fn migrator(mut migrator: Migrator) -> Migrator {
    migrator.set_locking(false);
    migrator.set_ignore_missing(true);
    migrator
}

fn postgres_migrations() -> Migrator {
    migrator(sqlx::migrate!("../migrations/postgres"))
}

fn sqlite_migrations() -> Migrator {
    migrator(sqlx::migrate!("../migrations/sqlite"))
}

/// The advisory lock the PostgreSQL migrations run under (two-key form, so it never meets the
/// one-key locks the service takes per caller). Advisory locks are per database.
const LOCK: (i32, i32) = (0x626b_6e67, 1); // "bkng", 1

/// How long a migration waits for a table another session holds (a backup, a long query) before
/// it gives up and changes nothing: while it waits, every booking waits behind it.
pub const LOCK_TIMEOUT_SECS: u32 = 5;

/// The role every serving login role is a member of; it may read which migrations are applied.
const READER_ROLE: &str = "booking_app";

/// One migration applied by this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub version: i64,
    pub description: String,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04} {}", self.version, self.description)
    }
}

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("DATABASE_URL must start with postgres:// or sqlite:// (got {0})")]
    UnknownDatabase(String),
    #[error("migration {0} failed part-way earlier and must be repaired by hand")]
    Dirty(i64),
    #[error("migration {0} in the database differs from the one this binary carries")]
    Changed(i64),
    #[error(
        "{pending} migration(s) pending and the role {role} may not apply them: run `booking-service migrate` \
         as the schema owner first ({source})"
    )]
    NotOwner { pending: usize, role: String, source: sqlx::Error },
    #[error(
        "a migration waited over {LOCK_TIMEOUT_SECS} s for a table another session holds (a backup, a long \
         query) and changed nothing: run `booking-service migrate` again when it has finished ({0})"
    )]
    LockTimeout(sqlx::Error),
    #[error(
        "the role {0} cannot read _sqlx_migrations: run `booking-service migrate` once as the schema owner \
         (it grants {READER_ROLE} the right to read it) and make {0} a member of {READER_ROLE}"
    )]
    CannotRead(String),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Connects to the database `database_url` names and applies what is pending (the `migrate`
/// command). A SQLite file and its folder are created if missing.
pub async fn database(database_url: &str) -> Result<Vec<Applied>, MigrateError> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        let mut conn = PgConnection::connect(database_url).await?;
        let applied = postgres_on(&mut conn).await;
        conn.close().await.ok();
        applied
    } else if database_url.starts_with("sqlite:") {
        let options = crate::store::sqlite_options(database_url)?;
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
        let applied = sqlite(&pool).await;
        pool.close().await;
        applied
    } else {
        Err(MigrateError::UnknownDatabase(crate::config::redact(database_url)))
    }
}

/// Applies the pending PostgreSQL migrations on a connection of `pool`.
pub async fn postgres(pool: &PgPool) -> Result<Vec<Applied>, MigrateError> {
    let mut conn = pool.acquire().await?;
    postgres_on(&mut conn).await
}

async fn postgres_on(conn: &mut PgConnection) -> Result<Vec<Applied>, MigrateError> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)").bind(LOCK.0).bind(LOCK.1).execute(&mut *tx).await?;
    // After the lock above, which another instance's migration may hold for as long as it runs.
    sqlx::query(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT_SECS}s'")).execute(&mut *tx).await?;
    let (role, exists, readable, owned): (String, bool, bool, bool) = sqlx::query_as(
        "SELECT current_user::text,
                to_regclass('_sqlx_migrations') IS NOT NULL,
                to_regclass('_sqlx_migrations') IS NOT NULL AND has_table_privilege('_sqlx_migrations', 'SELECT'),
                EXISTS (SELECT 1 FROM pg_tables WHERE tablename = '_sqlx_migrations'
                          AND schemaname = current_schema() AND tableowner = current_user)",
    )
    .fetch_one(&mut *tx)
    .await?;
    if exists && !readable {
        return Err(MigrateError::CannotRead(role));
    }
    let applied = if exists { applied_postgres(&mut tx).await? } else { HashMap::new() };
    let migrations = postgres_migrations();
    let pending = pending(&migrations, &applied)?;
    if !pending.is_empty() {
        if let Err(e) = migrations.run_direct(&mut *tx).await {
            return Err(match e {
                sqlx::migrate::MigrateError::Execute(source)
                | sqlx::migrate::MigrateError::ExecuteMigration(source, _)
                    if is_permission_denied(&source) =>
                {
                    MigrateError::NotOwner { pending: pending.len(), role, source }
                }
                sqlx::migrate::MigrateError::Execute(source)
                | sqlx::migrate::MigrateError::ExecuteMigration(source, _)
                    if has_code(&source, "55P03") =>
                {
                    MigrateError::LockTimeout(source)
                }
                other => other.into(),
            });
        }
    }
    if owned || !exists {
        // Serving roles (members of booking_app) check at start that nothing is pending.
        sqlx::query(&format!("GRANT SELECT ON _sqlx_migrations TO {READER_ROLE}")).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(pending)
}

/// Applies the pending SQLite migrations. `BEGIN IMMEDIATE` takes the database's write lock first,
/// so two processes migrating one file apply each migration once.
pub async fn sqlite(pool: &sqlx::SqlitePool) -> Result<Vec<Applied>, MigrateError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let (exists,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(&mut *tx)
    .await?;
    let applied = if exists {
        let rows: Vec<(i64, Vec<u8>, bool)> =
            sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations").fetch_all(&mut *tx).await?;
        by_version(rows)
    } else {
        HashMap::new()
    };
    let migrations = sqlite_migrations();
    let pending = pending(&migrations, &applied)?;
    if !pending.is_empty() {
        migrations.run_direct(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(pending)
}

async fn applied_postgres(conn: &mut PgConnection) -> Result<HashMap<i64, (Vec<u8>, bool)>, sqlx::Error> {
    let rows: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations").fetch_all(conn).await?;
    Ok(by_version(rows))
}

/// Version → (checksum, succeeded) of every migration the database records.
fn by_version(rows: Vec<(i64, Vec<u8>, bool)>) -> HashMap<i64, (Vec<u8>, bool)> {
    rows.into_iter().map(|(version, checksum, success)| (version, (checksum, success))).collect()
}

/// The migrations of `migrator` the database lacks, in order; refuses a database where one failed
/// half-way or where an applied migration was changed since.
fn pending(migrator: &Migrator, applied: &HashMap<i64, (Vec<u8>, bool)>) -> Result<Vec<Applied>, MigrateError> {
    if let Some(version) = applied.iter().filter(|(_, (_, ok))| !ok).map(|(v, _)| *v).min() {
        return Err(MigrateError::Dirty(version));
    }
    let known: Vec<_> = migrator.iter().filter(|m| !m.migration_type.is_down_migration()).collect();
    let mut unknown: Vec<i64> = applied.keys().copied().filter(|v| !known.iter().any(|m| m.version == *v)).collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        tracing::warn!(
            versions = ?unknown,
            "the database has migrations this binary does not know: a newer release migrated it"
        );
    }
    let mut pending = Vec::new();
    for migration in known {
        match applied.get(&migration.version) {
            Some((checksum, _)) if checksum.as_slice() != &*migration.checksum => {
                return Err(MigrateError::Changed(migration.version))
            }
            Some(_) => {}
            None => {
                pending.push(Applied { version: migration.version, description: migration.description.to_string() })
            }
        }
    }
    Ok(pending)
}

fn is_permission_denied(error: &sqlx::Error) -> bool {
    has_code(error, "42501") // insufficient_privilege
}

/// Whether PostgreSQL refused with this SQLSTATE (`55P03`: lock_not_available).
fn has_code(error: &sqlx::Error, sqlstate: &str) -> bool {
    error.as_database_error().and_then(|e| e.code()).is_some_and(|code| code == sqlstate)
}
