-- Nothing to change on SQLite (it has no roles); kept so that both databases number their
-- migrations alike. See the PostgreSQL migration.
SELECT 1;
