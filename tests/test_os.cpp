// test_os.cpp - os.hpp: the Fd owner and the host clocks.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>

#include "os.hpp"

using namespace berkeley;

namespace {
bool fd_is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }
struct Pair {
    Fd a, b;
    Pair() {
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        a = Fd(sv[0]);
        b = Fd(sv[1]);
    }
};
}  // namespace

TEST_CASE("Fd owns exactly one descriptor and closes it once") {
    Pair p;
    const int raw = p.a.get();
    Fd moved(std::move(p.a));
    CHECK(!p.a.valid());
    CHECK(moved.get() == raw);
    CHECK(fd_is_open(raw));
    Fd assigned;
    assigned = std::move(moved);
    CHECK(!moved.valid());
    CHECK(fd_is_open(raw));
    assigned.reset();
    CHECK(!assigned.valid());
    CHECK(!fd_is_open(raw));
}

TEST_CASE("Fd::release hands the descriptor over without closing it") {
    Pair p;
    const int raw = p.a.get();
    const int taken = p.a.release();
    CHECK(taken == raw);
    CHECK(!p.a.valid());
    p.a.reset();  // owns nothing: closes nothing
    CHECK(fd_is_open(raw));
    Fd again(taken);
    again.reset();
    CHECK(!fd_is_open(raw));
}

TEST_CASE("host clocks: monotonic never goes back, realtime is near the epoch's now") {
    int64_t last = monotonic_ns();
    for (int i = 0; i < 1000; ++i) {
        const int64_t t = monotonic_ns();
        CHECK(t >= last);
        last = t;
    }
    CHECK(realtime_ns() > 1'700'000'000LL * 1'000'000'000);  // after 2023
    CHECK(cpu_time_ns() > 0);
    CHECK(sys_error("open").rfind("open: ", 0) == 0);
}
