//! The clinic's schedule, written once for both databases: appointment types, time off and
//! closures.
//!
//! Creating time off or a closure must leave no gap for a booking racing it: once the request has
//! answered, no booking overlapping it can succeed, and every active appointment it overlaps is in
//! its `conflicts`. Both sides serialise on the provider rows. A booking holds its provider's row in
//! key-share mode from its first statement to its commit (PostgreSQL; on SQLite every write holds
//! the single write lock). Creating time off locks that row for update, so it waits for bookings in
//! flight and then sees them, and raises the provider's version, so a booking that waited for it
//! finds its provider changed and plans again, seeing the time off. A closure does the same for
//! every provider of the organization, locked in id order.

use super::rows::{
    AppointmentTypeRow, ClosureRow, TimeOffRow, APPOINTMENT_TYPE_COLUMNS, CLOSURE_COLUMNS, TIME_OFF_COLUMNS,
};
use super::rules::{audit, retrying, Fault, Scope};
use super::sql::{Key, Timestamp, Tx};
use super::*;
use sqlx::types::Json;

impl SqlStore {
    pub(super) async fn insert_appointment_type(&self, t: &AppointmentType) -> StoreResult<()> {
        let sql = "INSERT INTO appointment_types (id, org_id, name, duration_minutes, buffer_before_minutes,
                        buffer_after_minutes, min_notice_minutes, max_advance_days, slot_interval_minutes,
                        bookable_by_agent, provider_ids, active, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)";
        let mut tx = self.begin(Scope::Write(t.org_id)).await?;
        tx.query(sql, type_values(t, now())).execute().await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn list_appointment_types(
        &self,
        org: OrgId,
        page: &PageRequest<String>,
    ) -> StoreResult<Page<AppointmentType>> {
        let sql = format!(
            "SELECT {APPOINTMENT_TYPE_COLUMNS} WHERE org_id = $1 AND ($2 IS NULL OR (name, id) > ($2, $3))
             ORDER BY name, id LIMIT $4"
        );
        let (name, id) = page.after.as_ref().map(|(name, id)| (name.as_str(), Key(*id))).unzip();
        let mut tx = self.begin(Scope::Read(org)).await?;
        let rows: Vec<AppointmentTypeRow> =
            tx.query(&sql, (org, name, id, i64::from(page.limit) + 1)).fetch_all().await?;
        tx.commit().await?;
        let types = rows.into_iter().map(AppointmentType::try_from).collect::<StoreResult<_>>()?;
        Ok(Page::of(types, page.limit))
    }

    pub(super) async fn load_appointment_type(
        &self,
        org: OrgId,
        id: AppointmentTypeId,
    ) -> StoreResult<Option<AppointmentType>> {
        let mut tx = self.begin(Scope::Read(org)).await?;
        let found = appointment_type_in(&mut tx, org, id, false).await?;
        tx.commit().await?;
        Ok(found)
    }

    pub(super) async fn change_appointment_type(
        &self,
        org: OrgId,
        id: AppointmentTypeId,
        changes: &AppointmentTypeChanges,
    ) -> StoreResult<Option<AppointmentType>> {
        let mut tx = self.begin(Scope::Write(org)).await?;
        let Some(mut t) = appointment_type_in(&mut tx, org, id, true).await? else {
            return Ok(None);
        };
        t.apply(changes);
        let sql = "UPDATE appointment_types SET name = $3, duration_minutes = $4, buffer_before_minutes = $5,
                        buffer_after_minutes = $6, min_notice_minutes = $7, max_advance_days = $8,
                        slot_interval_minutes = $9, bookable_by_agent = $10, provider_ids = $11, active = $12,
                        updated_at = $13
                   WHERE id = $1 AND org_id = $2";
        tx.query(sql, type_values(&t, now())).execute().await?;
        tx.commit().await?;
        Ok(Some(t))
    }

    pub(super) async fn add_time_off(&self, actor: &Actor, t: &TimeOff) -> StoreResult<Vec<AppointmentId>> {
        let conflicts = retrying(|| self.try_add_time_off(actor, t)).await?;
        self.known.forget(actor.org, t.provider_id);
        Ok(conflicts)
    }

    async fn try_add_time_off(&self, actor: &Actor, t: &TimeOff) -> Result<Vec<AppointmentId>, Fault> {
        let (org, now) = (actor.org, now());
        let mut tx = self.begin(Scope::Write(org)).await?;
        let lock = tx.dialect().lock("p");
        let sql = format!("SELECT 1 FROM providers p WHERE p.org_id = $1 AND p.id = $2{lock}");
        let found: Option<(i32,)> = tx.query(&sql, (org, t.provider_id)).fetch_optional().await?;
        if found.is_none() {
            return Err(StoreError::NotFound.into());
        }
        let upcoming = "SELECT count(*) FROM time_off WHERE org_id = $1 AND provider_id = $2 AND ends_at > $3";
        let (count,): (i64,) = tx.query(upcoming, (org, t.provider_id, Timestamp(now))).fetch_one().await?;
        refuse_past_limit(count, "time off entries of this provider")?;
        tx.query("UPDATE providers SET version = version + 1 WHERE org_id = $1 AND id = $2", (org, t.provider_id))
            .execute()
            .await?;
        tx.query(
            "INSERT INTO time_off (id, org_id, provider_id, starts_at, ends_at, reason, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            (t.id, org, t.provider_id, Timestamp(t.span.start()), Timestamp(t.span.end()), &t.reason, Timestamp(now)),
        )
        .execute()
        .await?;
        let details = serde_json::json!({
            "provider_id": t.provider_id, "starts_at": t.span.start(), "ends_at": t.span.end(), "reason": t.reason,
        });
        audit(&mut tx, actor, Subject::TimeOff(t.id), action::TIME_OFF_ADDED, &details, now).await?;
        let conflicts = conflicts_in(&mut tx, org, Some(t.provider_id), &t.span).await?;
        tx.commit().await?;
        Ok(conflicts)
    }

    pub(super) async fn list_time_off(
        &self,
        org: OrgId,
        provider: ProviderId,
        (from, to): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        page: &PageRequest<DateTime<Utc>>,
    ) -> StoreResult<Page<TimeOff>> {
        let sql = format!(
            "SELECT {TIME_OFF_COLUMNS}
             WHERE org_id = $1 AND provider_id = $2 AND ($3 IS NULL OR ends_at > $3) AND ($4 IS NULL OR starts_at < $4)
               AND ($5 IS NULL OR (starts_at, id) > ($5, $6))
             ORDER BY starts_at, id LIMIT $7"
        );
        let (after, id) = page.after.as_ref().map(|(at, id)| (Timestamp(*at), Key(*id))).unzip();
        let values = (org, provider, from.map(Timestamp), to.map(Timestamp), after, id, i64::from(page.limit) + 1);
        let mut tx = self.begin(Scope::Read(org)).await?;
        let rows: Vec<TimeOffRow> = tx.query(&sql, values).fetch_all().await?;
        tx.commit().await?;
        let items = rows.into_iter().map(TimeOff::try_from).collect::<StoreResult<_>>()?;
        Ok(Page::of(items, page.limit))
    }

    pub(super) async fn remove_time_off(&self, actor: &Actor, id: TimeOffId) -> StoreResult<bool> {
        let mut tx = self.begin(Scope::Write(actor.org)).await?;
        let sql = "DELETE FROM time_off WHERE org_id = $1 AND id = $2
                   RETURNING id, org_id, provider_id, starts_at, ends_at, reason";
        let removed: Option<TimeOffRow> = tx.query(sql, (actor.org, id)).fetch_optional().await?;
        let Some(removed) = removed.map(TimeOff::try_from).transpose()? else {
            return Ok(false);
        };
        let details = serde_json::json!({
            "provider_id": removed.provider_id, "starts_at": removed.span.start(), "ends_at": removed.span.end(),
        });
        audit(&mut tx, actor, Subject::TimeOff(id), action::TIME_OFF_REMOVED, &details, now()).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn add_closure(&self, actor: &Actor, c: &Closure) -> StoreResult<Vec<AppointmentId>> {
        let conflicts = retrying(|| self.try_add_closure(actor, c)).await?;
        self.known.forget_organization(actor.org);
        Ok(conflicts)
    }

    async fn try_add_closure(&self, actor: &Actor, c: &Closure) -> Result<Vec<AppointmentId>, Fault> {
        let (org, now) = (actor.org, now());
        let mut tx = self.begin(Scope::Write(org)).await?;
        let lock = tx.dialect().lock("p");
        // Every provider, in one order, so that two closures created at once cannot deadlock.
        let sql = format!("SELECT 1 FROM providers p WHERE p.org_id = $1 ORDER BY p.id{lock}");
        let _: Vec<(i32,)> = tx.query(&sql, (org,)).fetch_all().await?;
        let upcoming = "SELECT count(*) FROM closures WHERE org_id = $1 AND ends_at > $2";
        let (count,): (i64,) = tx.query(upcoming, (org, Timestamp(now))).fetch_one().await?;
        refuse_past_limit(count, "closures of this clinic")?;
        tx.query("UPDATE providers SET version = version + 1 WHERE org_id = $1", (org,)).execute().await?;
        tx.query(
            "INSERT INTO closures (id, org_id, first_day, last_day, starts_at, ends_at, reason, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            (
                c.id,
                org,
                c.first_day,
                c.last_day,
                Timestamp(c.span.start()),
                Timestamp(c.span.end()),
                &c.reason,
                Timestamp(now),
            ),
        )
        .execute()
        .await?;
        let details = serde_json::json!({ "date": c.first_day, "end_date": c.last_day, "reason": c.reason });
        audit(&mut tx, actor, Subject::Closure(c.id), action::CLOSURE_ADDED, &details, now).await?;
        let conflicts = conflicts_in(&mut tx, org, None, &c.span).await?;
        tx.commit().await?;
        Ok(conflicts)
    }

    pub(super) async fn list_closures(&self, org: OrgId, page: &PageRequest<NaiveDate>) -> StoreResult<Page<Closure>> {
        let sql = format!(
            "SELECT {CLOSURE_COLUMNS} WHERE org_id = $1 AND ($2 IS NULL OR (first_day, id) > ($2, $3))
             ORDER BY first_day, id LIMIT $4"
        );
        let (after, id) = page.after.as_ref().map(|(day, id)| (*day, Key(*id))).unzip();
        let mut tx = self.begin(Scope::Read(org)).await?;
        let rows: Vec<ClosureRow> = tx.query(&sql, (org, after, id, i64::from(page.limit) + 1)).fetch_all().await?;
        tx.commit().await?;
        let items = rows.into_iter().map(Closure::try_from).collect::<StoreResult<_>>()?;
        Ok(Page::of(items, page.limit))
    }

    pub(super) async fn remove_closure(&self, actor: &Actor, id: ClosureId) -> StoreResult<bool> {
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
}

/// The values of an appointment type's row, in the placeholder order of its INSERT and UPDATE.
#[allow(clippy::type_complexity)]
fn type_values(
    t: &AppointmentType,
    now: DateTime<Utc>,
) -> (AppointmentTypeId, OrgId, &str, i32, i32, i32, i32, i32, i32, bool, Json<Vec<uuid::Uuid>>, bool, Timestamp) {
    let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    (
        t.id,
        t.org_id,
        &t.name,
        t.duration.get() as i32,
        count(t.buffer_before_minutes),
        count(t.buffer_after_minutes),
        count(t.min_notice_minutes),
        count(t.max_advance_days),
        t.slot_interval.get() as i32,
        t.bookable_by_agent,
        Json(t.provider_ids.iter().map(|p| p.0).collect()),
        t.active,
        Timestamp(now),
    )
}

async fn appointment_type_in(
    tx: &mut Tx,
    org: OrgId,
    id: AppointmentTypeId,
    locked: bool,
) -> StoreResult<Option<AppointmentType>> {
    let lock = if locked { tx.dialect().lock("appointment_types") } else { String::new() };
    let sql = format!("SELECT {APPOINTMENT_TYPE_COLUMNS} WHERE org_id = $1 AND id = $2{lock}");
    let row: Option<AppointmentTypeRow> = tx.query(&sql, (org, id)).fetch_optional().await?;
    row.map(AppointmentType::try_from).transpose()
}

fn refuse_past_limit(count: i64, what: &str) -> Result<(), Fault> {
    if count >= MAX_UPCOMING_BLOCKS {
        return Err(
            StoreError::InvalidState(format!("there are already {count} upcoming {what}, the most allowed")).into()
        );
    }
    Ok(())
}

/// The active appointments whose blocked range meets `span`: of one provider, or of the whole
/// organization.
async fn conflicts_in(
    tx: &mut Tx,
    org: OrgId,
    provider: Option<ProviderId>,
    span: &Slot,
) -> Result<Vec<AppointmentId>, sqlx::Error> {
    let overlap = tx.dialect().overlaps("blocked_from", "blocked_until", "$3", "$4");
    let sql = format!(
        "SELECT id FROM appointments
         WHERE org_id = $1 AND ($2 IS NULL OR provider_id = $2) AND status IN ('pending', 'confirmed') AND {overlap}
         ORDER BY starts_at, id"
    );
    let rows: Vec<(AppointmentId,)> =
        tx.query(&sql, (org, provider, Timestamp(span.start()), Timestamp(span.end()))).fetch_all().await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}
