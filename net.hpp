// net.hpp - everything that touches sockets, epoll and signals: an epoll
// loop with monotonic timers, TCP helpers, and a buffered line connection
// with kernel receive timestamps. It knows nothing of the Berkeley algorithm;
// the host clocks and the Fd owner are in os.hpp.
// Left out: IPv6 listeners beyond what getaddrinfo gives, TLS, UDP.
#pragma once

#include <algorithm>
#include <arpa/inet.h>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <cerrno>
#include <netdb.h>
#include <netinet/in.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netinet/tcp.h>
#include <string>
#include <string_view>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

#include "os.hpp"
#include "protocol.hpp"

namespace berkeley {

// ---------------------------------------------------------------------------
// Signals. SIGINT and SIGTERM only set a flag, and are blocked except while
// the loop sleeps in epoll_pwait2: a signal can then never slip in between
// checking the flag and going to sleep (the pselect pattern).
inline volatile sig_atomic_t g_stop_signal = 0;  // the one mutable global

inline void install_signal_handlers() {
    std::signal(SIGPIPE, SIG_IGN);
    std::signal(SIGXFSZ, SIG_IGN);  // a file-size limit makes the log's write() fail (EFBIG), not kill us
    struct sigaction sa {};
    sa.sa_handler = [](int sig) { g_stop_signal = sig; };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, nullptr);
}

// Let this process open as many sockets as the system allows: the hard
// limit, and as root the hard limit raised to the kernel's fs.nr_open too.
// Returns the limit now in force.
inline uint64_t raise_fd_limit() {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
    rlim_t system_max = 0;
    if (FILE* f = std::fopen("/proc/sys/fs/nr_open", "r")) {
        unsigned long long v = 0;
        if (std::fscanf(f, "%llu", &v) == 1) system_max = static_cast<rlim_t>(v);
        std::fclose(f);
    }
    if (system_max > rl.rlim_max) {  // only root may raise the hard limit; others keep theirs
        const rlimit wider{system_max, system_max};
        if (setrlimit(RLIMIT_NOFILE, &wider) == 0) return system_max;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

// ---------------------------------------------------------------------------
// The event loop: one epoll fd, level-triggered, and monotonic timers.
// Each registration carries a caller-chosen token (not the fd), so an event
// still queued for a closed connection can never be delivered to a new one
// that reused its fd number. Each token may also have one timer, a deadline
// on CLOCK_MONOTONIC (never on the clock being corrected), kept in a
// min-heap: a wake-up costs the events and timers it handles, not a scan of
// every peer.
class EventLoop {
public:
    [[nodiscard]] bool open(std::string& error) {
        epfd_ = Fd(epoll_create1(EPOLL_CLOEXEC));
        if (!epfd_.valid()) error = sys_error("epoll_create1");
        sigprocmask(SIG_SETMASK, nullptr, &wait_mask_);
        sigdelset(&wait_mask_, SIGINT);
        sigdelset(&wait_mask_, SIGTERM);
        return epfd_.valid();
    }

    [[nodiscard]] bool add(int fd, uint32_t events, uint64_t token, std::string& error) {
        return control(EPOLL_CTL_ADD, fd, events, token, error);
    }
    [[nodiscard]] bool modify(int fd, uint32_t events, uint64_t token, std::string& error) {
        return control(EPOLL_CTL_MOD, fd, events, token, error);
    }
    void remove(int fd) { epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr); }

    // Set (or move) the token's timer to fire at monotonic `due_ns`.
    void arm(uint64_t token, int64_t due_ns) {
        due_[token] = due_ns;
        heap_.push_back({due_ns, token});
        std::push_heap(heap_.begin(), heap_.end(), later);
        // Moved and cancelled timers leave stale entries behind; rebuild the
        // heap before they outnumber the live ones.
        if (heap_.size() > 2 * due_.size() + 1024) compact();
    }
    void disarm(uint64_t token) { due_.erase(token); }
    bool armed(uint64_t token) const { return due_.count(token) != 0; }

    // One turn of the loop: sleep until a file event, the nearest timer, or
    // `max_wait_ns` (< 0: no limit), with SIGINT/SIGTERM deliverable while
    // asleep. Then on_file(token, events) for each ready registration and
    // on_timer(token) for each timer that has fallen due, in deadline order.
    // EPOLLERR and EPOLLHUP come as they are: callers treat them as readable
    // so the read path sees the error. A handler may remove any registration
    // or timer, its own included. A signal is not an error (the caller looks
    // at the flag); false with `error` set when epoll itself fails.
    template <typename OnFile, typename OnTimer>
    [[nodiscard]] bool run_once(OnFile&& on_file, OnTimer&& on_timer, std::string& error, int64_t max_wait_ns = -1) {
        int64_t timeout_ns = max_wait_ns;
        if (const int64_t next = next_due(); next >= 0) {
            const int64_t until = std::max<int64_t>(0, next - monotonic_ns());
            timeout_ns = timeout_ns < 0 ? until : std::min(timeout_ns, until);
        }
        epoll_event events[256];
        const int n = wait(events, 256, timeout_ns);
        if (n < 0 && errno != EINTR) {
            error = sys_error("epoll_pwait2");
            return false;
        }
        for (int i = 0; i < n; ++i) on_file(events[i].data.u64, events[i].events);
        const int64_t now = monotonic_ns();
        // Bounded: a timer re-armed at once by its own handler waits for the next turn.
        for (size_t budget = heap_.size(); budget > 0 && !heap_.empty() && heap_.front().due_ns <= now; --budget) {
            const Timer t = heap_.front();
            std::pop_heap(heap_.begin(), heap_.end(), later);
            heap_.pop_back();
            auto it = due_.find(t.token);
            if (it == due_.end() || it->second != t.due_ns) continue;  // moved or disarmed
            due_.erase(it);
            on_timer(t.token);
        }
        return true;
    }

private:
    struct Timer {
        int64_t due_ns;
        uint64_t token;
    };
    static bool later(const Timer& a, const Timer& b) { return a.due_ns > b.due_ns; }

    // The earliest live deadline, -1 for none; drops stale entries on the way.
    int64_t next_due() {
        while (!heap_.empty()) {
            const Timer& t = heap_.front();
            auto it = due_.find(t.token);
            if (it != due_.end() && it->second == t.due_ns) return t.due_ns;
            std::pop_heap(heap_.begin(), heap_.end(), later);
            heap_.pop_back();
        }
        return -1;
    }

    void compact() {
        heap_.clear();
        for (const auto& [token, due] : due_) heap_.push_back({due, token});
        std::make_heap(heap_.begin(), heap_.end(), later);
    }

    int wait(epoll_event* events, int max, int64_t timeout_ns) {
        timespec ts{};
        timespec* tsp = nullptr;
        if (timeout_ns >= 0) {
            ts.tv_sec = timeout_ns / 1'000'000'000;
            ts.tv_nsec = timeout_ns % 1'000'000'000;
            tsp = &ts;
        }
        int n = epoll_pwait2(epfd_.get(), events, max, tsp, &wait_mask_);
        if (n < 0 && errno == ENOSYS) {  // kernels before 5.11: round up to ms
            const int ms = timeout_ns < 0 ? -1 : static_cast<int>((timeout_ns + 999'999) / 1'000'000);
            n = epoll_pwait(epfd_.get(), events, max, ms, &wait_mask_);
        }
        return n;
    }

    bool control(int op, int fd, uint32_t events, uint64_t token, std::string& error) {
        epoll_event ev{};
        ev.events = events;
        ev.data.u64 = token;
        if (epoll_ctl(epfd_.get(), op, fd, &ev) == 0) return true;
        error = sys_error("epoll_ctl");
        return false;
    }

    Fd epfd_;
    sigset_t wait_mask_{};
    std::vector<Timer> heap_;                     // min-heap by deadline; may hold stale entries
    std::unordered_map<uint64_t, int64_t> due_;   // token -> its one live deadline
};

// ---------------------------------------------------------------------------
// TCP helpers. Each returns an invalid Fd and sets `error` to "call: reason".

inline std::string format_address(const sockaddr_storage& ss) {
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (ss.ss_family == AF_INET) {
        auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        port = ntohs(sin->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        port = ntohs(sin6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))  // an IPv4 peer of a socket bound to "::"
            return std::string(host).substr(7) + ":" + std::to_string(port);
        return "[" + std::string(host) + "]:" + std::to_string(port);
    }
    return std::string(host) + ":" + std::to_string(port);
}

// "host:port" of this end of a socket ("[v6]:port" for IPv6).
inline std::string local_address(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
    return format_address(ss);
}

// "host:port" -> host (brackets of IPv6 removed) and port; false if malformed.
inline bool split_address(const std::string& address, std::string& host, uint16_t& port) {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0) return false;
    host = address.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const std::string digits = address.substr(colon + 1);
    if (digits.empty() || digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string::npos) return false;
    const unsigned long p = std::stoul(digits);
    if (p == 0 || p > 65535) return false;
    port = static_cast<uint16_t>(p);
    return true;
}

inline bool resolve(const std::string& host, uint16_t port, bool passive, sockaddr_storage& out,
                    socklen_t& len, std::string& error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0) {
        error = "getaddrinfo " + host + ": " + gai_strerror(rc);
        return false;
    }
    std::memcpy(&out, res->ai_addr, res->ai_addrlen);
    len = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

inline Fd listen_tcp(const std::string& host, uint16_t port, std::string& error) {
    sockaddr_storage addr{};
    socklen_t len = 0;
    if (!resolve(host, port, true, addr, len, error)) return Fd();
    Fd fd(socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        error = sys_error("socket");
        return Fd();
    }
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
        error = sys_error("bind") + " (" + host + ":" + std::to_string(port) + ")";
        return Fd();
    }
    if (::listen(fd.get(), SOMAXCONN) != 0) {
        error = sys_error("listen");
        return Fd();
    }
    return fd;
}

inline uint16_t local_port(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return 0;
}

inline void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Accept one pending connection (non-blocking, TCP_NODELAY). An invalid Fd
// with an empty error means there was none left (EAGAIN). `out_of_fds` says
// the process (or system) has no descriptor left: the connection waits in
// the kernel's queue, and the listener stays readable until one is freed.
inline Fd accept_tcp(int listen_fd, std::string& peer, std::string& error, bool* out_of_fds = nullptr) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    Fd fd(accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
        const int e = errno;
        if (out_of_fds) *out_of_fds = e == EMFILE || e == ENFILE;
        if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR && e != ECONNABORTED) error = sys_error("accept4");
        return Fd();
    }
    set_nodelay(fd.get());
    peer = format_address(ss);
    return fd;
}

// Start a non-blocking connect. The caller waits for EPOLLOUT and then asks
// connect_error() whether it worked.
inline Fd connect_tcp(const std::string& host, uint16_t port, std::string& error) {
    sockaddr_storage addr{};
    socklen_t len = 0;
    if (!resolve(host, port, false, addr, len, error)) return Fd();
    Fd fd(socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        error = sys_error("socket");
        return Fd();
    }
    set_nodelay(fd.get());
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 && errno != EINPROGRESS) {
        error = sys_error("connect");
        return Fd();
    }
    return fd;
}

// 0 when the connect finished, else its errno.
inline int connect_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}

// Best effort, never blocking: a last word to a connection about to be closed.
inline void send_now(int fd, std::string_view bytes) {
    [[maybe_unused]] ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// ---------------------------------------------------------------------------
// A connection that speaks lines: bounded input framing, an output buffer
// for partial writes with EPOLLOUT armed only while it holds data.
constexpr size_t MAX_OUTPUT_BYTES = 64 * 1024;  // a peer that reads nothing is dropped

class LineConn {
public:
    enum class Status { Open, Closed, Failed };

    LineConn(EventLoop& loop, Fd fd, uint64_t token) : loop_(loop), fd_(std::move(fd)), token_(token) {}
    ~LineConn() {
        if (fd_.valid() && watched_) loop_.remove(fd_.get());
    }
    // Stop watching the descriptor now (the object is freed later, outside
    // its own read): its events must not be taken for a later connection's.
    void stop_watching() {
        if (fd_.valid() && watched_) loop_.remove(fd_.get());
        watched_ = false;
    }
    LineConn(const LineConn&) = delete;
    LineConn& operator=(const LineConn&) = delete;

    [[nodiscard]] bool start(std::string& error) { return loop_.add(fd_.get(), EPOLLIN, token_, error); }

    // Watch for output room only, never again for input: unread bytes would
    // keep a level-triggered descriptor readable. EPOLLERR and EPOLLHUP are
    // still reported (epoll always does).
    [[nodiscard]] bool stop_reading() {
        reading_ = false;
        if (loop_.modify(fd_.get(), interest(), token_, error_)) return true;
        reading_ = true;  // still watched: the caller must cope with its input
        return false;
    }
    bool reading() const { return reading_; }

    // Ask the kernel to stamp every arriving segment with CLOCK_REALTIME as
    // it reaches the socket (software receive timestamps). Then a reading
    // marks when the bytes arrived, not when this process got round to
    // reading them. False when the kernel refuses: user-space reads then.
    bool enable_kernel_timestamps() {
        int flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
        kernel_stamps_ = setsockopt(fd_.get(), SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) == 0;
        return kernel_stamps_;
    }

    // Read what is there and hand each complete line to on_line(line,
    // recv_real_ns). recv_real_ns is the kernel's arrival stamp of the data
    // read (see enable_kernel_timestamps), or else CLOCK_REALTIME read right
    // after the read that completed the line, before any parsing. on_line
    // returns false to stop reading (it is about to close us). At most a
    // bounded number of reads per call, so a flooding peer cannot starve the rest.
    template <typename OnLine>
    Status read_lines(OnLine&& on_line) {
        char buf[16 * 1024];
        alignas(cmsghdr) char control[256];
        std::string line;
        for (int reads = 0; reads < 16; ++reads) {
            iovec iov{buf, sizeof buf};
            msghdr msg{};
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control;
            msg.msg_controllen = kernel_stamps_ ? sizeof control : 0;
            const ssize_t n = ::recvmsg(fd_.get(), &msg, 0);
            const int read_errno = errno;
            int64_t recv_real_ns = realtime_ns();  // first thing after the read
            if (n < 0 && read_errno == EINTR) continue;
            if (n < 0 && (read_errno == EAGAIN || read_errno == EWOULDBLOCK)) return Status::Open;
            if (n < 0) {
                errno = read_errno;
                error_ = sys_error("recvmsg");
                return Status::Failed;
            }
            if (n == 0) return Status::Closed;
            if (kernel_stamps_) {
                if (const int64_t stamp = kernel_stamp(msg)) {
                    recv_real_ns = stamp;
                    ++kernel_stamped_reads_;
                }
            }
            in_.append(std::string_view(buf, static_cast<size_t>(n)));
            while (true) {
                auto status = in_.next_line(line);
                if (status == LineBuffer::Status::NeedMore) break;
                if (status == LineBuffer::Status::TooLong) {
                    error_ = "line longer than " + std::to_string(MAX_LINE_BYTES) + " bytes";
                    return Status::Failed;
                }
                if (!on_line(line, recv_real_ns)) return Status::Open;
            }
            // A short read emptied the socket: skip the read that would only
            // say EAGAIN. Level-triggered epoll reports anything that comes later.
            if (static_cast<size_t>(n) < sizeof buf) return Status::Open;
        }
        return Status::Open;
    }

    // Queue bytes and write as much as the socket takes now. False when the
    // connection failed or the peer let too much output pile up.
    [[nodiscard]] bool send(std::string_view bytes) {
        if (bytes.size() + out_.size() > MAX_OUTPUT_BYTES) {
            error_ = "peer is not reading (output buffer full)";
            return false;
        }
        out_.append(bytes);
        return flush();
    }

    // Write out what is queued; call on EPOLLOUT too.
    [[nodiscard]] bool flush() {
        while (!out_.empty()) {
            ssize_t n = ::send(fd_.get(), out_.data(), out_.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (n < 0) {
                error_ = sys_error("send");
                return false;
            }
            out_.erase(0, static_cast<size_t>(n));
        }
        const bool want = !out_.empty();
        if (want != armed_) {
            armed_ = want;
            if (!loop_.modify(fd_.get(), interest(), token_, error_)) return false;
        }
        return true;
    }

    // No more output from us (after BYE); the peer sees end-of-file.
    void shutdown_write() { ::shutdown(fd_.get(), SHUT_WR); }

    bool has_output() const { return !out_.empty(); }
    uint64_t kernel_stamped_reads() const { return kernel_stamped_reads_; }
    const std::string& error() const { return error_; }

private:
    // What epoll watches: input until stop_reading, room for output while some waits.
    uint32_t interest() const {
        uint32_t events = 0;
        if (reading_) events |= EPOLLIN;
        if (armed_) events |= EPOLLOUT;
        return events;
    }

    // The software receive stamp (CLOCK_REALTIME) of the data just read, 0 if none.
    static int64_t kernel_stamp(msghdr& msg) {
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPING) continue;
            scm_timestamping ts;
            std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
            if (ts.ts[0].tv_sec == 0 && ts.ts[0].tv_nsec == 0) return 0;
            return static_cast<int64_t>(ts.ts[0].tv_sec) * 1'000'000'000 + ts.ts[0].tv_nsec;
        }
        return 0;
    }

    EventLoop& loop_;
    Fd fd_;
    uint64_t token_;
    bool kernel_stamps_ = false;
    uint64_t kernel_stamped_reads_ = 0;
    LineBuffer in_;
    std::string out_;
    bool armed_ = false;
    bool reading_ = true;   // EPOLLIN watched (until stop_reading)
    bool watched_ = true;
    std::string error_;
};

}  // namespace berkeley
