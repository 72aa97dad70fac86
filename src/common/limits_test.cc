#include "common/limits.h"

#include <gtest/gtest.h>

#include <string>

#include "ledger/schema.h"
#include "store/schema.h"

namespace paypath::limits {
namespace {

TEST(Limits, IdsAndCurrencies) {
  EXPECT_TRUE(IsId("tenant_a"));
  EXPECT_TRUE(IsId("A-z_09"));
  EXPECT_TRUE(IsId(std::string(64, 'x')));
  EXPECT_FALSE(IsId(std::string(65, 'x')));
  EXPECT_FALSE(IsId(""));
  EXPECT_FALSE(IsId("tenant a"));
  EXPECT_FALSE(IsId("t\xc3\xa9"));
  EXPECT_TRUE(IsCurrency("EUR"));
  EXPECT_FALSE(IsCurrency("eur"));
  EXPECT_FALSE(IsCurrency("EURO"));
  EXPECT_TRUE(IsAmount(1));
  EXPECT_TRUE(IsAmount(100000000000));
  EXPECT_FALSE(IsAmount(0));
  EXPECT_FALSE(IsAmount(100000000001));
}

// The schemas repeat the limits as CHECK constraints; this keeps the texts in step with the constants.
TEST(Limits, TheSchemasCheckTheSameLimits) {
  const std::string range = "BETWEEN " + std::to_string(kMinAmount) + " AND " + std::to_string(kMaxAmount);
  const std::string id = "'^[A-Za-z0-9_-]{1," + std::to_string(kMaxIdLength) + "}$'";
  const std::string currency = "'^[A-Z]{" + std::to_string(kCurrencyLength) + "}$'";
  for (const std::string& schema : {std::string(store::SchemaSql()), std::string(ledger::LedgerSchemaSql())}) {
    EXPECT_NE(schema.find("amount BETWEEN"), std::string::npos);
    EXPECT_NE(schema.find(range), std::string::npos) << "amount range differs from common/limits.h";
    EXPECT_NE(schema.find(id), std::string::npos) << "id pattern differs from common/limits.h";
    EXPECT_NE(schema.find(currency), std::string::npos) << "currency pattern differs from common/limits.h";
  }
  EXPECT_NE(std::string(store::SchemaSql()).find("<= " + std::to_string(kMaxDescriptionChars)), std::string::npos);
}

}  // namespace
}  // namespace paypath::limits
