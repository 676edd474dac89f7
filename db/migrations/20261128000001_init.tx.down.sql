DROP TABLE sync_state;

--bun:split

DROP TABLE quarantine;

--bun:split

DROP TABLE payouts;

--bun:split

DROP TABLE user_summaries;

--bun:split

DROP TABLE transactions;
