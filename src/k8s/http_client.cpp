#include "k8s/http_client.hpp"

#include <algorithm>
#include <mutex>
#include <string>

#include <curl/curl.h>
#include <fmt/format.h>

#include "core/strings.hpp"
#include "k8s/file_util.hpp"

namespace retina::k8s {
namespace {

constexpr size_t kMaxErrorBody = 64u << 10;
// Spare capacity kept after a collected body: the JSON parser reads up to 64
// bytes past the end, and with the room there it does not copy the page again.
constexpr size_t kBodySlack = 64;

// What a transfer's callbacks need; lives on get()'s stack.
struct Transfer {
  CURL* easy = nullptr;
  const HttpRequest* req = nullptr;
  HttpResponse* resp = nullptr;
  bool headers_done = false;
  std::string exception;  // what a callback threw
  bool too_large = false;  // a collected body passed req->max_body

  bool success_status() const { return resp->status >= 200 && resp->status < 300; }
  void note_status() {
    if (headers_done) return;
    headers_done = true;
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    resp->status = code;
    if (req->on_headers) req->on_headers(code);
  }
};

size_t on_header(char* data, size_t size, size_t n, void* user) noexcept {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  try {
    // The blank line ends the headers; a 1xx response starts over.
    if (len <= 2 && (len == 0 || data[0] == '\r' || data[0] == '\n')) {
      long code = 0;
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
      if (code >= 200) t->note_status();
    }
    return len;
  } catch (const std::exception& e) {
    t->exception = e.what();
  } catch (...) {
    t->exception = "unknown exception";
  }
  return 0;
}

size_t on_write(char* data, size_t size, size_t n, void* user) noexcept {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  try {
    t->note_status();
    if (t->success_status() && t->req->on_body) {
      if (!t->req->on_body(std::string_view(data, len))) {
        t->resp->sink_aborted = true;
        return CURL_WRITEFUNC_ERROR;
      }
      return len;
    }
    std::string& body = t->resp->body;
    if (t->success_status()) {
      if (t->req->max_body != 0 && body.size() + len > t->req->max_body) {
        t->too_large = true;
        return CURL_WRITEFUNC_ERROR;
      }
      if (body.capacity() < body.size() + len + kBodySlack) {
        body.reserve(std::max(body.capacity() * 2, body.size() + len + kBodySlack));
      }
      body.append(data, len);
    } else if (body.size() < kMaxErrorBody) {
      body.append(data, std::min(len, kMaxErrorBody - body.size()));
    }
    return len;
  } catch (const std::exception& e) {
    t->exception = e.what();
  } catch (...) {
    t->exception = "unknown exception";
  }
  return CURL_WRITEFUNC_ERROR;
}

}  // namespace

void ensure_curl_initialized() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

Status Credentials::reload() {
  if (token_file_.empty()) return ok();
  auto text = read_small_file(token_file_);
  if (!text) return unexpected(text.error().wrap("reload bearer token"));
  const std::string_view t = retina::text::trim(*text);
  if (t.empty()) return unexpected(Error::invalid(fmt::format("reload bearer token: {} is empty", token_file_)));
  std::lock_guard l(mu_);
  token_.assign(t);
  return ok();
}

std::string Credentials::token() const {
  std::lock_guard l(mu_);
  return token_;
}

struct HttpStream::Handles {
  CURLM* multi = nullptr;
  CURL* easy = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};
  ~Handles() {
    if (easy) curl_easy_cleanup(easy);
    if (multi) curl_multi_cleanup(multi);
  }
};

Result<std::unique_ptr<HttpStream>> HttpStream::create(const ClientConfig& config,
                                                      std::shared_ptr<Credentials> credentials,
                                                      std::chrono::milliseconds connect_timeout) {
  ensure_curl_initialized();
  std::unique_ptr<HttpStream> s(new HttpStream());
  s->credentials_ = std::move(credentials);
  s->server_ = config.server;
  s->h_ = std::make_unique<Handles>();
  s->h_->multi = curl_multi_init();
  s->h_->easy = curl_easy_init();
  if (!s->h_->multi || !s->h_->easy) return unexpected(Error::internal("curl_easy_init/curl_multi_init failed"));
  CURL* e = s->h_->easy;

  CURLcode rc = CURLE_OK;
  auto set = [&](CURLoption opt, auto value) {
    if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, value);
  };
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_ERRORBUFFER, s->h_->errbuf);
  set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout.count()));
  // Dead peers on an idle watch are found by TCP keepalive.
  set(CURLOPT_TCP_KEEPALIVE, 1L);
  set(CURLOPT_TCP_KEEPIDLE, 30L);
  set(CURLOPT_TCP_KEEPINTVL, 10L);
  set(CURLOPT_USERAGENT, "retina-agent (kubernetes watcher)");
  set(CURLOPT_HEADERFUNCTION, &on_header);
  set(CURLOPT_WRITEFUNCTION, &on_write);

  if (config.server.starts_with("https://")) {
    if (config.insecure_skip_tls_verify) {
      set(CURLOPT_SSL_VERIFYPEER, 0L);
      set(CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (!config.ca_pem.empty() || !config.ca_file.empty()) {
      // Trust only the cluster CA, not the system store as well.
      set(CURLOPT_CAPATH, static_cast<const char*>(nullptr));
      if (!config.ca_pem.empty()) {
        set(CURLOPT_CAINFO, static_cast<const char*>(nullptr));
        curl_blob blob{const_cast<char*>(config.ca_pem.data()), config.ca_pem.size(), CURL_BLOB_COPY};
        set(CURLOPT_CAINFO_BLOB, &blob);
      } else {
        set(CURLOPT_CAINFO, config.ca_file.c_str());
      }
    }
    // A client certificate and key, inline PEM or files.
    auto client_pem = [&](CURLoption blob_opt, CURLoption file_opt, CURLoption type_opt, const std::string& pem,
                          const std::string& file) {
      if (!pem.empty()) {
        curl_blob blob{const_cast<char*>(pem.data()), pem.size(), CURL_BLOB_COPY};
        set(blob_opt, &blob);
      } else if (!file.empty()) {
        set(file_opt, file.c_str());
      } else {
        return;
      }
      set(type_opt, "PEM");
    };
    client_pem(CURLOPT_SSLCERT_BLOB, CURLOPT_SSLCERT, CURLOPT_SSLCERTTYPE, config.client_cert_pem,
               config.client_cert_file);
    client_pem(CURLOPT_SSLKEY_BLOB, CURLOPT_SSLKEY, CURLOPT_SSLKEYTYPE, config.client_key_pem, config.client_key_file);
  }
  if (!config.username.empty() && config.token.empty() && config.token_file.empty()) {
    set(CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    set(CURLOPT_USERNAME, config.username.c_str());
    set(CURLOPT_PASSWORD, config.password.c_str());
  }
  if (rc != CURLE_OK) {
    return unexpected(Error::internal(fmt::format("curl_easy_setopt: {}", curl_easy_strerror(rc))));
  }
  return s;
}

HttpStream::~HttpStream() = default;

void HttpStream::interrupt() {
  interrupted_.store(true, std::memory_order_release);
  if (h_ && h_->multi) curl_multi_wakeup(h_->multi);
}

HttpResponse HttpStream::get(const HttpRequest& req) {
  HttpResponse resp;
  if (interrupted_.load(std::memory_order_acquire)) {
    resp.stopped = true;
    return resp;
  }
  CURL* e = h_->easy;
  Transfer t{.easy = e, .req = &req, .resp = &resp};
  const std::string url = server_ + req.path;

  struct Headers {
    curl_slist* list = nullptr;
    ~Headers() { curl_slist_free_all(list); }
  } headers;
  headers.list = curl_slist_append(headers.list, "Accept: application/json");
  const std::string token = credentials_->token();
  if (!token.empty()) {
    headers.list = curl_slist_append(headers.list, fmt::format("Authorization: Bearer {}", token).c_str());
  }
  h_->errbuf[0] = '\0';
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, static_cast<const char*>(nullptr));
  if (req.method != "GET") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req.body.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(req.body.size()));
    headers.list = curl_slist_append(headers.list, ("Content-Type: " + req.content_type).c_str());
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers.list);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, req.gzip ? "" : static_cast<const char*>(nullptr));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout.count()));
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);

  if (CURLMcode mc = curl_multi_add_handle(h_->multi, e); mc != CURLM_OK) {
    resp.error = fmt::format("curl_multi_add_handle: {}", curl_multi_strerror(mc));
    return resp;
  }
  CURLcode result = CURLE_OK;
  bool finished = false;
  for (;;) {
    int running = 0;
    CURLMcode mc = curl_multi_perform(h_->multi, &running);
    if (mc != CURLM_OK) {
      resp.error = fmt::format("curl_multi_perform: {}", curl_multi_strerror(mc));
      break;
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(h_->multi, &queued)) {
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == e) {
        result = msg->data.result;
        finished = true;
      }
    }
    if (finished || running == 0) break;
    if (interrupted_.load(std::memory_order_acquire)) {
      resp.stopped = true;
      break;
    }
    mc = curl_multi_poll(h_->multi, nullptr, 0, 1000, nullptr);
    if (mc != CURLM_OK) {
      resp.error = fmt::format("curl_multi_poll: {}", curl_multi_strerror(mc));
      break;
    }
  }
  curl_multi_remove_handle(h_->multi, e);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
  if (!t.headers_done && !resp.stopped) {
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    resp.status = code;
  }
  if (resp.stopped || !resp.error.empty()) return resp;
  if (!t.exception.empty()) {
    resp.error = fmt::format("exception in a transfer callback: {}", t.exception);
  } else if (t.too_large) {
    resp.error = fmt::format("response body larger than {} bytes; refused", req.max_body);
  } else if (resp.sink_aborted) {
    // The sink chose to end the stream: not a transport error.
  } else if (!finished) {
    resp.error = "transfer ended without a result";
  } else if (result != CURLE_OK) {
    resp.timed_out = result == CURLE_OPERATION_TIMEDOUT;
    resp.error = h_->errbuf[0] ? fmt::format("{}: {}", curl_easy_strerror(result), h_->errbuf)
                               : std::string(curl_easy_strerror(result));
  }
  return resp;
}

}  // namespace retina::k8s
