DROP TABLE sync_leases;

--bun:split

DROP INDEX budget_grants_request_idx;

--bun:split

DROP INDEX budget_grants_id_idx;

--bun:split

ALTER TABLE budget_grants DROP COLUMN answered;

--bun:split

ALTER TABLE budget_grants DROP COLUMN request;

--bun:split

ALTER TABLE budget_grants DROP COLUMN kind;

--bun:split

ALTER TABLE budget_grants DROP COLUMN id;
