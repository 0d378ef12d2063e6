//! Each outbox message to its channel: the emails of `crate::mail`, the SMS of `crate::sms`, the
//! webhooks of `crate::webhooks`. A message about an appointment is rendered from the appointment
//! as it is when the message goes out, after [`why_not_send`] agreed to send it.

use super::{why_not_send, DeliveryError};
use crate::domain::{Cutoff, PhoneNumber, Reach, WebhookId};
use crate::links::{LinkToken, Links};
use crate::mail::email::{EmailMessage, Kind, Manage};
use crate::mail::Transport;
use crate::store::{self, outbox_kind, Appointment, ClinicSettings, Delivery, DynStore, LinkTarget, OutboxJob};
use lettre::message::Mailbox;
use shared::api::AppointmentStatus;
use std::sync::Arc;

/// Where the outbox's messages go.
pub struct Channels {
    pub store: DynStore,
    pub mail: Transport,
    pub from: Mailbox,
    /// `PUBLIC_BASE_URL` without a trailing slash.
    pub base_url: String,
    pub links: Arc<Links>,
    pub webhooks: crate::webhooks::Sender,
    pub sms: crate::sms::Sms,
}

/// The way a kind of message goes: the one place that tells, for delivery and for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email(Kind),
    Sms,
    Webhook,
}

impl Channel {
    /// The channel of a kind this release delivers, or none.
    pub fn of(kind: &str) -> Option<Self> {
        match kind {
            outbox_kind::WEBHOOK => Some(Self::Webhook),
            kind if outbox_kind::SMS.contains(&kind) => Some(Self::Sms),
            kind => Kind::parse(kind).map(Self::Email),
        }
    }
}

/// What a message about an appointment shows besides the appointment itself.
struct About {
    appointment: Appointment,
    clinic: String,
    provider: String,
    /// How the patient may cancel or move it: the manage link while the clinic's cut-off is
    /// ahead, then by calling the clinic (the link, still given, would refuse a change).
    manage: Option<Manage>,
    settings: ClinicSettings,
}

impl Channels {
    /// Delivers one message by its `channel` (`Channel::of` its kind); `Delivery::Dropped` when it
    /// is no longer to be sent.
    pub async fn deliver(&self, channel: Option<Channel>, job: &OutboxJob) -> Result<Delivery, DeliveryError> {
        match channel {
            Some(Channel::Webhook) => self.webhook(job).await,
            Some(Channel::Sms) => self.text(job).await,
            Some(Channel::Email(email)) => self.email(job, email).await,
            None => Err(DeliveryError::Render(format!("unknown message kind {}", job.kind))),
        }
    }

    /// The appointment and what surrounds it, or why the message is not to be sent.
    async fn about(&self, job: &OutboxJob) -> Result<Result<About, Delivery>, DeliveryError> {
        let Some(appointment) = self.store.appointment(job.org, job.appointment).await? else {
            return Ok(Err(Delivery::Dropped { reason: "the appointment no longer exists" }));
        };
        if let Some(reason) = why_not_send(&job.kind, &job.payload, &appointment, store::now()) {
            return Ok(Err(Delivery::Dropped { reason }));
        }
        let provider = self.store.provider(job.org, appointment.provider_id).await?;
        let provider = provider.map(|p| p.name).unwrap_or_else(|| "your provider".into());
        // A clinic deleted meanwhile sends nothing (not a text from `SMS_FROM` in its name).
        let (Some(org), Some(settings)) =
            (self.store.organization(job.org).await?, self.store.settings(job.org).await?)
        else {
            return Ok(Err(Delivery::Dropped { reason: "the clinic no longer exists" }));
        };
        let cutoff = Cutoff::minutes(settings.manage_cutoff_minutes);
        let link = match self.store.manage_nonce(job.org, job.appointment).await? {
            Some(nonce) => self.manage_token(job, &nonce).await?,
            None => None,
        }
        .map(|token| format!("{}/manage/{}", self.base_url, token.as_str()));
        let manage = match cutoff.reach(appointment.slot.start(), store::now()) {
            Reach::Open => link.map(Manage::Online),
            Reach::TooSoon | Reach::Started => Some(Manage::TooSoon { link, phone: org.vapi.transfer_number }),
        };
        Ok(Ok(About { appointment, clinic: org.name, provider, manage, settings }))
    }

    /// The manage link's token: under the current key, or, after a rotation, under the previous
    /// key it was issued with (asked of the store only when there are two to choose from), and
    /// only the one stored for the job's own appointment.
    async fn manage_token(&self, job: &OutboxJob, nonce: &str) -> Result<Option<LinkToken>, DeliveryError> {
        let tokens = self.links.manage_tokens(nonce);
        if tokens.len() == 1 {
            return Ok(tokens.into_iter().next());
        }
        let stored = first_stored(tokens, |hash| async move {
            Ok(self.store.manage_target(&hash).await?.filter(|&target| target == (job.org, job.appointment)))
        })
        .await?;
        Ok(stored.map(|(token, _)| token))
    }

    async fn email(&self, job: &OutboxJob, kind: Kind) -> Result<Delivery, DeliveryError> {
        let to =
            job.payload["to"].as_str().ok_or_else(|| DeliveryError::Render("the message has no recipient".into()))?;
        let about = match self.about(job).await? {
            Ok(about) => about,
            Err(dropped) => return Ok(dropped),
        };
        // A move's notice has a link only while the appointment is pending, as queued and as sent
        // (confirmed meanwhile, say while the SMTP server was down, it asks nothing).
        let nonce = job.payload["nonce"].as_str();
        if kind == Kind::Booked && nonce.is_none() {
            return Err(DeliveryError::Render("the message has no link nonce".into()));
        }
        let asks = kind == Kind::Booked || about.appointment.status == AppointmentStatus::Pending;
        let pending = about.appointment.status == AppointmentStatus::Pending;
        let link = if let Some(nonce) = nonce.filter(|_| kind.has_link() && asks) {
            let tokens = self.links.confirm_tokens(nonce);
            // A token is looked up by its hash across clinics: only one stored for this very
            // appointment is its link.
            let ours = |t: &LinkTarget| (t.org, t.appointment) == (job.org, job.appointment);
            match first_stored(tokens, |hash| async move { Ok(self.store.link_target(&hash).await?.filter(ours)) })
                .await?
            {
                // Held up past its expiry (an outage longer than CONFIRM_TOKEN_TTL_HOURS), the link
                // would only answer 410: the email goes without it (the manage link confirms too).
                Some((token, target)) => {
                    (target.expires_at > store::now()).then(|| format!("{}/confirm/{}", self.base_url, token.as_str()))
                }
                // A reschedule replaced this link before it went out. While pending, the newer
                // message carries the working one, so this one would only confuse.
                None if pending => return Ok(Delivery::Dropped { reason: "superseded by a newer confirmation link" }),
                // Confirmed, it asks nothing, and the move's notices may be gone (moved back
                // before they went): the booking email goes without the link.
                None => None,
            }
        } else {
            None
        };
        let mail = EmailMessage {
            kind,
            clinic: &about.clinic,
            provider: &about.provider,
            appointment: &about.appointment,
            link: link.as_deref(),
            manage: if kind == Kind::Cancelled { None } else { about.manage.as_ref() },
            moved_from: outbox_kind::moved_from_of(&job.payload),
        }
        .build(job.id, &self.from, to)?;
        match self.mail.send(job.id, &mail).await {
            Ok(()) => {}
            Err(DeliveryError::SmtpRefused(e)) => {
                tracing::warn!(job = %job.id, kind = %job.kind, error = %e, "the SMTP server refused an email for good");
                return Ok(Delivery::Dead { error: format!("not sent: {e}") });
            }
            Err(e) => return Err(e),
        }
        tracing::info!(job = %job.id, kind = %job.kind, "email delivered");
        Ok(Delivery::Sent)
    }

    /// An SMS: from the clinic's `sms_from`, else `SMS_FROM`; never to a phone that texted STOP
    /// to that sender.
    async fn text(&self, job: &OutboxJob) -> Result<Delivery, DeliveryError> {
        let to = job.payload["to"].as_str().ok_or_else(|| DeliveryError::Render("the SMS has no recipient".into()))?;
        let about = match self.about(job).await? {
            Ok(about) => about,
            Err(dropped) => return Ok(dropped),
        };
        let from = about.settings.sms_from.as_deref().or(self.sms.default_from());
        if let Some(from) = from {
            if self.store.sms_opted_out(from, to).await? {
                return Ok(Delivery::Dropped { reason: "the phone texted STOP to this sender" });
            }
        }
        let body = super::sms_body(
            &job.kind,
            &about.clinic,
            &about.provider,
            &about.appointment,
            about.manage.as_ref(),
            outbox_kind::moved_from_of(&job.payload),
        )
        .ok_or_else(|| DeliveryError::Render(format!("no SMS text for {}", job.kind)))?;
        match self.sms.send(job.id, from, to, &body).await {
            Ok(()) => {}
            Err(e) if e.opted_out() => {
                // Kept here too, so the phone's next messages from this sender are not tried.
                if let (Some(Ok(sender)), Ok(phone)) =
                    (from.map(|f| PhoneNumber::parse("From", f)), PhoneNumber::parse("To", to))
                {
                    self.store.sms_opt_out(&sender, &phone).await?;
                }
                return Ok(Delivery::Dropped { reason: "the phone opted out of this sender at Twilio" });
            }
            Err(e) if e.is_permanent() => {
                tracing::warn!(job = %job.id, kind = %job.kind, error = %e, "Twilio refused an SMS for good");
                return Ok(Delivery::Dead { error: format!("not sent: {e}") });
            }
            Err(e) => return Err(DeliveryError::Sms(e.to_string())),
        }
        tracing::info!(job = %job.id, kind = %job.kind, "SMS delivered");
        Ok(Delivery::Sent)
    }

    /// A webhook message: to its endpoint as it is now (a removed one gets nothing), the body as
    /// it was queued, the outbox message's id as `webhook-id`.
    async fn webhook(&self, job: &OutboxJob) -> Result<Delivery, DeliveryError> {
        let id = job.payload["webhook_id"].as_str().and_then(|id| uuid::Uuid::parse_str(id).ok());
        let id = id.ok_or_else(|| DeliveryError::Render("the webhook message names no webhook".into()))?;
        let Some(hook) = self.store.webhook(job.org, WebhookId(id)).await? else {
            return Ok(Delivery::Dropped { reason: "the webhook was removed" });
        };
        let mut body = job.payload.clone();
        if let Some(fields) = body.as_object_mut() {
            fields.remove("webhook_id");
        }
        let body = serde_json::to_vec(&body).map_err(|e| DeliveryError::Render(e.to_string()))?;
        let message_id = format!("msg_{}", job.id.simple());
        self.webhooks.deliver(&hook.url, &hook.secret, &message_id, &body).await.map_err(DeliveryError::Webhook)?;
        tracing::info!(job = %job.id, "webhook delivered");
        Ok(Delivery::Sent)
    }
}

/// The first of `tokens` (the current key's, then the previous key's) whose hash the store holds,
/// with what it holds of it.
async fn first_stored<T, Fut>(
    tokens: Vec<LinkToken>,
    stored: impl Fn(String) -> Fut,
) -> Result<Option<(LinkToken, T)>, DeliveryError>
where
    Fut: std::future::Future<Output = Result<Option<T>, DeliveryError>>,
{
    for token in tokens {
        if let Some(found) = stored(token.hash()).await? {
            return Ok(Some((token, found)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind the dispatcher claims is one a channel delivers (else it would fail until dead).
    #[test]
    fn every_kind_a_dispatcher_claims_has_a_channel() {
        for kind in outbox_kind::ALL {
            assert!(Channel::of(kind).is_some(), "{kind}");
        }
    }
}
