-- A clinic moved to another zone (PATCH /api/org) moves its upcoming closures to their dates in
-- the new zone: the application's role may now change a closure's instants, and nothing else of
-- it. The release before this one runs on it unchanged.
GRANT UPDATE (starts_at, ends_at) ON closures TO booking_app;
