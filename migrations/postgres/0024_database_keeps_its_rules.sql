-- Retention may delete only messages that have gone (sent, or given up on): until now only the
-- retention query's predicate kept it from a message still to be sent, with a policy of
-- USING (true). Every release since retention pruned the outbox deletes only such rows, so the
-- release before this one runs on it unchanged.
DROP POLICY retention ON outbox;
CREATE POLICY retention ON outbox TO booking_janitor USING (sent_at IS NOT NULL OR dead_at IS NOT NULL);
-- (The SQLite migration of this number gives an appointment's type the clinic check that PostgreSQL's key makes.)
