-- Retention: idempotency records, remembered tool answers and delivered outbox messages are
-- deleted after RETENTION_DAYS. One more role, without login, superuser or BYPASSRLS, that may
-- read and delete rows of exactly these three tables across organizations, and nothing else:
--   booking_janitor  the retention job.

DO $$
BEGIN
    CREATE ROLE booking_janitor NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- created by another database of this cluster
END
$$;

DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT booking_janitor TO %I', current_user);
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO booking_janitor;
GRANT SELECT, DELETE ON idempotency_keys, vapi_tool_results, outbox TO booking_janitor;
CREATE POLICY retention ON idempotency_keys TO booking_janitor USING (true);
CREATE POLICY retention ON vapi_tool_results TO booking_janitor USING (true);
CREATE POLICY retention ON outbox TO booking_janitor USING (true);
