// ClassifySqlstate: the retry class of every SQLSTATE a paypath worker may see (decision 2, docs/design.md).
#include "store/pg.h"

#include <gtest/gtest.h>

namespace paypath::store {
namespace {

TEST(ClassifySqlstate, UniqueViolationIsAConflict) { EXPECT_EQ(ClassifySqlstate("23505"), ErrorCode::kConflict); }

TEST(ClassifySqlstate, DataAndIntegrityClassesRefuseTheData) {
  // 22: data exception (22001 string too long, 22003 numeric out of range, 22P02 invalid text
  // representation, 22021 bad encoding); 23: integrity constraint violation (23502 not null, 23503 foreign
  // key, 23514 check).
  for (const char* s : {"22000", "22001", "22003", "22021", "22P02", "23000", "23502", "23503", "23514", "23P01"})
    EXPECT_EQ(ClassifySqlstate(s), ErrorCode::kInvalidArgument) << s;
}

TEST(ClassifySqlstate, SerializationFailureAndDeadlockRetryTheTransaction) {
  EXPECT_EQ(ClassifySqlstate("40001"), ErrorCode::kAborted);
  EXPECT_EQ(ClassifySqlstate("40P01"), ErrorCode::kAborted);
}

TEST(ClassifySqlstate, EverythingElseIsRetriedLater) {
  // 25006 read-only transaction (a standby, a failover, a full disk), 53xxx insufficient resources, 55xxx
  // object not in prerequisite state (55P03 lock not available), 57xxx operator intervention (57014
  // statement timeout, 57P01 admin shutdown), 58xxx system error, 08xxx connection, 40002 / 40003 (other
  // transaction rollbacks), 42xxx (for example a schema not migrated yet), XX000, unknown and empty codes.
  for (const char* s : {"25006", "25001", "53000", "53100", "53200", "53300", "55000", "55P03", "57014", "57P01",
                        "57P03", "58000", "58030", "08006", "08001", "40002", "40003", "42P01", "42501", "XX000",
                        "ZZ999", ""})
    EXPECT_EQ(ClassifySqlstate(s), ErrorCode::kUnavailable) << "'" << s << "'";
}

}  // namespace
}  // namespace paypath::store
