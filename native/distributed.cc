// Data-parallel training on c10d, the distributed engine PyTorch itself uses: a key-value store
// client for the rendezvous (our own server; see PansegStore), ProcessGroupGloo for collectives,
// bucketed gradient all-reduce launched from autograd hooks while backward still runs, a differentiable all-reduce (for SyncBatchNorm) and
// a heartbeat watchdog that names a dead rank. No model or training logic lives here.
//
// Builds without c10d headers (other libtorch builds; or forced with -DPANSEG_NO_C10D): every op
// then throws "distributed training is not available in this libtorch build". Gloo and NCCL are
// each compiled in when their headers are present (distBackends() lists them).
//
// libtorch API this file relies on, checked against 1.13 (Debian) and 2.x:
// - c10d::Store's pure virtuals (set/get/add/deleteKey/check/getNumKeys/wait) and compareSet: same
//   in both; 2.6+ adds a pure clone(), which PansegStore defines without `override`.
// - c10d::ProcessGroupGloo(store, rank, size, Options) with Options::create(timeout), .devices and
//   .threads, createDeviceForHostname/Interface: same in both (2.x derives it from c10d::Backend
//   instead of ProcessGroup; we hold the concrete class, whose collectives keep their signatures).
// - c10d::Work::wait() throws on failure: both. c10d::PrefixStore(prefix, store): both.
// - Node::add_post_hook / del_post_hook on a leaf's grad accumulator (what DDP's Reducer uses):
//   both return/take a uintptr_t key.
// - ProcessGroupGloo.hpp compiles only with USE_C10D_GLOO defined (as libtorch's own build does);
//   ProcessGroupNCCL.hpp only with USE_C10D_NCCL, the CUDA toolkit's headers and nccl.h.
// - Both process groups derive from c10d::ProcessGroup (1.13) or c10d::Backend (2.x), whose
//   virtual allreduce/broadcast/barrier we call, so one handle type serves either backend.
#include "common.h"

#include <chrono>
#include <cerrno>
#include <cstring>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#if defined(__has_include) && !defined(PANSEG_NO_C10D)
#if __has_include(<torch/csrc/distributed/c10d/Store.hpp>) && __has_include(<torch/csrc/distributed/c10d/PrefixStore.hpp>)
#define PANSEG_HAVE_C10D 1
// PyTorch's pip wheels ship c10d's headers without gloo's: such a build gets NCCL only.
#if __has_include(<torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>) && __has_include(<gloo/config.h>)
#define PANSEG_HAVE_GLOO 1
#endif
#endif
#endif

// NCCL: a CUDA libtorch, its c10d header, nccl.h and the CUDA runtime's headers (-DPANSEG_NO_NCCL leaves it out).
#if defined(PANSEG_HAVE_C10D) && defined(PANSEG_CUDA) && !defined(PANSEG_NO_NCCL)
#if __has_include(<torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>) && __has_include(<nccl.h>) && \
    __has_include(<cuda_runtime_api.h>)
#define PANSEG_HAVE_NCCL 1
#endif
#endif

#ifdef PANSEG_HAVE_C10D
#include <torch/version.h>
#ifdef PANSEG_HAVE_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#elif TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif
#ifdef PANSEG_HAVE_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#endif

namespace panseg {

#ifdef PANSEG_HAVE_C10D

using Ms = std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
#if TORCH_VERSION_MAJOR >= 2
using PG = c10d::Backend;
#else
using PG = c10d::ProcessGroup;
#endif

// Every object handed to JS derives from Boxed, so a handle of the wrong kind is caught.
struct Boxed {
  virtual ~Boxed() = default;
};
template <class T>
static Napi::Value Box(Napi::Env env, T* p) {
  return Napi::External<Boxed>::New(env, p, [](Napi::Env, Boxed* b) { delete b; });
}
template <class T>
static T& Unbox(const Napi::Value& v, const char* what) {
  if (!v.IsExternal()) throw std::invalid_argument(std::string("expected a ") + what + " handle");
  auto* t = dynamic_cast<T*>(v.As<Napi::External<Boxed>>().Data());
  if (!t) throw std::invalid_argument(std::string("expected a ") + what + " handle");
  return *t;
}

static std::string Str(const Napi::Value& v) { return v.As<Napi::String>().Utf8Value(); }
static std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

// ---------------------------------------------------------------- store

// The rendezvous store's client. The server is panseg's own (src/distributed/store-server.ts, in
// a worker thread of rank 0), not c10d's TCPStore daemon: that one listens on every interface,
// serves all connections from one thread with blocking reads (one partial message stalls every
// rank) and allocates whatever a length prefix asks. This client is a c10d::Store, so Gloo and
// NCCL exchange their addresses through it exactly as through a TCPStore.
//
// Protocol (little-endian): a frame is u32 length, then that many bytes: u8 op (requests) or u8
// status (replies: 0 ok, 1 error with a message), then fields, each u32 length + bytes. The first
// frame of a connection must be HELLO("panseg-store/1", token); the server drops a connection
// whose first frame is anything else, and refuses a wrong token.
enum StoreOp : uint8_t { kHello = 1, kSet = 2, kGet = 3, kAdd = 4, kCheck = 5, kWait = 6, kDelete = 7, kNumKeys = 8, kCompareSet = 9 };
static const char* kStoreMagic = "panseg-store/1";

class PansegStore : public c10d::Store {
 public:
  PansegStore(std::string host, int port, std::string token, Ms timeout)
      : c10d::Store(timeout), host_(std::move(host)), port_(port), token_(std::move(token)) {
    std::lock_guard<std::mutex> lock(mu_);
    Connect();
  }
  ~PansegStore() override { Close(); }

  // A new connection to the same server (c10d >= 2.6 asks for it; the watchdog's own connection).
  // No `override`: older c10d::Store has no clone().
  c10::intrusive_ptr<c10d::Store> clone() { return c10::make_intrusive<PansegStore>(host_, port_, token_, timeout_); }
  c10::intrusive_ptr<PansegStore> Clone(Ms timeout) { return c10::make_intrusive<PansegStore>(host_, port_, token_, timeout); }

  void set(const std::string& key, const std::vector<uint8_t>& value) override {
    Call(kSet, {key, std::string(value.begin(), value.end())}, timeout_);
  }
  std::vector<uint8_t> compareSet(const std::string& key, const std::vector<uint8_t>& current, const std::vector<uint8_t>& desired) override {
    auto r = Call(kCompareSet, {key, std::string(current.begin(), current.end()), std::string(desired.begin(), desired.end())}, timeout_);
    return std::vector<uint8_t>(r.at(0).begin(), r.at(0).end());
  }
  // Waits up to the store's timeout for the key.
  std::vector<uint8_t> get(const std::string& key) override {
    auto r = Call(kGet, {key}, timeout_, true);
    return std::vector<uint8_t>(r.at(0).begin(), r.at(0).end());
  }
  int64_t add(const std::string& key, int64_t delta) override {
    std::string d(8, '\0');
    for (int i = 0; i < 8; i++) d[i] = static_cast<char>((static_cast<uint64_t>(delta) >> (8 * i)) & 0xff);
    return Num(Call(kAdd, {key, d}, timeout_).at(0));
  }
  bool deleteKey(const std::string& key) override { return Num(Call(kDelete, {key}, timeout_).at(0)) != 0; }
  bool check(const std::vector<std::string>& keys) override { return Num(Call(kCheck, keys, timeout_).at(0)) != 0; }
  int64_t getNumKeys() override { return Num(Call(kNumKeys, {}, timeout_).at(0)); }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const Ms& timeout) override { Call(kWait, keys, timeout, true); }

 private:
  std::string host_;
  int port_;
  std::string token_;
  std::mutex mu_;
  int fd_ = -1;

  std::string Where() const { return host_ + ":" + std::to_string(port_); }
  static int64_t Num(const std::string& f) {
    TORCH_CHECK(f.size() == 8, "rendezvous store: malformed reply");
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | static_cast<uint8_t>(f[i]);
    return static_cast<int64_t>(v);
  }
  static Clock::time_point Deadline(Ms t) { return t.count() > 0 ? Clock::now() + t : Clock::time_point::max(); }
  static int Remaining(Clock::time_point d) {
    if (d == Clock::time_point::max()) return -1;
    auto ms = std::chrono::duration_cast<Ms>(d - Clock::now()).count();
    return ms <= 0 ? 0 : static_cast<int>(std::min<int64_t>(ms, 1 << 30));
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  [[noreturn]] void Fail(const std::string& what) {
    Close();
    throw std::runtime_error(what);
  }

  // Connects (one attempt per address, within the store's timeout) and says hello with the token.
  void Connect() {
    auto deadline = Deadline(timeout_);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host_.c_str(), std::to_string(port_).c_str(), &hints, &res);
    TORCH_CHECK(rc == 0, "could not connect to the rendezvous store at ", Where(), ": cannot resolve ", host_, " (", gai_strerror(rc), ")");
    std::string err = "no address";
    for (auto* a = res; a && fd_ < 0; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
      if (fd < 0) { err = std::strerror(errno); continue; }
      if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
        err = std::strerror(errno);
        ::close(fd);
        continue;
      }
      pollfd p{fd, POLLOUT, 0};
      int n = ::poll(&p, 1, Remaining(deadline));
      int soerr = 0;
      socklen_t len = sizeof soerr;
      if (n <= 0) err = "connect timed out";
      else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) err = std::strerror(soerr ? soerr : errno);
      else { fd_ = fd; break; }
      ::close(fd);
    }
    ::freeaddrinfo(res);
    TORCH_CHECK(fd_ >= 0, "could not connect to the rendezvous store at ", Where(), ": ", err);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto r = Exchange(kHello, {kStoreMagic, token_}, deadline, false);
    (void)r;
  }

  std::vector<std::string> Call(uint8_t op, const std::vector<std::string>& fields, Ms timeout, bool waits = false) {
    std::lock_guard<std::mutex> lock(mu_);
    if (fd_ < 0) Connect();
    return Exchange(op, fields, Deadline(timeout), waits, &fields);
  }

  void SendAll(const std::string& buf, Clock::time_point deadline) {
    size_t off = 0;
    while (off < buf.size()) {
      ssize_t n = ::send(fd_, buf.data() + off, buf.size() - off, MSG_NOSIGNAL);
      if (n > 0) { off += static_cast<size_t>(n); continue; }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{fd_, POLLOUT, 0};
        if (::poll(&p, 1, Remaining(deadline)) <= 0) Fail("rendezvous store at " + Where() + ": send timed out");
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      Fail("rendezvous store at " + Where() + ": send failed (" + std::strerror(errno) + ")");
    }
  }
  void RecvExact(char* out, size_t size, Clock::time_point deadline, const std::string& waitingFor) {
    size_t off = 0;
    while (off < size) {
      ssize_t n = ::recv(fd_, out + off, size - off, 0);
      if (n > 0) { off += static_cast<size_t>(n); continue; }
      if (n == 0) Fail("the rendezvous store at " + Where() + " closed the connection (rank 0 ended, or it dropped this client)");
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) Fail("rendezvous store at " + Where() + ": receive failed (" + std::strerror(errno) + ")");
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, Remaining(deadline));
      if (r == 0) Fail("rendezvous store at " + Where() + ": timed out " + waitingFor);
      if (r < 0 && errno != EINTR) Fail("rendezvous store at " + Where() + ": poll failed (" + std::strerror(errno) + ")");
    }
  }

  // Sends one request and reads its reply. A timeout or a broken connection closes the socket
  // (a late reply must not be read as the next one's); the next call reconnects.
  std::vector<std::string> Exchange(uint8_t op, const std::vector<std::string>& fields, Clock::time_point deadline, bool waits,
                                    const std::vector<std::string>* keys = nullptr) {
    std::string buf(5, '\0');
    buf[4] = static_cast<char>(op);
    auto put32 = [&](std::string& b, size_t at, uint32_t v) { for (int i = 0; i < 4; i++) b[at + i] = static_cast<char>((v >> (8 * i)) & 0xff); };
    for (auto& f : fields) {
      size_t at = buf.size();
      buf.resize(at + 4);
      put32(buf, at, static_cast<uint32_t>(f.size()));
      buf += f;
    }
    put32(buf, 0, static_cast<uint32_t>(buf.size() - 4));
    SendAll(buf, deadline);
    std::string what = op == kHello ? "waiting for its greeting" : "waiting for a reply";
    if (waits && keys) {
      what = "waiting for key";
      what += keys->size() > 1 ? "s " : " ";
      for (size_t i = 0; i < keys->size() && i < 4; i++) what += (i ? ", '" : "'") + (*keys)[i] + "'";
      if (keys->size() > 4) what += ", ...";
    }
    unsigned char hdr[4];
    RecvExact(reinterpret_cast<char*>(hdr), 4, deadline, what);
    uint32_t len = hdr[0] | (hdr[1] << 8) | (hdr[2] << 16) | (static_cast<uint32_t>(hdr[3]) << 24);
    if (len < 1 || len > (1u << 30)) Fail("rendezvous store at " + Where() + ": malformed reply (is another program listening on this port?)");
    std::string body(len, '\0');
    RecvExact(&body[0], len, deadline, what);
    std::vector<std::string> out;
    size_t off = 1;
    while (off + 4 <= body.size()) {
      uint32_t n = static_cast<uint8_t>(body[off]) | (static_cast<uint8_t>(body[off + 1]) << 8) |
                   (static_cast<uint8_t>(body[off + 2]) << 16) | (static_cast<uint32_t>(static_cast<uint8_t>(body[off + 3])) << 24);
      off += 4;
      if (n > body.size() - off) Fail("rendezvous store at " + Where() + ": malformed reply");
      out.push_back(body.substr(off, n));
      off += n;
    }
    if (body[0] != 0) {
      std::string msg = out.empty() ? "error" : out[0];
      if (op == kHello) Fail("the rendezvous store at " + Where() + " refused this process: " + msg);
      TORCH_CHECK(false, "rendezvous store at ", Where(), ": ", msg);
    }
    return out;
  }
};

struct StoreBox : Boxed {
  c10::intrusive_ptr<PansegStore> store;
};

// storeConnect(host, port, token, timeoutMs): a client of panseg's store server (every rank, rank 0
// included). timeoutMs bounds the connection and every later read (get waits that long for a key).
static Napi::Value StoreConnect(const Napi::CallbackInfo& info) {
  auto* b = new StoreBox();
  try {
    b->store = c10::make_intrusive<PansegStore>(Str(info[0]), static_cast<int>(Int(info[1])), Str(info[2]), Ms(Int(info[3])));
  } catch (...) {
    delete b;
    throw;
  }
  return Box(info.Env(), b);
}
static Napi::Value StoreSet(const Napi::CallbackInfo& info) {
  Unbox<StoreBox>(info[0], "store").store->set(Str(info[1]), Bytes(Str(info[2])));
  return info.Env().Undefined();
}
// storeGet(store, key): waits up to the store's timeout for the key.
static Napi::Value StoreGet(const Napi::CallbackInfo& info) {
  auto v = Unbox<StoreBox>(info[0], "store").store->get(Str(info[1]));
  return Napi::String::New(info.Env(), std::string(v.begin(), v.end()));
}
static Napi::Value StoreAdd(const Napi::CallbackInfo& info) {
  auto n = Unbox<StoreBox>(info[0], "store").store->add(Str(info[1]), Int(info[2]));
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}
// storeCheck(store, keys): true when every key exists (does not wait).
static Napi::Value StoreCheck(const Napi::CallbackInfo& info) {
  auto arr = info[1].As<Napi::Array>();
  std::vector<std::string> keys;
  for (uint32_t i = 0; i < arr.Length(); i++) keys.push_back(Str(arr.Get(i)));
  return Napi::Boolean::New(info.Env(), Unbox<StoreBox>(info[0], "store").store->check(keys));
}

// ---------------------------------------------------------------- process group

struct GroupBox : Boxed {
  c10::intrusive_ptr<PG> pg;
  int rank = 0;
  int size = 1;
};

static c10::intrusive_ptr<PG> MakeGloo(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, Ms timeout,
                                       const std::string& ifname, const std::string& host, int threads) {
#ifndef PANSEG_HAVE_GLOO
  throw std::runtime_error("the Gloo backend is not available in this build (gloo's headers were missing when panseg was compiled)");
#else
  using Gloo = c10d::ProcessGroupGloo;
  auto opts = Gloo::Options::create(timeout);
  if (!ifname.empty()) opts->devices.push_back(Gloo::createDeviceForInterface(ifname));
  else if (!host.empty()) opts->devices.push_back(Gloo::createDeviceForHostname(host));
  else opts->devices.push_back(Gloo::createDefaultDevice());
  opts->threads = threads;
  return c10::make_intrusive<Gloo>(store, rank, size, opts);
#endif
}

// NCCL communicators are created lazily, at the first collective, on the device of its tensors.
static c10::intrusive_ptr<PG> MakeNccl(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, Ms timeout) {
#ifdef PANSEG_HAVE_NCCL
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, opts);
#else
  throw std::runtime_error("the NCCL backend is not available in this build (it needs a CUDA libtorch, the CUDA toolkit's headers and nccl.h when panseg is compiled); use the gloo backend");
#endif
}

// pgCreate(store, prefix, rank, size, timeoutMs, ifname, hostname, threads, backend). Gloo blocks
// until every rank has connected (its full mesh), at most timeoutMs.
static Napi::Value PgCreate(const Napi::CallbackInfo& info) {
  auto& s = Unbox<StoreBox>(info[0], "store");
  auto backend = info.Length() > 8 ? Str(info[8]) : std::string("gloo");
  if (backend != "gloo" && backend != "nccl") throw std::invalid_argument("unknown backend " + backend + " (gloo or nccl)");
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>(Str(info[1]), c10::intrusive_ptr<c10d::Store>(s.store));
  auto* b = new GroupBox();
  b->rank = static_cast<int>(Int(info[2]));
  b->size = static_cast<int>(Int(info[3]));
  try {
    b->pg = backend == "nccl" ? MakeNccl(prefixed, b->rank, b->size, Ms(Int(info[4])))
                              : MakeGloo(prefixed, b->rank, b->size, Ms(Int(info[4])), Str(info[5]), Str(info[6]), static_cast<int>(Int(info[7])));
  } catch (...) {
    delete b;
    throw;
  }
  return Box(info.Env(), b);
}

static c10d::ReduceOp Op(const std::string& s) {
  if (s == "sum") return c10d::ReduceOp::SUM;
  if (s == "max") return c10d::ReduceOp::MAX;
  if (s == "min") return c10d::ReduceOp::MIN;
  throw std::invalid_argument("unknown reduce op " + s);
}

// Runs `collective` on each same-dtype group of tensors: in place for one contiguous tensor,
// otherwise through one flat buffer (one message instead of many; also handles channels-last).
template <class F>
static void Coalesced(const std::vector<at::Tensor>& ts, F collective) {
  std::vector<std::vector<at::Tensor>> groups;
  for (auto& t : ts) {
    bool placed = false;
    for (auto& g : groups)
      if (g[0].scalar_type() == t.scalar_type()) { g.push_back(t); placed = true; break; }
    if (!placed) groups.push_back({t});
  }
  for (auto& g : groups) {
    if (g.size() == 1 && g[0].is_contiguous()) {
      std::vector<at::Tensor> v{g[0]};
      collective(v);
      continue;
    }
    std::vector<at::Tensor> flat;
    for (auto& t : g) flat.push_back(t.reshape({-1}));
    std::vector<at::Tensor> v{at::cat(flat)};
    collective(v);
    int64_t off = 0;
    for (auto& t : g) {
      t.copy_(v[0].narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
  }
}

// allreduce(pg, tensors, op): in place, blocking.
static Napi::Value Allreduce(const Napi::CallbackInfo& info) {
  auto& g = Unbox<GroupBox>(info[0], "process group");
  auto ts = GetList(info[1]);
  c10d::AllreduceOptions o;
  o.reduceOp = Op(Str(info[2]));
  c10::NoGradGuard ng;
  Coalesced(ts, [&](std::vector<at::Tensor>& v) { g.pg->allreduce(v, o)->wait(); });
  return info.Env().Undefined();
}
// broadcast(pg, tensors, root): in place, blocking.
static Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  auto& g = Unbox<GroupBox>(info[0], "process group");
  auto ts = GetList(info[1]);
  c10d::BroadcastOptions o;
  o.rootRank = Int(info[2]);
  c10::NoGradGuard ng;
  Coalesced(ts, [&](std::vector<at::Tensor>& v) { g.pg->broadcast(v, o)->wait(); });
  return info.Env().Undefined();
}
static Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Unbox<GroupBox>(info[0], "process group").pg->barrier()->wait();
  return info.Env().Undefined();
}

// A sum all-reduce that autograd can see through: backward all-reduces the incoming gradient,
// as torch.distributed.nn.functional.all_reduce. SyncBatchNorm sums its statistics with it.
// The group is passed as a raw pointer: the JS ProcessGroup outlives every graph built on it.
struct AllreduceSumFn : public torch::autograd::Function<AllreduceSumFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t pg) {
    ctx->saved_data["pg"] = pg;
    auto y = x.contiguous().clone();
    std::vector<at::Tensor> v{y};
    reinterpret_cast<PG*>(pg)->allreduce(v)->wait();
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto* pg = reinterpret_cast<PG*>(ctx->saved_data["pg"].toInt());
    auto g = grads[0].contiguous().clone();
    std::vector<at::Tensor> v{g};
    pg->allreduce(v)->wait();
    return {g, at::Tensor()};
  }
};
static Napi::Value AllreduceDiff(const Napi::CallbackInfo& info) {
  auto& g = Unbox<GroupBox>(info[0], "process group");
  return Wrap(info.Env(), AllreduceSumFn::apply(Get(info[1]), reinterpret_cast<int64_t>(g.pg.get())));
}

// ---------------------------------------------------------------- gradient buckets

// Averages gradients across ranks like DistributedDataParallel: parameters are grouped into
// buckets of about `bucketBytes` in reverse registration order (roughly the order backward
// produces their gradients); a post-hook on each parameter's grad accumulator counts down its
// bucket, and a full bucket is copied into one flat buffer and all-reduced asynchronously while
// backward continues. Buckets launch strictly in order, so every rank issues the same sequence.
// finish() launches what is left (a parameter without a gradient contributes zeros), waits and
// divides by the world size. As DDP's gradient_as_bucket_view, each .grad is made a view into its
// bucket (prepare() attaches zeroed views to parameters without a gradient, and autograd then
// accumulates into them in place), so the gradients are neither copied in nor copied back; a
// gradient that is not a view (accumulated before prepare()) is copied in once and re-pointed.
struct GradSync : Boxed {
  c10::intrusive_ptr<PG> pg;
  int world = 1;
  std::vector<at::Tensor> params;
  std::vector<std::shared_ptr<torch::autograd::Node>> accs;  // keeps the accumulators (and hooks) alive
  std::vector<uintptr_t> hookKeys;
  struct Bucket {
    std::vector<size_t> members;
    std::vector<int64_t> offsets;
    int64_t numel = 0;
    at::Tensor flat;
    std::vector<at::Tensor> views;  // one per member, shaped as the parameter
    size_t pending = 0;
    bool launched = false;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets;
  std::vector<size_t> bucketOf;
  std::vector<char> seen;
  size_t nextLaunch = 0;
  bool armed = false;
  bool overlap = true;
  std::mutex mu;
  // statistics of the last finish()
  int64_t launchedEarly = 0;
  double waitMs = 0, copyMs = 0;

  ~GradSync() override { Detach(); }

  void Detach() {
    for (size_t i = 0; i < accs.size(); i++) accs[i]->del_post_hook(hookKeys[i]);
    accs.clear();
    hookKeys.clear();
  }

  void Reset() {
    for (auto& b : buckets) {
      b.pending = b.members.size();
      b.launched = false;
      b.work.reset();
    }
    std::fill(seen.begin(), seen.end(), 0);
    nextLaunch = 0;
  }

  static bool IsView(const at::Tensor& g, const at::Tensor& view) {
    return g.defined() && g.data_ptr() == view.data_ptr() && g.sizes() == view.sizes() && g.strides() == view.strides();
  }

  // Gives every parameter without a gradient its zeroed bucket view as .grad.
  void AttachViews() {
    c10::NoGradGuard ng;
    for (auto& b : buckets) {
      for (size_t k = 0; k < b.members.size(); k++) {
        auto& p = params[b.members[k]];
        if (p.grad().defined()) continue;
        b.views[k].zero_();
        p.mutable_grad() = b.views[k];
      }
    }
  }

  void Launch(Bucket& b) {
    auto t0 = Clock::now();
    {
      c10::NoGradGuard ng;
      for (size_t k = 0; k < b.members.size(); k++) {
        auto& p = params[b.members[k]];
        const auto& g = p.grad();
        if (IsView(g, b.views[k])) continue;
        if (g.defined()) b.views[k].copy_(g);
        else b.views[k].zero_();
        p.mutable_grad() = b.views[k];
      }
    }
    copyMs += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    std::vector<at::Tensor> v{b.flat};
    b.work = pg->allreduce(v);
    b.launched = true;
  }

  // Launches consecutive ready buckets from the first unlaunched one.
  void LaunchReady() {
    while (nextLaunch < buckets.size() && buckets[nextLaunch].pending == 0) {
      Launch(buckets[nextLaunch]);
      nextLaunch++;
      launchedEarly++;
    }
  }

  void OnGrad(size_t i) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed || seen[i]) return;
    seen[i] = 1;
    auto& b = buckets[bucketOf[i]];
    if (b.pending > 0) b.pending--;
    if (overlap) LaunchReady();
  }

  void Finish() {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed) throw std::runtime_error("finish() without prepare(): call prepare() before backward");
    armed = false;
    for (; nextLaunch < buckets.size(); nextLaunch++) Launch(buckets[nextLaunch]);
    auto t0 = Clock::now();
    std::exception_ptr err;
    for (auto& b : buckets) {
      try {
        b.work->wait();
      } catch (...) {
        if (!err) err = std::current_exception();
      }
    }
    waitMs = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (err) std::rethrow_exception(err);
    c10::NoGradGuard ng;
    for (auto& b : buckets) {
      b.flat.div_(world);  // every member's .grad is a view into flat
      b.work.reset();
    }
  }
};

// gradSyncCreate(pg, params, bucketBytes, firstBucketBytes, overlap). Parameters must be leaves
// that require grad and must not be replaced afterwards (build a new one if they change).
static Napi::Value GradSyncCreate(const Napi::CallbackInfo& info) {
  auto& g = Unbox<GroupBox>(info[0], "process group");
  auto params = GetList(info[1]);
  int64_t cap = Int(info[2]);
  int64_t firstCap = Int(info[3]);
  auto s = std::make_unique<GradSync>();
  s->pg = g.pg;
  s->world = g.size;
  s->overlap = Bool(info[4]);
  s->params = params;
  s->bucketOf.assign(params.size(), 0);
  s->seen.assign(params.size(), 0);
  for (auto& p : params) {
    if (!p.is_leaf() || !p.requires_grad()) throw std::invalid_argument("every parameter must be a leaf tensor that requires grad");
  }
  // Buckets in reverse order; a new bucket starts when the dtype changes or the cap is reached.
  int64_t bytes = 0;
  for (size_t r = params.size(); r-- > 0;) {
    auto& p = params[r];
    int64_t limit = s->buckets.size() == 1 ? firstCap : cap;
    bool fresh = s->buckets.empty() || bytes >= limit ||
                 params[s->buckets.back().members.back()].scalar_type() != p.scalar_type();
    if (fresh) {
      bytes = 0;
      s->buckets.emplace_back();
    }
    auto& b = s->buckets.back();
    b.offsets.push_back(b.numel);
    b.members.push_back(r);
    b.numel += p.numel();
    bytes += p.numel() * static_cast<int64_t>(p.element_size());
    s->bucketOf[r] = s->buckets.size() - 1;
  }
  for (auto& b : s->buckets) {
    b.flat = at::zeros({b.numel}, params[b.members[0]].options().memory_format(at::MemoryFormat::Contiguous));
    for (size_t k = 0; k < b.members.size(); k++) {
      auto& p = params[b.members[k]];
      // Each view takes its parameter's strides (as DDP's Reducer does), so a channels-last parameter
      // gets a channels-last gradient: autograd's layout contract holds and accumulation stays a plain add.
      auto seg = b.flat.narrow(0, b.offsets[k], p.numel());
      b.views.push_back(p.is_non_overlapping_and_dense() ? seg.as_strided(p.sizes(), p.strides()) : seg.view(p.sizes()));
    }
  }
  auto* raw = s.get();
  for (size_t i = 0; i < params.size(); i++) {
    auto acc = torch::autograd::impl::grad_accumulator(params[i]);
    auto key = acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [raw, i](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          raw->OnGrad(i);
          return outputs;
        }));
    s->accs.push_back(acc);
    s->hookKeys.push_back(key);
  }
  s->Reset();
  return Box(info.Env(), s.release());
}
// gradSyncPrepare(sync): the next backward's gradients are synchronized (DDP without no_sync()).
static Napi::Value GradSyncPrepare(const Napi::CallbackInfo& info) {
  auto& s = Unbox<GradSync>(info[0], "gradient sync");
  std::lock_guard<std::mutex> lock(s.mu);
  s.Reset();
  s.launchedEarly = 0;
  s.copyMs = 0;
  s.AttachViews();
  s.armed = true;
  return info.Env().Undefined();
}
// gradSyncFinish(sync) -> { buckets, launchedEarly, waitMs, copyMs }
static Napi::Value GradSyncFinish(const Napi::CallbackInfo& info) {
  auto& s = Unbox<GradSync>(info[0], "gradient sync");
  s.Finish();
  auto o = Napi::Object::New(info.Env());
  o.Set("buckets", static_cast<double>(s.buckets.size()));
  o.Set("launchedEarly", static_cast<double>(s.launchedEarly));
  o.Set("waitMs", s.waitMs);
  o.Set("copyMs", s.copyMs);
  return o;
}
// gradSyncBuckets(sync) -> the parameter indices of each bucket, in launch order.
static Napi::Value GradSyncBuckets(const Napi::CallbackInfo& info) {
  auto& s = Unbox<GradSync>(info[0], "gradient sync");
  auto env = info.Env();
  auto out = Napi::Array::New(env, s.buckets.size());
  for (size_t b = 0; b < s.buckets.size(); b++) {
    auto m = Napi::Array::New(env, s.buckets[b].members.size());
    for (size_t k = 0; k < s.buckets[b].members.size(); k++) m.Set(k, static_cast<double>(s.buckets[b].members[k]));
    out.Set(b, m);
  }
  return out;
}
static Napi::Value GradSyncDestroy(const Napi::CallbackInfo& info) {
  auto& s = Unbox<GradSync>(info[0], "gradient sync");
  std::lock_guard<std::mutex> lock(s.mu);
  s.armed = false;
  s.Detach();
  return info.Env().Undefined();
}

// ---------------------------------------------------------------- watchdog

// A thread with its own store connection: every interval it bumps this rank's heartbeat counter
// and reads the others'. A counter that has not moved for `deadAfter` (or a store that cannot be
// reached: rank 0, its host, is gone) marks a rank dead. The main thread asks who died when a
// collective fails; if the process is still alive `grace` after a death (e.g. blocked in a
// collective with a frozen peer), the thread prints the diagnosis and ends the process (exit 1).
// A rank that finishes sets its `done` key first, so a normal exit is not taken for a death.
struct Watchdog : Boxed {
  c10::intrusive_ptr<PansegStore> store;
  std::string prefix;
  int rank = 0, world = 1;
  Ms interval{1000}, deadAfter{30000}, grace{10000};
  std::thread th;
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  // guarded by mu
  std::vector<int> dead;
  std::vector<double> silentMs;
  bool storeLost = false;
  Clock::time_point firstDeath;

  ~Watchdog() override { Stop(); }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    if (th.joinable()) th.join();
  }

  std::string Describe() {
    std::string s;
    if (storeLost) return "rank 0 (the rendezvous host) is unreachable: it died or its machine is down";
    for (size_t i = 0; i < dead.size(); i++) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "%srank %d (no heartbeat for %.1f s)", i ? ", " : "", dead[i], silentMs[i] / 1000);
      s += buf;
    }
    return s + " died, was killed or is frozen";
  }

  void Run() {
    std::vector<int64_t> last(world, -1);
    std::vector<Clock::time_point> changed(world, Clock::now());
    std::vector<char> done(world, 0);
    auto storeOk = Clock::now();
    std::unique_lock<std::mutex> lock(mu);
    while (!stop) {
      lock.unlock();
      bool ok = true;
      std::vector<int> d;
      std::vector<double> ms;
      auto now = Clock::now();
      try {
        store->add(prefix + "hb/" + std::to_string(rank), 1);
        for (int r = 0; r < world; r++) {
          if (r == rank || done[r]) continue;
          if (store->check({prefix + "done/" + std::to_string(r)})) { done[r] = 1; continue; }
          auto v = store->add(prefix + "hb/" + std::to_string(r), 0);
          now = Clock::now();
          if (v != last[r]) { last[r] = v; changed[r] = now; }
          auto silent = std::chrono::duration<double, std::milli>(now - changed[r]).count();
          if (silent > deadAfter.count()) { d.push_back(r); ms.push_back(silent); }
        }
        storeOk = Clock::now();
      } catch (...) {
        ok = false;
      }
      lock.lock();
      if (stop) break;
      bool lost = !ok && std::chrono::duration_cast<Ms>(Clock::now() - storeOk) > deadAfter;
      if ((lost || !d.empty()) && dead.empty() && !storeLost) firstDeath = Clock::now();
      if (lost) storeLost = true;
      if (!d.empty() && dead.empty()) { dead = d; silentMs = ms; }
      if ((storeLost || !dead.empty()) && Clock::now() - firstDeath > grace) {
        std::fprintf(stderr, "panseg distributed: %s; rank %d stops (exit 1). The last complete checkpoint is intact: resume with --resume and the same world size.\n",
                     Describe().c_str(), rank);
        std::fflush(stderr);
        std::_Exit(1);
      }
      cv.wait_for(lock, interval, [this] { return stop; });
    }
  }
};

// watchdogStart(store, prefix, rank, world, intervalMs, deadAfterMs, graceMs, timeoutMs): the
// watchdog gets its own connection to the store (a clone of `store`'s, with the same token).
static Napi::Value WatchdogStart(const Napi::CallbackInfo& info) {
  auto& s = Unbox<StoreBox>(info[0], "store");
  auto w = std::make_unique<Watchdog>();
  w->store = s.store->Clone(Ms(Int(info[7])));
  w->prefix = Str(info[1]);
  w->rank = static_cast<int>(Int(info[2]));
  w->world = static_cast<int>(Int(info[3]));
  w->interval = Ms(Int(info[4]));
  w->deadAfter = Ms(Int(info[5]));
  w->grace = Ms(Int(info[6]));
  auto* raw = w.get();
  w->th = std::thread([raw] { raw->Run(); });
  return Box(info.Env(), w.release());
}
// watchdogDead(w, waitMs) -> null or a description of the dead ranks; waits up to waitMs for
// the heartbeats to tell (a collective that just failed usually means a peer is going).
static Napi::Value WatchdogDead(const Napi::CallbackInfo& info) {
  auto& w = Unbox<Watchdog>(info[0], "watchdog");
  auto until = Clock::now() + Ms(Int(info[1]));
  std::unique_lock<std::mutex> lock(w.mu);
  while (w.dead.empty() && !w.storeLost && Clock::now() < until) {
    lock.unlock();
    std::this_thread::sleep_for(Ms(50));
    lock.lock();
  }
  if (w.dead.empty() && !w.storeLost) return info.Env().Null();
  auto o = Napi::Object::New(info.Env());
  auto ranks = Napi::Array::New(info.Env(), w.storeLost ? 1 : w.dead.size());
  if (w.storeLost) ranks.Set(0u, 0);
  else for (size_t i = 0; i < w.dead.size(); i++) ranks.Set(i, w.dead[i]);
  o.Set("ranks", ranks);
  o.Set("message", w.Describe());
  return o;
}
static Napi::Value WatchdogStop(const Napi::CallbackInfo& info) {
  Unbox<Watchdog>(info[0], "watchdog").Stop();
  return info.Env().Undefined();
}

static Napi::Value DistAvailable(const Napi::CallbackInfo& info) {
#if defined(PANSEG_HAVE_GLOO) || defined(PANSEG_HAVE_NCCL)
  return Napi::String::New(info.Env(), "");
#else
  return Napi::String::New(info.Env(), "distributed training is not available in this libtorch build (neither gloo's nor NCCL's headers were found when panseg was compiled; on Debian: apt-get install libgloo-dev, then rebuild with `npm run setup`)");
#endif
}
// distBackends() -> the process-group backends compiled in, e.g. ['gloo'] or ['nccl'].
static Napi::Value DistBackends(const Napi::CallbackInfo& info) {
  auto out = Napi::Array::New(info.Env());
#ifdef PANSEG_HAVE_GLOO
  out.Set(out.Length(), "gloo");
#endif
#ifdef PANSEG_HAVE_NCCL
  out.Set(out.Length(), "nccl");
#endif
  return out;
}

void InitDistributed(Napi::Env env, Napi::Object exports) {
  Register(env, exports, "distAvailable", DistAvailable);
  Register(env, exports, "distBackends", DistBackends);
  Register(env, exports, "storeConnect", StoreConnect);
  Register(env, exports, "storeSet", StoreSet);
  Register(env, exports, "storeGet", StoreGet);
  Register(env, exports, "storeAdd", StoreAdd);
  Register(env, exports, "storeCheck", StoreCheck);
  Register(env, exports, "pgCreate", PgCreate);
  Register(env, exports, "allreduce", Allreduce);
  Register(env, exports, "broadcast", Broadcast);
  Register(env, exports, "barrier", Barrier);
  Register(env, exports, "allreduceDiff", AllreduceDiff);
  Register(env, exports, "gradSyncCreate", GradSyncCreate);
  Register(env, exports, "gradSyncPrepare", GradSyncPrepare);
  Register(env, exports, "gradSyncFinish", GradSyncFinish);
  Register(env, exports, "gradSyncBuckets", GradSyncBuckets);
  Register(env, exports, "gradSyncDestroy", GradSyncDestroy);
  Register(env, exports, "watchdogStart", WatchdogStart);
  Register(env, exports, "watchdogDead", WatchdogDead);
  Register(env, exports, "watchdogStop", WatchdogStop);
}

#else  // no c10d in this libtorch build

static Napi::Value DistAvailable(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), "distributed training is not available in this libtorch build (no c10d/gloo headers when panseg was compiled; on Debian: apt-get install libgloo-dev, then rebuild with `npm run setup`)");
}
static Napi::Value DistBackends(const Napi::CallbackInfo& info) { return Napi::Array::New(info.Env()); }
static Napi::Value Unavailable(const Napi::CallbackInfo&) {
  throw std::runtime_error("distributed training is not available in this libtorch build");
}

void InitDistributed(Napi::Env env, Napi::Object exports) {
  Register(env, exports, "distAvailable", DistAvailable);
  Register(env, exports, "distBackends", DistBackends);
  for (auto name : {"storeConnect", "storeSet", "storeGet", "storeAdd", "storeCheck", "pgCreate", "allreduce", "broadcast",
                    "barrier", "allreduceDiff", "gradSyncCreate", "gradSyncPrepare", "gradSyncFinish", "gradSyncBuckets",
                    "gradSyncDestroy", "watchdogStart", "watchdogDead", "watchdogStop"})
    Register(env, exports, name, Unavailable);
}

#endif

}  // namespace panseg
