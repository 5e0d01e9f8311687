#include "http/listener.h"

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/log.h"

namespace spanprof {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

struct HttpServer::Impl {
  const Router& router;
  HttpOptions o;
  // Declared before the io_context: its destructor destroys the sessions, which use these.
  std::atomic<size_t> connections{0}, queued{0}, in_flight{0};
  std::mutex clients_mu;
  std::unordered_map<std::string, size_t> per_client;
  net::io_context ioc{1};
  std::unique_ptr<net::thread_pool> workers;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::thread io_thread;

  Impl(const Router& r, const HttpOptions& opt) : router(r), o(opt) {}
  void accept(tcp::acceptor& a);
};

namespace {

using Parser = http::request_parser<http::string_body>;

void limit(Parser& p, const HttpOptions& o) {
  p.header_limit(uint32_t(o.max_header_bytes));
  p.body_limit(o.max_body_bytes);
}

// The parsed message as a Request (target split and decoded). Moves the body.
Status to_request(http::request<http::string_body>& msg, const HttpOptions& o, Request& req) {
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  for (auto& f : msg) req.headers.emplace(std::string(f.name_string()), std::string(f.value()));
  req.body = std::move(msg.body());
  if (req.target.size() > o.max_target_bytes)
    return Error{414, "invalid_argument",
                 "request target longer than " + std::to_string(o.max_target_bytes)};
  return parse_target(req.target, req);
}

bool malformed(const beast::error_code& ec) {
  return ec && ec.category() == http::make_error_code(http::error::bad_target).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

// One connection. Lives as long as an async operation holds it (shared_ptr).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& s, HttpServer::Impl& srv, std::string client)
      : stream_(std::move(s)), srv_(srv), client_(std::move(client)) {}
  ~Session() {
    srv_.connections--;
    std::lock_guard g(srv_.clients_mu);
    auto it = srv_.per_client.find(client_);
    if (it != srv_.per_client.end() && --it->second == 0) srv_.per_client.erase(it);
  }
  void start() { read_header(); }

 private:
  void read_header() {
    parser_.emplace();
    limit(*parser_, srv_.o);
    // The first request's headers must arrive within the header timeout; between requests on a
    // kept-alive connection the (longer) idle timeout applies.
    stream_.expires_after(std::chrono::seconds(
        buf_.size() == 0 && served_ > 0 ? srv_.o.idle_timeout_s : srv_.o.header_timeout_s));
    http::async_read_header(
        stream_, buf_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec == http::error::header_limit) return fail(431, "request headers exceed the limit");
    if (ec == http::error::body_limit) return too_big();  // Content-Length past the limit
    if (malformed(ec)) return fail(400, "malformed HTTP request: " + ec.message());
    if (ec) return close();  // timeout, reset, end of stream: nobody to answer
    auto& h = parser_->get();
    stream_.expires_after(std::chrono::seconds(srv_.o.body_timeout_s));
    auto it = h.find(http::field::expect);
    if (it != h.end() && beast::iequals(it->value(), "100-continue") && !parser_->is_done()) {
      static const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
      return net::async_write(stream_, net::buffer(cont),
                              [self = shared_from_this()](beast::error_code e, size_t) {
                                if (e) return self->close();
                                self->read_body();
                              });
    }
    read_body();
  }

  void read_body() {
    http::async_read(
        stream_, buf_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
  }

  void on_body(beast::error_code ec) {
    if (ec == http::error::body_limit) return too_big();
    if (malformed(ec)) return fail(400, "malformed HTTP request body: " + ec.message());
    if (ec) return close();
    auto msg = parser_->release();
    auto req = std::make_shared<Request>();
    req->remote_addr = client_;
    keep_alive_ = msg.keep_alive();
    head_ = msg.method() == http::verb::head;
    if (auto e = to_request(msg, srv_.o, *req)) {
      Response res;
      send_error(res, *e);
      return write(std::move(res));
    }
    if (srv_.queued.load() >= srv_.o.max_queued_requests) {
      Response res;
      send_error(res, Error{503, "unavailable", "server busy: too many requests queued", 1});
      return write(std::move(res));
    }
    srv_.queued++;
    srv_.in_flight++;
    net::post(*srv_.workers, [self = shared_from_this(), req] {
      self->srv_.queued--;
      auto res = std::make_shared<Response>();
      self->srv_.router.dispatch(*req, *res);
      if (res->status >= 500)
        log_error("%s %s -> %d", req->method.c_str(), req->path.c_str(), res->status);
      else if (res->status >= 400)
        log_warn("%s %s -> %d %s", req->method.c_str(), req->path.c_str(), res->status,
                 res->body.substr(0, 200).c_str());
      else
        log_debug("%s %s -> %d", req->method.c_str(), req->path.c_str(), res->status);
      net::dispatch(self->stream_.get_executor(), [self, res] {
        self->write(std::move(*res));
        self->srv_.in_flight--;
      });
    });
  }

  // The rest of the body is unread: the connection closes after the 413 (read as requests, that
  // rest could smuggle one in).
  void too_big() {
    fail(413, "request body exceeds " + std::to_string(srv_.o.max_body_bytes) +
                  " bytes (--max-body-bytes)");
  }

  // An answer from the connection layer itself; the connection is not reusable after it.
  void fail(int status, std::string message) {
    Response res;
    send_error(res, Error{status, status == 413 ? "resource_exhausted" : "invalid_argument",
                          std::move(message)});
    res.close = true;
    write(std::move(res));
  }

  void write(Response&& r) {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->result(unsigned(r.status));
    res->version(11);
    for (auto& [k, v] : r.headers) res->insert(k, v);
    res->set(http::field::server, "spanprof");
    res->body() = std::move(r.body);
    bool keep = keep_alive_ && !r.close;
    res->keep_alive(keep);
    res->prepare_payload();
    if (head_) res->body().clear();  // Content-Length stays that of the GET
    stream_.expires_after(std::chrono::seconds(srv_.o.body_timeout_s));
    ++served_;
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, keep](beast::error_code ec, size_t) {
                        if (ec || !keep) return self->close();
                        self->keep_alive_ = false;
                        self->head_ = false;
                        self->read_header();
                      });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
  }

  beast::tcp_stream stream_;
  HttpServer::Impl& srv_;
  std::string client_;
  beast::flat_buffer buf_;
  std::optional<Parser> parser_;
  bool keep_alive_ = false, head_ = false;
  uint64_t served_ = 0;
};

}  // namespace

Status parse_http_request(std::string_view raw, const HttpOptions& o, Request& req) {
  Parser p;
  limit(p, o);
  p.eager(true);
  beast::error_code ec;
  while (!raw.empty() && !p.is_done()) {
    size_t n = p.put(net::buffer(raw.data(), raw.size()), ec);
    if (ec == http::error::need_more) break;
    if (ec) break;
    raw.remove_prefix(n);
    if (n == 0) break;
  }
  if (!p.is_done() && (!ec || ec == http::error::need_more)) {
    ec = {};
    p.put_eof(ec);
  }
  if (ec == http::error::body_limit) return too_large("request body exceeds the limit");
  if (ec == http::error::header_limit) return Error{431, "invalid_argument", "headers too large"};
  if (ec || !p.is_done()) return bad_request("malformed HTTP request");
  auto msg = p.release();
  return to_request(msg, o, req);
}

void HttpServer::Impl::accept(tcp::acceptor& a) {
  a.async_accept(net::make_strand(ioc), [this, &a](beast::error_code ec, tcp::socket s) {
    if (ec == net::error::operation_aborted || !a.is_open()) return;
    if (!ec) {
      beast::error_code e2;
      auto ep = s.remote_endpoint(e2);
      std::string client = e2 ? std::string("?") : ep.address().to_string();
      bool admit = connections.load() < o.max_connections;
      if (admit) {
        std::lock_guard g(clients_mu);
        size_t& n = per_client[client];
        admit = n < o.max_connections_per_client;
        if (admit)
          ++n;
        else if (n == 0)
          per_client.erase(client);
      }
      if (admit) {
        connections++;
        s.set_option(tcp::no_delay(true), e2);
        std::make_shared<Session>(std::move(s), *this, std::move(client))->start();
      } else {
        log_warn("refusing a connection from %s: connection limit reached", client.c_str());
        s.close(e2);
      }
    } else if (ec == net::error::no_descriptors) {
      log_error("accept: out of file descriptors (%s)", ec.message().c_str());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    accept(a);
  });
}

HttpServer::HttpServer(const Router& router, const HttpOptions& o)
    : impl_(std::make_unique<Impl>(router, o)) {}

HttpServer::~HttpServer() { stop(0); }

int HttpServer::listen(const std::string& host, int port, std::string& err) {
  beast::error_code ec;
  auto addr = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) {
    err = "bad address " + host + ": " + ec.message();
    return -1;
  }
  auto a = std::make_unique<tcp::acceptor>(impl_->ioc);
  tcp::endpoint ep(addr, uint16_t(port));
  a->open(ep.protocol(), ec);
  if (!ec) a->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a->bind(ep, ec);
  if (!ec) a->listen(impl_->o.backlog, ec);
  if (ec) {
    err = ec.message();
    return -1;
  }
  int bound = a->local_endpoint().port();
  impl_->accept(*a);
  impl_->acceptors.push_back(std::move(a));
  return bound;
}

void HttpServer::start() {
  impl_->workers = std::make_unique<net::thread_pool>(size_t(std::max(1, impl_->o.workers)));
  impl_->io_thread = std::thread([this] { impl_->ioc.run(); });
}

void HttpServer::stop(int grace_s) {
  if (!impl_ || !impl_->io_thread.joinable()) return;
  net::post(impl_->ioc, [this] {
    for (auto& a : impl_->acceptors) {
      beast::error_code ec;
      a->close(ec);
    }
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(grace_s);
  while (impl_->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the last writes go out
  impl_->ioc.stop();
  impl_->io_thread.join();
  impl_->workers->join();
}

}  // namespace spanprof
