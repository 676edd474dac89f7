DROP TABLE budget_grants;

--bun:split

DROP TABLE budget_locks;
