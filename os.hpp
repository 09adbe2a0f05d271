// os.hpp - the few operating-system basics every other layer needs: the host
// clocks (CLOCK_REALTIME is the truth, CLOCK_MONOTONIC schedules), a
// move-only file-descriptor owner, random bytes for nonces, and "call:
// reason" error text. Nothing of sockets or of the algorithm; net.hpp and
// eventlog.hpp build on it.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <span>
#include <string>
#include <sys/random.h>
#include <unistd.h>

namespace berkeley {

// CLOCK_REALTIME is the truth all simulated clocks are built on (and that
// verification compares against); CLOCK_MONOTONIC schedules rounds and
// timeouts, so that no correction can ever move a deadline.
inline int64_t host_ns(clockid_t id) {
    timespec ts{};
    clock_gettime(id, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
inline int64_t realtime_ns() { return host_ns(CLOCK_REALTIME); }
inline int64_t monotonic_ns() { return host_ns(CLOCK_MONOTONIC); }
inline int64_t cpu_time_ns() { return host_ns(CLOCK_PROCESS_CPUTIME_ID); }  // user + system

// Fill `out` from the kernel's random source (getrandom(2), which blocks only
// until the pool is first seeded at boot). False when the call fails.
[[nodiscard]] inline bool random_bytes(std::span<uint8_t> out) {
    size_t filled = 0;
    while (filled < out.size()) {
        const ssize_t n = getrandom(out.data() + filled, out.size() - filled, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        filled += static_cast<size_t>(n);
    }
    return true;
}

inline std::string sys_error(const char* call) { return std::string(call) + ": " + std::strerror(errno); }

// A move-only owner of one file descriptor. The only close() in the program.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = other.release();
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }

    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }
    void reset() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    // Give up ownership without closing: the caller now owns the descriptor.
    [[nodiscard]] int release() {
        const int fd = fd_;
        fd_ = -1;
        return fd;
    }

private:
    int fd_ = -1;
};

}  // namespace berkeley
