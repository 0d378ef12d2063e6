//! The OpenAPI 3 document of every route, generated from the handlers' annotations.

use super::{
    appointment_types, appointments, audit, booking, calls, confirm, manage, ops, orgs, providers, settings, sms,
    time_off, vapi, webhooks,
};
use shared::api;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Booking service", description = "Appointment booking for clinics' voice agents."),
    paths(
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
        orgs::create, orgs::remove, orgs::show_own, orgs::change_own,
        providers::create, providers::list, providers::show, providers::update, providers::deactivate, providers::availability,
        appointment_types::create, appointment_types::list, appointment_types::show, appointment_types::update,
        appointment_types::deactivate,
        time_off::create_time_off, time_off::list_time_off, time_off::delete_time_off,
        time_off::create_closure, time_off::list_closures, time_off::delete_closure,
        booking::book, vapi::tools, vapi::definitions, vapi::settings, vapi::set_settings, calls::list, audit::list, settings::show, settings::replace,
        webhooks::create, webhooks::list, webhooks::remove,
        appointments::list, appointments::show, appointments::audit, appointments::confirm, appointments::cancel, appointments::reschedule, appointments::complete, appointments::no_show,
        confirm::show, confirm::confirm, sms::inbound,
        manage::show, manage::ask_to_cancel, manage::cancel, manage::reschedule, manage::confirm,
        manage::reschedule_opened, manage::confirm_opened,
    ),
    components(schemas(
        api::ErrorBody, api::ErrorDetail, api::Slot, api::CreateOrganization, api::UpdateOrganization, api::Organization, api::Weekday,
        api::WorkingHours, api::CreateProvider, api::UpdateProvider, api::Provider, api::Availability,
        api::BookingRequest, api::BookingInput, api::BookingResponse, api::AppointmentStatus, api::Patient,
        api::Appointment, api::CancelRequest, api::RescheduleRequest, api::Health, api::ConfirmationResponse,
        api::CreateAppointmentType, api::UpdateAppointmentType, api::AppointmentType, api::CreateTimeOff, api::TimeOff,
        api::CreateClosure, api::Closure, api::VapiSettings, api::Call, api::AuditEntry, api::Settings, api::CreateWebhook, api::Webhook,
        sms::InboundSms,
        api::ManageRescheduleRequest,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}
