use crate::helpers::*;
use chrono::Timelike;
use futures::future::join_all;
use shared::api::{Appointment, AppointmentQuery, AppointmentStatus, BookingInput};
use shared::ApiClient;
use std::sync::Arc;
use tokio::sync::Barrier;

/// What one racer got: 201, or the error's status and the alternatives offered with it.
type Answer = (u16, Vec<shared::api::Slot>);

/// Fires `inputs` at once (each task waits at a barrier) through the given clients in turn, and
/// returns the status codes.
pub(crate) async fn race(clients: &[ApiClient], inputs: Vec<BookingInput>) -> Vec<u16> {
    statuses(race_answers(clients, inputs, Lanes::Used).await)
}

/// How racers reach the store: through the service's lanes (`BookingLanes`: one per organization,
/// provider, type and local start, where a refusal is shared with the requests waiting), or past
/// them, each with an idempotency key of its own, so that every one of them reaches the database.
#[derive(Clone, Copy)]
enum Lanes {
    Used,
    Passed,
}

async fn race_answers(clients: &[ApiClient], inputs: Vec<BookingInput>, lanes: Lanes) -> Vec<Answer> {
    let barrier = Arc::new(Barrier::new(inputs.len()));
    let tasks = inputs.into_iter().enumerate().map(|(i, input)| {
        let client = clients[i % clients.len()].clone();
        let barrier = barrier.clone();
        let key = matches!(lanes, Lanes::Passed).then(|| uuid::Uuid::new_v4().to_string());
        tokio::spawn(async move {
            barrier.wait().await;
            answer(&client, &input, key.as_deref()).await
        })
    });
    join_all(tasks).await.into_iter().map(|r| r.expect("task")).collect()
}

/// Books `inputs` one every 3 ms, each on a task of its own, so that they are in flight before,
/// during and after what a test does meanwhile; their statuses, in order.
pub(crate) async fn staggered(client: ApiClient, inputs: Vec<BookingInput>) -> Vec<u16> {
    let tasks = inputs.into_iter().enumerate().map(|(i, input)| {
        let client = client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(3 * i as u64)).await;
            answer(&client, &input, None).await.0
        })
    });
    join_all(tasks).await.into_iter().map(|r| r.expect("task")).collect()
}

fn statuses(answers: Vec<Answer>) -> Vec<u16> {
    answers.into_iter().map(|(status, _)| status).collect()
}

/// One racer's booking, with its idempotency key if given; a 409 must be `slot_unavailable`.
async fn answer(client: &ApiClient, input: &BookingInput, key: Option<&str>) -> Answer {
    let booked = match key {
        Some(key) => client.book_idempotent(input, key).await,
        None => client.book(input).await,
    };
    match booked {
        Ok(_) => (201, Vec::new()),
        Err(e) => {
            if e.status().map(|s| s.as_u16()) == Some(409) {
                assert_eq!(e.code(), Some("slot_unavailable"), "{e}");
            }
            (e.status().map_or(0, |s| s.as_u16()), e.alternatives().to_vec())
        }
    }
}

/// Fifty bookings at `time` a week ahead, 15 to 260 minutes long.
fn fifty_lengths(provider: uuid::Uuid, time: &str) -> Vec<BookingInput> {
    (0..50)
        .map(|i| BookingInput { duration_minutes: Some(15 + 5 * i), ..booking(provider, days_ahead(7), time) })
        .collect()
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

/// The provider's active appointments (pending or confirmed), by start, after asserting that no
/// two of them overlap.
async fn active_apart(org: &TestOrg, provider: uuid::Uuid) -> Vec<Appointment> {
    let mut active: Vec<Appointment> = org
        .staff
        .appointments(&AppointmentQuery { provider_id: Some(provider), ..Default::default() })
        .await
        .expect("list")
        .into_iter()
        .filter(|a| matches!(a.status, AppointmentStatus::Pending | AppointmentStatus::Confirmed))
        .collect();
    active.sort_by_key(|a| a.starts_at);
    for pair in active.windows(2) {
        assert!(pair[0].ends_at <= pair[1].starts_at, "{:?} overlaps {:?}", pair[0], pair[1]);
    }
    active
}

/// Fifty bookings of one start, each of another length (15 to 260 minutes), sent at once: exactly
/// one is stored, and each refusal is `slot_unavailable` with three alternatives of the refused
/// request's own length, clear of the one appointment stored. Past the lanes (`Lanes::Passed`)
/// all fifty reach the database together, so the store alone must let one in; through them,
/// the fifty share one lane, whose waiters judge a refusal of another length by what it read busy.
async fn fifty_bookings_of_one_start_make_one_appointment(backend: Backend, lanes: Lanes) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let inputs = fifty_lengths(provider.id, "10:00");
    let lengths: Vec<i64> = inputs.iter().filter_map(|i| i.duration_minutes).collect();
    let answers = race_answers(std::slice::from_ref(&org.agent), inputs, lanes).await;
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(count(&statuses, 201), 1, "{statuses:?}");
    assert_eq!(count(&statuses, 409), 49, "{statuses:?}");
    let active = active_apart(&org, provider.id).await;
    assert_eq!(active.len(), 1, "{active:?}");
    let taken = &active[0];
    assert_eq!(taken.starts_at.format("%H:%M").to_string(), "10:00");
    for ((_, alternatives), minutes) in answers.iter().zip(lengths).filter(|((s, _), _)| *s == 409) {
        assert_eq!(alternatives.len(), 3, "{alternatives:?}");
        assert!(
            alternatives.iter().all(|a| a.ends_at <= taken.starts_at || a.starts_at >= taken.ends_at),
            "an alternative overlaps the taken slot: {alternatives:?}"
        );
        assert!(
            alternatives.iter().all(|a| (a.ends_at - a.starts_at).num_minutes() == minutes),
            "alternatives to a {minutes}-minute booking: {alternatives:?}"
        );
    }
}

async fn fifty_concurrent_bookings_of_one_slot_make_exactly_one_appointment(backend: Backend) {
    fifty_bookings_of_one_start_make_one_appointment(backend, Lanes::Passed).await;
}

async fn fifty_lengths_through_one_lane_are_each_refused_with_their_own_alternatives(backend: Backend) {
    fifty_bookings_of_one_start_make_one_appointment(backend, Lanes::Used).await;
}

/// Thirty bookings of 15 to 90 minutes, starting every 5 minutes from 09:00, sent at once (each
/// its own start, so each its own database attempt): the winners are exactly the appointments
/// stored, no two of them overlap, there are at least two (no one range of at most 90 minutes
/// meets both 09:00-09:15 and 11:25 on), and every refused request overlaps a winner: a time is
/// refused only for what is really booked there.
async fn staggered_overlapping_bookings_never_overlap(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let date = days_ahead(8);
    // 30 requests of 15 to 90 minutes starting every 5 minutes from 09:00: many overlap each other.
    let ranges: Vec<(i64, i64)> = (0..30)
        .map(|i| {
            let start = 9 * 60 + i * 5;
            (start, start + 15 + (i * 7) % 76)
        })
        .collect();
    let inputs: Vec<BookingInput> = ranges
        .iter()
        .map(|&(start, end)| BookingInput {
            duration_minutes: Some(end - start),
            ..booking(provider.id, date, &format!("{:02}:{:02}", start / 60, start % 60))
        })
        .collect();
    let statuses = race(std::slice::from_ref(&org.agent), inputs).await;
    assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");
    let (won, refused): (Vec<_>, Vec<_>) = ranges.iter().zip(&statuses).partition(|(_, s)| **s == 201);
    let won: Vec<(i64, i64)> = won.into_iter().map(|(r, _)| *r).collect();
    assert!(won.len() >= 2, "{statuses:?}");
    let overlaps = |a: &(i64, i64), b: &(i64, i64)| a.0 < b.1 && b.0 < a.1;
    for (range, _) in &refused {
        assert!(won.iter().any(|w| overlaps(w, range)), "{range:?} was refused though no winner overlaps it: {won:?}");
    }
    // The winners, as the store holds them: no two active appointments overlap.
    let minutes = |t: chrono::DateTime<chrono::FixedOffset>| i64::from(t.hour() * 60 + t.minute());
    let booked: Vec<(i64, i64)> =
        active_apart(&org, provider.id).await.iter().map(|a| (minutes(a.starts_at), minutes(a.ends_at))).collect();
    assert_eq!(booked, won, "the stored appointments are the winners");
}

/// Four hourly starts contested by ten bookings each, all forty at once, each of another length
/// (15 to 60 minutes, so none reaches the next hour) and so each a database attempt of its own:
/// exactly one booking per start wins, and exactly one appointment is stored at each start.
async fn many_slots_contested_at_once_each_get_one_winner(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let date = days_ahead(9);
    let start = |i: i64| format!("{:02}:00", 8 + i % 4);
    let inputs: Vec<BookingInput> = (0..40)
        .map(|i| BookingInput { duration_minutes: Some(15 + 5 * (i / 4)), ..booking(provider.id, date, &start(i)) })
        .collect();
    let statuses = race(std::slice::from_ref(&org.agent), inputs).await;
    assert_eq!(count(&statuses, 201), 4, "{statuses:?}");
    assert_eq!(count(&statuses, 409), 36, "{statuses:?}");
    for slot in 0..4 {
        let of_slot: Vec<u16> = statuses.iter().skip(slot).step_by(4).copied().collect();
        assert_eq!(count(&of_slot, 201), 1, "{}: {of_slot:?}", start(slot as i64));
    }
    let stored: Vec<String> =
        active_apart(&org, provider.id).await.iter().map(|a| a.starts_at.format("%H:%M").to_string()).collect();
    assert_eq!(stored, ["08:00", "09:00", "10:00", "11:00"]);
}

/// One racer of `a_move_racing_bookings_for_its_new_time_leaves_one_holder`.
enum Racer {
    /// Staff moving this appointment.
    Move(uuid::Uuid),
    /// The voice agent booking this.
    Book(BookingInput),
}

/// Staff move appointment A (14:00) to 10:00 while staff move B (16:00, 45 minutes) to 10:00
/// too and the voice agent books six ranges of other lengths, each containing the instant 10:00
/// (so each a database attempt of its own, and any two of the eight overlapping): all eight at
/// once. Exactly one wins, whichever it is, and holds 10:00: no two active appointments of the
/// provider overlap, a moved winner is at 10:00 and left its old time, every losing move left its
/// appointment as it was, and no refused booking was stored.
async fn a_move_racing_bookings_for_its_new_time_leaves_one_holder(backend: Backend) {
    let app = spawn_app(backend).await;
    let org = app.org("UTC").await;
    let provider = org.provider().await;
    let date = days_ahead(10);
    let book =
        |time: &str, minutes: i64| BookingInput { duration_minutes: Some(minutes), ..booking(provider.id, date, time) };
    let a = org.agent.book(&book("14:00", 30)).await.expect("A booked").appointment_id;
    let b = org.agent.book(&book("16:00", 45)).await.expect("B booked").appointment_id;
    let before = [org.staff.appointment(a).await.expect("A"), org.staff.appointment(b).await.expect("B")];
    let contested = [("10:00", 15), ("10:00", 25), ("09:50", 20), ("09:40", 35), ("10:00", 50), ("09:55", 10)];
    let racers: Vec<Racer> = [Racer::Move(a), Racer::Move(b)]
        .into_iter()
        .chain(contested.iter().map(|&(time, minutes)| Racer::Book(book(time, minutes))))
        .collect();
    let to_ten = move_to(date, "10:00");
    let barrier = Arc::new(Barrier::new(racers.len()));
    let tasks = racers.into_iter().map(|racer| {
        let (barrier, staff, agent, to_ten) = (barrier.clone(), org.staff.clone(), org.agent.clone(), to_ten.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            match racer {
                Racer::Move(id) => match staff.reschedule(id, &to_ten).await {
                    Ok(moved) => (200, Some(moved.id)),
                    Err(e) => {
                        assert_eq!(e.code(), Some("slot_unavailable"), "{e}");
                        (e.status().map_or(0, |s| s.as_u16()), None)
                    }
                },
                Racer::Book(input) => match agent.book(&input).await {
                    Ok(booked) => (201, Some(booked.appointment_id)),
                    Err(e) => {
                        assert_eq!(e.code(), Some("slot_unavailable"), "{e}");
                        (e.status().map_or(0, |s| s.as_u16()), None)
                    }
                },
            }
        })
    });
    let answers: Vec<(u16, Option<uuid::Uuid>)> = join_all(tasks).await.into_iter().map(|r| r.expect("task")).collect();
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses.iter().filter(|s| **s != 409).count(), 1, "{statuses:?}");
    let winner = answers.iter().find_map(|(_, id)| *id).expect("a winner");

    let active = active_apart(&org, provider.id).await;
    let ten = before[0]
        .starts_at
        .with_time(chrono::NaiveTime::from_hms_opt(10, 0, 0).expect("10:00"))
        .single()
        .expect("10:00");
    let holders: Vec<_> = active.iter().filter(|x| x.starts_at <= ten && ten < x.ends_at).collect();
    assert_eq!(holders.len(), 1, "{active:?}");
    assert_eq!(holders[0].id, winner, "the winner holds 10:00: {active:?}");
    // A refused booking stored nothing: A, B and a booking that won.
    let booking_won = statuses[2..].contains(&201);
    assert_eq!(active.len(), 2 + usize::from(booking_won), "{active:?}");
    for (i, was) in before.iter().enumerate() {
        let now = org.staff.appointment(was.id).await.expect("still there");
        if statuses[i] == 200 {
            assert_eq!(now.starts_at, ten, "{now:?}");
            assert!(!active.iter().any(|x| x.starts_at == was.starts_at), "its old time is free: {active:?}");
        } else {
            assert_eq!(
                (now.starts_at, now.ends_at, now.status, &now.confirmation_code),
                (was.starts_at, was.ends_at, was.status, &was.confirmation_code),
                "a losing move leaves its appointment as it was"
            );
        }
    }
}

on_both_backends!(
    fifty_concurrent_bookings_of_one_slot_make_exactly_one_appointment,
    fifty_lengths_through_one_lane_are_each_refused_with_their_own_alternatives,
    staggered_overlapping_bookings_never_overlap,
    many_slots_contested_at_once_each_get_one_winner,
    a_move_racing_bookings_for_its_new_time_leaves_one_holder,
);

/// Two service processes on one database: the database, not a process-local lock, decides.
/// Fifty bookings of one start, each of another length and past the lanes (so each reaches the
/// database), alternately through each; one is stored.
async fn two_service_instances_race_for_one_slot(backend: Backend) {
    let first = spawn_app(backend).await;
    let second = first.another_instance().await;
    let org = first.org("UTC").await;
    let provider = org.provider().await;
    let agent_on_second = second.client(token(shared::Role::Agent, Some(org.id)));
    let inputs = fifty_lengths(provider.id, "15:00");
    let statuses = statuses(race_answers(&[org.agent.clone(), agent_on_second], inputs, Lanes::Passed).await);
    assert_eq!(count(&statuses, 201), 1, "{statuses:?}");
    assert_eq!(count(&statuses, 409), 49, "{statuses:?}");
    let stored = active_apart(&org, provider.id).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
}

mod across_instances {
    use super::*;
    on_both_backends!(two_service_instances_race_for_one_slot);
}
