-- pgbench script: the relay's PostgreSQL work alone, for the relay analysis in bench/results.md (not a
-- target: the relay's target is against the plain publisher). One pgbench transaction = one relay batch
-- of outbox::Relay::PublishBatch (src/outbox/relay.cc) without the broker:
--   BEGIN
--   kClaimSql   SELECT ... FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
--   kMarkSql    UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])
--   COMMIT
-- The claim is the relay's statement verbatim, wrapped in array_agg so pgbench can hand the ids to the mark
-- (\gset takes one row); the rows' columns are still computed but not sent to the client. Run with -c 1
-- (one relay) and -t backlog/100 on a backlog of unpublished rows. :batch is set with -D batch=100.
BEGIN;
SELECT array_agg(id) AS ids FROM (
  SELECT id, message_id::text, tenant, aggregate_id, event_type, payload::text,
         extract(epoch FROM created_at)::bigint
  FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT :batch FOR UPDATE SKIP LOCKED) AS claim
\gset
UPDATE outbox SET published_at = now() WHERE id = ANY(:ids::bigint[]);
COMMIT;
