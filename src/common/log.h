// Structured logging: one JSON object per line on stderr.
//   log::Info("charge_created", {{"tenant", t}, {"charge_id", id}});
// Contract: callers pass identifiers and outcomes only. Never pass API keys, request bodies, or
// descriptions; the logger does not redact for you. Thread-safe; a line is written atomically.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace paypath::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

using FieldValue = std::variant<std::string_view, int64_t, double, bool>;
struct Field {
  std::string_view key;
  FieldValue value;
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, int v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(std::string_view k, long v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(std::string_view k, long long v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(std::string_view k, unsigned long v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}
};

// Lines below this level are dropped. Default kInfo; PAYPATH_LOG_LEVEL=debug|info|warn|error.
void SetLevel(Level level);
void SetComponent(std::string_view component);  // "api", "relay", ...: added to every line
void Write(Level level, std::string_view msg, std::initializer_list<Field> fields);

inline void Debug(std::string_view m, std::initializer_list<Field> f = {}) { Write(Level::kDebug, m, f); }
inline void Info(std::string_view m, std::initializer_list<Field> f = {}) { Write(Level::kInfo, m, f); }
inline void Warn(std::string_view m, std::initializer_list<Field> f = {}) { Write(Level::kWarn, m, f); }
inline void Error(std::string_view m, std::initializer_list<Field> f = {}) { Write(Level::kError, m, f); }

// Appends s to out as a JSON string literal (quotes included), escaping as RFC 8259 requires.
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace paypath::log
