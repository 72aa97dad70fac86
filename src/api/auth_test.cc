// ApiKeys and BearerToken: exact matches only, for every configured key, whatever its length or how much
// it shares with another key.
#include "api/auth.h"

#include <gtest/gtest.h>

namespace paypath::api {
namespace {

http::HttpRequest WithAuthorization(std::vector<std::string> values) {
  http::HttpRequest r;
  for (auto& v : values) r.headers.emplace_back("Authorization", std::move(v));
  return r;
}

TEST(ApiKeys, EveryConfiguredKeyFindsItsTenant) {
  std::map<std::string, std::string> keys = {
      {"abc", "t_abc"}, {"abcd", "t_abcd"}, {"abce", "t_abce"}, {"x", "t_x"}, {std::string(300, 'z'), "t_z"}};
  ApiKeys k(keys);
  EXPECT_EQ(k.size(), keys.size());
  for (const auto& [key, tenant] : keys) {
    const std::string* t = k.Lookup(key);
    ASSERT_NE(t, nullptr) << key;
    EXPECT_EQ(*t, tenant);
  }
}

TEST(ApiKeys, NearMissesAreRefused) {
  ApiKeys k({{"sk_live_0123456789", "t1"}, {"sk_live_0123456780", "t2"}});
  for (const char* miss : {"sk_live_012345678", "sk_live_01234567899", "sk_live_0123456781", "Sk_live_0123456789",
                           "k_live_0123456789", "", " sk_live_0123456789", "sk_live_0123456789\n"}) {
    EXPECT_EQ(k.Lookup(miss), nullptr) << "'" << miss << "'";
  }
  // A key containing a NUL is a different key from its prefix.
  EXPECT_EQ(k.Lookup(std::string_view("sk_live_0123456789\0", 19)), nullptr);
}

TEST(ApiKeys, NoKeysConfiguredRefusesEverything) {
  ApiKeys k({});
  EXPECT_EQ(k.Lookup("anything"), nullptr);
  EXPECT_EQ(k.Lookup(""), nullptr);
}

TEST(BearerToken, ParsesTheSchemeCaseInsensitivelyAndTrimsSpaces) {
  EXPECT_EQ(BearerToken(WithAuthorization({"Bearer abc"})), std::optional<std::string_view>("abc"));
  EXPECT_EQ(BearerToken(WithAuthorization({"bearer abc"})), std::optional<std::string_view>("abc"));
  EXPECT_EQ(BearerToken(WithAuthorization({"BEARER   abc  "})), std::optional<std::string_view>("abc"));
}

TEST(BearerToken, RefusesMissingRepeatedOtherSchemesAndEmptyTokens) {
  EXPECT_EQ(BearerToken(WithAuthorization({})), std::nullopt);
  EXPECT_EQ(BearerToken(WithAuthorization({"Bearer a", "Bearer b"})), std::nullopt);
  EXPECT_EQ(BearerToken(WithAuthorization({"Basic YWJj"})), std::nullopt);
  EXPECT_EQ(BearerToken(WithAuthorization({"Bearer"})), std::nullopt);
  EXPECT_EQ(BearerToken(WithAuthorization({"Bearer    "})), std::nullopt);
  EXPECT_EQ(BearerToken(WithAuthorization({"Bearerabc"})), std::nullopt);
  EXPECT_EQ(BearerToken(WithAuthorization({"abc"})), std::nullopt);
}

}  // namespace
}  // namespace paypath::api
