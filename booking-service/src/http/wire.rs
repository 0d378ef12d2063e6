//! Domain records shown as the API's JSON, times in the provider's local offset.

use crate::domain::{Slot as DomainSlot, Zone};
use crate::store;
use shared::api;

pub fn slot(zone: &Zone, s: &DomainSlot) -> api::Slot {
    api::Slot { starts_at: zone.localize(s.start()), ends_at: zone.localize(s.end()) }
}

pub fn organization(o: &store::Organization) -> api::Organization {
    api::Organization { id: o.id.0, name: o.name.clone(), timezone: o.zone.name().to_owned(), created_at: o.created_at }
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

pub fn appointment(a: &store::Appointment) -> api::Appointment {
    api::Appointment {
        id: a.id.0,
        org_id: a.org_id.0,
        provider_id: a.provider_id.0,
        starts_at: a.zone.localize(a.slot.start()),
        ends_at: a.zone.localize(a.slot.end()),
        status: a.status,
        confirmation_code: a.confirmation_code.clone(),
        patient: api::Patient {
            name: a.patient_name.clone(),
            phone: a.patient_phone.clone(),
            email: a.patient_email.clone(),
        },
        notes: a.notes.clone(),
        created_at: a.created_at,
        updated_at: a.updated_at,
    }
}
