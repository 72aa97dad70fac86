// The charge.succeeded event as the consumer reads it, and the validation that decides whether a message
// is a poison message. Pure functions: no I/O, so every rejection reason is unit-testable.
//
// Wire format (contract with the api, written by outbox::Append and published by the relay):
//   AMQP message_id = outbox.message_id (UUID), type = "charge.succeeded", body = JSON
//   {"charge_id":"ch_...","tenant":"tenant_a","account_id":"acct_1","amount":1234,"currency":"USD",
//    "created_at":"2026-11-28T04:00:00.123456Z"}
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/result.h"
#include "broker/amqp.h"

namespace paypath::ledger {

struct ChargeEvent {
  std::string message_id;  // the inbox key
  std::string charge_id;
  std::string tenant;
  std::string account_id;
  int64_t amount = 0;  // minor units, 1..100000000000 (the charges table's limit)
  std::string currency;
  std::chrono::system_clock::time_point created_at;  // charge commit time

  std::string debit_account() const { return "customer:" + account_id; }
  std::string credit_account() const { return "merchant:" + tenant; }
};

// Parses and validates a delivered message. kInvalidArgument (with the reason) means poison: retrying
// cannot make it valid.
Result<ChargeEvent> ParseChargeEvent(const amqp::Message& m);

// Parses RFC 3339 UTC "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (up to 9 fraction digits).
Result<std::chrono::system_clock::time_point> ParseUtcTimestamp(const std::string& s);

}  // namespace paypath::ledger
