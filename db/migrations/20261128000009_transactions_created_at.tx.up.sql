-- The sync proves a second that holds more than a page of items by
-- counting the items stored in it (syncplan: burst windows); the index
-- serves that count without reading the whole table.
CREATE INDEX transactions_created_at_idx ON transactions (created_at);
