//! The providers a booking was recently planned from, with the version they were read at.
//!
//! A booking needs its provider (zone, default length, working hours) before it can compute its
//! slot, and reading it costs a round trip per booking. This copy saves it: the booking statement
//! inserts only while the stored provider still has the copy's version and is active, so a stale
//! copy never books (the store forgets it and reads the provider again), and every refusal is
//! decided on a fresh read. Changes made by other instances are caught the same way.

use super::Provider;
use crate::domain::{OrgId, ProviderId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Bounds the memory a flood of made-up providers could take; past it the map starts over.
const CAPACITY: usize = 4096;

/// A provider as stored at `version`.
#[derive(Debug, sqlx::FromRow)]
pub struct Known {
    #[sqlx(flatten)]
    pub provider: Provider,
    pub version: i64,
}

#[derive(Debug, Default)]
pub struct KnownProviders {
    entries: Mutex<HashMap<(OrgId, ProviderId), Arc<Known>>>,
}

impl KnownProviders {
    pub fn get(&self, org: OrgId, id: ProviderId) -> Option<Arc<Known>> {
        self.lock().get(&(org, id)).cloned()
    }

    pub fn put(&self, known: Arc<Known>) {
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert((known.provider.org_id, known.provider.id), known);
    }

    pub fn forget(&self, org: OrgId, id: ProviderId) {
        self.lock().remove(&(org, id));
    }

    /// Forgets every provider of the organization.
    pub fn forget_organization(&self, org: OrgId) {
        self.lock().retain(|(owner, _), _| *owner != org);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(OrgId, ProviderId), Arc<Known>>> {
        // The map holds no invariant a panicking holder could break: keep using it.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
