-- paypath schema, version 1. Applied by `paypath migrate`, which runs this whole file in one transaction
-- under an advisory lock; every statement is idempotent (IF NOT EXISTS), so running it twice is a no-op.
-- Money is bigint minor units everywhere; currencies are ISO 4217 alphabetic codes.

CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- One row per live (tenant, Idempotency-Key): the lease and the stored response.
-- status 'in_flight': a request holds the lease (lease_owner until lease_expires_at); nothing is stored yet.
-- status 'completed': the charge committed in the same transaction that wrote response_*; replays serve it.
-- Only the lease owner may complete or release a row (every UPDATE/DELETE checks lease_owner).
-- Every time here is the database clock (now()), never an api host's: leases, completion and expiry.
-- The row is purged after its retention; the key stays bound to its charge (charges below), so a late
-- retry still replays (rebuilt from the charge) or gets 422, never a second charge.
CREATE TABLE IF NOT EXISTS idempotency_keys (
  tenant           text        NOT NULL CHECK (tenant ~ '^[A-Za-z0-9_-]{1,64}$'),
  idem_key         text        NOT NULL CHECK (idem_key ~ '^[!-~]{1,255}$'),
  fingerprint      text        NOT NULL CHECK (length(fingerprint) = 64),
  status           text        NOT NULL CHECK (status IN ('in_flight', 'completed')),
  lease_owner      text,
  lease_expires_at timestamptz,
  response_status  integer,
  response_body    text,
  charge_id        text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  completed_at     timestamptz,
  -- When the row may be forgotten (completed_at + retention, both now()); purged by the api's retention loop.
  expires_at       timestamptz,
  PRIMARY KEY (tenant, idem_key),
  CHECK (status <> 'in_flight' OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
  CHECK (status <> 'completed' OR (response_status IS NOT NULL AND response_body IS NOT NULL
                                   AND expires_at IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS idempotency_keys_expires_idx ON idempotency_keys (expires_at)
  WHERE status = 'completed';

-- A charge: exactly one per (tenant, idem_key), for ever (charges are never purged). The unique index is
-- what makes "a key that created a charge never charges again" hold after the key's row is purged, and
-- the fingerprint kept here is what tells a late retry (replay, rebuilt from this row) from a changed
-- request (422). created_at is the database time of the claim; the response's "created" is this value.
CREATE TABLE IF NOT EXISTS charges (
  id          text        PRIMARY KEY,
  tenant      text        NOT NULL,
  idem_key    text        NOT NULL,
  fingerprint text        NOT NULL CHECK (length(fingerprint) = 64),
  account_id  text        NOT NULL CHECK (account_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  amount      bigint      NOT NULL CHECK (amount BETWEEN 1 AND 100000000000),
  currency    text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  description text        CHECK (description IS NULL OR char_length(description) <= 500),
  status      text        NOT NULL CHECK (status = 'succeeded'),
  created_at  timestamptz NOT NULL DEFAULT now()
);
-- Databases created before the fingerprint existed: their old charges keep a NULL fingerprint (a late
-- retry of one of those is answered 422, never charged again). A database holding two charges for one
-- key cannot take the unique index: migrate then fails on purpose (audit that key before anything else).
ALTER TABLE charges ADD COLUMN IF NOT EXISTS fingerprint text CHECK (length(fingerprint) = 64);
CREATE UNIQUE INDEX IF NOT EXISTS charges_tenant_idem_key_uniq ON charges (tenant, idem_key);
-- charges_tenant_idx (tenant, created_at) existed until 2026-12-02; no query read it, every charge paid an
-- insertion into it, and a plan made from an empty table's statistics preferred it to the unique index
-- for the claim's "no charge for this key" check, which on a grown table then scanned every charge of the
-- tenant (GroupCommitTest.BatchStatementsKeepUsingIndexesAfterTheTablesGrowFromEmpty). A listing of a
-- tenant's charges, if one is ever added, brings its index with it.
DROP INDEX IF EXISTS charges_tenant_idx;

-- The database instance: a random id written once, by the first migrate, into this database (so a
-- database dropped and re-created gets a new one) and rotated by `paypath migrate --rotate-instance-id`
-- after a restore. The api namespaces its Redis keys by it (with the cluster's system identifier and
-- timeline where readable), so a warm cache never answers for a database that does not hold the charge.
CREATE TABLE IF NOT EXISTS paypath_instance (
  singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
  instance_id text        NOT NULL CHECK (instance_id ~ '^[0-9a-f]{32}$'),
  created_at  timestamptz NOT NULL DEFAULT now(),
  rotated_at  timestamptz
);
-- gen_random_uuid() is PostgreSQL's strong random (pg_strong_random), core since 13.
INSERT INTO paypath_instance (instance_id) VALUES (replace(gen_random_uuid()::text, '-', ''))
  ON CONFLICT (singleton) DO NOTHING;

-- Transactional outbox: written in the charge's transaction; the relay publishes rows in id order and
-- sets published_at only after the broker confirmed. message_id is the stable id consumers dedup on.
CREATE TABLE IF NOT EXISTS outbox (
  id           bigserial   PRIMARY KEY,
  message_id   uuid        NOT NULL UNIQUE,
  tenant       text        NOT NULL,
  aggregate_id text        NOT NULL,
  event_type   text        NOT NULL,
  payload      jsonb       NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
-- The relay's claim query and the backlog gauge read only unpublished rows.
CREATE INDEX IF NOT EXISTS outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

-- The ledger's tables (inbox, ledger_entries, account_balances) live in the ledger's own database:
-- sql/ledger_schema.sql.

INSERT INTO schema_migrations (version) VALUES (1) ON CONFLICT DO NOTHING;
