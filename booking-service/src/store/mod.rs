//! Persistence behind one trait, [`Store`], kept by one implementation, [`SqlStore`], on
//! PostgreSQL or SQLite: the rules are written once (`rules.rs`) over a transaction on either
//! database (`sql.rs`), and only what truly differs lives in `postgres.rs` and `sqlite.rs`. What
//! the store keeps is in `records.rs`, what its methods take and answer in `requests.rs`, and the
//! names it writes into rows in `names.rs`.

mod known;
mod names;
mod postgres;
mod records;
mod requests;
mod rows;
mod rules;
mod schedule;
mod sql;
mod sqlite;
mod webhooks;

pub use crate::links::IssuedLink;
pub use names::{action, event, outbox_kind};
pub use records::*;
pub use requests::*;
pub use sqlite::options as sqlite_options;

use crate::domain::{
    AppointmentId, AppointmentTypeId, ClosureId, Cutoff, DomainError, OrgId, PhoneNumber, ProviderId, Reach, Slot,
    TimeOffId, WebhookId,
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use shared::api::AppointmentStatus;
use std::sync::Arc;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    InvalidState(String),
    #[error("the idempotency key was used with a different request")]
    IdempotencyConflict,
    /// A confirmation link past its expiry.
    #[error("this confirmation link has expired")]
    Expired,
    /// The patient's manage link after the appointment's start: it changes nothing any more.
    #[error("the appointment has already started")]
    Started,
    /// A voice agent asked for an appointment type (named) only staff may book.
    #[error("{0} is booked by the clinic's staff")]
    StaffOnly(String),
    #[error(transparent)]
    Invalid(#[from] DomainError),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_connection_loss(&e) {
            Self::Unavailable(e.to_string())
        } else if e.as_database_error().is_some_and(|d| d.is_foreign_key_violation()) {
            // What the row refers to is not there (say, a signed token's organization that was
            // deleted): nothing to act on, not a fault of the service.
            Self::NotFound
        } else {
            Self::Internal(e.to_string())
        }
    }
}

/// Whether the database went away or cannot write now, rather than refused the statement: a
/// lost or refused connection, an administrator's shutdown or termination, too many connections,
/// a server that only reads (a standby, or a primary demoted by a failover, until traffic moves),
/// or SQLite's write lock held by another process past the busy timeout, or its file or disk failing.
/// The request did not happen (or its outcome is unknown) and a later one can succeed: 503, never
/// 500.
fn is_connection_loss(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLite, whatever the extended code: SQLITE_BUSY (5), SQLITE_READONLY (8, its file moved
        // or made read-only under it), SQLITE_IOERR (10), SQLITE_FULL (13), SQLITE_CANTOPEN (14).
        sqlx::Error::Database(d) if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() => {
            d.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| matches!(c & 0xff, 5 | 8 | 10 | 13 | 14))
        }
        // SQLSTATE class 08 (connection exception), 57P01-57P03 (admin shutdown, crash shutdown,
        // cannot connect now), 53300 (too many connections), 25006 (read-only transaction).
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300" | "25006")
        }),
        // A connection closed under a statement surfaces as a protocol error.
        sqlx::Error::Protocol(m) => m.contains("closed") || m.contains("unexpected end"),
        _ => false,
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Who acts, and in which organization: every tenant query is scoped by it.
#[derive(Debug, Clone)]
pub struct Actor {
    pub org: OrgId,
    pub sub: String,
    /// The Vapi call whose tool call acts, named on the audit rows of what it changes.
    pub call: Option<String>,
}

impl Actor {
    pub fn new(org: OrgId, sub: impl Into<String>) -> Self {
        Self { org, sub: sub.into(), call: None }
    }
}

/// A list's window: its `from` and `to`, either of them absent.
pub type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

#[async_trait]
pub trait Store: Send + Sync {
    /// Whether the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// The connection pools' use (no database round trip).
    fn pool_usage(&self) -> Vec<PoolUsage>;

    /// The outbox's backlog at `now`, across organizations.
    async fn outbox_backlog(&self, now: DateTime<Utc>) -> StoreResult<OutboxBacklog>;

    async fn create_organization(&self, org: &Organization) -> StoreResult<()>;
    async fn settings(&self, org: OrgId) -> StoreResult<Option<ClinicSettings>>;
    /// Replaces the organization's settings, with the audit row, but for the SMS sender when
    /// `keep_sms_from` (kept as stored at that moment); the settings as kept, `None` when there is
    /// no such organization.
    async fn set_settings(
        &self,
        note: &AuditNote<'_>,
        settings: &ClinicSettings,
        keep_sms_from: bool,
    ) -> StoreResult<Option<ClinicSettings>>;
    /// Replaces the organization's Vapi settings, with the audit row; false when there is no such
    /// organization.
    async fn set_vapi_settings(&self, note: &AuditNote<'_>, settings: &VapiSettings) -> StoreResult<bool>;
    /// Keeps a call's record unless one is kept already (a repeated report changes nothing);
    /// true when this one was kept.
    async fn record_call(&self, org: OrgId, call: &CallRecord) -> StoreResult<bool>;
    /// The organization's calls started within `[from, to)`, by start and call id (the sort key;
    /// the UUID of the page request is not used), a page at a time.
    async fn calls(
        &self,
        org: OrgId,
        within: Window,
        page: &PageRequest<(DateTime<Utc>, String)>,
    ) -> StoreResult<Page<CallRecord>>;
    async fn organization(&self, id: OrgId) -> StoreResult<Option<Organization>>;
    /// Renames the organization or moves it to another zone, with its audit row (`Settings`):
    /// every closure not yet over moves to its dates in the new zone, and every booking planned
    /// in the old one plans again. The organization as changed, with the active appointments the
    /// moved closures now meet; `None` when there is no such organization.
    async fn update_organization(
        &self,
        note: &AuditNote<'_>,
        changes: &OrganizationChanges,
    ) -> StoreResult<Option<(Organization, Vec<AppointmentId>)>>;
    /// Removes the organization and everything of it; false when there was none.
    async fn delete_organization(&self, id: OrgId) -> StoreResult<bool>;

    /// Adds a provider, with its audit row.
    async fn create_provider(&self, note: &AuditNote<'_>, provider: &Provider) -> StoreResult<()>;
    /// The organization's providers by name, a page at a time.
    async fn providers(&self, org: OrgId, page: &PageRequest<String>) -> StoreResult<Page<Provider>>;
    async fn provider(&self, org: OrgId, id: ProviderId) -> StoreResult<Option<Provider>>;
    /// The organization's active providers by name, every one (at most [`MAX_ACTIVE_NAMED`]):
    /// those the voice agent offers, however many were deactivated.
    async fn active_providers(&self, org: OrgId) -> StoreResult<Vec<Provider>>;
    /// Changes a provider, with its audit row; `None` without such a provider.
    async fn update_provider(
        &self,
        note: &AuditNote<'_>,
        id: ProviderId,
        changes: &ProviderChanges,
    ) -> StoreResult<Option<Provider>>;

    /// Adds an appointment type, with its audit row.
    async fn create_appointment_type(&self, note: &AuditNote<'_>, kind: &AppointmentType) -> StoreResult<()>;
    /// The organization's appointment types by name, a page at a time.
    async fn appointment_types(&self, org: OrgId, page: &PageRequest<String>) -> StoreResult<Page<AppointmentType>>;
    async fn appointment_type(&self, org: OrgId, id: AppointmentTypeId) -> StoreResult<Option<AppointmentType>>;
    /// The organization's active appointment types by name, as [`Store::active_providers`].
    async fn active_appointment_types(&self, org: OrgId) -> StoreResult<Vec<AppointmentType>>;
    /// Changes an appointment type, with its audit row; `None` without such a type.
    async fn update_appointment_type(
        &self,
        note: &AuditNote<'_>,
        id: AppointmentTypeId,
        changes: &AppointmentTypeChanges,
    ) -> StoreResult<Option<AppointmentType>>;

    /// Adds time off, with its audit row, once no booking of the provider is in flight: the
    /// active appointments it overlaps, committed before it, are listed; none can follow it.
    /// `NotFound` without such a provider.
    async fn create_time_off(&self, actor: &Actor, time_off: &TimeOff) -> StoreResult<Vec<AppointmentId>>;
    /// The provider's time off overlapping `[from, to)` by start, a page at a time.
    async fn time_off(
        &self,
        org: OrgId,
        provider: ProviderId,
        within: Window,
        page: &PageRequest<DateTime<Utc>>,
    ) -> StoreResult<Page<TimeOff>>;
    /// Removes time off, with its audit row; false when there was none.
    async fn delete_time_off(&self, actor: &Actor, id: TimeOffId) -> StoreResult<bool>;
    /// Closes whole days, with the audit row, as `create_time_off` does for every provider of the
    /// organization.
    async fn create_closure(&self, actor: &Actor, closure: &Closure) -> StoreResult<Vec<AppointmentId>>;
    /// The organization's closures by first day, a page at a time.
    async fn closures(&self, org: OrgId, page: &PageRequest<NaiveDate>) -> StoreResult<Page<Closure>>;
    /// The organization's closures that meet the local days `from` to `to` (both in), by first
    /// day, at most `limit`.
    async fn closures_meeting(&self, org: OrgId, days: (NaiveDate, NaiveDate), limit: u32)
        -> StoreResult<Vec<Closure>>;
    async fn delete_closure(&self, actor: &Actor, id: ClosureId) -> StoreResult<bool>;

    /// What no booking of each provider may meet over `[from, to)`, in the providers' order, read
    /// in one transaction: the blocked ranges of its active appointments, its time off and the
    /// organization's closed days.
    async fn busy(
        &self,
        org: OrgId,
        providers: &[ProviderId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<Vec<Slot>>>;

    /// Books atomically: the slot is free and inside the provider's hours when the transaction
    /// commits, with its audit row and outbox message, or nothing is written.
    async fn book(&self, actor: &Actor, booking: NewBooking<'_>) -> StoreResult<BookOutcome>;

    async fn appointment(&self, org: OrgId, id: AppointmentId) -> StoreResult<Option<Appointment>>;
    /// The appointments matching `filter` by start, a page at a time.
    async fn appointments(
        &self,
        org: OrgId,
        filter: &AppointmentFilter,
        page: &PageRequest<DateTime<Utc>>,
    ) -> StoreResult<Page<Appointment>>;
    /// Cancels, withdraws its confirmation link and queues the notice (none for a time already
    /// past), in one transaction, which also keeps the voice agent's `answer` telling of it (so a
    /// retry of the tool call hears it, not "already cancelled"). With the patient's `cutoff` (the
    /// manage link), checked against the appointment as locked: `Started` from its start on,
    /// `InvalidState` within the cut-off.
    async fn cancel(
        &self,
        actor: &Actor,
        id: AppointmentId,
        reason: Option<&str>,
        cutoff: Option<Cutoff>,
        answer: Option<&KeptAnswer<'_>>,
    ) -> StoreResult<Appointment>;
    /// Moves an active appointment as the type `kind` (else as its own), re-checking overlap and
    /// hours atomically; at a new start, replaces its confirmation link with `link` and queues the
    /// notices in the same transaction. With the patient's `cutoff`, the appointment is checked as `cancel` does
    /// and the new start must be outside the cut-off too (else `Unavailable`, its alternatives
    /// outside it).
    async fn reschedule(
        &self,
        actor: &Actor,
        id: AppointmentId,
        kind: Option<AppointmentTypeId>,
        plan: PlanMove<'_>,
        link: &IssuedLink,
        cutoff: Option<Cutoff>,
    ) -> StoreResult<MoveOutcome>;

    /// The answer first given to exactly this voice-agent tool call (same call, id and
    /// fingerprint), if any.
    async fn tool_result(&self, org: OrgId, key: &ToolCallKey<'_>) -> StoreResult<Option<serde_json::Value>>;
    /// Keeps the answer to the tool call unless another was kept first, and returns the answer
    /// that stands.
    async fn save_tool_result(&self, org: OrgId, answer: &KeptAnswer<'_>) -> StoreResult<serde_json::Value>;
    /// Which organization and appointment a token hash belongs to (any organization: the token is
    /// the credential).
    async fn link_target(&self, token_hash: &str) -> StoreResult<Option<LinkTarget>>;
    /// Which organization and appointment a manage link's token hash belongs to (any
    /// organization: the token is the credential).
    async fn manage_target(&self, token_hash: &str) -> StoreResult<Option<(OrgId, AppointmentId)>>;
    /// How many more times `actor` may move the appointment under a cut-off (five in all).
    async fn moves_left(&self, actor: &Actor, id: AppointmentId) -> StoreResult<i64>;
    /// The nonce of an appointment's manage link, from which the link key recomputes its token.
    async fn manage_nonce(&self, org: OrgId, appointment: AppointmentId) -> StoreResult<Option<String>>;
    /// Marks a pending or confirmed appointment that has started as attended or not, with its
    /// audit row (`completed` or `no_show`); `InvalidState` before its start or when it is over.
    async fn attend(&self, actor: &Actor, id: AppointmentId, outcome: Attendance) -> StoreResult<Appointment>;
    /// Confirms a pending appointment, with its audit row, as `via` may (see [`ConfirmedVia`]);
    /// `InvalidState` when it is cancelled or over.
    async fn confirm(&self, actor: &Actor, id: AppointmentId, via: ConfirmedVia<'_>) -> StoreResult<Confirmed>;

    /// Claims due messages as `claim` asks until its `lease_until`: no other dispatcher takes
    /// them before then, and they come back if this one dies. Oldest due first, but no more of one
    /// organization than `per_org`, so one clinic's backlog holds up no other's. Only messages
    /// claimed fewer than `max_claims` times. First, in the same transaction, it gives up on the
    /// due messages of those kinds claimed `max_claims` times whose last claim ended with no
    /// outcome recorded (each may have been sent every time): they become dead letters instead of
    /// being sent again.
    async fn claim_mail(&self, claim: &MailClaim<'_>) -> StoreResult<ClaimedMail>;
    /// Records how a claimed message's delivery went. A failure is recorded only while the
    /// message is still in the claim that returned `job`: once another dispatcher has claimed it
    /// again, the message is that one's (a sending is always recorded). Whether it was recorded
    /// (not either when the message is gone).
    async fn record_delivery(&self, job: &OutboxJob, delivery: &Delivery) -> StoreResult<bool>;
    /// The messages queued for an appointment, oldest first.
    async fn outbox(&self, org: OrgId, appointment: AppointmentId) -> StoreResult<Vec<OutboxJob>>;

    /// Adds a webhook, with its audit row; `InvalidState` when the clinic has [`MAX_WEBHOOKS`]
    /// already.
    async fn create_webhook(&self, note: &AuditNote<'_>, webhook: &Webhook) -> StoreResult<()>;
    /// `InvalidState` when the clinic has [`MAX_WEBHOOKS`] already, as `create_webhook` would
    /// answer: a first look, before a new endpoint's slow checks (that counts again, under lock).
    async fn webhook_room(&self, org: OrgId) -> StoreResult<()>;
    /// The organization's webhooks by creation, a page at a time.
    async fn webhooks(&self, org: OrgId, page: &PageRequest<DateTime<Utc>>) -> StoreResult<Page<Webhook>>;
    async fn webhook(&self, org: OrgId, id: WebhookId) -> StoreResult<Option<Webhook>>;
    /// Removes a webhook, with its audit row; false when there was none.
    async fn delete_webhook(&self, note: &AuditNote<'_>, id: WebhookId) -> StoreResult<bool>;

    /// Stops SMS from `sender` to `phone` (the phone texted STOP); already stopped is no change.
    async fn sms_opt_out(&self, sender: &PhoneNumber, phone: &PhoneNumber) -> StoreResult<()>;
    /// Resumes SMS from `sender` to `phone` (the phone texted START); true when it had stopped them.
    async fn sms_opt_in(&self, sender: &PhoneNumber, phone: &PhoneNumber) -> StoreResult<bool>;
    /// Whether `phone` stopped SMS from `sender` (both E.164, as stored): the dispatcher asks
    /// before each SMS.
    async fn sms_opted_out(&self, sender: &str, phone: &str) -> StoreResult<bool>;

    /// Deletes, from each table, up to `batch` rows that have served their time before `before`:
    /// idempotency records, remembered tool answers, delivered outbox messages. The number deleted.
    async fn prune(&self, before: DateTime<Utc>, batch: i64) -> StoreResult<u64>;

    /// The audit rows of `subject`, in the order they were written, a page at a time (the sort
    /// key is the row's place in the trail; the UUID of the page request is the caller's to check).
    async fn audit_trail(&self, org: OrgId, subject: Subject, page: &PageRequest<i64>)
        -> StoreResult<Page<AuditEntry>>;
    /// The organization's whole audit log written within `[from, to)`, by time and row id, a page
    /// at a time (the sort key is the time and the row's place among the clinic's rows of that
    /// time, `AuditEntry::position`; the UUID of the page request is not used).
    async fn audit_log(
        &self,
        org: OrgId,
        within: Window,
        page: &PageRequest<(DateTime<Utc>, i64)>,
    ) -> StoreResult<Page<AuditEntry>>;
}

pub type DynStore = Arc<dyn Store>;

/// The store on either database.
pub struct SqlStore {
    backend: Backend,
    known: known::KnownProviders,
}

enum Backend {
    Postgres(postgres::Pg),
    Sqlite(sqlite::Lite),
}

/// `$body` with `$db` the store's database, whichever it is (the two arms differ only in their
/// types).
macro_rules! on_backend {
    ($store:expr, |$db:ident| $body:expr) => {
        match &$store.backend {
            Backend::Postgres($db) => $body,
            Backend::Sqlite($db) => $body,
        }
    };
}
use on_backend;

impl SqlStore {
    /// Connects to the database a URL names and applies its migrations.
    pub async fn connect(database_url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let backend = if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
            Backend::Postgres(postgres::Pg::connect(database_url, pool_size).await?)
        } else if database_url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::Lite::connect(database_url, pool_size).await?)
        } else {
            anyhow::bail!("DATABASE_URL must start with postgres:// or sqlite://")
        };
        Ok(Self { backend, known: Default::default() })
    }

    fn dialect(&self) -> sql::Dialect {
        match &self.backend {
            Backend::Postgres(_) => sql::Dialect::Postgres,
            Backend::Sqlite(_) => sql::Dialect::Sqlite,
        }
    }

    async fn begin(&self, scope: rules::Scope) -> Result<sql::Tx, sqlx::Error> {
        on_backend!(self, |db| db.begin(scope).await)
    }
}

/// A pool's use for the metrics (either database).
fn usage<DB: sqlx::Database>(pool: &'static str, of: &sqlx::Pool<DB>) -> PoolUsage {
    let open = of.size();
    let idle = u32::try_from(of.num_idle()).unwrap_or(open).min(open);
    PoolUsage { pool, open, idle, max: of.options().get_max_connections() }
}

/// Connects to the database a URL names and applies its migrations.
pub async fn connect(database_url: &str, pool_size: u32) -> anyhow::Result<DynStore> {
    Ok(Arc::new(SqlStore::connect(database_url, pool_size).await?))
}

/// The current instant at the precision both databases keep (microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// How many times a transaction that lost a serialization or deadlock race is tried in all.
pub const ATTEMPTS: usize = 5;
