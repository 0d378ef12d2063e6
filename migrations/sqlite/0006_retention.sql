-- Retention (see the PostgreSQL migration): nothing to change in the schema; this keeps the two
-- migration histories in step.
SELECT 1;
