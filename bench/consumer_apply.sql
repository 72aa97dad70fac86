-- pgbench script: the limit for the consumer. One pgbench transaction applies one charge event with
-- exactly the statements the consumer sends (ledger::ApplyBatch in src/ledger/postings.cc, inside
-- ledger::Consumer::ApplyInTransaction in src/ledger/consumer.cc), in the same order:
--   BEGIN
--   kInboxSql     INSERT INTO inbox ... ON CONFLICT (message_id) DO NOTHING
--   kPostSql      INSERT INTO ledger_entries ... two rows (debit customer, credit merchant)
--   kBalanceSql   the balance upsert, once per account in sorted order: customer:<acct> then merchant:<tenant>
--   kClearAttemptsSql  DELETE FROM delivery_attempts for the batch's message ids (an index probe, normally empty)
--   COMMIT
-- The consumer puts up to 50 events (--batch) in one transaction and upserts each account once per batch;
-- this script is one event per transaction, the unbatched baseline the issue asks for.
-- $n parameters are replaced by the values the consumer would bind, from fresh random numbers: message id
-- md5(k)::uuid, charge id "ch_pgc_<k>", customer account one of 1,000 (as in the seeded backlog in
-- bench/run.sh), merchant "merchant:tenant_a" (one hot row, as in the backlog). Run with -M prepared (the
-- consumer prepares its statements, see store::PgConn::Exec). pgbench reads ":name" as a variable even inside
-- string literals, so the colon in the account names is written as the escape E'\x3a'.
\set k random(1, 9000000000000000000)
\set a random(0, 999)
BEGIN;
INSERT INTO inbox (message_id, charge_id) VALUES (md5(:k::text)::uuid, 'ch_pgc_' || :k::text) ON CONFLICT (message_id) DO NOTHING;
INSERT INTO ledger_entries (charge_id, tenant, account_id, direction, amount, currency, message_id)
VALUES ('ch_pgc_' || :k::text, 'tenant_a', E'customer\x3aacct_' || :a::text, 'debit', 2500::bigint, 'EUR', md5(:k::text)::uuid),
       ('ch_pgc_' || :k::text, 'tenant_a', E'merchant\x3atenant_a', 'credit', 2500::bigint, 'EUR', md5(:k::text)::uuid)
ON CONFLICT (charge_id, direction) DO NOTHING;
INSERT INTO account_balances (tenant, account_id, currency, balance) VALUES ('tenant_a', E'customer\x3aacct_' || :a::text, 'EUR', -2500::bigint)
ON CONFLICT (tenant, account_id, currency) DO UPDATE SET balance = account_balances.balance + EXCLUDED.balance;
INSERT INTO account_balances (tenant, account_id, currency, balance) VALUES ('tenant_a', E'merchant\x3atenant_a', 'EUR', 2500::bigint)
ON CONFLICT (tenant, account_id, currency) DO UPDATE SET balance = account_balances.balance + EXCLUDED.balance;
DELETE FROM delivery_attempts WHERE message_id = ANY(ARRAY[md5(:k::text)::uuid]);
COMMIT;
