// The ids of a charge and of its events, as pure functions of what the client sent, so that a charge
// committed twice (once on a primary a failover lost, once again on the new primary when the client
// retries with the same Idempotency-Key) carries the same charge id and the same outbox message id both
// times, and the ledger's dedup (inbox by message id, postings by charge id) absorbs the second one
// (docs/design.md "Which commits a failover can lose").
//
//   ChargeId(tenant, key)        "ch_" + the first 32 hex characters (128 bits) of
//                                SHA-256("paypath.charge_id.v1" NUL tenant NUL key)
//   MessageId(charge_id, type)   the RFC 4122 version 5 UUID (SHA-1, name-based) of the name
//                                type NUL charge_id in the namespace kMessageIdNamespace
//
// Why these shapes: "ch_" + 32 hex is the shape charge ids always had (random before), so every pattern,
// CHECK and test that knows the old ids still holds; the tenant is NUL-terminated (a tenant never contains
// NUL, common/limits.h), so ("ab","c") and ("a","bc") hash different inputs. The message id must be a UUID
// (the outbox and the inbox store uuid); version 5 is the standard name-based kind, so any uuid5
// implementation reproduces it (Python: uuid.uuid5(ns, type + "\0" + charge_id)). The domain tag and the
// namespace make these ids useless for anything else and let a version 2 change the derivation without
// ever colliding with version 1.
//
// Not secret: anyone who knows a tenant and one of its keys can compute the charge id, but reading a
// charge needs the tenant's API key (GET /v1/charges/{id} is scoped to the caller's tenant), and only the
// relay's broker user may publish events. The key itself is not recoverable from the id.
//
// Charges written before these ids existed keep their random ids: nothing is recomputed, a replay is
// answered from the stored row, and nothing relies on an id being derivable.
#pragma once

#include <string>
#include <string_view>

namespace paypath::events {

// uuid5(NAMESPACE_URL, "paypath:outbox-message-id"): the namespace of outbox message ids.
inline constexpr const char* kMessageIdNamespace = "019bc54e-6cd6-5a30-8955-b918c555eefa";

// The charge id of (tenant, idempotency key). Pure; any strings (the api passes a validated tenant and key).
std::string ChargeId(std::string_view tenant, std::string_view idem_key);

// The outbox message id of the event `event_type` (e.g. events::kChargeSucceeded) of charge `charge_id`,
// as a lower-case 36-character UUID. Pure.
std::string MessageId(std::string_view charge_id, std::string_view event_type);

// The RFC 4122 version 5 UUID of `name` in `namespace_uuid` (36 characters, either case; a malformed
// namespace is a programming error and yields the UUID of `name` under the nil namespace). Lower case.
std::string Uuid5(std::string_view namespace_uuid, std::string_view name);

}  // namespace paypath::events
