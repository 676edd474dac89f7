-- GET /api/users/{userId}/transactions pages a user's ledger newest first
-- by (created_at, id); the index serves each page, and the user's
-- summary as of an instant, without sorting the user's whole history.
CREATE INDEX transactions_user_created_at_idx ON transactions (user_id, created_at, id);
