-- Idempotent sends, keyed by a 64-bit keyed hash (SipHash-1-3 of sender id and client_msg_id,
-- under the server secret `message_key`) instead of the two strings: an index entry of about
-- 16 bytes instead of about 80, so the index stays a fifth of the size and each commit writes
-- fewer of its pages (each message's key lands at a random place in it). The hash only finds
-- candidates: the writer compares sender id and client_msg_id of each, and it is the only
-- connection that inserts messages, so "one message per key" holds without a UNIQUE index
-- (which would refuse a message whose different key had the same hash).
-- Rows stored before this migration get their hash when the server starts (it needs the
-- secret, which SQL does not have); the old index is dropped then.
ALTER TABLE messages ADD COLUMN key_hash INTEGER;
CREATE INDEX messages_key ON messages (key_hash) WHERE key_hash IS NOT NULL;
