//! Creating time off and closures, written once for both databases (the rest of the clinic's
//! schedule is plain statements, in `rules.rs`), and the values of an appointment type's row.
//!
//! Creating time off or a closure must leave no gap for a booking racing it: once the request has
//! answered, no booking overlapping it can succeed, and every active appointment it overlaps is in
//! its `conflicts`. Both sides serialise on the provider rows. A booking holds its provider's row in
//! key-share mode from its first statement to its commit (PostgreSQL; on SQLite every write holds
//! the single write lock). Creating time off locks that row for update, so it waits for bookings in
//! flight and then sees them, and raises the provider's version, so a booking that waited for it
//! finds its provider changed and plans again, seeing the time off. A closure does the same for
//! every active provider of the organization, locked in id order, after locking the organization's
//! row against providers being created or coming back (`lock_organization`): a provider committed
//! after the closure read the list could otherwise be booked past it, unlocked and unseen. A
//! departed provider cannot be booked, so its row is left alone: a clinic's departed providers,
//! however many, add nothing to a closure's work. A closure's instants are
//! its days in the zone read under that lock, and moving the organization to another zone takes
//! the same locks and moves every upcoming closure with it, so neither can keep the other's zone.

use super::rows::ORG_COLUMNS;
use super::rules::{audit, commit_audited, stored_count, Fault, Scope, HOLDS_TIME};
use super::sql::{Held, Timestamp, Tx, Values};
use super::*;
use sqlx::types::Json;

impl SqlStore {
    pub(super) async fn try_add_time_off(&self, actor: &Actor, t: &TimeOff) -> Result<Vec<AppointmentId>, Fault> {
        let (org, now) = (actor.org, now());
        let mut tx = self.begin(Scope::Write(org)).await?;
        let lock = tx.dialect().lock("p");
        let sql = format!("SELECT 1 FROM providers p WHERE p.org_id = $1 AND p.id = $2{lock}");
        let found: Option<(i32,)> = tx.query(&sql, (org, t.provider_id)).fetch_optional().await?;
        if found.is_none() {
            return Err(StoreError::NotFound.into());
        }
        let upcoming = "SELECT count(*) FROM time_off WHERE org_id = $1 AND provider_id = $2 AND ends_at > $3";
        let since = Timestamp(crate::domain::relevant_since(now));
        let (count,): (i64,) = tx.query(upcoming, (org, t.provider_id, since)).fetch_one().await?;
        refuse_past_limit(count, "time off entries of this provider")?;
        tx.run("UPDATE providers SET version = version + 1 WHERE org_id = $1 AND id = $2", (org, t.provider_id))
            .await?;
        let sql = "INSERT INTO time_off (id, org_id, provider_id, starts_at, ends_at, reason, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        let (starts, ends) = (Timestamp(t.span.start()), Timestamp(t.span.end()));
        tx.run(sql, (t.id, org, t.provider_id, starts, ends, &t.reason, Timestamp(now))).await?;
        let details = serde_json::json!({
            "provider_id": t.provider_id, "starts_at": t.span.start(), "ends_at": t.span.end(), "reason": t.reason,
        });
        audit(&mut tx, actor, Subject::TimeOff(t.id), action::TIME_OFF_ADDED, &details, now).await?;
        let conflicts = conflicts_in(&mut tx, org, Some(t.provider_id), &t.span).await?;
        tx.commit().await?;
        Ok(conflicts)
    }

    pub(super) async fn try_add_closure(&self, actor: &Actor, c: &Closure) -> Result<Vec<AppointmentId>, Fault> {
        let (org, now) = (actor.org, now());
        let mut tx = self.begin(Scope::Write(org)).await?;
        let locked = lock_organization(&mut tx, org).await?.ok_or(StoreError::NotFound)?;
        hold_every_provider(&mut tx, org).await?;
        // Its days in the zone as locked: the clinic may have moved since `c.span` was worked out.
        let span = locked.zone.whole_days(c.first_day, c.last_day).unwrap_or(c.span);
        let upcoming = "SELECT count(*) FROM closures WHERE org_id = $1 AND ends_at > $2";
        let since = Timestamp(crate::domain::relevant_since(now));
        let (count,): (i64,) = tx.query(upcoming, (org, since)).fetch_one().await?;
        refuse_past_limit(count, "closures of this clinic")?;
        let sql = "INSERT INTO closures (id, org_id, first_day, last_day, starts_at, ends_at, reason, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let (starts, ends) = (Timestamp(span.start()), Timestamp(span.end()));
        tx.run(sql, (c.id, org, c.first_day, c.last_day, starts, ends, &c.reason, Timestamp(now))).await?;
        let details = serde_json::json!({ "date": c.first_day, "end_date": c.last_day, "reason": c.reason });
        audit(&mut tx, actor, Subject::Closure(c.id), action::CLOSURE_ADDED, &details, now).await?;
        let conflicts = conflicts_in(&mut tx, org, None, &span).await?;
        tx.commit().await?;
        Ok(conflicts)
    }

    /// Renames the organization and moves it to another zone, as `c` asks. A new zone holds every
    /// provider as a closure does (a booking planned in the old zone plans again) and moves each
    /// closure not yet over anywhere to its dates in the new zone, so no closed day is left at
    /// the old zone's hours; the active appointments the moved closures now meet are answered.
    pub(super) async fn try_update_organization(
        &self,
        note: &AuditNote<'_>,
        c: &OrganizationChanges,
    ) -> Result<Option<(Organization, Vec<AppointmentId>)>, Fault> {
        let org = note.actor.org;
        let mut tx = self.begin(Scope::Write(org)).await?;
        let Some(mut o) = lock_organization(&mut tx, org).await? else { return Ok(None) };
        let was = o.zone;
        o.name = c.name.clone().unwrap_or(o.name);
        o.zone = c.zone.unwrap_or(o.zone);
        let mut conflicts = Vec::new();
        if o.zone != was {
            hold_every_provider(&mut tx, org).await?;
            // Every closure whose last date is today or later somewhere on Earth (dates run at
            // most a day apart), chosen by date: by its old instants one still under way in the
            // new zone could pass for over.
            let sql = "SELECT id, first_day, last_day FROM closures WHERE org_id = $1 AND last_day >= $2";
            let yesterday = now().date_naive().pred_opt().unwrap_or(NaiveDate::MIN);
            let closures: Vec<(ClosureId, NaiveDate, NaiveDate)> = tx.query(sql, (org, yesterday)).fetch_all().await?;
            let mut earliest = None;
            for (id, first, last) in closures {
                let Some(span) = o.zone.whole_days(first, last) else { continue };
                let sql = "UPDATE closures SET starts_at = $3, ends_at = $4 WHERE org_id = $1 AND id = $2";
                tx.run(sql, (org, id, Timestamp(span.start()), Timestamp(span.end()))).await?;
                earliest = Some(earliest.map_or(span.start(), |e: DateTime<Utc>| e.min(span.start())));
            }
            // The appointments they meet, in one query: only those ending after the first begins.
            if let Some(earliest) = earliest {
                let overlap = tx.dialect().overlaps(
                    Held::Appointment,
                    "a.blocked_from",
                    "a.blocked_until",
                    "c.starts_at",
                    "c.ends_at",
                );
                let sql = format!(
                    "SELECT a.id FROM appointments a
                     WHERE a.org_id = $1 AND a.{HOLDS_TIME} AND a.blocked_until > $3
                       AND EXISTS (SELECT 1 FROM closures c WHERE c.org_id = $1 AND c.last_day >= $2 AND {overlap})
                     ORDER BY a.starts_at, a.id"
                );
                let rows: Vec<(AppointmentId,)> =
                    tx.query(&sql, (org, yesterday, Timestamp(earliest))).fetch_all().await?;
                conflicts = rows.into_iter().map(|(id,)| id).collect();
            }
        }
        tx.run("UPDATE organizations SET name = $2, timezone = $3 WHERE id = $1", (org, &o.name, o.zone)).await?;
        commit_audited(tx, true, note, Subject::Settings(org), action::ORGANIZATION_CHANGED).await?;
        Ok(Some((o, conflicts)))
    }
}

/// Waits for a closure, a zone change or a provider being created in the organization, and holds
/// the next one back until this transaction ends (bookings are not held): the organization as
/// locked, `None` without it.
pub(super) async fn lock_organization(tx: &mut Tx, org: OrgId) -> Result<Option<Organization>, sqlx::Error> {
    let lock = tx.dialect().lock_keeping_key("organizations");
    tx.query(&format!("SELECT {ORG_COLUMNS} WHERE id = $1{lock}"), (org,)).fetch_optional().await
}

/// Every active provider of the organization (one coming back waits for the organization's
/// lock), locked in one order (so that two such changes at once cannot deadlock) after
/// [`lock_organization`], their versions raised: a booking in flight commits first and is seen,
/// one that waited plans again.
async fn hold_every_provider(tx: &mut Tx, org: OrgId) -> Result<(), sqlx::Error> {
    let lock = tx.dialect().lock("p");
    let sql = format!("SELECT 1 FROM providers p WHERE p.org_id = $1 AND p.active ORDER BY p.id{lock}");
    let _: Vec<(i32,)> = tx.query(&sql, (org,)).fetch_all().await?;
    tx.run("UPDATE providers SET version = version + 1 WHERE org_id = $1 AND active", (org,)).await
}

/// The values of an appointment type's row, in the placeholder order of its INSERT and UPDATE.
pub(super) fn type_values(t: &AppointmentType, now: DateTime<Utc>) -> impl Values<'_> {
    (
        t.id,
        t.org_id,
        &t.name,
        t.duration,
        stored_count(t.buffer_before_minutes),
        stored_count(t.buffer_after_minutes),
        stored_count(t.min_notice_minutes),
        stored_count(t.max_advance_days),
        t.slot_interval,
        t.bookable_by_agent,
        Json(&t.provider_ids),
        t.active,
        Timestamp(now),
    )
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
    let overlap = tx.dialect().overlaps(Held::Appointment, "blocked_from", "blocked_until", "$3", "$4");
    // Not "($2 IS NULL OR provider_id = $2)": SQLite would then read no index past the clinic.
    let whose = if provider.is_some() { "provider_id = $2" } else { "$2 IS NULL" };
    let sql = format!(
        "SELECT id FROM appointments
         WHERE org_id = $1 AND {whose} AND {HOLDS_TIME} AND {overlap}
         ORDER BY starts_at, id"
    );
    let rows: Vec<(AppointmentId,)> =
        tx.query(&sql, (org, provider, Timestamp(span.start()), Timestamp(span.end()))).fetch_all().await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}
