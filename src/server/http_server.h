// sgl-server's HTTP front end: SGLang's native API (/generate, /health, /flush_cache, ...) and the
// OpenAI-compatible API (/v1/completions, /v1/chat/completions, /v1/models) over Boost.Beast.
//
// Threads: `http_threads` io threads run one asio io_context; each connection's handlers run on
// its own strand, so a connection is single-threaded while hundreds of connections (streaming or
// not) share the threads without blocking any of them. Request parsing, validation, chat-template
// rendering and tokenization happen on the io thread that read the request; the engine's
// scheduler thread does everything else.
//
// Engine → connection: a generation submits its requests with Engine::submit_batch and registers
// a listener on every RequestHandle. The listener (run on the scheduler thread after each event)
// only posts one wake-up to the connection's strand (coalesced by an atomic flag); the connection
// then drains all ready events with try_next(), folds them into per-choice state and writes SSE
// chunks (streaming) or, when every choice finished, the whole response.
//
// Disconnects: while a generation runs the connection keeps one read pending on the socket; EOF or
// a reset aborts every request of the generation (their KV slots are freed by the scheduler). A
// failed stream write does the same. Bytes a client pipelines meanwhile are kept for the next
// request.
//
// Shutdown (stop(), or SIGINT / SIGTERM once handle_signals() was called): stop accepting, abort
// the generations in flight (their clients get a finish_reason "abort"), wait until they are
// answered (at most a few seconds), then wait() returns.
#pragma once

#include <memory>
#include <string>

#include "server/server_args.h"
#include "sgl/engine.h"
#include "support/status.h"

namespace sgl::server {

class HttpServer {
 public:
  explicit HttpServer(ServerArgs args);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port and starts the io threads. Until set_engine(), /health answers 503 and every
  // other route 503 "the model is still loading". Errors: the address cannot be bound.
  Status start();
  // Installs SIGINT / SIGTERM handling: the first signal stops the server gracefully (a signal
  // while the model is still loading exits at once with status 0).
  void handle_signals();
  // Hands over the loaded engine; the routes start serving. Errors: a --chat-template file that
  // cannot be read or parsed.
  Status set_engine(std::unique_ptr<runtime::Engine> engine);
  // Blocks until the server has stopped.
  void wait();
  // Starts the graceful shutdown (any thread).
  void stop();
  // The bound port (useful with --port 0).
  int port() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sgl::server
