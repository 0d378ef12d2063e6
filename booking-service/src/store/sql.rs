//! One way to run a statement on either database, so each rule is written once.
//!
//! A [`Tx`] is a transaction on PostgreSQL or on SQLite; [`Tx::query`] starts a statement of the
//! same dialect, whose values are bound once for both (every bound type encodes on both
//! databases), and whose rows are read into one row type (every column type decodes on both).
//! The ids and instants are the only values stored differently (`uuid`/`timestamptz` on
//! PostgreSQL, text UUIDs and integer microseconds on SQLite); they, and the domain's values
//! (zones, lengths, working hours), have a codec of their own here, so the store's types derive
//! `FromRow` and bind their fields as they are. SQLite reads `$N` placeholders like PostgreSQL,
//! so the SQL text is shared wherever the dialects agree.

use crate::domain::{
    AppointmentId, AppointmentTypeId, ClosureId, Minutes, OrgId, ProviderId, TimeOffId, WebhookId, WeeklyHours, Zone,
    MAX_BUFFER_MINUTES, MAX_CLOSED_DAYS,
};
use chrono::{DateTime, Utc};
use shared::api::WorkingHours;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::types::Json;
use sqlx::{Arguments, Database, Decode, Encode, FromRow, Postgres, Sqlite, Transaction, Type};
use uuid::Uuid;

/// Which database a transaction runs on, for the few fragments of SQL that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// Locks the rows of `alias` a SELECT returns until the transaction ends. SQLite needs no row
    /// lock: its write transactions (`BEGIN IMMEDIATE`) hold the database's only write lock.
    pub fn lock(self, alias: &str) -> String {
        match self {
            Dialect::Postgres => format!(" FOR UPDATE OF {alias}"),
            Dialect::Sqlite => String::new(),
        }
    }

    /// Locks the rows of `alias` against each other's holders and against updates, but not
    /// against foreign-key checks (`FOR NO KEY UPDATE`): what creating a closure and creating a
    /// provider take on their organization's row, so that each waits for the other while bookings,
    /// whose inserts check that row's key, go on.
    pub fn lock_keeping_key(self, alias: &str) -> String {
        match self {
            Dialect::Postgres => format!(" FOR NO KEY UPDATE OF {alias}"),
            Dialect::Sqlite => String::new(),
        }
    }

    /// Whether a write must look for overlapping appointments itself: PostgreSQL's exclusion
    /// constraint refuses them, SQLite has none and checks inside its single write transaction.
    pub fn checks_overlaps(self) -> bool {
        self == Dialect::Sqlite
    }

    /// Whether a statement locks rows: SQLite's one writer already holds them all.
    pub fn locks_rows(self) -> bool {
        self == Dialect::Postgres
    }

    /// Lets concurrent dispatchers pass over each other's claims instead of waiting.
    pub fn skip_locked(self, alias: &str) -> String {
        match self {
            Dialect::Postgres => format!(" FOR UPDATE OF {alias} SKIP LOCKED"),
            Dialect::Sqlite => String::new(),
        }
    }

    /// Joins to each row before it, as `alias`, the rows of `table` that `rest` (a WHERE that
    /// refers to that row, then an ORDER BY and a LIMIT) selects: LATERAL on PostgreSQL; SQLite,
    /// which has none, looks them up by id from a list it selects anew for each row.
    pub fn join_each(self, table: &str, alias: &str, rest: &str) -> String {
        match self {
            Dialect::Postgres => format!("CROSS JOIN LATERAL (SELECT * FROM {table} {rest}) AS {alias}"),
            Dialect::Sqlite => format!("JOIN {table} {alias} ON {alias}.id IN (SELECT id FROM {table} {rest})"),
        }
    }

    /// A JSON array of the distinct values of `expr` over the rows aggregated, in their order
    /// (`[]` for none).
    pub fn json_distinct(self, expr: &str) -> String {
        match self {
            Dialect::Postgres => format!("coalesce(json_agg(DISTINCT {expr} ORDER BY {expr}), '[]')"),
            Dialect::Sqlite => format!("json_group_array(DISTINCT {expr} ORDER BY {expr})"),
        }
    }

    /// The elements of the JSON array `expr` as rows of text, in a column named `value`.
    pub fn json_elements(self, expr: &str) -> String {
        match self {
            Dialect::Postgres => format!("jsonb_array_elements_text({expr})"),
            Dialect::Sqlite => format!("json_each({expr})"),
        }
    }

    /// `IN` the ids of the JSON array `expr`, as an id column compares with them.
    pub fn among_ids(self, expr: &str) -> String {
        let id = match self {
            Dialect::Postgres => "CAST(value AS uuid)",
            Dialect::Sqlite => "value",
        };
        format!("IN (SELECT {id} FROM {})", self.json_elements(expr))
    }

    /// The column that names a row of any table.
    pub fn row_id(self) -> &'static str {
        match self {
            Dialect::Postgres => "ctid",
            Dialect::Sqlite => "rowid",
        }
    }

    /// Also locks the rows of `alias` against a concurrent `lock` (FOR UPDATE), but not against
    /// each other: what every booking takes on its provider row (the foreign key check takes it
    /// anyway), so that creating time off waits for bookings in flight.
    pub fn key_share(self, alias: &str) -> String {
        match self {
            Dialect::Postgres => format!(" FOR KEY SHARE OF {alias}"),
            Dialect::Sqlite => String::new(),
        }
    }

    /// `[from, until)`, a range of what `held` says, overlaps `[lo, hi)` (column names or
    /// placeholders): on PostgreSQL as ranges, which the GiST indexes serve; on SQLite with a
    /// lower bound on `from` as well, so that its index walks only the rows that can reach `lo`,
    /// not every past one of the provider or the clinic.
    pub fn overlaps(self, held: Held, from: &str, until: &str, lo: &str, hi: &str) -> String {
        match self {
            Dialect::Postgres => format!("tstzrange({from}, {until}, '[)') && tstzrange({lo}, {hi}, '[)')"),
            Dialect::Sqlite => {
                let longest = held.longest().num_microseconds().unwrap_or(i64::MAX);
                format!("{from} < {hi} AND {until} > {lo} AND {from} >= {lo} - {longest}")
            }
        }
    }
}

/// What a compared range holds, and so how long it can be.
#[derive(Debug, Clone, Copy)]
pub enum Held {
    /// An appointment's blocked time: its longest length and the longest buffer on either side.
    Appointment,
    /// Time off or a closure: their longest span, and a day for the clocks' changes (a closure
    /// counts calendar days, in whichever zone its clinic has moved to).
    Closed,
}

impl Held {
    pub fn longest(self) -> chrono::Duration {
        match self {
            Held::Appointment => chrono::Duration::minutes(Minutes::MAX + 2 * i64::from(MAX_BUFFER_MINUTES)),
            Held::Closed => chrono::Duration::days(MAX_CLOSED_DAYS + 1),
        }
    }
}

/// What a statement or query on either database gives.
pub type Db<T = ()> = Result<T, sqlx::Error>;

/// A transaction on either database.
pub enum Tx {
    Pg(Transaction<'static, Postgres>),
    Lite(Transaction<'static, Sqlite>),
}

impl Tx {
    pub fn dialect(&self) -> Dialect {
        match self {
            Tx::Pg(_) => Dialect::Postgres,
            Tx::Lite(_) => Dialect::Sqlite,
        }
    }

    /// A statement to run in this transaction, with its values in placeholder order.
    pub fn query<'t, 'q>(&'t mut self, sql: &'q str, values: impl Values<'q>) -> Query<'t, 'q> {
        let args = match self {
            Tx::Pg(_) => Args::Pg(PgArguments::default()),
            Tx::Lite(_) => Args::Lite(SqliteArguments::default()),
        };
        values.bind_into(Query { tx: self, sql, args: Ok(args) })
    }

    /// Runs a statement whose count of changed rows is not wanted.
    pub async fn run<'q>(&mut self, sql: &'q str, values: impl Values<'q>) -> Db {
        self.query(sql, values).execute().await.map(drop)
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(tx) => tx.commit().await,
            Tx::Lite(tx) => tx.commit().await,
        }
    }
}

/// A value that can be bound on both databases.
pub trait Bind<'q>: 'q + Send + Encode<'q, Postgres> + Type<Postgres> + Encode<'q, Sqlite> + Type<Sqlite> {}
impl<'q, T> Bind<'q> for T where T: 'q + Send + Encode<'q, Postgres> + Type<Postgres> + Encode<'q, Sqlite> + Type<Sqlite>
{}

/// The values of a statement, a tuple in placeholder order (`$1`, `$2`, …).
pub trait Values<'q>: Send {
    fn bind_into<'t>(self, query: Query<'t, 'q>) -> Query<'t, 'q>;
}

macro_rules! values {
    ($($v:ident)*) => {
        impl<'q, $($v: Bind<'q>),*> Values<'q> for ($($v,)*) {
            #[allow(non_snake_case)]
            fn bind_into<'t>(self, query: Query<'t, 'q>) -> Query<'t, 'q> {
                let ($($v,)*) = self;
                query$(.bind($v))*
            }
        }
    };
}

/// `Values` for every tuple up to 26 values.
macro_rules! all_values {
    () => { values!(); };
    ($first:ident $($rest:ident)*) => {
        values!($first $($rest)*);
        all_values!($($rest)*);
    };
}

all_values!(A B C D E F G H I J K L M N O P Q R S T U V W X Y Z);

/// The values of `A` then those of `B`: a statement whose first values are shared with another.
pub struct Then<A, B>(pub A, pub B);

impl<'q, A: Values<'q>, B: Values<'q>> Values<'q> for Then<A, B> {
    fn bind_into<'t>(self, query: Query<'t, 'q>) -> Query<'t, 'q> {
        self.1.bind_into(self.0.bind_into(query))
    }
}

/// A row type both databases can fill.
pub trait Record: Send + Unpin + for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> {}
impl<T> Record for T where T: Send + Unpin + for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> {}

enum Args<'q> {
    Pg(PgArguments),
    Lite(SqliteArguments<'q>),
}

/// A statement with its values, bound in the dialect of its transaction.
pub struct Query<'t, 'q> {
    tx: &'t mut Tx,
    sql: &'q str,
    /// The first value that failed to encode, reported when the statement runs (as sqlx does).
    args: Result<Args<'q>, BoxDynError>,
}

/// Runs `$body` with the statement's arguments, its connection and its SQL, in whichever dialect
/// it was built (the two arms differ only in their types).
macro_rules! on_either {
    ($query:expr, |$args:ident, $conn:ident, $sql:ident| $body:expr) => {{
        let Query { tx, sql: $sql, args } = $query;
        match (tx, args.map_err(sqlx::Error::Encode)?) {
            (Tx::Pg(t), Args::Pg($args)) => {
                let $conn = &mut **t;
                $body
            }
            (Tx::Lite(t), Args::Lite($args)) => {
                let $conn = &mut **t;
                $body
            }
            _ => unreachable!("a statement is built in the dialect of its transaction"),
        }
    }};
}

impl<'t, 'q> Query<'t, 'q> {
    fn bind<T: Bind<'q>>(mut self, value: T) -> Self {
        if let Ok(args) = &mut self.args {
            let added = match args {
                Args::Pg(a) => a.add(value),
                Args::Lite(a) => a.add(value),
            };
            if let Err(e) = added {
                self.args = Err(e);
            }
        }
        self
    }

    /// Runs it; the number of rows it changed.
    pub async fn execute(self) -> Result<u64, sqlx::Error> {
        on_either!(self, |a, conn, sql| Ok(sqlx::query_with(sql, a).execute(conn).await?.rows_affected()))
    }

    pub async fn fetch_optional<R: Record>(self) -> Result<Option<R>, sqlx::Error> {
        on_either!(self, |a, conn, sql| sqlx::query_as_with(sql, a).fetch_optional(conn).await)
    }

    pub async fn fetch_one<R: Record>(self) -> Result<R, sqlx::Error> {
        on_either!(self, |a, conn, sql| sqlx::query_as_with(sql, a).fetch_one(conn).await)
    }

    pub async fn fetch_all<R: Record>(self) -> Result<Vec<R>, sqlx::Error> {
        on_either!(self, |a, conn, sql| sqlx::query_as_with(sql, a).fetch_all(conn).await)
    }
}

/// An instant: `timestamptz` on PostgreSQL, integer microseconds (UTC) on SQLite, where integers
/// compare exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub DateTime<Utc>);

impl From<Timestamp> for DateTime<Utc> {
    fn from(t: Timestamp) -> Self {
        t.0
    }
}

/// An instant that may be absent (a nullable column), stored as [`Timestamp`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaybeTimestamp(pub Option<DateTime<Utc>>);

impl From<MaybeTimestamp> for Option<DateTime<Utc>> {
    fn from(t: MaybeTimestamp) -> Self {
        t.0
    }
}

/// A UUID with no more specific type (an outbox message's id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key(pub Uuid);

/// The codec of a type stored as `$pg` on PostgreSQL and `$lite` on SQLite, converted by `$to`
/// (into the stored form) and `$from` (back, which may fail); or stored alike on both.
macro_rules! codec {
    (alike $t:ty, $stored:ty, $to:expr, $from:expr) => {
        codec!($t, $stored, $stored, $to, $to, $from, $from);
    };
    ($t:ty, $pg:ty, $lite:ty, $to_pg:expr, $to_lite:expr, $from_pg:expr, $from_lite:expr) => {
        impl Type<Postgres> for $t {
            fn type_info() -> <Postgres as Database>::TypeInfo {
                <$pg as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &<Postgres as Database>::TypeInfo) -> bool {
                <$pg as Type<Postgres>>::compatible(ty)
            }
        }
        impl Type<Sqlite> for $t {
            fn type_info() -> <Sqlite as Database>::TypeInfo {
                <$lite as Type<Sqlite>>::type_info()
            }
            fn compatible(ty: &<Sqlite as Database>::TypeInfo) -> bool {
                <$lite as Type<Sqlite>>::compatible(ty)
            }
        }
        impl<'q> Encode<'q, Postgres> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut <Postgres as Database>::ArgumentBuffer<'q>,
            ) -> Result<IsNull, BoxDynError> {
                let stored: $pg = ($to_pg)(self);
                <$pg as Encode<'q, Postgres>>::encode(stored, buf)
            }
        }
        impl<'q> Encode<'q, Sqlite> for $t {
            fn encode_by_ref(&self, buf: &mut <Sqlite as Database>::ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
                let stored: $lite = ($to_lite)(self);
                <$lite as Encode<'q, Sqlite>>::encode(stored, buf)
            }
        }
        impl<'r> Decode<'r, Postgres> for $t {
            fn decode(value: <Postgres as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                ($from_pg)(<$pg as Decode<'r, Postgres>>::decode(value)?)
            }
        }
        impl<'r> Decode<'r, Sqlite> for $t {
            fn decode(value: <Sqlite as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                ($from_lite)(<$lite as Decode<'r, Sqlite>>::decode(value)?)
            }
        }
    };
}

codec!(
    Timestamp,
    DateTime<Utc>,
    i64,
    |t: &Timestamp| t.0,
    |t: &Timestamp| t.0.timestamp_micros(),
    |t| Ok(Timestamp(t)),
    |us: i64| DateTime::from_timestamp_micros(us)
        .map(Timestamp)
        .ok_or_else(|| format!("stored instant {us} is out of range").into())
);

// A nullable instant: [`Timestamp`]'s codec, NULL as `None` (sqlx's own `Option` codec).
codec!(alike MaybeTimestamp, Option<Timestamp>, |t: &MaybeTimestamp| t.0.map(Timestamp), |t: Option<Timestamp>| Ok(
    MaybeTimestamp(t.map(|t| t.0))
));

codec!(alike Zone, String, |z: &Zone| z.name().to_owned(), |name: String| Zone::named(&name)
    .ok_or_else(|| format!("stored time zone {name} is unknown").into()));
// A length kept in an `integer` column, in range by a table constraint.
codec!(alike Minutes, i32, |m: &Minutes| m.get() as i32, |n: i32| Ok(Minutes::parse("minutes", i64::from(n))?));
codec!(alike WeeklyHours, Json<Vec<WorkingHours>>, |h: &WeeklyHours| Json(h.to_wire()), |Json(h): Json<Vec<WorkingHours>>| Ok(
    WeeklyHours::stored(&h)?
));

macro_rules! uuid_codec {
    ($($t:ty),*) => {$(
        codec!(
            $t,
            Uuid,
            uuid::fmt::Hyphenated,
            |id: &$t| id.0,
            |id: &$t| id.0.hyphenated(),
            |id: Uuid| Ok(<$t>::from(id)),
            |id: uuid::fmt::Hyphenated| Ok(<$t>::from(id.into_uuid()))
        );
    )*};
}

impl From<Uuid> for Key {
    fn from(id: Uuid) -> Self {
        Key(id)
    }
}

impl From<Key> for Uuid {
    fn from(id: Key) -> Self {
        id.0
    }
}

uuid_codec!(OrgId, ProviderId, AppointmentId, AppointmentTypeId, TimeOffId, ClosureId, WebhookId, Key);

/// The SQLSTATE of a database error, if it is one.
pub fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{now, rules::Scope, SqlStore};
    use shared::api::Weekday;
    use test_kit::{Backend, TestDatabase};

    /// Every value with a codec here comes back from either database as it was bound (an absent
    /// instant as absent), and a stored value the domain would refuse is an error, not a default.
    #[tokio::test]
    async fn values_come_back_as_bound_and_bad_stored_values_are_errors() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let Some(db) = TestDatabase::create(backend).await else { continue };
            let store = SqlStore::connect(&db.url, 1).await.expect("connect");
            let mut tx = store.begin(Scope::Read(OrgId::new())).await.expect("begin");
            let (id, at) = (OrgId::new(), now());
            let zone = Zone::parse("timezone", "Pacific/Chatham").expect("a zone");
            let minutes = Minutes::parse("minutes", 45).expect("a length");
            let hours = WeeklyHours::stored(&[WorkingHours {
                weekday: Weekday::Tue,
                start: "09:30".into(),
                end: "24:00".into(),
            }])
            .expect("hours");
            type Row = (OrgId, Timestamp, MaybeTimestamp, MaybeTimestamp, Zone, Minutes, WeeklyHours);
            let values = (id, Timestamp(at), MaybeTimestamp(Some(at)), MaybeTimestamp(None), zone, minutes, &hours);
            let back: Row = tx.query("SELECT $1, $2, $3, $4, $5, $6, $7", values).fetch_one().await.expect("select");
            assert_eq!(back, (id, Timestamp(at), MaybeTimestamp(Some(at)), MaybeTimestamp(None), zone, minutes, hours));

            // A legacy name no longer given (EST) still reads, as kept before it was refused.
            let (legacy,): (Zone,) = tx.query("SELECT 'EST'", ()).fetch_one().await.expect("a stored zone");
            assert_eq!(legacy.name(), "EST");
            let zone: Result<(Zone,), _> = tx.query("SELECT 'Mars/Olympus_Mons'", ()).fetch_one().await;
            assert!(zone.is_err_and(|e| e.to_string().contains("Mars/Olympus_Mons")), "{backend:?}");
            let minutes: Result<(Minutes,), _> = tx.query("SELECT 4", ()).fetch_one().await;
            assert!(minutes.is_err(), "{backend:?}: a length below 5 minutes");
        }
    }
}
