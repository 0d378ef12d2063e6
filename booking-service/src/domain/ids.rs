//! Typed identifiers, so an organization id can never be passed where a provider id is meant.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7), which keeps index inserts local.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

id_type!(
    /// A tenant: one clinic.
    OrgId
);
id_type!(
    /// A bookable person or resource of a clinic.
    ProviderId
);
id_type!(
    /// One appointment.
    AppointmentId
);
id_type!(
    /// A kind of visit a clinic offers (a new-patient visit, a follow-up).
    AppointmentTypeId
);
id_type!(
    /// A provider's time off.
    TimeOffId
);
id_type!(
    /// A clinic's closed days.
    ClosureId
);
id_type!(
    /// A clinic's webhook endpoint.
    WebhookId
);
