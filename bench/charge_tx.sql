-- pgbench script: the limit for "new charges". One pgbench transaction = one charge = exactly the
-- statements paypath's api sends to PostgreSQL for a new key, in the same order, on the same schema:
--
--   1. store::IdempotencyStore::Claim      (src/store/idempotency_store.cc): the claim INSERT, autocommit
--   2. store::IdempotencyStore::Complete   (same file), one transaction:
--        UPDATE idempotency_keys ... RETURNING        (the owner check + completion)
--        INSERT INTO charges ...
--        outbox::Append (src/outbox/outbox.cc): INSERT INTO outbox ...   (called from api::ChargeApi::Create)
--      COMMIT
--
-- The statement text is the service's, with each $n parameter replaced by the value the service would
-- bind. Values the service computes in C++ are computed here from one random 63-bit number :k, so every
-- transaction uses a fresh key, owner, charge id and message id:
--   key        "pgb-<k>"                                (service: the client's Idempotency-Key)
--   owner      md5(k), 32 hex                           (service: Random::Hex128)
--   charge id  "ch_" || md5(k)                          (service: "ch_" + Hex128)
--   message id md5('m' || k)::uuid                     (service: Random::Uuid4)
--   created    the database clock in microseconds       (service: the claim's RETURNING, also the database clock)
-- The fingerprint, response body and payload have the same sizes as the service's for the body the HTTP
-- load posts (bench/charge_new.lua); the fingerprint is a constant because that body is constant (the
-- service computes the same fingerprint for every bench request too).
-- pgbench reads ":name" as a variable even inside string literals, so a colon followed by a letter or digit
-- inside a literal is written as the escape E'\x3a' (the same character).
-- What pgbench does NOT do that the service does: HTTP, validation, the Redis GET before the claim and
-- SET after the commit, and logging. Run with -M prepared: the service prepares every statement
-- (store::PgConn::Exec uses PQprepare/PQexecPrepared); BEGIN/COMMIT go as simple queries in both cases.
\set k random(1, 9000000000000000000)
INSERT INTO idempotency_keys (tenant, idem_key, fingerprint, status, lease_owner, lease_expires_at)
SELECT 'tenant_a', 'pgb-' || :k::text, '6d1f0a3cb0f6e1a0b8a5c5c0f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d', 'in_flight',
       md5(:k::text), now() + (10000::bigint * interval '1 millisecond')
WHERE NOT EXISTS (SELECT 1 FROM charges WHERE tenant = 'tenant_a' AND idem_key = 'pgb-' || :k::text)
ON CONFLICT (tenant, idem_key) DO NOTHING
RETURNING (EXTRACT(EPOCH FROM created_at) * 1000000)::bigint;
BEGIN;
UPDATE idempotency_keys SET status = 'completed', lease_owner = NULL, lease_expires_at = NULL,
  response_status = 201,
  response_body = '{"id":"ch_' || md5(:k::text) || E'","account_id":"acct_42","amount"\x3a2500,"currency":"EUR","description":"bench charge","status":"succeeded","created"\x3a1735689600}',
  charge_id = 'ch_' || md5(:k::text), completed_at = now(),
  expires_at = now() + (86400000::bigint * interval '1 millisecond')
WHERE tenant = 'tenant_a' AND idem_key = 'pgb-' || :k::text AND lease_owner = md5(:k::text) AND status = 'in_flight'
RETURNING (EXTRACT(EPOCH FROM expires_at) * 1000)::bigint, (EXTRACT(EPOCH FROM (expires_at - now())) * 1000)::bigint;
INSERT INTO charges (id, tenant, idem_key, fingerprint, account_id, amount, currency, description, status, created_at)
VALUES ('ch_' || md5(:k::text), 'tenant_a', 'pgb-' || :k::text,
        '6d1f0a3cb0f6e1a0b8a5c5c0f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d', 'acct_42', 2500::bigint, 'EUR',
        'bench charge', 'succeeded',
        to_timestamp((extract(epoch FROM now()) * 1000000)::bigint / 1000000)
          + ((extract(epoch FROM now()) * 1000000)::bigint % 1000000) * interval '1 microsecond');
INSERT INTO outbox (message_id, tenant, aggregate_id, event_type, payload)
VALUES (md5('m' || :k::text)::uuid, 'tenant_a', 'ch_' || md5(:k::text), 'charge.succeeded',
        ('{"charge_id":"ch_' || md5(:k::text) || E'","tenant":"tenant_a","account_id":"acct_42","amount"\x3a2500,"currency":"EUR","created_at":"' || to_char(now() AT TIME ZONE 'UTC', E'YYYY-MM-DD"T"HH24\x3aMI\x3aSS.US"Z"') || '"}')::jsonb);
COMMIT;
