#include "broker/amqp.h"

#include <amqp_tcp_socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace paypath::amqp {
namespace {

constexpr amqp_channel_t kChannel = 1;

timeval ToTimeval(std::chrono::milliseconds d) {
  if (d.count() < 0) d = std::chrono::milliseconds(0);
  timeval tv;
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

std::string Bytes(amqp_bytes_t b) { return b.len ? std::string(static_cast<const char*>(b.bytes), b.len) : ""; }

std::optional<int64_t> FieldInt(const amqp_field_value_t& v) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_I8: return v.value.i8;
    case AMQP_FIELD_KIND_U8: return v.value.u8;
    case AMQP_FIELD_KIND_I16: return v.value.i16;
    case AMQP_FIELD_KIND_U16: return v.value.u16;
    case AMQP_FIELD_KIND_I32: return v.value.i32;
    case AMQP_FIELD_KIND_U32: return v.value.u32;
    case AMQP_FIELD_KIND_I64: return v.value.i64;
    case AMQP_FIELD_KIND_U64: return static_cast<int64_t>(v.value.u64);
    default: return std::nullopt;
  }
}

Message ToMessage(const amqp_message_t& m) {
  Message out;
  out.body = Bytes(m.body);
  const amqp_basic_properties_t& p = m.properties;
  if (p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) out.message_id = Bytes(p.message_id);
  if (p._flags & AMQP_BASIC_TYPE_FLAG) out.type = Bytes(p.type);
  if (p._flags & AMQP_BASIC_CONTENT_TYPE_FLAG) out.content_type = Bytes(p.content_type);
  if (p._flags & AMQP_BASIC_TIMESTAMP_FLAG) out.timestamp = static_cast<int64_t>(p.timestamp);
  if (p._flags & AMQP_BASIC_HEADERS_FLAG) {
    for (int i = 0; i < p.headers.num_entries; ++i) {
      const amqp_table_entry_t& e = p.headers.entries[i];
      std::string key = Bytes(e.key);
      if (e.value.kind == AMQP_FIELD_KIND_UTF8 || e.value.kind == AMQP_FIELD_KIND_BYTES) {
        out.headers[key] = Bytes(e.value.value.bytes);
      } else if (auto n = FieldInt(e.value)) {
        out.headers[key] = std::to_string(*n);
        if (key == "x-delivery-count") out.delivery_count = *n;
      }
    }
  }
  return out;
}

// The error for a broker-initiated close (connection.close or channel.close) with this reply code.
Error CloseError(const std::string& what, uint16_t code, const std::string& text) {
  std::string msg = what + ": broker replied " + std::to_string(code) + " " + text;
  // 403 ACCESS_REFUSED: wrong credentials or a missing permission; 406 PRECONDITION_FAILED: a declaration
  // that contradicts what exists. Both are configuration, which retrying does not fix.
  if (code == 406 || code == 403) return Error::FailedPrecondition(msg);
  if (code == 404) return Error::NotFound(msg);
  return Error::Unavailable(msg);
}

}  // namespace

std::string StatusText(int status) { return amqp_error_string2(status); }

Error Connection::Fail(Error e) {
  broken_ = true;
  return e;
}

Error Connection::ReplyError(const amqp_rpc_reply_t& r, const std::string& what) {
  broken_ = true;
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return Error::Internal(what + ": no error");
    case AMQP_RESPONSE_NONE:
      return Error::Unavailable(what + ": missing RPC reply");
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return Error::Unavailable(what + ": " + StatusText(r.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION: {
      uint16_t code = 0;
      std::string text;
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto* m = static_cast<amqp_connection_close_t*>(r.reply.decoded);
        code = m->reply_code;
        text = Bytes(m->reply_text);
        amqp_connection_close_ok_t ok{};
        amqp_send_method(conn_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
      } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
        code = m->reply_code;
        text = Bytes(m->reply_text);
        amqp_channel_close_ok_t ok{};
        amqp_send_method(conn_, kChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
      }
      return CloseError(what, code, text);
    }
  }
  return Error::Internal(what + ": unknown reply type");
}

Status Connection::CheckRpc(const std::string& what) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(conn_);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return OkStatus();
  return ReplyError(r, what);
}

std::vector<std::string> SplitNodes(const std::string& url) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= url.size(); ++i) {
    size_t next = i + 1;
    while (next < url.size() && url[next] == ' ') ++next;
    bool boundary = i == url.size() || (url[i] == ',' && (url.compare(next, 7, "amqp://") == 0 ||
                                                          url.compare(next, 8, "amqps://") == 0));
    if (!boundary) continue;
    std::string one = url.substr(start, i - start);
    while (!one.empty() && one.front() == ' ') one.erase(0, 1);
    while (!one.empty() && one.back() == ' ') one.pop_back();
    if (!one.empty()) out.push_back(std::move(one));
    start = i + 1;
  }
  return out;
}

Result<std::unique_ptr<Connection>> Connection::Open(const Settings& settings) {
  std::vector<std::string> nodes = SplitNodes(settings.url);
  if (nodes.empty()) return Error::InvalidArgument("no AMQP URL (amqp://user:pass@host:port/vhost[,amqp://...])");
  std::optional<Error> refused;
  std::string unavailable;
  for (size_t i = 0; i < nodes.size(); ++i) {
    size_t at = (settings.first_node + i) % nodes.size();
    auto c = OpenNode(nodes[at], settings);
    if (c.ok()) {
      c.value()->node_ = at;
      c.value()->nodes_ = nodes.size();
      return c;
    }
    const Error& e = c.error();
    if (e.code == ErrorCode::kInvalidArgument)
      return Error::InvalidArgument("AMQP node " + std::to_string(at + 1) + " of " + std::to_string(nodes.size()) +
                                    ": " + e.message);
    if (e.code == ErrorCode::kUnavailable) {
      unavailable += (unavailable.empty() ? "" : "; ") + e.message;
    } else if (!refused) {
      refused = e;
    }
  }
  if (refused) return *refused;
  if (nodes.size() == 1) return Error::Unavailable(unavailable);
  return Error::Unavailable("every AMQP node failed: " + unavailable);
}

Result<std::unique_ptr<Connection>> Connection::OpenNode(const std::string& url, const Settings& settings) {
  std::vector<char> buf(url.begin(), url.end());
  buf.push_back('\0');
  amqp_connection_info info{};
  amqp_default_connection_info(&info);
  if (amqp_parse_url(buf.data(), &info) != AMQP_STATUS_OK)
    return Error::InvalidArgument("not an AMQP URL (amqp://user:pass@host:port/vhost)");
  amqp_connection_state_t c = amqp_new_connection();
  if (c == nullptr) return Error::Internal("amqp_new_connection failed");
  std::unique_ptr<Connection> conn(new Connection(c));
  conn->endpoint_ = std::string(info.host) + ":" + std::to_string(info.port);
  amqp_socket_t* sock = amqp_tcp_socket_new(c);
  if (sock == nullptr) return conn->Fail(Error::Internal("amqp_tcp_socket_new failed"));
  timeval tv = ToTimeval(settings.timeout);
  amqp_set_handshake_timeout(c, &tv);
  amqp_set_rpc_timeout(c, &tv);
  int st = amqp_socket_open_noblock(sock, info.host, info.port, &tv);
  if (st != AMQP_STATUS_OK)
    return conn->Fail(Error::Unavailable("amqp connect " + conn->endpoint_ + ": " + StatusText(st)));
  amqp_rpc_reply_t r = amqp_login(c, info.vhost, 0, 131072, static_cast<int>(settings.heartbeat.count()),
                                  AMQP_SASL_METHOD_PLAIN, info.user, info.password);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) return conn->ReplyError(r, "amqp login " + conn->endpoint_);
  amqp_channel_open(c, kChannel);
  Status s = conn->CheckRpc("amqp channel.open");
  if (!s.ok()) return s.error();
  return conn;
}

Connection::~Connection() {
  if (!broken_) {
    amqp_channel_close(conn_, kChannel, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
  }
  amqp_destroy_connection(conn_);
}

Status Connection::DeclareExchange(const std::string& name, const std::string& type) {
  amqp_exchange_declare(conn_, kChannel, amqp_cstring_bytes(name.c_str()), amqp_cstring_bytes(type.c_str()),
                        /*passive=*/0, /*durable=*/1, /*auto_delete=*/0, /*internal=*/0, amqp_empty_table);
  return CheckRpc("declare exchange " + name);
}

Result<uint32_t> Connection::DeclareQueue(const std::string& name, const Args& args) {
  std::vector<std::string> keys;
  std::vector<amqp_table_entry_t> entries;
  keys.reserve(args.size());
  for (const auto& [k, v] : args) {
    keys.push_back(k);
    amqp_table_entry_t e{};
    e.key = amqp_cstring_bytes(keys.back().c_str());
    if (auto* s = std::get_if<std::string>(&v)) {
      e.value.kind = AMQP_FIELD_KIND_UTF8;
      e.value.value.bytes = amqp_cstring_bytes(s->c_str());
    } else {
      e.value.kind = AMQP_FIELD_KIND_I64;
      e.value.value.i64 = std::get<int64_t>(v);
    }
    entries.push_back(e);
  }
  amqp_table_t table{static_cast<int>(entries.size()), entries.data()};
  amqp_queue_declare_ok_t* ok = amqp_queue_declare(conn_, kChannel, amqp_cstring_bytes(name.c_str()),
                                                   /*passive=*/0, /*durable=*/1, /*exclusive=*/0,
                                                   /*auto_delete=*/0, table);
  Status s = CheckRpc("declare queue " + name);
  if (!s.ok()) return s.error();
  return ok ? ok->message_count : 0;
}

Status Connection::BindQueue(const std::string& queue, const std::string& exchange, const std::string& key) {
  amqp_queue_bind(conn_, kChannel, amqp_cstring_bytes(queue.c_str()), amqp_cstring_bytes(exchange.c_str()),
                  amqp_cstring_bytes(key.c_str()), amqp_empty_table);
  return CheckRpc("bind " + queue + " to " + exchange);
}

Result<uint32_t> Connection::QueueDepth(const std::string& name) {
  amqp_queue_declare_ok_t* ok = amqp_queue_declare(conn_, kChannel, amqp_cstring_bytes(name.c_str()),
                                                   /*passive=*/1, 0, 0, 0, amqp_empty_table);
  Status s = CheckRpc("inspect queue " + name);
  if (!s.ok()) return s.error();
  return ok ? ok->message_count : 0;
}

Status Connection::ExchangeExists(const std::string& name) {
  amqp_exchange_declare(conn_, kChannel, amqp_cstring_bytes(name.c_str()), amqp_cstring_bytes("direct"),
                        /*passive=*/1, 0, 0, 0, amqp_empty_table);
  return CheckRpc("inspect exchange " + name);
}

Status Connection::DeleteQueue(const std::string& name) {
  amqp_queue_delete(conn_, kChannel, amqp_cstring_bytes(name.c_str()), /*if_unused=*/0, /*if_empty=*/0);
  return CheckRpc("delete queue " + name);
}

Status Connection::DeleteExchange(const std::string& name) {
  amqp_exchange_delete(conn_, kChannel, amqp_cstring_bytes(name.c_str()), /*if_unused=*/0);
  return CheckRpc("delete exchange " + name);
}

Status Connection::EnableConfirms() {
  amqp_confirm_select(conn_, kChannel);
  Status s = CheckRpc("confirm.select");
  if (s.ok()) confirms_ = true;
  return s;
}

Result<uint64_t> Connection::Publish(const std::string& exchange, const std::string& routing_key,
                                     const Message& m) {
  if (broken_) return Error::Unavailable("amqp connection is broken");
  if (!confirms_) return Error::FailedPrecondition("Publish before EnableConfirms");
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  props.content_type = amqp_cstring_bytes(m.content_type.c_str());
  props.delivery_mode = 2;  // persistent
  props.message_id = amqp_cstring_bytes(m.message_id.c_str());
  if (!m.type.empty()) {
    props._flags |= AMQP_BASIC_TYPE_FLAG;
    props.type = amqp_cstring_bytes(m.type.c_str());
  }
  if (m.timestamp > 0) {
    props._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
    props.timestamp = static_cast<uint64_t>(m.timestamp);
  }
  std::vector<amqp_table_entry_t> entries;
  for (const auto& [k, v] : m.headers) {
    amqp_table_entry_t e{};
    e.key = amqp_cstring_bytes(k.c_str());
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(v.c_str());
    entries.push_back(e);
  }
  if (!entries.empty()) {
    props._flags |= AMQP_BASIC_HEADERS_FLAG;
    props.headers = amqp_table_t{static_cast<int>(entries.size()), entries.data()};
  }
  amqp_bytes_t body{m.body.size(), const_cast<char*>(m.body.data())};
  int st = amqp_basic_publish(conn_, kChannel, amqp_cstring_bytes(exchange.c_str()),
                              amqp_cstring_bytes(routing_key.c_str()), /*mandatory=*/1, /*immediate=*/0, &props,
                              body);
  if (st != AMQP_STATUS_OK) return Fail(Error::Unavailable("amqp publish: " + StatusText(st)));
  uint64_t tag = next_tag_++;
  outstanding_.emplace(tag, m.message_id);
  return tag;
}

void Connection::MatchReturn(const std::string& message_id) {
  std::vector<uint64_t> hits;
  for (const auto& [tag, id] : outstanding_)
    if (!message_id.empty() && id == message_id) hits.push_back(tag);
  if (hits.empty())
    for (const auto& entry : outstanding_) hits.push_back(entry.first);  // cannot tell which: all of them
  for (uint64_t tag : hits) {
    failed_.insert(tag);
    returned_.insert(tag);
  }
}

Status Connection::HandleAsyncFrame(const amqp_frame_t& frame) {
  if (frame.frame_type == AMQP_FRAME_HEADER) {
    if (return_read_ != ReturnRead::kHeader) return OkStatus();
    std::string id;
    auto* p = static_cast<const amqp_basic_properties_t*>(frame.payload.properties.decoded);
    if (p != nullptr && (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)) id = Bytes(p->message_id);
    MatchReturn(id);
    return_body_left_ = frame.payload.properties.body_size;
    return_read_ = return_body_left_ > 0 ? ReturnRead::kBody : ReturnRead::kNone;
    return OkStatus();
  }
  if (frame.frame_type == AMQP_FRAME_BODY) {
    if (return_read_ != ReturnRead::kBody) return OkStatus();
    return_body_left_ -= std::min<uint64_t>(return_body_left_, frame.payload.body_fragment.len);
    if (return_body_left_ == 0) return_read_ = ReturnRead::kNone;
    return OkStatus();
  }
  if (frame.frame_type != AMQP_FRAME_METHOD) return OkStatus();
  switch (frame.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD:
    case AMQP_BASIC_NACK_METHOD: {
      bool ack = frame.payload.method.id == AMQP_BASIC_ACK_METHOD;
      uint64_t tag;
      bool multiple;
      if (ack) {
        auto* a = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        tag = a->delivery_tag;
        multiple = a->multiple;
      } else {
        auto* n = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
        tag = n->delivery_tag;
        multiple = n->multiple;
      }
      // A returned message's tag was already failed by its return, which the broker sends before the ack.
      auto end = multiple ? outstanding_.upper_bound(tag) : outstanding_.find(tag);
      auto begin = multiple ? outstanding_.begin() : end;
      if (!multiple) {
        if (end == outstanding_.end()) return OkStatus();
        if (!ack) failed_.insert(tag);
        outstanding_.erase(end);
        return OkStatus();
      }
      for (auto it = begin; it != end; ++it)
        if (!ack) failed_.insert(it->first);
      outstanding_.erase(begin, end);
      return OkStatus();
    }
    case AMQP_BASIC_RETURN_METHOD: {
      auto* r = static_cast<amqp_basic_return_t*>(frame.payload.method.decoded);
      return_reason_ = std::to_string(r->reply_code) + " " + Bytes(r->reply_text);
      return_read_ = ReturnRead::kHeader;
      return OkStatus();
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      auto* m = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
      Error e = CloseError("broker closed the channel", m->reply_code, Bytes(m->reply_text));
      amqp_channel_close_ok_t ok{};
      amqp_send_method(conn_, kChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
      return Fail(std::move(e));
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
      auto* m = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
      Error e = CloseError("broker closed the connection", m->reply_code, Bytes(m->reply_text));
      amqp_connection_close_ok_t ok{};
      amqp_send_method(conn_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
      return Fail(std::move(e));
    }
    case AMQP_BASIC_CANCEL_METHOD:
      return Fail(Error::Unavailable("broker cancelled the consumer (queue deleted?)"));
    default:
      return OkStatus();
  }
}

Result<Confirms> Connection::WaitForConfirms(std::chrono::milliseconds timeout) {
  if (broken_) return Error::Unavailable("amqp connection is broken");
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // Until the last return's content frames are in too: its ack may already be in, but not its message_id.
  while (!outstanding_.empty() || return_read_ != ReturnRead::kNone) {
    // Frames are decoded into the connection's pools; nothing from an earlier frame is held past here.
    amqp_maybe_release_buffers(conn_);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return Fail(Error::Unavailable("no publisher confirm within " + std::to_string(timeout.count()) + " ms"));
    timeval tv = ToTimeval(left);
    amqp_frame_t frame;
    int st = amqp_simple_wait_frame_noblock(conn_, &frame, &tv);
    if (st == AMQP_STATUS_TIMEOUT) continue;
    if (st != AMQP_STATUS_OK) return Fail(Error::Unavailable("waiting for confirms: " + StatusText(st)));
    Status s = HandleAsyncFrame(frame);
    if (!s.ok()) return s.error();
  }
  Confirms c;
  c.failed.swap(failed_);
  c.returned.swap(returned_);
  c.return_reason.swap(return_reason_);
  return c;
}

Status Connection::Qos(uint16_t prefetch) {
  amqp_basic_qos(conn_, kChannel, 0, prefetch, 0);
  return CheckRpc("basic.qos");
}

Status Connection::Consume(const std::string& queue) {
  amqp_basic_consume(conn_, kChannel, amqp_cstring_bytes(queue.c_str()), amqp_empty_bytes, /*no_local=*/0,
                     /*no_ack=*/0, /*exclusive=*/0, amqp_empty_table);
  return CheckRpc("basic.consume " + queue);
}

Result<std::optional<Delivery>> Connection::Next(std::chrono::milliseconds timeout) {
  if (broken_) return Error::Unavailable("amqp connection is broken");
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    amqp_maybe_release_buffers(conn_);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    timeval tv = ToTimeval(left);
    amqp_envelope_t env;
    amqp_rpc_reply_t r = amqp_consume_message(conn_, &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
      Delivery d;
      d.tag = env.delivery_tag;
      d.redelivered = env.redelivered;
      d.message = ToMessage(env.message);
      amqp_destroy_envelope(&env);
      return std::optional<Delivery>(std::move(d));
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
      return std::optional<Delivery>();
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
      // A frame other than a delivery (close, cancel, ...): read and handle it, then keep waiting.
      amqp_frame_t frame;
      timeval zero = ToTimeval(std::chrono::milliseconds(0));
      int st = amqp_simple_wait_frame_noblock(conn_, &frame, &zero);
      if (st != AMQP_STATUS_OK && st != AMQP_STATUS_TIMEOUT)
        return Fail(Error::Unavailable("amqp read: " + StatusText(st)));
      if (st == AMQP_STATUS_OK) {
        Status s = HandleAsyncFrame(frame);
        if (!s.ok()) return s.error();
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::optional<Delivery>();
      continue;
    }
    return ReplyError(r, "amqp consume");
  }
}

Status Connection::Ack(uint64_t tag) {
  int st = amqp_basic_ack(conn_, kChannel, tag, 0);
  if (st != AMQP_STATUS_OK) return Fail(Error::Unavailable("basic.ack: " + StatusText(st)));
  return OkStatus();
}

Status Connection::Reject(uint64_t tag, bool requeue) {
  int st = amqp_basic_reject(conn_, kChannel, tag, requeue ? 1 : 0);
  if (st != AMQP_STATUS_OK) return Fail(Error::Unavailable("basic.reject: " + StatusText(st)));
  return OkStatus();
}

Result<std::optional<Delivery>> Connection::Get(const std::string& queue) {
  if (broken_) return Error::Unavailable("amqp connection is broken");
  amqp_maybe_release_buffers(conn_);
  amqp_rpc_reply_t r = amqp_basic_get(conn_, kChannel, amqp_cstring_bytes(queue.c_str()), /*no_ack=*/0);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) return ReplyError(r, "basic.get " + queue);
  if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return std::optional<Delivery>();
  auto* ok = static_cast<amqp_basic_get_ok_t*>(r.reply.decoded);
  Delivery d;
  d.tag = ok->delivery_tag;
  d.redelivered = ok->redelivered;
  amqp_message_t msg;
  amqp_rpc_reply_t mr = amqp_read_message(conn_, kChannel, &msg, 0);
  if (mr.reply_type != AMQP_RESPONSE_NORMAL) return ReplyError(mr, "reading message from " + queue);
  d.message = ToMessage(msg);
  amqp_destroy_message(&msg);
  return std::optional<Delivery>(std::move(d));
}

Status Connection::KeepAlive() {
  if (broken_) return Error::Unavailable("amqp connection is broken");
  for (;;) {
    amqp_frame_t frame;
    timeval zero = ToTimeval(std::chrono::milliseconds(0));
    int st = amqp_simple_wait_frame_noblock(conn_, &frame, &zero);
    if (st == AMQP_STATUS_TIMEOUT) return OkStatus();
    if (st != AMQP_STATUS_OK) return Fail(Error::Unavailable("amqp read: " + StatusText(st)));
    Status s = HandleAsyncFrame(frame);
    if (!s.ok()) return s;
  }
}

}  // namespace paypath::amqp
