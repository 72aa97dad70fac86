-- pgbench script: the best a one-commit-per-request design can do for "new charges" (issue 11). The same
-- statements as charge_tx.sql (paypath's claim, completion, charge and outbox, with the same values and
-- sizes; read its header for how each value is made), but all in ONE transaction: one BEGIN, one COMMIT,
-- one fsync per charge. (paypath itself keeps two phases, the claim committed before the work, and
-- amortises both commits over batches instead; see docs/design.md "Group commit".)
-- pgbench reads ":name" as a variable even inside string literals, hence the E'\x3a' escapes.
-- Run with -M prepared, as bench/run.sh does.
\set k random(1, 9000000000000000000)
BEGIN;
INSERT INTO idempotency_keys (tenant, idem_key, fingerprint, status, lease_owner, lease_expires_at)
SELECT 'tenant_a', 'pgb-' || :k::text, '6d1f0a3cb0f6e1a0b8a5c5c0f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d', 'in_flight',
       md5(:k::text), now() + (10000::bigint * interval '1 millisecond')
WHERE NOT EXISTS (SELECT 1 FROM charges WHERE tenant = 'tenant_a' AND idem_key = 'pgb-' || :k::text)
ON CONFLICT (tenant, idem_key) DO NOTHING
RETURNING (EXTRACT(EPOCH FROM created_at) * 1000000)::bigint;
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
