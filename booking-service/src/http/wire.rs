//! Domain records shown as the API's JSON, times in the provider's local offset.

use crate::domain::{AppointmentId, Slot as DomainSlot, Zone};
use crate::store;
use shared::api;

pub fn slot(zone: &Zone, s: &DomainSlot) -> api::Slot {
    api::Slot { starts_at: zone.localize(s.start()), ends_at: zone.localize(s.end()) }
}

pub fn organization(o: &store::Organization) -> api::Organization {
    api::Organization {
        id: o.id.0,
        name: o.name.clone(),
        timezone: o.zone.name().to_owned(),
        created_at: o.created_at,
        conflicts: None,
    }
}

pub fn provider(p: &store::Provider) -> api::Provider {
    api::Provider {
        id: p.id.0,
        org_id: p.org_id.0,
        name: p.name.clone(),
        timezone: p.zone().name().to_owned(),
        appointment_minutes: p.appointment_minutes.get(),
        working_hours: p.hours.to_wire(),
        active: p.active,
    }
}

pub fn appointment_type(t: &store::AppointmentType) -> api::AppointmentType {
    api::AppointmentType {
        id: t.id.0,
        org_id: t.org_id.0,
        name: t.name.clone(),
        duration_minutes: t.duration.get(),
        buffer_before_minutes: i64::from(t.buffer_before_minutes),
        buffer_after_minutes: i64::from(t.buffer_after_minutes),
        min_notice_minutes: i64::from(t.min_notice_minutes),
        max_advance_days: i64::from(t.max_advance_days),
        slot_interval_minutes: t.slot_interval.get(),
        bookable_by_agent: t.bookable_by_agent,
        provider_ids: t.provider_ids.iter().map(|p| p.0).collect(),
        active: t.active,
    }
}

/// Time off, in the zone of its provider; `conflicts` only when just created.
pub fn time_off(zone: &Zone, t: &store::TimeOff, conflicts: Option<&[AppointmentId]>) -> api::TimeOff {
    api::TimeOff {
        id: t.id.0,
        provider_id: t.provider_id.0,
        starts_at: zone.localize(t.span.start()),
        ends_at: zone.localize(t.span.end()),
        reason: t.reason.clone(),
        conflicts: conflicts.map(|ids| ids.iter().map(|a| a.0).collect()),
    }
}

pub fn closure(c: &store::Closure, conflicts: Option<&[AppointmentId]>) -> api::Closure {
    api::Closure {
        id: c.id.0,
        date: c.first_day,
        end_date: c.last_day,
        reason: c.reason.clone(),
        conflicts: conflicts.map(|ids| ids.iter().map(|a| a.0).collect()),
    }
}

pub fn audit_entry(e: &store::AuditEntry) -> api::AuditEntry {
    api::AuditEntry {
        subject: e.subject.clone(),
        subject_id: e.subject_id,
        action: e.action.clone(),
        actor: e.actor.clone(),
        at: e.at,
        details: e.details.clone(),
        call_id: e.call_id.clone(),
    }
}
