// An owned AMQP 0-9-1 connection (librabbitmq) with one channel, used by the relay (publish with publisher
// confirms), the consumer (consume, ack, reject) and the dlq tools (basic.get, republish).
//
// Contract:
//   - Not copyable, not thread-safe: one thread uses a Connection at a time.
//   - Every wait is bounded: connect and RPCs by Settings::timeout, waits for confirms and deliveries by the
//     caller's timeout, and the AMQP heartbeat (Settings::heartbeat) makes a silent broker show up as an
//     error within about two heartbeats of any wait.
//   - After any error other than a timeout with nothing pending, broken() is true and the connection must be
//     discarded (destroy it and Open() a new one): the channel state (delivery tags, confirm numbering) is
//     no longer trustworthy. Unacked deliveries go back to the queue when the connection closes.
//   - Errors: kUnavailable (socket, heartbeat, broker closed the connection: retry later with backoff),
//     kFailedPrecondition (the broker refused: 403 ACCESS_REFUSED - wrong password or a permission this
//     user does not have - or 406 PRECONDITION_FAILED - a queue exists with other arguments: fix the
//     configuration), kNotFound (404: queue or exchange does not exist), kInvalidArgument (bad URL).
//     Messages never contain the URL's password.
//   - The destructor closes the channel and connection politely unless broken, then frees everything.
#pragma once

#include <amqp.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "common/result.h"

namespace paypath::amqp {

struct Settings {
  // amqp://user:pass@host:port/vhost (vhost URL-encoded, "%2f" for "/"), or a node list: several such URLs
  // separated by commas, one per node of a cluster (split only where "amqp://" follows the comma, after
  // optional spaces, so a password may hold a comma). Open tries them in order from `first_node`.
  std::string url;
  // Index (modulo the node count) of the first node Open tries. The relay and the consumer set it to the
  // node after the one they last connected to, so each reconnect rotates through the list: a dead node is
  // tried last, not first, and no node is ever skipped for good.
  size_t first_node = 0;
  // 5 s: a dead broker is noticed within ~10 s even on a silent socket, and heartbeat traffic is negligible.
  std::chrono::seconds heartbeat{5};
  // Bounds connect, login and every RPC (declare, qos, consume, get).
  std::chrono::milliseconds timeout{5000};
};

// A message as paypath publishes and reads it. Publishing always sets delivery_mode=2 (persistent).
struct Message {
  std::string body;
  std::string message_id;
  std::string type;
  std::string content_type = "application/json";
  int64_t timestamp = 0;                       // seconds since the epoch; 0 = not set
  std::map<std::string, std::string> headers;  // published as UTF-8 strings; read: strings and integers
  int64_t delivery_count = 0;                  // read only: x-delivery-count (quorum queues), 0 on first delivery
};

struct Delivery {
  uint64_t tag = 0;
  bool redelivered = false;
  Message message;
};

// Outcome of waiting for publisher confirms: the tags the broker nacked or returned (unroutable).
// Every other tag published before the wait was confirmed (stored durably by the broker).
//
// A return carries no delivery tag: it is matched to the outstanding tag whose message_id it carries (read
// from the return's content header), whatever order returns and acks arrive in; AMQP only promises that a
// message's return precedes its ack. A return whose message_id names no single outstanding tag (absent,
// or unknown) fails every tag still outstanding: republishing is safe, marking a dropped message is not.
struct Confirms {
  std::set<uint64_t> failed;    // nacked or returned
  std::set<uint64_t> returned;  // the subset returned as unroutable
  std::string return_reason;    // reply code and text of the last return ("312 NO_ROUTE"), if any
};

// The node URLs of a Settings::url (one for a plain URL); empty if there is none.
std::vector<std::string> SplitNodes(const std::string& url);

class Connection {
 public:
  // Connects, logs in and opens channel 1, on the first node of settings.url (from first_node on, in
  // order, wrapping around) that accepts. Each node gets the whole timeout. When every node fails: the
  // first refusal by a broker (kFailedPrecondition, kNotFound: configuration, the same on every node) if
  // any, else kUnavailable naming each node's host:port and error; kInvalidArgument if a URL is malformed.
  static Result<std::unique_ptr<Connection>> Open(const Settings& settings);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool broken() const { return broken_; }
  // Index in the node list of the node this connection is to, and how many nodes the list has.
  size_t node() const { return node_; }
  size_t nodes() const { return nodes_; }
  // host:port of that node (no credentials), for logs.
  const std::string& endpoint() const { return endpoint_; }

  // --- declarations (idempotent while the arguments stay the same) ---
  using Args = std::map<std::string, std::variant<std::string, int64_t>>;
  Status DeclareExchange(const std::string& name, const std::string& type);
  // Returns the number of ready messages in the queue.
  Result<uint32_t> DeclareQueue(const std::string& name, const Args& args);
  Status BindQueue(const std::string& queue, const std::string& exchange, const std::string& routing_key);
  // Passive declares (they need no permission): the ready-message count of an existing queue, or whether
  // an exchange exists; kNotFound if it does not (the broker then closes the channel: broken()).
  Result<uint32_t> QueueDepth(const std::string& name);
  Status ExchangeExists(const std::string& name);
  // Deletes a queue and its messages (tests and operators cleaning up); deleting a missing queue is ok.
  Status DeleteQueue(const std::string& name);
  // Deletes an exchange (clean-up of a queue's DLX); deleting a missing exchange is ok.
  Status DeleteExchange(const std::string& name);

  // --- publishing ---
  // Puts the channel in confirm mode; required before Publish. Delivery tags then start at 1.
  Status EnableConfirms();
  // Publishes to `exchange` with `routing_key`, persistent and mandatory: a message no queue is bound for
  // comes back (basic.return) and WaitForConfirms reports its tag failed. Returns the delivery tag.
  // A publish the broker refuses (403: this user may not write to the exchange; 404: no such exchange)
  // closes the channel; the error shows in WaitForConfirms.
  Result<uint64_t> Publish(const std::string& exchange, const std::string& routing_key, const Message& m);
  // Waits until every tag published so far is acked or nacked by the broker. kUnavailable on timeout or a
  // lost connection: then nothing about the outstanding tags is known (treat them all as unconfirmed).
  // kFailedPrecondition / kNotFound when the broker closed the channel over a refused publish.
  Result<Confirms> WaitForConfirms(std::chrono::milliseconds timeout);

  // --- consuming ---
  Status Qos(uint16_t prefetch);
  Status Consume(const std::string& queue);
  // The next delivery, or nullopt when none arrived within `timeout` (0 polls what is already buffered).
  Result<std::optional<Delivery>> Next(std::chrono::milliseconds timeout);
  Status Ack(uint64_t tag);
  // requeue=true returns the message to the queue (quorum queues count it towards the delivery limit);
  // requeue=false dead-letters it at once.
  Status Reject(uint64_t tag, bool requeue);
  // basic.get without auto-ack: one message or nullopt if the queue is empty.
  Result<std::optional<Delivery>> Get(const std::string& queue);

  // Services heartbeats and notices a broker-initiated close while the caller has nothing else to do.
  // Call at least every heartbeat/2 when idle. Not for a consuming connection: it would swallow
  // deliveries. Errors as above.
  Status KeepAlive();

 private:
  explicit Connection(amqp_connection_state_t c) : conn_(c) {}
  Error Fail(Error e);
  Error ReplyError(const amqp_rpc_reply_t& r, const std::string& what);
  Status CheckRpc(const std::string& what);
  // Handles one frame that arrived outside an RPC: confirms, returns (method, header and body frames),
  // closes. Returns an error for a channel or connection close.
  Status HandleAsyncFrame(const amqp_frame_t& frame);
  // Fails the outstanding tag(s) a basic.return names by message_id (see Confirms).
  void MatchReturn(const std::string& message_id);

  // One node: connect, log in, open the channel.
  static Result<std::unique_ptr<Connection>> OpenNode(const std::string& url, const Settings& settings);

  amqp_connection_state_t conn_;
  size_t node_ = 0;
  size_t nodes_ = 1;
  std::string endpoint_;
  bool broken_ = false;
  bool confirms_ = false;
  uint64_t next_tag_ = 1;                       // the tag the next Publish gets (confirm mode)
  std::map<uint64_t, std::string> outstanding_;  // published, not yet acked/nacked: tag -> message_id
  std::set<uint64_t> failed_;                   // nacked or returned since the last WaitForConfirms
  std::set<uint64_t> returned_;                 // returned since the last WaitForConfirms
  std::string return_reason_;
  // A basic.return is a method frame, then a content header (with the message_id), then body frames.
  enum class ReturnRead { kNone, kHeader, kBody } return_read_ = ReturnRead::kNone;
  uint64_t return_body_left_ = 0;
};

// Declared in amqp.cc: "unavailable"-style text of a librabbitmq status code.
std::string StatusText(int status);

}  // namespace paypath::amqp
