-- paypath ledger schema, version 1: the ledger consumer's own database (PAYPATH_LEDGER_PG_URL), separate
-- from the api's (sql/schema.sql). Applied by the ledger migrate (`paypath consumer` at start unless
-- --no-migrate, and `paypath migrate` when the ledger URL is set), which runs this whole file in one
-- transaction under an advisory lock; every statement is idempotent, so running it twice is a no-op.
-- Money is bigint minor units; ids and currencies follow src/common/limits.h.
--
-- charge_id here names a charge of the api's database. No foreign key can cross the two databases:
-- `paypath audit` reconciles them instead (every charge posted exactly once, no posting without a charge).

CREATE TABLE IF NOT EXISTS ledger_schema_migrations (
  version    integer PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- Consumer inbox: one row per applied message id, inserted in the same transaction as the effect.
-- The primary key is what makes a redelivered or republished message a no-op.
CREATE TABLE IF NOT EXISTS inbox (
  message_id  uuid        PRIMARY KEY,
  charge_id   text        NOT NULL CHECK (charge_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  received_at timestamptz NOT NULL DEFAULT now()
);
-- The audit joins inbox rows to their charge's postings.
CREATE INDEX IF NOT EXISTS inbox_charge_idx ON inbox (charge_id);

-- Double-entry postings: each charge debits the customer's account (customer:<account_id>) and credits the
-- tenant's merchant account (merchant:<tenant>) by the same amount. UNIQUE (charge_id, direction) makes a
-- second posting impossible; its index is also the order the audit reads postings in.
CREATE TABLE IF NOT EXISTS ledger_entries (
  id         bigserial   PRIMARY KEY,
  charge_id  text        NOT NULL CHECK (charge_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  tenant     text        NOT NULL CHECK (tenant ~ '^[A-Za-z0-9_-]{1,64}$'),
  account_id text        NOT NULL,
  direction  text        NOT NULL CHECK (direction IN ('debit', 'credit')),
  amount     bigint      NOT NULL CHECK (amount BETWEEN 1 AND 100000000000),
  currency   text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  created_at timestamptz NOT NULL DEFAULT now(),
  -- The inbox message whose transaction wrote this posting (forensics: which delivery applied the effect).
  message_id uuid        NOT NULL,
  UNIQUE (charge_id, direction)
);
-- The audit recomputes balances per account from the postings.
CREATE INDEX IF NOT EXISTS ledger_entries_account_idx ON ledger_entries (tenant, account_id, currency);

-- Per-account balances, kept in the posting transaction: credits minus debits, in minor units.
CREATE TABLE IF NOT EXISTS account_balances (
  tenant     text   NOT NULL,
  account_id text   NOT NULL,
  currency   text   NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  balance    bigint NOT NULL,
  PRIMARY KEY (tenant, account_id, currency)
);

-- Redelivered messages the consumer has started to apply, one per transaction, and how often. An attempt
-- is counted (and committed) before the message's own transaction, so a message that crashes the consumer
-- every time has a growing count that survives the crash; the consumer applies redelivered messages in
-- ascending order of this count, so the others get through first. The row goes in the transaction that
-- applies the message: what remains are the messages still in trouble (docs/runbook.md).
CREATE TABLE IF NOT EXISTS delivery_attempts (
  message_id      uuid        PRIMARY KEY,
  charge_id       text        NOT NULL,
  attempts        integer     NOT NULL CHECK (attempts > 0),
  first_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_attempt_at timestamptz NOT NULL DEFAULT now()
);

-- Why each dead-lettered message was dead-lettered: the broker's x-first-death-reason only says
-- "rejected". Written by the consumer (best effort, just before it rejects the message) and by
-- `paypath dlq park`; read by `paypath dlq list`. message_id is text: a forged message may carry any id.
CREATE TABLE IF NOT EXISTS dead_letters (
  id               bigserial   PRIMARY KEY,
  message_id       text        NOT NULL,
  reason           text        NOT NULL,
  detail           text        NOT NULL,
  charge_id        text,
  tenant           text,
  delivery_count   bigint      NOT NULL DEFAULT 0,
  dead_lettered_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dead_letters_message_idx ON dead_letters (message_id);

INSERT INTO ledger_schema_migrations (version) VALUES (1) ON CONFLICT DO NOTHING;
