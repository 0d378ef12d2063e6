//! Every rule of the store, written once for both databases over [`Tx`]: each method opens the
//! transaction its [`Scope`] calls for, and only the primitives in `postgres.rs` and `sqlite.rs`
//! (how a transaction begins, the booking insert) differ per database.

use super::known::Known;
use super::rows::{
    APPOINTMENT_COLUMNS, APPOINTMENT_TYPE_COLUMNS, CLOSURE_COLUMNS, ORG_COLUMNS, OUTBOX_COLUMNS, PROVIDER_COLUMNS,
    TIME_OFF_COLUMNS, WEBHOOK_COLUMNS,
};
use super::schedule::{lock_organization, type_values};
use super::sql::{sqlstate, Bind, Db, Dialect, Held, Key, Record, Then, Timestamp, Tx, Values};
use super::webhooks::fire;
use super::*;
use crate::domain::{spoken, Minutes};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

/// Why one attempt of a transaction ended without an answer.
pub(super) enum Fault {
    /// Lost a race the database resolves by aborting, or drew a confirmation code already taken:
    /// try the whole transaction again.
    Retry,
    Fail(StoreError),
}

impl From<sqlx::Error> for Fault {
    fn from(e: sqlx::Error) -> Self {
        match sqlstate(&e).as_deref() {
            // Serialization failure, deadlock (PostgreSQL; SQLite's single writer has neither).
            Some("40001" | "40P01") => Fault::Retry,
            _ => Fault::Fail(e.into()),
        }
    }
}

impl From<StoreError> for Fault {
    fn from(e: StoreError) -> Self {
        Fault::Fail(e)
    }
}

/// Runs `attempt` until it answers, trying a transaction that lost a race again a bounded number
/// of times.
pub(super) async fn retrying<T, F, Fut>(mut attempt: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Fault>>,
{
    for _ in 0..ATTEMPTS {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(Fault::Fail(e)) => return Err(e),
            Err(Fault::Retry) => continue,
        }
    }
    // Contention, not a fault: a later request can succeed (503).
    Err(StoreError::Unavailable("the transaction kept losing races".into()))
}

/// Which transaction a method needs: the database decides what each may touch (on PostgreSQL, a
/// role and row-level security; on SQLite, the read pool or the single writer).
#[derive(Debug, Clone, Copy)]
pub(super) enum Scope {
    Read(OrgId),
    Write(OrgId),
    /// A write that first waits for the lock of this key (one caller's bookings in one
    /// organization, so that their quota is counted one booking at a time).
    WriteLocked(OrgId, i64),
    /// The outbox dispatcher, across organizations, on the outbox's delivery columns only.
    Dispatch,
    /// The dispatcher's claim, bounded by `MailClaim::within`.
    Claim(Option<std::time::Duration>),
    /// The dispatcher's role, only reading (on SQLite it does not queue for the writer): the
    /// metrics sampler counting the outbox across organizations, the dispatcher asking whether a
    /// phone opted out.
    WorkerRead,
    /// Finding which organization a confirmation link belongs to, and nothing else.
    Links,
    /// The inbound SMS route keeping opt-outs, and nothing else (on PostgreSQL the same role as
    /// `Links`; on SQLite it writes).
    OptOuts,
    /// The retention job, across organizations, deleting only what has served its time.
    Retention,
}

/// The values of one booking's writes: the appointment, its audit row, and, as the booking calls
/// for them, its confirmation link, its outbox message and its idempotency record.
pub(super) struct BookingWrites<'a> {
    pub actor: &'a Actor,
    pub appointment: &'a Appointment,
    /// The version of the provider the booking was planned from: it must still be stored.
    pub provider_version: i64,
    /// Likewise of its appointment type, when it has one.
    pub kind_version: Option<i64>,
    pub audit: Value,
    pub link: Option<&'a IssuedLink>,
    pub message: Option<Value>,
    pub manage: &'a IssuedLink,
    /// The confirmation SMS, when the patient has a phone number.
    pub sms: Option<Value>,
    pub idempotency: Option<(&'a IdempotencyKey, Value)>,
    /// Whether the patient's number is held to the organization's `max_active_per_caller`.
    pub capped: bool,
}

/// What became of the booking insert.
pub(super) enum Inserted {
    Booked,
    /// The provider is no longer the version the booking was planned from, or inactive, or gone.
    Stale,
    /// An active appointment overlaps it; the transaction is still usable. With the provider's
    /// active appointments around the wanted time when the insert read them too (PostgreSQL).
    Taken(Option<Vec<Slot>>),
    /// The exclusion constraint refused it and aborted the transaction (PostgreSQL).
    Refused,
    /// The caller's number already holds this many upcoming active appointments, the most allowed.
    OverQuota(i32),
    /// The caller booked [`MAX_BOOKINGS_PER_CALLER_PER_DAY`] appointments in the last day.
    BookedTooOften,
}

impl Inserted {
    /// What the quota query ([`quota_sql`]) answered: the most allowed, or 0 for too many
    /// bookings lately.
    pub(super) fn over_quota(most: i32) -> Self {
        if most == 0 {
            Inserted::BookedTooOften
        } else {
            Inserted::OverQuota(most)
        }
    }
}

impl SqlStore {
    /// One statement in a transaction of its own: the number of rows it changed.
    async fn execute<'q>(&self, scope: Scope, sql: &'q str, values: impl Values<'q>) -> Db<u64> {
        let mut tx = self.begin(scope).await?;
        let changed = tx.query(sql, values).execute().await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// One query in a transaction of its own: its rows.
    async fn fetch_all<'q, R: Record>(&self, scope: Scope, sql: &'q str, values: impl Values<'q>) -> Db<Vec<R>> {
        let mut tx = self.begin(scope).await?;
        let rows = tx.query(sql, values).fetch_all().await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// One query in a transaction of its own: its row, if any (every use reads one at most).
    async fn fetch_optional<'q, R: Record>(
        &self,
        scope: Scope,
        sql: &'q str,
        values: impl Values<'q>,
    ) -> Db<Option<R>> {
        Ok(self.fetch_all(scope, sql, values).await?.into_iter().next())
    }

    /// One page of a list, read in a transaction of its own: `sql` takes `values`, then the sort key
    /// (as `key` binds it) and id the page starts after, then how many rows to read (one more than
    /// the page holds, telling whether more follow).
    async fn page<'q, K: Sync, V: Bind<'q>, R: Record>(
        &self,
        org: OrgId,
        sql: &'q str,
        values: impl Values<'q>,
        page: &'q PageRequest<K>,
        key: impl FnOnce(&'q K) -> V + Send,
    ) -> Db<Page<R>> {
        let (after, id) = page.after.as_ref().map(|(k, id)| (key(k), Key(*id))).unzip();
        let rows = self.fetch_all(Scope::Read(org), sql, Then(values, (after, id, i64::from(page.limit) + 1))).await?;
        Ok(Page::of(rows, page.limit))
    }

    /// The provider, the version of the type asked for and the slot to insert, or the refusal. A
    /// booking is planned from the copy of its provider in `known` when it has one, saving a round
    /// trip, and from its type as read in this transaction: the insert itself checks that both
    /// are still the versions planned from. Every refusal rests on the provider as stored now.
    async fn plan_booking(&self, tx: &mut Tx, org: OrgId, b: &NewBooking<'_>) -> Result<PlannedOrNot, Fault> {
        let kind = match b.kind {
            Some(id) => appointment_type_in(tx, org, id, "").await?,
            None => None,
        };
        let version = kind.as_ref().map(|t| t.version);
        if let Some(known) = self.known.get(org, b.provider) {
            if let Ok(wanted) = (b.plan)(&known.provider, kind.as_ref()) {
                if wanted.allowed_by(&known.provider, now()) {
                    return Ok(Ok((known, version, wanted)));
                }
            }
        }
        let known = provider_row(tx, org, b.provider, "").await?;
        let known = Arc::new(known.filter(|k| k.provider.active).ok_or(StoreError::NotFound)?);
        self.known.put(known.clone());
        let wanted = (b.plan)(&known.provider, kind.as_ref())?;
        if !wanted.allowed_by(&known.provider, now()) {
            return Ok(Err(BookOutcome::Unavailable { provider: known.provider.clone(), wanted, busy: None }));
        }
        Ok(Ok((known, version, wanted)))
    }
}

/// What [`SqlStore::plan_booking`] gives: the provider, the type's version and the slot, or the
/// refusal.
type PlannedOrNot = Result<(Arc<Known>, Option<i64>, Planned), BookOutcome>;

/// The key of the lock `name` stands for (`Scope::WriteLocked`): the same on every instance.
fn lock_key(name: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(name);
    i64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// The columns a booking writes to `appointments`, and their values as `$1` to `$14`
/// ([`appointment_values`]): both databases' booking statements begin with them.
pub(super) const INSERT_APPOINTMENT: &str = "INSERT INTO appointments (id, org_id, provider_id, starts_at, ends_at,
        blocked_from, blocked_until, appointment_type_id, status, confirmation_code, patient_name, patient_phone,
        patient_email, notes, created_at, updated_at)";
pub(super) const APPOINTMENT_VALUES: &str =
    "$1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10, $11, $12, $13, $14, $14";

pub(super) fn appointment_values(a: &Appointment) -> impl Values<'_> {
    (
        a.id,
        a.org_id,
        a.provider_id,
        Timestamp(a.slot.start()),
        Timestamp(a.slot.end()),
        Timestamp(a.blocked.start()),
        Timestamp(a.blocked.end()),
        a.appointment_type,
        &a.confirmation_code,
        &a.patient_name,
        &a.patient_phone,
        &a.patient_email,
        &a.notes,
        Timestamp(a.created_at),
    )
}

/// An outbox message still to go: unsent and not given up on, in the words of the outbox indexes'
/// partial predicate (SQLite uses a partial index only for a query that repeats its terms).
macro_rules! pending {
    () => {
        "sent_at IS NULL AND dead_at IS NULL"
    };
}
const PENDING: &str = pending!();

/// An outbox message a dispatcher may take at `$1`: [`PENDING`], due, and in no dispatcher's hands.
const DUE: &str = concat!(pending!(), " AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)");

/// The messages of the lane `kinds` are in, as the indexes `outbox_due_patients` and
/// `outbox_due_webhooks` split them (in these words, so that each database uses its lane's);
/// `TRUE` for kinds of both, which no index serves (`MailClaim::every`, for tests).
fn lane_of(kinds: &[&str]) -> String {
    let webhook = outbox_kind::WEBHOOK;
    if kinds.iter().all(|kind| *kind == webhook) {
        format!("kind = '{webhook}'")
    } else if !kinds.contains(&webhook) {
        format!("kind <> '{webhook}'")
    } else {
        "TRUE".into()
    }
}

/// How many due messages, of either lane, a claim reads at most to tell the organizations with
/// any due: fewer, and it takes those organizations; more, and it steps through the organizations
/// with messages pending instead (a backlog's length does not matter then, their number does).
const FEW_DUE: u32 = 1000;

/// The organizations that may have messages of the `lane` due at `$1`, for [`oldest_due`]: those
/// of the due messages when there are no more than [`FEW_DUE`] (read oldest first through
/// `outbox_due`), else every organization with messages of the lane pending, found by stepping
/// through its index one look-up each. Either costs about the same behind any backlog; the first
/// also beside thousands of organizations with reminders queued ahead, each of which the second
/// would look up.
fn pending(lane: &str) -> String {
    format!(
        "WITH RECURSIVE due AS (
            SELECT org_id, kind FROM outbox WHERE {PENDING} AND next_attempt_at <= $1
            ORDER BY next_attempt_at LIMIT {more}
        ),
        few(yes) AS (SELECT count(*) < {more} FROM due),
        stepped(org_id) AS (
            SELECT (SELECT org_id FROM outbox WHERE {PENDING} AND {lane} ORDER BY org_id LIMIT 1)
            WHERE NOT (SELECT yes FROM few)
            UNION ALL
            SELECT (SELECT org_id FROM outbox WHERE {PENDING} AND {lane}
                    AND org_id > stepped.org_id ORDER BY org_id LIMIT 1)
            FROM stepped WHERE stepped.org_id IS NOT NULL
        ),
        pending(org_id) AS (
            SELECT DISTINCT org_id FROM due WHERE {lane} AND (SELECT yes FROM few)
            UNION ALL
            SELECT org_id FROM stepped WHERE org_id IS NOT NULL
        )",
        more = FEW_DUE + 1
    )
}

/// Each organization's oldest messages of the `lane` due at `$1` of the kinds in `$3`, claimed
/// fewer than `$5` times, at most `$6` of each, read from its index: the rows `h` beside `pending`.
fn oldest_due(d: Dialect, lane: &str) -> String {
    let oldest = format!(
        "WHERE org_id = pending.org_id AND {lane} AND {DUE} AND kind IN (SELECT value FROM {}) AND claims < $5
         ORDER BY next_attempt_at, id LIMIT $6",
        d.json_elements("$3")
    );
    format!("pending {}", d.join_each("outbox", "h", &oldest))
}

/// `InvalidState` when the organization has [`MAX_WEBHOOKS`] already.
async fn room_for_a_webhook(tx: &mut Tx, org: OrgId) -> StoreResult<()> {
    let (count,): (i64,) = tx.query("SELECT count(*) FROM webhooks WHERE org_id = $1", (org,)).fetch_one().await?;
    if count >= MAX_WEBHOOKS {
        return Err(StoreError::InvalidState(format!("a clinic has at most {MAX_WEBHOOKS} webhooks")));
    }
    Ok(())
}

/// PostgreSQL's SQLSTATE for an exclusion constraint violation (`appointments_no_overlap`).
pub(super) const EXCLUSION_VIOLATION: &str = "23P01";

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| d.is_unique_violation())
}

/// The provider's row, read with `lock` (a locking clause of the dialect, or none).
async fn provider_row(tx: &mut Tx, org: OrgId, id: ProviderId, lock: &str) -> Db<Option<Known>> {
    let sql = format!("SELECT {PROVIDER_COLUMNS} WHERE p.org_id = $1 AND p.id = $2{lock}");
    tx.query(&sql, (org, id)).fetch_optional().await
}

/// The appointment type, read with `lock` (a locking clause of the dialect, or none).
async fn appointment_type_in(
    tx: &mut Tx,
    org: OrgId,
    id: AppointmentTypeId,
    lock: &str,
) -> Db<Option<AppointmentType>> {
    let sql = format!("SELECT {APPOINTMENT_TYPE_COLUMNS} WHERE org_id = $1 AND id = $2{lock}");
    tx.query(&sql, (org, id)).fetch_optional().await
}

/// What a clinic names for the voice agent to tell apart.
#[derive(Debug, Clone, Copy)]
enum Named {
    Provider,
    AppointmentType,
}

/// Whether a change names a provider or type (a new name, or `active` set): if so, the
/// organization is locked first, as a closure locks it before its rows, for
/// [`refuse_indistinct_name`].
async fn lock_for_naming(tx: &mut Tx, org: OrgId, name: Option<&String>, active: Option<bool>) -> Db<bool> {
    let naming = name.is_some() || active == Some(true);
    if naming {
        lock_organization(tx, org).await?;
    }
    Ok(naming)
}

/// Refuses `name` for an active provider or type (`id`, new or changed) that a caller could not
/// say (only a title or filler) or tell from another active one of the clinic (the same words:
/// [`spoken::words`]), and, when it `joins` the active ones, one past [`MAX_ACTIVE_NAMED`]. The
/// transaction holds the organization's lock, so two changes at once cannot both find the name
/// or the room free.
async fn refuse_indistinct_name(
    tx: &mut Tx,
    org: OrgId,
    kind: Named,
    id: Uuid,
    name: &str,
    joins: bool,
) -> StoreResult<()> {
    let (table, ignored, what) = match kind {
        Named::Provider => ("providers", spoken::TITLES, "provider"),
        Named::AppointmentType => ("appointment_types", spoken::FILLER, "appointment type"),
    };
    let words = spoken::words(name, ignored);
    if words.is_empty() {
        return Err(
            DomainError::invalid("name", "must hold a word a caller can say, not only a title or filler").into()
        );
    }
    let sql = format!("SELECT name FROM {table} WHERE org_id = $1 AND active AND id <> $2");
    let others: Vec<(String,)> = tx.query(&sql, (org, Key(id))).fetch_all().await?;
    if joins && others.len() >= MAX_ACTIVE_NAMED {
        return Err(StoreError::InvalidState(format!("a clinic has at most {MAX_ACTIVE_NAMED} active {what}s")));
    }
    match others.iter().find(|(other,)| spoken::words(other, ignored) == words) {
        Some((other,)) => Err(StoreError::InvalidState(format!(
            "name: the clinic has an active {what} called \"{other}\" already, which a caller could not tell apart from \"{name}\""
        ))),
        None => Ok(()),
    }
}

/// How many active rows a list reads: one past [`MAX_ACTIVE_NAMED`], to tell a clinic over it.
const ACTIVE_READ: i64 = MAX_ACTIVE_NAMED as i64 + 1;

/// The first [`MAX_ACTIVE_NAMED`] of a clinic's active `what`, with a warning when it has more
/// (kept from before the limit): the voice agent does not offer the rest.
fn at_most_active<T>(org: OrgId, what: &str, mut rows: Vec<T>) -> Vec<T> {
    if rows.len() > MAX_ACTIVE_NAMED {
        tracing::warn!(%org, what, most = MAX_ACTIVE_NAMED, "a clinic has more active {what} than the voice agent offers");
        rows.truncate(MAX_ACTIVE_NAMED);
    }
    rows
}

/// A count kept in an `integer` column (the settings' checks keep it far below the limit).
pub(super) fn stored_count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The appointment, locked until the transaction ends, or `NotFound`.
async fn lock_appointment(tx: &mut Tx, org: OrgId, id: AppointmentId) -> Result<Appointment, Fault> {
    let lock = tx.dialect().lock("a");
    let sql = format!("SELECT {APPOINTMENT_COLUMNS} WHERE a.org_id = $1 AND a.id = $2{lock}");
    Ok(tx.query(&sql, (org, id)).fetch_optional().await?.ok_or(StoreError::NotFound)?)
}

/// `InvalidState` unless the appointment is pending or confirmed, saying so with `says` and its
/// status in words.
fn still_active(a: &Appointment, says: impl FnOnce(&str) -> String) -> StoreResult<()> {
    if a.status.is_active() {
        return Ok(());
    }
    Err(StoreError::InvalidState(says(&a.status.as_str().replace('_', " "))))
}

/// With the patient's cut-off (the manage link), whether the appointment as locked may still be
/// changed: checked inside the change's transaction, so a move by the clinic racing the patient's
/// request cannot slip the appointment under the cut-off unseen.
fn within_reach(appointment: &Appointment, cutoff: Option<Cutoff>) -> StoreResult<()> {
    let Some(cutoff) = cutoff else { return Ok(()) };
    match cutoff.reach(appointment.slot.start(), now()) {
        Reach::Open => Ok(()),
        Reach::Started => Err(StoreError::Started),
        Reach::TooSoon => Err(StoreError::InvalidState(format!(
            "the appointment starts within {}, too soon to change it online: please call the clinic",
            cutoff.spoken()
        ))),
    }
}

/// The moves one caller may make of one appointment under a cut-off (the patient through the
/// manage link, the voice agent for the calling number): each move sends the patient an email and
/// an SMS, which a loop of moves would turn into a flood paid by the clinic. Staff are not capped.
const MAX_MOVES_BY_CALLER: i64 = 5;

/// How many times the actor (`$4`) moved the appointment, counted in the audit log.
const MOVES: &str =
    "SELECT count(*) FROM audit_log WHERE org_id = $1 AND appointment_id = $2 AND action = $3 AND actor = $4";

/// Refuses a move past [`MAX_MOVES_BY_CALLER`] by the same actor.
async fn within_moves(tx: &mut Tx, actor: &Actor, id: AppointmentId) -> Result<(), Fault> {
    let (moves,): (i64,) = tx.query(MOVES, (actor.org, id, action::RESCHEDULED, &actor.sub)).fetch_one().await?;
    if moves >= MAX_MOVES_BY_CALLER {
        return Err(StoreError::InvalidState(format!(
            "this appointment has been moved {moves} times already; to move it again, please speak to the clinic's staff"
        ))
        .into());
    }
    Ok(())
}

/// The condition of an appointment that holds its time (`AppointmentStatus::is_active`), as the
/// queries and the migrations' partial indexes write it.
pub(super) const HOLDS_TIME: &str = "status IN ('pending', 'confirmed')";

/// What no booking of each provider may meet over `[from, to)`, in one read however many they
/// are: the blocked ranges of its active appointments, its time off and its organization's
/// closures, in order, a list a provider in the order given.
pub(super) async fn busy_of(
    tx: &mut Tx,
    org: OrgId,
    providers: &[ProviderId],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Db<Vec<Vec<Slot>>> {
    let d = tx.dialect();
    let sql = format!("{} ORDER BY 2", busy_sql(d, ["$1", &d.among_ids("$2"), "$3", "$4"], Whose::Named));
    let values = (org, Json(providers), Timestamp(from), Timestamp(to));
    let rows: Vec<(Option<ProviderId>, Timestamp, Timestamp)> = tx.query(&sql, values).fetch_all().await?;
    let mut busy = vec![Vec::new(); providers.len()];
    for (whose, starts, ends) in rows {
        let Some(slot) = Slot::from_bounds(starts.0, ends.0) else { continue };
        // A closure (no provider) keeps every provider from being booked.
        for (i, _) in providers.iter().enumerate().filter(|(_, p)| whose.is_none_or(|w| w == **p)) {
            busy[i].push(slot);
        }
    }
    Ok(busy)
}

/// Whether [`busy_sql`] names each range's provider (none for a closure) in a first column.
#[derive(PartialEq)]
pub(super) enum Whose {
    Named,
    Unnamed,
}

/// The query of [`busy_of`], unordered: its organization, the providers (`= $n`, or
/// `IN (...)`) and the bounds the placeholders given (the PostgreSQL booking statement reads it
/// too, for one provider, with its own).
pub(super) fn busy_sql(d: Dialect, [org, providers, from, to]: [&str; 4], whose: Whose) -> String {
    let (named, none) = if whose == Whose::Named { ("provider_id, ", "NULL, ") } else { ("", "") };
    format!(
        "SELECT {named}blocked_from AS starts_at, blocked_until AS ends_at FROM appointments
         WHERE org_id = {org} AND provider_id {providers} AND {HOLDS_TIME} AND {appointments}
         UNION ALL
         SELECT {named}starts_at, ends_at FROM time_off WHERE org_id = {org} AND provider_id {providers} AND {span}
         UNION ALL
         SELECT {none}starts_at, ends_at FROM closures WHERE org_id = {org} AND {span}",
        appointments = d.overlaps(Held::Appointment, "blocked_from", "blocked_until", from, to),
        span = d.overlaps(Held::Closed, "starts_at", "ends_at", from, to),
    )
}

/// Whether an active appointment of the provider, other than `except`, has a blocked range
/// overlapping `blocked`.
pub(super) async fn overlapping(
    tx: &mut Tx,
    org: OrgId,
    provider: ProviderId,
    blocked: &Slot,
    except: Option<AppointmentId>,
) -> Db<bool> {
    let overlap = tx.dialect().overlaps(Held::Appointment, "blocked_from", "blocked_until", "$3", "$4");
    let sql = format!(
        "SELECT 1 FROM appointments
         WHERE org_id = $1 AND provider_id = $2 AND {HOLDS_TIME} AND {overlap}
           AND ($5 IS NULL OR id <> $5)
         LIMIT 1"
    );
    let found: Option<(i32,)> = tx
        .query(&sql, (org, provider, Timestamp(blocked.start()), Timestamp(blocked.end()), except))
        .fetch_optional()
        .await?;
    Ok(found.is_some())
}

/// Whether time off of the provider or a closure of its organization meets `blocked`.
pub(super) async fn closed(tx: &mut Tx, org: OrgId, provider: ProviderId, blocked: &Slot) -> Db<bool> {
    let sql = format!("{} LIMIT 1", closed_sql(tx.dialect(), ["$1", "$2", "$3", "$4"]));
    let found: Option<(i32,)> =
        tx.query(&sql, (org, provider, Timestamp(blocked.start()), Timestamp(blocked.end()))).fetch_optional().await?;
    Ok(found.is_some())
}

/// The query of [`closed`] (a row for each time off and closure met), its organization, provider
/// and bounds the placeholders given (the PostgreSQL booking statement asks it too, with its own).
pub(super) fn closed_sql(d: Dialect, [org, provider, from, to]: [&str; 4]) -> String {
    let span = d.overlaps(Held::Closed, "starts_at", "ends_at", from, to);
    format!(
        "SELECT 1 FROM time_off WHERE org_id = {org} AND provider_id = {provider} AND {span}
         UNION ALL
         SELECT 1 FROM closures WHERE org_id = {org} AND {span}"
    )
}

/// A row while the provider is active and still the version a booking was planned from, held
/// against time off and closures being created until the transaction ends (`Dialect::key_share`),
/// and its type, when it has one, likewise still the version planned from and held against a
/// change: what both databases' booking insert asks first, its organization, provider and
/// version, type and type's version the placeholders given.
pub(super) fn planned_provider_sql(d: Dialect, [org, id, version, kind, kind_version]: [&str; 5]) -> String {
    let (hold, hold_kind) = (d.key_share("p"), d.key_share("t"));
    format!(
        "SELECT 1 FROM providers p WHERE p.org_id = {org} AND p.id = {id} AND p.version = {version} AND p.active
           AND ({kind} IS NULL OR EXISTS (SELECT 1 FROM appointment_types t
                WHERE t.org_id = {org} AND t.id = {kind} AND t.version = {kind_version}{hold_kind})){hold}"
    )
}

/// The most upcoming active appointments the organization allows one caller, when the caller
/// already holds that many, or 0 when it booked [`MAX_BOOKINGS_PER_CALLER_PER_DAY`] since a day
/// ago (no row otherwise, nor in a clinic not limiting its callers): what both databases' booking
/// insert asks of a capped caller, its organization, number, voice call, instant, the instant a
/// day before and the voice agent's token subject the placeholders given. The caller is its
/// number; without one (withheld, or a web call), the voice call it books from, its bookings found
/// through their audit rows (a number's recent bookings too: those the voice agent made, not the
/// clinic's staff; read through the number's index from a day ago, as nothing starts before it
/// was booked, not through its whole history).
pub(super) fn quota_sql([org, phone, call, now, day_ago, agent]: [&str; 6]) -> String {
    let booked = action::BOOKED;
    let most = MAX_BOOKINGS_PER_CALLER_PER_DAY;
    format!(
        "SELECT CASE WHEN c.churned THEN 0 ELSE o.max_active_per_caller END AS most
         FROM organizations o,
              (SELECT (SELECT count(*) FROM appointments ap
                       JOIN audit_log l ON l.org_id = ap.org_id AND l.appointment_id = ap.id
                       WHERE ap.org_id = {org} AND ap.patient_phone = {phone} AND ap.created_at > {day_ago}
                         AND ap.starts_at > {day_ago} AND l.action = '{booked}' AND l.actor = {agent}) >= {most}
                   OR (SELECT count(*) FROM audit_log
                       WHERE org_id = {org} AND call_id = {call} AND action = '{booked}' AND at > {day_ago}) >= {most}
                   AS churned) AS c
         WHERE o.id = {org} AND o.max_active_per_caller > 0
           AND (c.churned OR (SELECT count(*) FROM appointments
                WHERE org_id = {org} AND patient_phone = {phone} AND {HOLDS_TIME} AND starts_at > {now})
             + (SELECT count(*) FROM appointments
                WHERE org_id = {org} AND {phone} IS NULL AND patient_phone IS NULL AND {HOLDS_TIME} AND starts_at > {now}
                  AND id IN (SELECT appointment_id FROM audit_log
                             WHERE org_id = {org} AND call_id = {call} AND action = '{booked}'))
               >= o.max_active_per_caller)"
    )
}

/// Who a capped booking's quota counts as: the patient's number, else the voice call it comes
/// from (nothing, and no quota, for a booking with neither).
fn quota_caller(org: OrgId, phone: Option<&PhoneNumber>, call: Option<&str>) -> Option<String> {
    match (phone, call) {
        (Some(phone), _) => Some(format!("caller:{org}:{}", phone.as_str())),
        (None, Some(call)) => Some(format!("call:{org}:{call}")),
        (None, None) => None,
    }
}

/// The answer already given to the request with this idempotency key, if any.
async fn replay(tx: &mut Tx, org: OrgId, idem: Option<&IdempotencyKey>) -> Result<Option<BookOutcome>, Fault> {
    let Some(idem) = idem else { return Ok(None) };
    let saved: Option<(String, Json<Value>)> = tx
        .query("SELECT request_hash, response FROM idempotency_keys WHERE org_id = $1 AND key = $2", (org, &idem.key))
        .fetch_optional()
        .await?;
    match saved {
        None => Ok(None),
        Some((hash, _)) if hash != idem.request_hash => Err(StoreError::IdempotencyConflict.into()),
        Some((_, Json(response))) => Ok(Some(BookOutcome::Replayed(response))),
    }
}

pub(super) async fn audit(
    tx: &mut Tx,
    actor: &Actor,
    subject: Subject,
    action: &str,
    details: &Value,
    at: DateTime<Utc>,
) -> Db {
    let (kind, id) = subject.parts();
    let sql = "INSERT INTO audit_log (org_id, subject, appointment_id, action, actor, details, at, call_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    tx.run(sql, (actor.org, kind, Key(id), action, &actor.sub, Json(details), Timestamp(at), &actor.call)).await
}

/// Ends a clinic's change to itself: when it changed a row, its audit row is written and the
/// transaction committed; else it is rolled back. Whether it changed one.
pub(super) async fn commit_audited(
    mut tx: Tx,
    changed: bool,
    note: &AuditNote<'_>,
    subject: Subject,
    what: &str,
) -> StoreResult<bool> {
    if !changed {
        return Ok(false);
    }
    audit(&mut tx, note.actor, subject, what, &note.details, now()).await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn issue_link(tx: &mut Tx, a: &Appointment, link: &IssuedLink, now: DateTime<Utc>) -> Db {
    let sql = "INSERT INTO confirmation_tokens (token_hash, org_id, appointment_id, expires_at, created_at)
               VALUES ($1, $2, $3, $4, $5)";
    tx.run(sql, (&link.token_hash, a.org_id, a.id, Timestamp(link.expires_at), Timestamp(now))).await
}

/// Makes the appointment's confirmation link, if any, stop working.
async fn withdraw_link(tx: &mut Tx, org: OrgId, id: AppointmentId) -> Db {
    tx.run("DELETE FROM confirmation_tokens WHERE org_id = $1 AND appointment_id = $2", (org, id)).await
}

/// Queues a message about the appointment, due at `due` (`now` for one that goes at once).
pub(super) async fn enqueue(
    tx: &mut Tx,
    a: &Appointment,
    kind: &str,
    payload: &Value,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Db {
    let sql = "INSERT INTO outbox (id, org_id, appointment_id, kind, payload, next_attempt_at, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)";
    tx.run(sql, (Key(Uuid::now_v7()), a.org_id, a.id, kind, Json(payload), Timestamp(due), Timestamp(now))).await
}

/// The ways a message of one of two kinds (by email, by SMS) can reach the patient, where the
/// appointment has the address.
pub(super) fn channels<'a>(
    a: &'a Appointment,
    [email, sms]: [&'static str; 2],
) -> [(&'static str, Option<&'a str>); 2] {
    [(email, a.patient_email.as_deref()), (sms, a.patient_phone.as_deref())]
}

/// The appointment's manage link, issued with it and kept while it lives (a reschedule keeps it).
pub(super) async fn issue_manage_link(tx: &mut Tx, a: &Appointment, link: &IssuedLink, now: DateTime<Utc>) -> Db {
    let sql =
        "INSERT INTO manage_links (token_hash, org_id, appointment_id, nonce, created_at) VALUES ($1, $2, $3, $4, $5)";
    tx.run(sql, (&link.token_hash, a.org_id, a.id, &link.nonce, Timestamp(now))).await
}

/// Queues the appointment's reminders: one per offset of its organization's settings and per
/// channel, due at `starts_at − offset`, none that would already be due. (PostgreSQL's booking
/// statement queues the same rows in SQL, saving the settings read.)
pub(super) async fn queue_reminders(tx: &mut Tx, a: &Appointment, now: DateTime<Utc>) -> Db {
    let offsets: Option<(Json<Vec<u32>>,)> = tx
        .query("SELECT reminder_offsets_minutes FROM organizations WHERE id = $1", (a.org_id,))
        .fetch_optional()
        .await?;
    let offsets = offsets.map(|(Json(o),)| o).unwrap_or_default();
    for (kind, to) in channels(a, outbox_kind::REMINDERS) {
        let Some(to) = to else { continue };
        for &minutes in &offsets {
            let due = a.slot.start() - chrono::Duration::minutes(i64::from(minutes));
            if due > now {
                let payload = outbox_kind::reminder(to, minutes, a.slot.start());
                enqueue(tx, a, kind, &payload, due, now).await?;
            }
        }
    }
    Ok(())
}

/// Deletes the appointment's reminders that have not gone out (a cancellation, or a reschedule
/// that queues them anew).
pub(super) async fn withdraw_reminders(tx: &mut Tx, org: OrgId, id: AppointmentId) -> Db {
    let [email, sms] = outbox_kind::REMINDERS;
    let sql =
        concat!("DELETE FROM outbox WHERE org_id = $1 AND appointment_id = $2 AND kind IN ($3, $4) AND ", pending!());
    tx.run(sql, (org, id, email, sms)).await
}

/// The start a new notice of a move of `kind` of `a` (now at its new start) tells from: the one
/// the patient last heard of, which the earliest of the earlier moves' notices still unsent told
/// from (those not being sent are withdrawn here: this one tells instead), else `was`; `None` when
/// that is its new start itself and no notice of a move away may still reach them, nothing having
/// changed for them. (A notice being sent when this commits is dropped as overtaken unless past
/// its last check, `outbox::freshness`.)
async fn withdraw_move_notices(
    tx: &mut Tx,
    a: &Appointment,
    kind: &str,
    was: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Db<Option<DateTime<Utc>>> {
    let (org, id, moved_to) = (a.org_id, a.id, a.slot.start());
    let sql = concat!(
        "DELETE FROM outbox WHERE org_id = $1 AND appointment_id = $2 AND kind = $3 AND ",
        pending!(),
        " AND (claimed_until IS NULL OR claimed_until < $4) RETURNING payload, created_at"
    );
    let rows: Vec<(Json<Value>, Timestamp)> = tx.query(sql, (org, id, kind, Timestamp(now))).fetch_all().await?;
    // One in a dispatcher's hands is left to it (it is dropped as overtaken unless already gone),
    // but the patient may not have heard of its move either: it counts for the start told from.
    let sql = concat!(
        "SELECT payload, created_at FROM outbox WHERE org_id = $1 AND appointment_id = $2 AND kind = $3 AND ",
        pending!()
    );
    let claimed: Vec<(Json<Value>, Timestamp)> = tx.query(sql, (org, id, kind)).fetch_all().await?;
    let in_hand = !claimed.is_empty();
    let earliest = rows.into_iter().chain(claimed).min_by_key(|(_, at)| at.0);
    let heard = earliest.and_then(|(Json(payload), _)| outbox_kind::moved_from_of(&payload)).unwrap_or(was);
    // Back where they last heard it is, there is nothing to tell, unless a notice of the move
    // away is in a dispatcher's hands: it may be past its last check and reach them, so this move
    // back is told too (from `was`, where that notice would leave them).
    if heard == moved_to && in_hand && was != moved_to {
        return Ok(Some(was));
    }
    Ok(Some(heard).filter(|from| *from != moved_to))
}

pub(super) async fn remember(tx: &mut Tx, org: OrgId, idem: &IdempotencyKey, answer: &Value, now: DateTime<Utc>) -> Db {
    let sql =
        "INSERT INTO idempotency_keys (org_id, key, request_hash, response, created_at) VALUES ($1, $2, $3, $4, $5)";
    tx.run(sql, (org, &idem.key, &idem.request_hash, Json(answer), Timestamp(now))).await
}

/// Keeps a voice-agent tool's answer unless another was kept first under its key.
async fn keep_answer(tx: &mut Tx, org: OrgId, answer: &KeptAnswer<'_>, now: DateTime<Utc>) -> Db {
    let sql =
        "INSERT INTO vapi_tool_results (org_id, call_id, tool_call_id, fingerprint, tool_name, outcome, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, call_id, tool_call_id, fingerprint) DO NOTHING";
    let KeptAnswer { key, tool_name, outcome, .. } = *answer;
    tx.run(sql, (org, key.call_id, key.tool_call_id, key.fingerprint, tool_name, Json(outcome), Timestamp(now))).await
}

/// The answer saved for a tool call: its organization, call, tool call and fingerprint `$1` to `$4`.
const TOOL_RESULT: &str = "SELECT outcome FROM vapi_tool_results
                           WHERE org_id = $1 AND call_id = $2 AND tool_call_id = $3 AND fingerprint = $4";

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(on_backend!(self, |db| db.ping().await)?)
    }

    fn pool_usage(&self) -> Vec<super::PoolUsage> {
        on_backend!(self, |db| db.pool_usage())
    }

    async fn outbox_backlog(&self, now: DateTime<Utc>) -> StoreResult<super::OutboxBacklog> {
        // Due means what `claim_mail` would take now: not in a dispatcher's hands, and of a kind
        // this release delivers (a newer release's messages wait for it, not for an alert). The
        // due rows are read through the `outbox_due` index.
        let known = self.dialect().json_elements("$2");
        let sql = format!(
            "SELECT COUNT(*), MIN(next_attempt_at),
                    (SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND dead_at IS NOT NULL)
             FROM outbox
             WHERE {DUE} AND kind IN (SELECT value FROM {known})"
        );
        let row: Option<(i64, Option<Timestamp>, i64)> =
            self.fetch_optional(Scope::WorkerRead, &sql, (Timestamp(now), Json(outbox_kind::ALL))).await?;
        let (due, oldest, dead) = row.unwrap_or((0, None, 0));
        let oldest_due_seconds = oldest.map_or(0.0, |t| (now - t.0).to_std().map_or(0.0, |age| age.as_secs_f64()));
        Ok(super::OutboxBacklog { due, oldest_due_seconds, dead })
    }

    async fn create_organization(&self, org: &Organization) -> StoreResult<()> {
        let sql = "INSERT INTO organizations (id, name, timezone, created_at) VALUES ($1, $2, $3, $4)";
        let values = (org.id, &org.name, org.zone, Timestamp(org.created_at));
        self.execute(Scope::Write(org.id), sql, values).await?;
        Ok(())
    }

    async fn settings(&self, org: OrgId) -> StoreResult<Option<ClinicSettings>> {
        let sql = "SELECT reminder_offsets_minutes, manage_cutoff_minutes, max_active_per_caller, sms_from
                   FROM organizations WHERE id = $1";
        Ok(self.fetch_optional(Scope::Read(org), sql, (org,)).await?)
    }

    async fn set_settings(
        &self,
        note: &AuditNote<'_>,
        s: &ClinicSettings,
        keep_sms_from: bool,
    ) -> StoreResult<Option<ClinicSettings>> {
        let org = note.actor.org;
        // A sender kept is the one the row holds as this statement writes it: one read before
        // would write back an older number over an admin's change made meanwhile.
        let sql = "UPDATE organizations SET reminder_offsets_minutes = $2, manage_cutoff_minutes = $3,
                          max_active_per_caller = $4, sms_from = CASE WHEN $6 THEN sms_from ELSE $5 END
                   WHERE id = $1
                   RETURNING reminder_offsets_minutes, manage_cutoff_minutes, max_active_per_caller, sms_from";
        let (cutoff, most) = (stored_count(s.manage_cutoff_minutes), stored_count(s.max_active_per_caller));
        let values = (org, Json(&s.reminder_offsets_minutes), cutoff, most, &s.sms_from, keep_sms_from);
        let mut tx = self.begin(Scope::Write(org)).await?;
        let kept = match tx.query(sql, values).fetch_optional::<ClinicSettings>().await {
            Ok(kept) => kept,
            // organizations_sms_from: another clinic sends from that number.
            Err(e) if is_unique_violation(&e) => {
                return Err(DomainError::invalid("sms_from", "is the sender number of another clinic").into())
            }
            Err(e) => return Err(e.into()),
        };
        commit_audited(tx, kept.is_some(), note, Subject::Settings(org), action::SETTINGS_CHANGED).await?;
        Ok(kept)
    }

    async fn set_vapi_settings(&self, note: &AuditNote<'_>, v: &VapiSettings) -> StoreResult<bool> {
        let org = note.actor.org;
        let sql = "UPDATE organizations SET vapi_assistant_id = $2, vapi_transfer_number = $3 WHERE id = $1";
        let mut tx = self.begin(Scope::Write(org)).await?;
        let changed = tx.query(sql, (org, &v.assistant_id, &v.transfer_number)).execute().await?;
        commit_audited(tx, changed > 0, note, Subject::Settings(org), action::VAPI_SETTINGS_CHANGED).await
    }

    async fn record_call(&self, org: OrgId, c: &CallRecord) -> StoreResult<bool> {
        let sql = "INSERT INTO calls (org_id, call_id, customer_number, started_at, ended_at, ended_reason, summary, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                   ON CONFLICT (org_id, call_id) DO NOTHING";
        let (started, ended) = (Timestamp(c.started_at), c.ended_at.map(Timestamp));
        let values =
            (org, &c.call_id, &c.customer_number, started, ended, &c.ended_reason, &c.summary, Timestamp(now()));
        Ok(self.execute(Scope::Write(org), sql, values).await? > 0)
    }

    /// A call's appointments are those whose audit rows name it: every change a tool call makes
    /// writes its audit row, with the call's id, in the change's own transaction, so the list can
    /// miss none. They are in id order, which is the order they were booked (UUIDv7).
    async fn calls(
        &self,
        org: OrgId,
        (from, to): super::Window,
        page: &PageRequest<(DateTime<Utc>, String)>,
    ) -> StoreResult<Page<CallRecord>> {
        let ids = self.dialect().json_distinct("a.appointment_id");
        let sql = format!(
            "SELECT c.call_id, c.customer_number, c.started_at, c.ended_at, c.ended_reason, c.summary,
                    (SELECT {ids} FROM audit_log a
                     WHERE a.org_id = c.org_id AND a.call_id = c.call_id AND a.subject = 'appointment') AS appointment_ids
             FROM calls c
             WHERE c.org_id = $1 AND ($2 IS NULL OR c.started_at >= $2) AND ($3 IS NULL OR c.started_at < $3)
               AND ($4 IS NULL OR (c.started_at, c.call_id) > ($4, $5))
             ORDER BY c.started_at, c.call_id LIMIT $6"
        );
        // Calls are named by Vapi's text ids: the sort key carries the id, the UUID part is unused.
        let (after, id) = page.after.as_ref().map(|((at, id), _)| (Timestamp(*at), id.as_str())).unzip();
        let values = (org, from.map(Timestamp), to.map(Timestamp), after, id, i64::from(page.limit) + 1);
        Ok(Page::of(self.fetch_all(Scope::Read(org), &sql, values).await?, page.limit))
    }

    async fn organization(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        let sql = format!("SELECT {ORG_COLUMNS} WHERE id = $1");
        Ok(self.fetch_optional(Scope::Read(id), &sql, (id,)).await?)
    }

    async fn update_organization(
        &self,
        note: &AuditNote<'_>,
        changes: &OrganizationChanges,
    ) -> StoreResult<Option<(Organization, Vec<AppointmentId>)>> {
        let changed = retrying(|| self.try_update_organization(note, changes)).await?;
        self.known.forget_organization(note.actor.org);
        Ok(changed)
    }

    async fn delete_organization(&self, id: OrgId) -> StoreResult<bool> {
        // A change in flight that deadlocks with the deletion (a move holding its appointment
        // while it waits for the organization's row) has one of the two tried again.
        let deleted = retrying(|| async {
            let mut tx = self.begin(Scope::Write(id)).await?;
            // The organization's row first, against every key-share its bookings in flight hold:
            // they commit before the deletion reads its appointments (so none is missed), and
            // later ones wait for it and then find no organization.
            let lock = tx.dialect().lock("organizations");
            let sql = format!("SELECT 1 FROM organizations WHERE id = $1{lock}");
            tx.query(&sql, (id,)).fetch_optional::<(i32,)>().await?;
            // Its appointments next: they refer to its appointment types without a cascade, and
            // the order in which PostgreSQL runs the cascades from the organization (by the names
            // of their triggers, which hold object ids) must not decide whether the deletion
            // succeeds.
            tx.query("DELETE FROM appointments WHERE org_id = $1", (id,)).execute().await?;
            let deleted = tx.query("DELETE FROM organizations WHERE id = $1", (id,)).execute().await?;
            tx.commit().await?;
            Ok(deleted > 0)
        })
        .await?;
        self.known.forget_organization(id);
        Ok(deleted)
    }

    async fn create_provider(&self, note: &AuditNote<'_>, p: &Provider) -> StoreResult<()> {
        let sql = "INSERT INTO providers (id, org_id, name, timezone, appointment_minutes, working_hours, active, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";
        let values = (p.id, p.org_id, &p.name, p.own_zone, p.appointment_minutes, &p.hours, p.active, Timestamp(now()));
        let mut tx = self.begin(Scope::Write(p.org_id)).await?;
        // A closure being created waits for this provider, or this one for it (schedule.rs).
        lock_organization(&mut tx, p.org_id).await?;
        refuse_indistinct_name(&mut tx, p.org_id, Named::Provider, p.id.0, &p.name, true).await?;
        tx.run(sql, values).await?;
        commit_audited(tx, true, note, Subject::Provider(p.id), action::PROVIDER_ADDED).await?;
        Ok(())
    }

    async fn providers(&self, org: OrgId, page: &PageRequest<String>) -> StoreResult<Page<Provider>> {
        let sql = format!(
            "SELECT {PROVIDER_COLUMNS} WHERE p.org_id = $1 AND ($2 IS NULL OR (p.name, p.id) > ($2, $3))
             ORDER BY p.name, p.id LIMIT $4"
        );
        Ok(self.page(org, &sql, (org,), page, |name| name.as_str()).await?)
    }

    async fn provider(&self, org: OrgId, id: ProviderId) -> StoreResult<Option<Provider>> {
        let sql = format!("SELECT {PROVIDER_COLUMNS} WHERE p.org_id = $1 AND p.id = $2");
        Ok(self.fetch_optional(Scope::Read(org), &sql, (org, id)).await?)
    }

    async fn active_providers(&self, org: OrgId) -> StoreResult<Vec<Provider>> {
        let sql = format!("SELECT {PROVIDER_COLUMNS} WHERE p.org_id = $1 AND p.active ORDER BY p.name, p.id LIMIT $2");
        Ok(at_most_active(org, "providers", self.fetch_all(Scope::Read(org), &sql, (org, ACTIVE_READ)).await?))
    }

    async fn update_provider(
        &self,
        note: &AuditNote<'_>,
        id: ProviderId,
        c: &ProviderChanges,
    ) -> StoreResult<Option<Provider>> {
        let org = note.actor.org;
        let mut tx = self.begin(Scope::Write(org)).await?;
        let naming = lock_for_naming(&mut tx, org, c.name.as_ref(), c.active).await?;
        let lock = tx.dialect().lock("p");
        let Some(Known { provider: mut p, .. }) = provider_row(&mut tx, org, id, &lock).await? else {
            return Ok(None);
        };
        let was_active = p.active;
        p.apply(c);
        if naming && p.active {
            refuse_indistinct_name(&mut tx, org, Named::Provider, id.0, &p.name, !was_active).await?;
        }
        let sql =
            "UPDATE providers SET name = $3, timezone = $4, appointment_minutes = $5, working_hours = $6, active = $7,
                                     updated_at = $8, version = version + 1
                   WHERE org_id = $1 AND id = $2";
        let values = (org, id, &p.name, p.own_zone, p.appointment_minutes, &p.hours, p.active, Timestamp(now()));
        let changed = tx.query(sql, values).execute().await?;
        let changed = commit_audited(tx, changed > 0, note, Subject::Provider(id), action::PROVIDER_CHANGED).await?;
        self.known.forget(org, id);
        Ok(changed.then_some(p))
    }

    async fn create_appointment_type(&self, note: &AuditNote<'_>, t: &AppointmentType) -> StoreResult<()> {
        let sql = "INSERT INTO appointment_types (id, org_id, name, duration_minutes, buffer_before_minutes,
                        buffer_after_minutes, min_notice_minutes, max_advance_days, slot_interval_minutes,
                        bookable_by_agent, provider_ids, active, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)";
        t.check_bookable()?;
        let mut tx = self.begin(Scope::Write(t.org_id)).await?;
        lock_organization(&mut tx, t.org_id).await?;
        refuse_indistinct_name(&mut tx, t.org_id, Named::AppointmentType, t.id.0, &t.name, true).await?;
        tx.run(sql, type_values(t, now())).await?;
        commit_audited(tx, true, note, Subject::AppointmentType(t.id), action::APPOINTMENT_TYPE_ADDED).await?;
        Ok(())
    }

    async fn appointment_types(&self, org: OrgId, page: &PageRequest<String>) -> StoreResult<Page<AppointmentType>> {
        let sql = format!(
            "SELECT {APPOINTMENT_TYPE_COLUMNS} WHERE org_id = $1 AND ($2 IS NULL OR (name, id) > ($2, $3))
             ORDER BY name, id LIMIT $4"
        );
        Ok(self.page(org, &sql, (org,), page, |name| name.as_str()).await?)
    }

    async fn appointment_type(&self, org: OrgId, id: AppointmentTypeId) -> StoreResult<Option<AppointmentType>> {
        let sql = format!("SELECT {APPOINTMENT_TYPE_COLUMNS} WHERE org_id = $1 AND id = $2");
        Ok(self.fetch_optional(Scope::Read(org), &sql, (org, id)).await?)
    }

    async fn active_appointment_types(&self, org: OrgId) -> StoreResult<Vec<AppointmentType>> {
        let sql = format!("SELECT {APPOINTMENT_TYPE_COLUMNS} WHERE org_id = $1 AND active ORDER BY name, id LIMIT $2");
        let rows = self.fetch_all(Scope::Read(org), &sql, (org, ACTIVE_READ)).await?;
        Ok(at_most_active(org, "appointment types", rows))
    }

    async fn update_appointment_type(
        &self,
        note: &AuditNote<'_>,
        id: AppointmentTypeId,
        changes: &AppointmentTypeChanges,
    ) -> StoreResult<Option<AppointmentType>> {
        let org = note.actor.org;
        let mut tx = self.begin(Scope::Write(org)).await?;
        let naming = lock_for_naming(&mut tx, org, changes.name.as_ref(), changes.active).await?;
        let lock = tx.dialect().lock("appointment_types");
        let Some(mut t) = appointment_type_in(&mut tx, org, id, &lock).await? else {
            return Ok(None);
        };
        let was_active = t.active;
        t.apply(changes);
        // Judged when a change could make it so: a type saved unbookable before the rule can
        // still be renamed or withdrawn.
        let rebounded = changes.min_notice_minutes.is_some() || changes.max_advance_days.is_some();
        if t.active && (rebounded || !was_active) {
            t.check_bookable()?;
        }
        if naming && t.active {
            refuse_indistinct_name(&mut tx, org, Named::AppointmentType, id.0, &t.name, !was_active).await?;
        }
        let sql = "UPDATE appointment_types SET name = $3, duration_minutes = $4, buffer_before_minutes = $5,
                        buffer_after_minutes = $6, min_notice_minutes = $7, max_advance_days = $8,
                        slot_interval_minutes = $9, bookable_by_agent = $10, provider_ids = $11, active = $12,
                        updated_at = $13, version = version + 1
                   WHERE id = $1 AND org_id = $2";
        let changed = tx.query(sql, type_values(&t, now())).execute().await?;
        let changed =
            commit_audited(tx, changed > 0, note, Subject::AppointmentType(id), action::APPOINTMENT_TYPE_CHANGED)
                .await?;
        t.version += 1;
        Ok(changed.then_some(t))
    }

    async fn create_time_off(&self, actor: &Actor, time_off: &TimeOff) -> StoreResult<Vec<AppointmentId>> {
        let conflicts = retrying(|| self.try_add_time_off(actor, time_off)).await?;
        self.known.forget(actor.org, time_off.provider_id);
        Ok(conflicts)
    }

    async fn time_off(
        &self,
        org: OrgId,
        provider: ProviderId,
        (from, to): super::Window,
        page: &PageRequest<DateTime<Utc>>,
    ) -> StoreResult<Page<TimeOff>> {
        let sql = format!(
            "SELECT {TIME_OFF_COLUMNS}
             WHERE org_id = $1 AND provider_id = $2 AND ($3 IS NULL OR ends_at > $3) AND ($4 IS NULL OR starts_at < $4)
               AND ($5 IS NULL OR (starts_at, id) > ($5, $6))
             ORDER BY starts_at, id LIMIT $7"
        );
        let values = (org, provider, from.map(Timestamp), to.map(Timestamp));
        Ok(self.page(org, &sql, values, page, |at| Timestamp(*at)).await?)
    }

    async fn delete_time_off(&self, actor: &Actor, id: TimeOffId) -> StoreResult<bool> {
        let mut tx = self.begin(Scope::Write(actor.org)).await?;
        let sql = "DELETE FROM time_off WHERE org_id = $1 AND id = $2
                   RETURNING id, org_id, provider_id, starts_at, ends_at, reason";
        let Some(removed) = tx.query(sql, (actor.org, id)).fetch_optional::<TimeOff>().await? else {
            return Ok(false);
        };
        let details = serde_json::json!({
            "provider_id": removed.provider_id, "starts_at": removed.span.start(), "ends_at": removed.span.end(),
        });
        audit(&mut tx, actor, Subject::TimeOff(id), action::TIME_OFF_REMOVED, &details, now()).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn create_closure(&self, actor: &Actor, closure: &Closure) -> StoreResult<Vec<AppointmentId>> {
        let conflicts = retrying(|| self.try_add_closure(actor, closure)).await?;
        self.known.forget_organization(actor.org);
        Ok(conflicts)
    }

    async fn closures(&self, org: OrgId, page: &PageRequest<NaiveDate>) -> StoreResult<Page<Closure>> {
        let sql = format!(
            "SELECT {CLOSURE_COLUMNS} WHERE org_id = $1 AND ($2 IS NULL OR (first_day, id) > ($2, $3))
             ORDER BY first_day, id LIMIT $4"
        );
        Ok(self.page(org, &sql, (org,), page, |day| *day).await?)
    }

    async fn closures_meeting(
        &self,
        org: OrgId,
        (from, to): (NaiveDate, NaiveDate),
        limit: u32,
    ) -> StoreResult<Vec<Closure>> {
        let sql = format!(
            "SELECT {CLOSURE_COLUMNS} WHERE org_id = $1 AND last_day >= $2 AND first_day <= $3 ORDER BY first_day, id LIMIT $4"
        );
        Ok(self.fetch_all(Scope::Read(org), &sql, (org, from, to, i64::from(limit))).await?)
    }

    async fn delete_closure(&self, actor: &Actor, id: ClosureId) -> StoreResult<bool> {
        let mut tx = self.begin(Scope::Write(actor.org)).await?;
        let sql = "DELETE FROM closures WHERE org_id = $1 AND id = $2 RETURNING first_day, last_day";
        let removed: Option<(NaiveDate, NaiveDate)> = tx.query(sql, (actor.org, id)).fetch_optional().await?;
        let Some((first, last)) = removed else {
            return Ok(false);
        };
        let details = serde_json::json!({ "date": first, "end_date": last });
        audit(&mut tx, actor, Subject::Closure(id), action::CLOSURE_REMOVED, &details, now()).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn busy(
        &self,
        org: OrgId,
        providers: &[ProviderId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<Vec<Slot>>> {
        // A span that ends before it starts (a past day's, clamped to what is still relevant)
        // holds nothing; PostgreSQL would refuse to build its range.
        if from >= to {
            return Ok(vec![Vec::new(); providers.len()]);
        }
        let mut tx = self.begin(Scope::Read(org)).await?;
        let busy = busy_of(&mut tx, org, providers, from, to).await?;
        tx.commit().await?;
        Ok(busy)
    }

    async fn book(&self, actor: &Actor, booking: NewBooking<'_>) -> StoreResult<BookOutcome> {
        let b = &booking;
        retrying(|| async move {
            let capped =
                b.capped.then(|| quota_caller(actor.org, b.patient.phone.as_ref(), actor.call.as_deref())).flatten();
            let scope = match &capped {
                Some(caller) => Scope::WriteLocked(actor.org, lock_key(caller)),
                None => Scope::Write(actor.org),
            };
            let mut tx = self.begin(scope).await?;
            if let Some(replayed) = replay(&mut tx, actor.org, b.idempotency.as_ref()).await? {
                return Ok(replayed);
            }
            let (known, kind_version, wanted) = match self.plan_booking(&mut tx, actor.org, b).await? {
                Ok(planned) => planned,
                Err(refusal) => return Ok(refusal),
            };
            let provider = &known.provider;
            let now = now();
            let appointment = Appointment::pending(actor, provider, &wanted, b, now);
            let email = appointment.patient_email.as_deref();
            let writes = BookingWrites {
                actor,
                appointment: &appointment,
                provider_version: known.version,
                kind_version,
                audit: action::booked(&wanted.slot),
                link: email.map(|_| &b.link),
                message: email.map(|to| outbox_kind::with_link(to, &b.link)),
                manage: &b.manage,
                sms: appointment.patient_phone.as_deref().map(outbox_kind::plain),
                idempotency: b.idempotency.as_ref().map(|idem| (idem, (b.render)(&appointment))),
                capped: capped.is_some(),
            };
            let inserted = match tx.dialect() {
                Dialect::Postgres => super::postgres::insert_booking(&mut tx, &writes).await,
                Dialect::Sqlite => super::sqlite::insert_booking(&mut tx, &writes).await,
            };
            match inserted {
                Ok(Inserted::Booked) => {
                    tx.commit().await?;
                    Ok(BookOutcome::Booked(appointment))
                }
                Ok(Inserted::Stale) => {
                    // Planned from a copy of the provider or type older than the stored one: plan
                    // again from a fresh read.
                    self.known.forget(actor.org, b.provider);
                    Err(Fault::Retry)
                }
                Ok(Inserted::Taken(read)) => {
                    // A concurrent request with the same key may be the one that took the slot.
                    if let Some(replayed) = replay(&mut tx, actor.org, b.idempotency.as_ref()).await? {
                        return Ok(replayed);
                    }
                    let busy = match read {
                        Some(busy) => busy,
                        None => {
                            let (from, to) = crate::domain::alternatives_window(&wanted.slot, now);
                            busy_of(&mut tx, actor.org, &[provider.id], from, to).await?.pop().unwrap_or_default()
                        }
                    };
                    let blocked = wanted.blocked();
                    if !busy.iter().any(|s| s.overlaps(&blocked)) {
                        // A confirmation code collision, or the conflicting booking was just cancelled.
                        return Err(Fault::Retry);
                    }
                    tx.commit().await?;
                    Ok(BookOutcome::Unavailable { provider: provider.clone(), wanted, busy: Some(busy) })
                }
                Ok(Inserted::OverQuota(most)) => {
                    let who = match b.patient.phone {
                        Some(_) => "the number you're calling from already has",
                        None => "this call has already booked",
                    };
                    let s = if most == 1 { "" } else { "s" };
                    let says = format!(
                        "{who} {most} upcoming appointment{s} here, the most one caller can book: one of them can be \
                         moved or cancelled instead"
                    );
                    Err(StoreError::InvalidState(says).into())
                }
                Ok(Inserted::BookedTooOften) => {
                    let who = match b.patient.phone {
                        Some(_) => "the number you're calling from has",
                        None => "this call has",
                    };
                    let says = format!(
                        "{who} booked {MAX_BOOKINGS_PER_CALLER_PER_DAY} appointments here in the last day, the most one \
                         caller can: please call the clinic's front desk"
                    );
                    Err(StoreError::InvalidState(says).into())
                }
                Ok(Inserted::Refused) => {
                    drop(tx);
                    if let Some(idem) = &b.idempotency {
                        let mut tx = self.begin(Scope::Read(actor.org)).await?;
                        if let Some(replayed) = replay(&mut tx, actor.org, Some(idem)).await? {
                            return Ok(replayed);
                        }
                    }
                    Ok(BookOutcome::Unavailable { provider: provider.clone(), wanted, busy: None })
                }
                // A confirmation code collision, or a concurrent request with the same idempotency
                // key committed first: the next attempt draws a new code or replays that request.
                Err(e) if is_unique_violation(&e) => Err(Fault::Retry),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn appointment(&self, org: OrgId, id: AppointmentId) -> StoreResult<Option<Appointment>> {
        let sql = format!("SELECT {APPOINTMENT_COLUMNS} WHERE a.org_id = $1 AND a.id = $2");
        Ok(self.fetch_optional(Scope::Read(org), &sql, (org, id)).await?)
    }

    async fn appointments(
        &self,
        org: OrgId,
        f: &AppointmentFilter,
        page: &PageRequest<DateTime<Utc>>,
    ) -> StoreResult<Page<Appointment>> {
        // A filter given is a plain condition, which an index can serve (the caller's number, the
        // provider, the times); one not given is only its placeholder, bound as NULL. An
        // appointment ending after `from` starts at most its longest length before it.
        let given = |set: bool, condition: &'static str, unset: &'static str| if set { condition } else { unset };
        let sql = format!(
            "SELECT {APPOINTMENT_COLUMNS}
             WHERE a.org_id = $1 AND {} AND {} AND {} AND {} AND {} AND {} AND (NOT $8 OR a.{HOLDS_TIME}) AND {}
             ORDER BY a.starts_at, a.id
             LIMIT $12",
            given(f.provider.is_some(), "a.provider_id = $2", "$2 IS NULL"),
            given(f.from.is_some(), "a.ends_at > $3 AND a.starts_at > $9", "$3 IS NULL AND $9 IS NULL"),
            given(f.to.is_some(), "a.starts_at < $4", "$4 IS NULL"),
            given(f.status.is_some(), "a.status = $5", "$5 IS NULL"),
            given(f.patient_phone.is_some(), "a.patient_phone = $6", "$6 IS NULL"),
            given(f.confirmation_code.is_some(), "a.confirmation_code = $7", "$7 IS NULL"),
            given(page.after.is_some(), "(a.starts_at, a.id) > ($10, $11)", "$10 IS NULL AND $11 IS NULL"),
        );
        let (from, to, status) = (f.from.map(Timestamp), f.to.map(Timestamp), f.status.map(|s| s.as_str()));
        let earliest = f.from.map(|from| Timestamp(from - chrono::Duration::minutes(Minutes::MAX)));
        let values = (org, f.provider, from, to, status, &f.patient_phone, &f.confirmation_code, f.active, earliest);
        Ok(self.page(org, &sql, values, page, |at| Timestamp(*at)).await?)
    }

    async fn cancel(
        &self,
        actor: &Actor,
        id: AppointmentId,
        reason: Option<&str>,
        cutoff: Option<Cutoff>,
        answer: Option<&KeptAnswer<'_>>,
    ) -> StoreResult<Appointment> {
        retrying(|| async move {
            let mut tx = self.begin(Scope::Write(actor.org)).await?;
            let mut appointment = lock_appointment(&mut tx, actor.org, id).await?;
            within_reach(&appointment, cutoff)?;
            still_active(&appointment, |status| format!("the appointment is already {status}"))?;
            let now = now();
            let sql = "UPDATE appointments SET status = 'cancelled', cancel_reason = $3, updated_at = $4
                       WHERE org_id = $1 AND id = $2";
            tx.run(sql, (actor.org, id, reason, Timestamp(now))).await?;
            let details = serde_json::json!({ "reason": reason });
            audit(&mut tx, actor, id.into(), action::CANCELLED, &details, now).await?;
            withdraw_link(&mut tx, actor.org, id).await?;
            withdraw_reminders(&mut tx, actor.org, id).await?;
            // A time already past (staff tidying up yesterday) is not announced to the patient. A
            // move not yet told (its notice withdrawn here) is told with the cancellation: it
            // names the time the patient last heard of beside the cancelled one.
            let (upcoming, start) = (appointment.slot.start() > now, appointment.slot.start());
            let moves = outbox_kind::MOVES;
            for ((kind, to), move_kind) in channels(&appointment, outbox_kind::CANCELLATIONS).into_iter().zip(moves) {
                let Some(to) = to else { continue };
                let heard = withdraw_move_notices(&mut tx, &appointment, move_kind, start, now).await?;
                if upcoming {
                    let payload = outbox_kind::moved(outbox_kind::plain(to), heard, start);
                    enqueue(&mut tx, &appointment, kind, &payload, now, now).await?;
                }
            }
            appointment.status = AppointmentStatus::Cancelled;
            appointment.updated_at = now;
            fire(&mut tx, &appointment, event::CANCELLED, now).await?;
            if let Some(answer) = answer.filter(|a| a.names_start.is_none_or(|at| at == start)) {
                keep_answer(&mut tx, actor.org, answer, now).await?;
            }
            tx.commit().await?;
            Ok(appointment)
        })
        .await
    }

    async fn reschedule(
        &self,
        actor: &Actor,
        id: AppointmentId,
        kind: Option<AppointmentTypeId>,
        plan: PlanMove<'_>,
        link: &IssuedLink,
        cutoff: Option<Cutoff>,
    ) -> StoreResult<MoveOutcome> {
        retrying(|| async move {
            let mut tx = self.begin(Scope::Write(actor.org)).await?;
            let mut appointment = lock_appointment(&mut tx, actor.org, id).await?;
            within_reach(&appointment, cutoff)?;
            still_active(&appointment, |status| format!("a {status} appointment cannot be rescheduled"))?;
            // Locked against time off and closures being created until this transaction ends, so
            // the check for them below stays true (docs/ARCHITECTURE.md, "Time off races"); then
            // read. Read by the locking statement, the clinic's zone would be as that statement
            // began when the lock waited for a change of zone (which holds every provider).
            if tx.dialect().locks_rows() {
                let key_share = tx.dialect().key_share("p");
                let sql = format!("SELECT 1 FROM providers p WHERE p.org_id = $1 AND p.id = $2{key_share}");
                tx.query(&sql, (actor.org, appointment.provider_id)).fetch_optional::<(i32,)>().await?;
            }
            let provider = provider_row(&mut tx, actor.org, appointment.provider_id, "").await?;
            let provider = provider.ok_or(StoreError::NotFound)?.provider;
            appointment.zone = provider.zone();
            // The type likewise, against its change: one that has answered is what this move sees.
            let key_share = tx.dialect().key_share("appointment_types");
            let moved_as = match kind.or(appointment.appointment_type) {
                Some(kind) => Some(appointment_type_in(&mut tx, actor.org, kind, &key_share).await?),
                None => None,
            };
            let mut wanted = plan(&provider, &appointment, moved_as.as_ref().map(Option::as_ref))?;
            if let Some(cutoff) = cutoff {
                wanted.policy = cutoff.bound(wanted.policy);
            }
            let now = now();
            let blocked = wanted.blocked();
            if (wanted.slot, blocked, wanted.kind)
                == (appointment.slot, appointment.blocked, appointment.appointment_type)
            {
                // Already there: a repeated request (a double-clicked form, a retry) moves nothing
                // and notifies no one again; unless the provider is no longer there (deactivated,
                // away or closed since), which is refused as any move to that time is.
                let own = appointment.blocked;
                if !provider.active || closed(&mut tx, actor.org, provider.id, &blocked).await? {
                    return Ok(MoveOutcome::Unavailable { provider, wanted, own });
                }
                return Ok(MoveOutcome::Moved(appointment));
            }
            if cutoff.is_some() {
                within_moves(&mut tx, actor, id).await?;
            }
            let refused = !provider.active
                || !wanted.allowed_by(&provider, now)
                || closed(&mut tx, actor.org, provider.id, &blocked).await?
                || (tx.dialect().checks_overlaps()
                    && overlapping(&mut tx, actor.org, provider.id, &blocked, Some(id)).await?);
            let own = appointment.blocked;
            if refused {
                return Ok(MoveOutcome::Unavailable { provider, wanted, own });
            }
            // A move keeps the status (the contract's statuses go only from pending to confirmed,
            // and either to cancelled). A new start is a new time for the patient: a notice, its
            // reminders queued anew, and, while pending, a new confirmation link. The same start
            // with another length or type is no move for them: its link and reminders stay
            // (queued anew, one already due waiting on a retry would be lost), and they are not
            // told it "moved" to the time it has.
            let start_moved = wanted.slot.start() != appointment.slot.start();
            let sql = "UPDATE appointments SET starts_at = $3, ends_at = $4, blocked_from = $5, blocked_until = $6,
                              appointment_type_id = $7, updated_at = $8
                       WHERE org_id = $1 AND id = $2";
            let (start, end) = (Timestamp(wanted.slot.start()), Timestamp(wanted.slot.end()));
            let (from, until) = (Timestamp(blocked.start()), Timestamp(blocked.end()));
            let values = (actor.org, id, start, end, from, until, wanted.kind, Timestamp(now));
            match tx.run(sql, values).await {
                // PostgreSQL's exclusion constraint: a booking committed since the check above.
                Err(e) if sqlstate(&e).as_deref() == Some(EXCLUSION_VIOLATION) => {
                    return Ok(MoveOutcome::Unavailable { provider, wanted, own })
                }
                result => result?,
            }
            let details = action::moved(&appointment.slot, &wanted.slot);
            audit(&mut tx, actor, id.into(), action::RESCHEDULED, &details, now).await?;
            let was = appointment.slot.start();
            appointment.slot = wanted.slot;
            appointment.blocked = blocked;
            appointment.appointment_type = wanted.kind;
            appointment.updated_at = now;
            if start_moved {
                withdraw_link(&mut tx, actor.org, id).await?;
                // Each notice tells from the start the patient last heard of: the one an earlier
                // move's notice, still unsent (withdrawn: this one tells instead), told from, else
                // the one it had. Back there, there is nothing to tell but a pending one's new link.
                let moved_to = wanted.slot.start();
                if let Some(to) = &appointment.patient_email {
                    let kind = outbox_kind::RESCHEDULE_NOTICE;
                    let from = withdraw_move_notices(&mut tx, &appointment, kind, was, now).await?;
                    let pending = appointment.status == AppointmentStatus::Pending;
                    if from.is_some() || pending {
                        let payload = if pending {
                            issue_link(&mut tx, &appointment, link, now).await?;
                            outbox_kind::with_link(to, link)
                        } else {
                            outbox_kind::plain(to)
                        };
                        let payload = outbox_kind::moved(payload, from, moved_to);
                        enqueue(&mut tx, &appointment, kind, &payload, now, now).await?;
                    }
                }
                if let Some(phone) = &appointment.patient_phone {
                    let kind = outbox_kind::RESCHEDULE_SMS;
                    if let Some(from) = withdraw_move_notices(&mut tx, &appointment, kind, was, now).await? {
                        let payload = outbox_kind::moved(outbox_kind::plain(phone), Some(from), moved_to);
                        enqueue(&mut tx, &appointment, kind, &payload, now, now).await?;
                    }
                }
                withdraw_reminders(&mut tx, actor.org, id).await?;
                queue_reminders(&mut tx, &appointment, now).await?;
            }
            fire(&mut tx, &appointment, event::RESCHEDULED, now).await?;
            tx.commit().await?;
            Ok(MoveOutcome::Moved(appointment))
        })
        .await
    }

    async fn tool_result(&self, org: OrgId, key: &ToolCallKey<'_>) -> StoreResult<Option<Value>> {
        let values = (org, key.call_id, key.tool_call_id, key.fingerprint);
        let saved: Option<(Json<Value>,)> = self.fetch_optional(Scope::Read(org), TOOL_RESULT, values).await?;
        Ok(saved.map(|(Json(v),)| v))
    }

    async fn save_tool_result(&self, org: OrgId, answer: &KeptAnswer<'_>) -> StoreResult<Value> {
        let mut tx = self.begin(Scope::Write(org)).await?;
        keep_answer(&mut tx, org, answer, now()).await?;
        let key = answer.key;
        let (Json(standing),) =
            tx.query(TOOL_RESULT, (org, key.call_id, key.tool_call_id, key.fingerprint)).fetch_one().await?;
        tx.commit().await?;
        Ok(standing)
    }

    async fn link_target(&self, token_hash: &str) -> StoreResult<Option<LinkTarget>> {
        let sql = "SELECT org_id, appointment_id, expires_at FROM confirmation_tokens WHERE token_hash = $1";
        let row: Option<(OrgId, AppointmentId, Timestamp)> =
            self.fetch_optional(Scope::Links, sql, (token_hash,)).await?;
        Ok(row.map(|(org, appointment, expires_at)| LinkTarget { org, appointment, expires_at: expires_at.0 }))
    }

    async fn manage_target(&self, token_hash: &str) -> StoreResult<Option<(OrgId, AppointmentId)>> {
        let sql = "SELECT org_id, appointment_id FROM manage_links WHERE token_hash = $1";
        Ok(self.fetch_optional(Scope::Links, sql, (token_hash,)).await?)
    }

    async fn moves_left(&self, actor: &Actor, id: AppointmentId) -> StoreResult<i64> {
        let values = (actor.org, id, action::RESCHEDULED, &actor.sub);
        let moves: Option<(i64,)> = self.fetch_optional(Scope::Read(actor.org), MOVES, values).await?;
        Ok((MAX_MOVES_BY_CALLER - moves.map_or(0, |(n,)| n)).max(0))
    }

    async fn manage_nonce(&self, org: OrgId, appointment: AppointmentId) -> StoreResult<Option<String>> {
        let sql = "SELECT nonce FROM manage_links WHERE org_id = $1 AND appointment_id = $2";
        let row: Option<(String,)> = self.fetch_optional(Scope::Read(org), sql, (org, appointment)).await?;
        Ok(row.map(|(nonce,)| nonce))
    }

    async fn attend(&self, actor: &Actor, id: AppointmentId, outcome: Attendance) -> StoreResult<Appointment> {
        let (marked, kind) = match outcome {
            Attendance::Completed => (AppointmentStatus::Completed, event::COMPLETED),
            Attendance::NoShow => (AppointmentStatus::NoShow, event::NO_SHOW),
        };
        retrying(|| async move {
            let mut tx = self.begin(Scope::Write(actor.org)).await?;
            let mut appointment = lock_appointment(&mut tx, actor.org, id).await?;
            still_active(&appointment, |status| format!("the appointment is already {status}"))?;
            let now = now();
            if appointment.slot.start() > now {
                return Err(StoreError::InvalidState("the appointment has not started yet".into()).into());
            }
            let sql = "UPDATE appointments SET status = $3, updated_at = $4 WHERE org_id = $1 AND id = $2";
            tx.run(sql, (actor.org, id, marked.as_str(), Timestamp(now))).await?;
            audit(&mut tx, actor, id.into(), marked.as_str(), &serde_json::json!({}), now).await?;
            appointment.status = marked;
            appointment.updated_at = now;
            fire(&mut tx, &appointment, kind, now).await?;
            tx.commit().await?;
            Ok(appointment)
        })
        .await
    }

    async fn confirm(&self, actor: &Actor, id: AppointmentId, via: ConfirmedVia<'_>) -> StoreResult<Confirmed> {
        retrying(|| async move {
            let mut tx = self.begin(Scope::Write(actor.org)).await?;
            let mut appointment = lock_appointment(&mut tx, actor.org, id).await?;
            let now = now();
            if let ConfirmedVia::ConfirmLink(token_hash) = via {
                let expires_at: Option<(Timestamp,)> = tx
                    .query("SELECT expires_at FROM confirmation_tokens WHERE org_id = $1 AND appointment_id = $2 AND token_hash = $3", (actor.org, id, token_hash))
                    .fetch_optional()
                    .await?;
                match expires_at {
                    None => return Err(StoreError::NotFound.into()),
                    Some((at,)) if at.0 <= now => return Err(StoreError::Expired.into()),
                    Some(_) => {}
                }
            }
            // Confirming is for before the visit: afterwards staff mark how it went, and the
            // patient's link is gone (a `confirmed` event after the fact would mislead). Only the
            // confirm link, which tells nothing else, confirms again harmlessly after the start.
            let started = appointment.slot.start() <= now;
            if started && matches!(via, ConfirmedVia::ManageLink) {
                // As on every manage route, whatever became of it.
                return Err(StoreError::Started.into());
            }
            let again_harmless = !started || matches!(via, ConfirmedVia::ConfirmLink(_));
            if appointment.status == AppointmentStatus::Confirmed && again_harmless {
                return Ok(Confirmed::Already(appointment));
            }
            still_active(&appointment, |status| format!("the appointment is {status}"))?;
            if started {
                let says = "the appointment has started: mark it completed or no-show instead";
                let refused = match via {
                    ConfirmedVia::Staff => StoreError::InvalidState(says.into()),
                    ConfirmedVia::ConfirmLink(_) | ConfirmedVia::ManageLink => StoreError::Started,
                };
                return Err(refused.into());
            }
            let sql = "UPDATE appointments SET status = 'confirmed', updated_at = $3 WHERE org_id = $1 AND id = $2";
            tx.run(sql, (actor.org, id, Timestamp(now))).await?;
            let details = serde_json::json!({ "via": via.name() });
            audit(&mut tx, actor, id.into(), action::CONFIRMED, &details, now).await?;
            appointment.status = AppointmentStatus::Confirmed;
            appointment.updated_at = now;
            fire(&mut tx, &appointment, event::CONFIRMED, now).await?;
            tx.commit().await?;
            Ok(Confirmed::Now(appointment))
        })
        .await
    }

    async fn claim_mail(&self, c: &MailClaim<'_>) -> StoreResult<ClaimedMail> {
        // In one write transaction (one turn of SQLite's writer per claim), giving up first on
        // what was claimed as often as allowed, found through the `outbox_claims` index of the
        // messages claimed at least once (`claims > 0` lets it be used; a limit is at least 1):
        // a claim that ended unsettled is one more claim than failures recorded; a message whose
        // claims were all recorded failures (it reached a limit lowered since) keeps its last
        // error.
        let d = self.dialect();
        let abandon = format!(
            "UPDATE outbox SET dead_at = $1, claimed_until = NULL, last_error = CASE WHEN claims > attempts
                    THEN 'claimed ' || claims || ' times with no outcome recorded (it may have been sent)'
                    ELSE last_error END
             WHERE claims >= $2 AND claims > 0 AND {DUE} AND kind IN (SELECT value FROM {})
             RETURNING kind",
            d.json_elements("$3")
        );
        // Then each organization's oldest due messages of the lane, no more than its share
        // (`oldest_due`), so a claim costs about the same behind a backlog of a million, of its
        // lane or the other, as behind none: ranking every due message instead took 104 ms on
        // PostgreSQL at 100,000 and grew with them (bench/README.md).
        let lane = lane_of(c.kinds);
        // Taken in turn: every organization's oldest, then every one's second, and so on, so no
        // backlog, however long, keeps another organization's message waiting behind it. On
        // SQLite the one writer makes claims exclusive; on PostgreSQL the row locks do: the rows
        // are locked in that order, SKIP LOCKED passing over those another dispatcher is claiming
        // and going on to the next, until the claim has its `limit` (dispatchers claiming at once
        // take the next messages, not nothing), and the due test is asked again of each row
        // locked (it may have just been claimed; the ranking renames its columns, so `{DUE}` there
        // reads `o`'s). The rows chosen lead the join in their order, so the locking stops at
        // `limit` (SQLite keeps a CROSS JOIN's order; left free, it read every due message from
        // `o` first). An organization's share counts what another dispatcher holds: when that
        // fills it, this claim takes none of that organization's this time.
        let claim = format!(
            "{}
             UPDATE outbox SET claimed_until = $2, claims = claims + 1
             WHERE id IN (
                 SELECT o.id FROM (
                     SELECT h.id AS fair_id, h.next_attempt_at AS due_at,
                            row_number() OVER (PARTITION BY h.org_id ORDER BY h.next_attempt_at, h.id) AS nth
                     FROM {}
                     WHERE CAST(pending.org_id AS TEXT) NOT IN (SELECT value FROM {})
                     ORDER BY nth, due_at, fair_id
                 ) AS fair CROSS JOIN outbox o
                 WHERE o.id = fair_id AND {DUE}
                 ORDER BY nth, due_at, fair_id
                 LIMIT $4{}
             )
             RETURNING {OUTBOX_COLUMNS}",
            pending(&lane),
            oldest_due(d, &lane),
            d.json_elements("$7"),
            d.skip_locked("o")
        );
        let (now, kinds) = (Timestamp(c.now), Json(c.kinds));
        let mut tx = self.begin(Scope::Claim(c.within)).await?;
        let abandoned: Vec<(String,)> = tx.query(&abandon, (now, c.max_claims, kinds)).fetch_all().await?;
        let values = (now, Timestamp(c.lease_until), kinds, c.limit, c.max_claims, c.per_org, Json(c.skip));
        let jobs = tx.query(&claim, values).fetch_all().await?;
        tx.commit().await?;
        Ok(ClaimedMail { jobs, abandoned: abandoned.into_iter().map(|(kind,)| kind).collect() })
    }

    async fn record_delivery(&self, message: &OutboxJob, delivery: &Delivery) -> StoreResult<bool> {
        let (job, now) = (Key(message.id), Timestamp(now()));
        let changed = match delivery {
            Delivery::Sent => {
                // Also over a dead letter given up on meanwhile: it went out after all.
                let sql = "UPDATE outbox SET sent_at = $2, claimed_until = NULL, dead_at = NULL WHERE id = $1";
                self.execute(Scope::Dispatch, sql, (job, now)).await?
            }
            Delivery::Retry { error, at } => {
                let sql = "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, claimed_until = NULL
                           WHERE id = $1 AND claims = $4";
                self.execute(Scope::Dispatch, sql, (job, error, Timestamp(*at), message.claims)).await?
            }
            Delivery::Dead { error } => {
                let sql =
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2, dead_at = $3, claimed_until = NULL
                           WHERE id = $1 AND claims = $4";
                self.execute(Scope::Dispatch, sql, (job, error, now, message.claims)).await?
            }
            // As its organization, which may withdraw its own messages (the dispatcher's role
            // only updates the delivery columns).
            Delivery::Dropped { .. } => {
                let sql = "DELETE FROM outbox WHERE org_id = $1 AND id = $2";
                self.execute(Scope::Write(message.org), sql, (message.org, job)).await?
            }
        };
        Ok(changed > 0)
    }

    async fn outbox(&self, org: OrgId, appointment: AppointmentId) -> StoreResult<Vec<OutboxJob>> {
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE org_id = $1 AND appointment_id = $2 ORDER BY created_at, id"
        );
        Ok(self.fetch_all(Scope::Read(org), &sql, (org, appointment)).await?)
    }

    async fn create_webhook(&self, note: &AuditNote<'_>, w: &Webhook) -> StoreResult<()> {
        // Counted under the organization's webhook lock, so that two created at once cannot both
        // find room for one.
        let mut tx = self.begin(Scope::WriteLocked(w.org_id, lock_key(&format!("webhooks:{}", w.org_id)))).await?;
        room_for_a_webhook(&mut tx, w.org_id).await?;
        let sql = "INSERT INTO webhooks (id, org_id, url, events, secret, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
        tx.run(sql, (w.id, w.org_id, &w.url, Json(&w.events), &w.secret, Timestamp(w.created_at))).await?;
        commit_audited(tx, true, note, Subject::Webhook(w.id), action::WEBHOOK_ADDED).await?;
        Ok(())
    }

    async fn webhook_room(&self, org: OrgId) -> StoreResult<()> {
        room_for_a_webhook(&mut self.begin(Scope::Read(org)).await?, org).await
    }

    async fn webhooks(&self, org: OrgId, page: &PageRequest<DateTime<Utc>>) -> StoreResult<Page<Webhook>> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} WHERE org_id = $1 AND ($2 IS NULL OR (created_at, id) > ($2, $3))
             ORDER BY created_at, id LIMIT $4"
        );
        Ok(self.page(org, &sql, (org,), page, |at| Timestamp(*at)).await?)
    }

    async fn webhook(&self, org: OrgId, id: WebhookId) -> StoreResult<Option<Webhook>> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} WHERE org_id = $1 AND id = $2");
        Ok(self.fetch_optional(Scope::Read(org), &sql, (org, id)).await?)
    }

    async fn delete_webhook(&self, note: &AuditNote<'_>, id: WebhookId) -> StoreResult<bool> {
        let org = note.actor.org;
        let mut tx = self.begin(Scope::Write(org)).await?;
        let removed = tx.query("DELETE FROM webhooks WHERE org_id = $1 AND id = $2", (org, id)).execute().await?;
        // Its messages still queued go with it, found through the clinic's webhooks' lane index
        // (a dispatcher would drop each at its turn, up to an hour later, keeping the appointments
        // they carry till then); one already in a dispatcher's hands still goes. Dead letters are
        // left to retention.
        let queued = format!(
            "DELETE FROM outbox WHERE org_id = $1 AND kind = '{}' AND {PENDING} AND payload ->> 'webhook_id' = $2",
            outbox_kind::WEBHOOK
        );
        tx.query(&queued, (org, id.0.to_string())).execute().await?;
        commit_audited(tx, removed > 0, note, Subject::Webhook(id), action::WEBHOOK_REMOVED).await
    }

    // SMS opt-outs belong to a pair of numbers, not to a clinic (a sender number may serve
    // several), so they are kept and read outside any organization's scope: written by the inbound
    // SMS route (`Scope::OptOuts`), read by the dispatcher (`Scope::WorkerRead`), each role allowed
    // that table only.

    async fn sms_opt_out(&self, sender: &PhoneNumber, phone: &PhoneNumber) -> StoreResult<()> {
        let sql = "INSERT INTO sms_opt_outs (sender, phone, created_at) VALUES ($1, $2, $3)
                   ON CONFLICT (sender, phone) DO NOTHING";
        self.execute(Scope::OptOuts, sql, (sender.as_str(), phone.as_str(), Timestamp(now()))).await?;
        Ok(())
    }

    async fn sms_opt_in(&self, sender: &PhoneNumber, phone: &PhoneNumber) -> StoreResult<bool> {
        let sql = "DELETE FROM sms_opt_outs WHERE sender = $1 AND phone = $2";
        Ok(self.execute(Scope::OptOuts, sql, (sender.as_str(), phone.as_str())).await? > 0)
    }

    async fn sms_opted_out(&self, sender: &str, phone: &str) -> StoreResult<bool> {
        let sql = "SELECT 1 FROM sms_opt_outs WHERE sender = $1 AND phone = $2";
        let row: Option<(i32,)> = self.fetch_optional(Scope::WorkerRead, sql, (sender, phone)).await?;
        Ok(row.is_some())
    }

    async fn prune(&self, before: DateTime<Utc>, batch: i64) -> StoreResult<u64> {
        let row = self.dialect().row_id();
        let mut deleted = 0;
        for (table, instant) in [
            ("idempotency_keys", "created_at"),
            ("vapi_tool_results", "created_at"),
            ("outbox", "sent_at"),
            ("outbox", "dead_at"),
        ] {
            let sql =
                format!("DELETE FROM {table} WHERE {row} IN (SELECT {row} FROM {table} WHERE {instant} < $1 LIMIT $2)");
            deleted += self.execute(Scope::Retention, &sql, (Timestamp(before), batch)).await?;
        }
        Ok(deleted)
    }

    async fn audit_trail(
        &self,
        org: OrgId,
        subject: Subject,
        page: &PageRequest<i64>,
    ) -> StoreResult<Page<AuditEntry>> {
        let (kind, id) = subject.parts();
        let sql = "SELECT position, id, subject, appointment_id, action, actor, at, details, call_id FROM (
                       SELECT row_number() OVER (ORDER BY id) AS position, id, subject, appointment_id, action,
                              actor, at, details, call_id
                       FROM audit_log WHERE org_id = $1 AND subject = $2 AND appointment_id = $3
                   ) AS trail
                   WHERE ($4 IS NULL OR position > $4)
                   ORDER BY position LIMIT $5";
        // Paged by each row's place in the trail (the log is append-only, so it never changes).
        let after = page.after.as_ref().map(|(at, _)| *at);
        let values = (org, kind, Key(id), after, i64::from(page.limit) + 1);
        Ok(Page::of(self.fetch_all(Scope::Read(org), sql, values).await?, page.limit))
    }

    async fn audit_log(
        &self,
        org: OrgId,
        (from, to): super::Window,
        page: &PageRequest<(DateTime<Utc>, i64)>,
    ) -> StoreResult<Page<AuditEntry>> {
        // Every bound is a value (no `$n IS NULL OR`), so each is a range of the index on
        // (org_id, at, id) on both databases, and a page costs its own rows however deep. The
        // cursor names a row by its instant and its place among the clinic's rows of that instant
        // (`AuditEntry::position`): found again here, past the last of them when it is gone. On
        // the page, a row's place is its place among the page's rows of its instant, after the
        // cursor's place when it is the cursor's instant (the page takes up where the cursor left).
        let sql = "SELECT id, subject, appointment_id, action, actor, at, details, call_id,
                          row_number() OVER (PARTITION BY at ORDER BY id) + CASE WHEN at = $4 THEN $5 ELSE 0 END
                              AS position
                   FROM (
                       SELECT id, subject, appointment_id, action, actor, at, details, call_id
                       FROM audit_log a
                       WHERE a.org_id = $1 AND a.at >= $2 AND a.at < $3
                         AND (a.at, a.id) > ($4, CASE WHEN $5 = 0 THEN 0 ELSE COALESCE(
                             (SELECT s.id FROM audit_log s WHERE s.org_id = $1 AND s.at = $4 ORDER BY s.id LIMIT 1 OFFSET $5 - 1),
                             9223372036854775807) END)
                       ORDER BY a.at, a.id LIMIT $6
                   ) AS page
                   ORDER BY at, id";
        // Bounds past any instant a change is made at, which both databases store.
        let year = |y| {
            Timestamp(NaiveDate::from_ymd_opt(y, 1, 1).unwrap_or_default().and_time(chrono::NaiveTime::MIN).and_utc())
        };
        let (first, last) = (year(1), year(10_000));
        let (after, place) = page.after.as_ref().map_or((first, 0), |((at, place), _)| (Timestamp(*at), *place));
        let values = (org, from.map_or(first, Timestamp), to.map_or(last, Timestamp), after, place);
        let rows = self.fetch_all(Scope::Read(org), sql, Then(values, (i64::from(page.limit) + 1,))).await?;
        Ok(Page::of(rows, page.limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_kit::{Backend, TestDatabase};

    /// The SQL condition and `AppointmentStatus::is_active` agree on every status, on both databases.
    #[tokio::test]
    async fn the_sql_of_an_appointment_holding_its_time_is_the_domain_rule() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let Some(db) = TestDatabase::create(backend).await else { continue };
            let store = SqlStore::connect(&db.url, 1).await.expect("connect");
            let mut tx = store.begin(Scope::Read(OrgId::new())).await.expect("begin");
            for status in AppointmentStatus::ALL {
                let sql = format!("SELECT {HOLDS_TIME} FROM (SELECT $1 AS status) AS a");
                let (holds,): (bool,) = tx.query(&sql, (status.as_str(),)).fetch_one().await.expect("select");
                assert_eq!(holds, status.is_active(), "{backend:?} {status:?}");
            }
        }
    }
}
