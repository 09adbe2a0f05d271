// Tests for net.hpp, in its order: the epoll loop and its timers, the TCP
// helpers on loopback (port 0, never a fixed one), the buffered line
// connection over real sockets, kernel receive timestamps.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <fstream>
#include <sys/socket.h>
#include <vector>

#include "clock.hpp"
#include "net.hpp"

using namespace berkeley;

namespace {

struct Pair {
    Fd a, b;
    Pair() {
        int sv[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
        a = Fd(sv[0]);
        b = Fd(sv[1]);
    }
};

void write_all(int fd, std::string_view s) {
    REQUIRE(::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()));
}

// What one turn of the loop delivered: file events, then fired timers (timer = true).
struct Ready {
    uint64_t token;
    uint32_t events;
    bool timer;
};
std::vector<Ready> turn(EventLoop& loop, int64_t max_wait_ns) {
    std::vector<Ready> got;
    std::string error;
    REQUIRE(loop.run_once([&](uint64_t token, uint32_t events) { got.push_back({token, events, false}); },
                          [&](uint64_t token) { got.push_back({token, 0, true}); }, error, max_wait_ns));
    return got;
}

}  // namespace

TEST_CASE("EventLoop reports the caller's token, times out, and forgets removed fds") {
    EventLoop loop;
    std::string error;
    REQUIRE(loop.open(error));
    Pair p;
    REQUIRE(loop.add(p.a.get(), EPOLLIN, 42, error));

    const int64_t before = monotonic_ns();
    CHECK(turn(loop, 20 * NS_PER_MS).empty());
    CHECK(monotonic_ns() - before >= 15 * NS_PER_MS);

    write_all(p.b.get(), "x");
    auto ready = turn(loop, 5 * NS_PER_S);
    REQUIRE(ready.size() == 1);
    CHECK(ready[0].token == 42);
    CHECK((ready[0].events & EPOLLIN));

    loop.remove(p.a.get());
    CHECK(turn(loop, 10 * NS_PER_MS).empty());
    CHECK(!loop.modify(p.a.get(), EPOLLIN, 42, error));
    CHECK(error.find("epoll_ctl") == 0);
}

TEST_CASE("EventLoop timers fire once, in deadline order, and can be moved or disarmed") {
    EventLoop loop;
    std::string error;
    REQUIRE(loop.open(error));
    const int64_t now = monotonic_ns();
    loop.arm(3, now + 30 * NS_PER_MS);
    loop.arm(1, now + 10 * NS_PER_MS);
    loop.arm(2, now + 20 * NS_PER_MS);
    loop.arm(4, now + 25 * NS_PER_MS);
    loop.disarm(4);                      // cancelled: never fires
    loop.arm(5, now + 5 * NS_PER_MS);
    loop.arm(5, now + 40 * NS_PER_MS);   // moved: fires once, at the later time
    CHECK(loop.armed(1));
    CHECK_FALSE(loop.armed(4));
    std::vector<uint64_t> fired;
    for (int turns = 0; turns < 1000 && fired.size() < 4; ++turns)
        for (const Ready& r : turn(loop, 5 * NS_PER_S)) {
            CHECK(r.timer);
            CHECK(monotonic_ns() >= now + 5 * NS_PER_MS);
            fired.push_back(r.token);
        }
    CHECK(fired == std::vector<uint64_t>{1, 2, 3, 5});
    CHECK(monotonic_ns() - now >= 40 * NS_PER_MS);
    CHECK_FALSE(loop.armed(5));
    // Nothing armed, nothing fires: the turn ends at max_wait.
    CHECK(turn(loop, 10 * NS_PER_MS).empty());
}

TEST_CASE("EventLoop: the nearest timer bounds the sleep, and a file event does not wait for it") {
    EventLoop loop;
    std::string error;
    REQUIRE(loop.open(error));
    Pair p;
    REQUIRE(loop.add(p.a.get(), EPOLLIN, 9, error));
    loop.arm(9, monotonic_ns() + 60 * NS_PER_S);
    write_all(p.b.get(), "x");
    const int64_t before = monotonic_ns();
    auto got = turn(loop, -1);
    CHECK(monotonic_ns() - before < 30 * NS_PER_S);
    REQUIRE(got.size() == 1);
    CHECK_FALSE(got[0].timer);
    CHECK(loop.armed(9));  // the timer is still there for later

    // With no file event, the sleep ends at the timer, not at max_wait.
    char buf[8];
    REQUIRE(::recv(p.a.get(), buf, sizeof buf, 0) == 1);
    loop.arm(9, monotonic_ns() + 20 * NS_PER_MS);
    got = turn(loop, 60 * NS_PER_S);
    REQUIRE(got.size() == 1);
    CHECK(got[0].timer);
}

TEST_CASE("EventLoop: many moved timers stay bounded, and a handler may re-arm its own timer") {
    EventLoop loop;
    std::string error;
    REQUIRE(loop.open(error));
    const int64_t now = monotonic_ns();
    for (int i = 0; i < 100'000; ++i) loop.arm(static_cast<uint64_t>(i % 10), now + 1'000 * NS_PER_S + i);
    for (uint64_t t = 0; t < 10; ++t) CHECK(loop.armed(t));
    for (uint64_t t = 1; t < 10; ++t) loop.disarm(t);
    loop.arm(0, now);  // due already
    int fired = 0;
    std::string err;
    REQUIRE(loop.run_once([](uint64_t, uint32_t) {},
                          [&](uint64_t token) {
                              ++fired;
                              loop.arm(token, monotonic_ns());  // re-armed at once: next turn, not this one
                          },
                          err, 0));
    CHECK(fired == 1);
    CHECK(loop.armed(0));
}

TEST_CASE("EventLoop::run_once reports a failing epoll instead of pretending nothing happened") {
    EventLoop never_opened;
    std::string error;
    const bool ok = never_opened.run_once([](uint64_t, uint32_t) {}, [](uint64_t) {}, error, 0);
    CHECK_FALSE(ok);
    CHECK(error.find("epoll_pwait2") == 0);
}

TEST_CASE("LineConn frames lines fed in pieces and stamps them right after the read") {
    EventLoop loop;
    std::string error;
    REQUIRE(loop.open(error));
    Pair p;
    LineConn conn(loop, std::move(p.a), 1);
    REQUIRE(conn.start(error));

    std::vector<std::string> lines;
    std::vector<int64_t> stamps;
    auto collect = [&](const std::string& l, int64_t t) {
        lines.push_back(l);
        stamps.push_back(t);
        return true;
    };
    write_all(p.b.get(), "CLOCK 1 1 ");
    CHECK(conn.read_lines(collect) == LineConn::Status::Open);
    CHECK(lines.empty());
    const int64_t before = realtime_ns();
    write_all(p.b.get(), "123\r\nACK 1\nBY");
    CHECK(conn.read_lines(collect) == LineConn::Status::Open);
    const int64_t after = realtime_ns();
    REQUIRE(lines.size() == 2);
    CHECK(lines[0] == "CLOCK 1 1 123");
    CHECK(lines[1] == "ACK 1");
    CHECK(stamps[0] >= before);
    CHECK(stamps[0] <= after);
    write_all(p.b.get(), "E\n");
    CHECK(conn.read_lines(collect) == LineConn::Status::Open);
    CHECK(lines.back() == "BYE");

    SUBCASE("returning false stops at that line") {
        write_all(p.b.get(), "one\ntwo\n");
        int seen = 0;
        CHECK(conn.read_lines([&](const std::string&, int64_t) { return ++seen < 1; }) == LineConn::Status::Open);
        CHECK(seen == 1);
    }
    SUBCASE("end of stream is Closed") {
        p.b.reset();
        CHECK(conn.read_lines(collect) == LineConn::Status::Closed);
    }
    SUBCASE("an over-long line is Failed with a reason, even without a newline") {
        write_all(p.b.get(), std::string(MAX_LINE_BYTES + 1, 'a'));
        CHECK(conn.read_lines(collect) == LineConn::Status::Failed);
        CHECK(conn.error().find("longer than") != std::string::npos);
    }
}

TEST_CASE("LineConn keeps what the socket would not take and sends it on EPOLLOUT") {
    EventLoop loop;
    std::string error;
    REQUIRE(loop.open(error));
    Pair p;
    int small = 4096;
    setsockopt(p.a.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(p.b.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    LineConn conn(loop, std::move(p.a), 7);
    REQUIRE(conn.start(error));

    std::string big;
    for (int i = 0; big.size() < MAX_OUTPUT_BYTES / 2; ++i) big += "TIME? " + std::to_string(i + 1) + " 1\n";
    REQUIRE(conn.send(big));
    REQUIRE(conn.has_output());  // the peer has not read yet

    SUBCASE("the peer drains, EPOLLOUT fires, everything arrives in order") {
        std::string received;
        char buf[8192];
        for (int spins = 0; spins < 10000 && received.size() < big.size(); ++spins) {
            ssize_t n = ::recv(p.b.get(), buf, sizeof buf, 0);
            if (n > 0) received.append(buf, static_cast<size_t>(n));
            for (const Ready& r : turn(loop, 1 * NS_PER_MS))
                if (r.token == 7 && (r.events & EPOLLOUT)) REQUIRE(conn.flush());
        }
        CHECK(received == big);
        CHECK(!conn.has_output());
        // EPOLLOUT is disarmed once the buffer is empty: no busy wake-ups.
        CHECK(turn(loop, 10 * NS_PER_MS).empty());
    }
    SUBCASE("a peer that never reads cannot make us buffer without bound") {
        bool refused = false;
        for (int i = 0; i < 1000 && !refused; ++i) refused = !conn.send(big);
        CHECK(refused);
        CHECK(conn.error().find("not reading") != std::string::npos);
    }
}

TEST_CASE("LineConn::stop_reading: unread input wakes nobody, output still goes out, a hang-up is still told") {
    EventLoop loop;
    std::string error;
    REQUIRE(loop.open(error));
    Pair p;
    LineConn conn(loop, std::move(p.a), 5);
    REQUIRE(conn.start(error));
    write_all(p.b.get(), "PROOF wrong\n");
    REQUIRE(turn(loop, 5 * NS_PER_S).size() == 1);  // readable
    REQUIRE(conn.stop_reading());
    CHECK(!conn.reading());
    write_all(p.b.get(), "garbage\ngarbage\n");
    CHECK(turn(loop, 20 * NS_PER_MS).empty());  // level-triggered, yet quiet: input is not watched
    REQUIRE(conn.send("ERROR refused\n"));
    CHECK(!conn.has_output());
    char buf[64];
    CHECK(::recv(p.b.get(), buf, sizeof buf, 0) == 14);
    CHECK(turn(loop, 20 * NS_PER_MS).empty());  // sending did not watch input again
    p.b.reset();
    const auto ready = turn(loop, 5 * NS_PER_S);
    REQUIRE(ready.size() == 1);
    CHECK((ready[0].events & EPOLLHUP) != 0);
    CHECK((ready[0].events & EPOLLIN) == 0);
}

TEST_CASE("TCP on loopback: port 0 listens, connect and accept meet, a taken port is a clear error") {
    std::string error;
    Fd listener = listen_tcp("127.0.0.1", 0, error);
    REQUIRE(listener.valid());
    const uint16_t port = local_port(listener.get());
    CHECK(port != 0);

    Fd client = connect_tcp("127.0.0.1", port, error);
    REQUIRE(client.valid());
    EventLoop loop;
    REQUIRE(loop.open(error));
    REQUIRE(loop.add(client.get(), EPOLLOUT, 3, error));
    REQUIRE(!turn(loop, 5 * NS_PER_S).empty());
    CHECK(connect_error(client.get()) == 0);

    std::string peer;
    Fd server;
    for (int i = 0; i < 1000 && !server.valid(); ++i) server = accept_tcp(listener.get(), peer, error);
    REQUIRE(server.valid());
    CHECK(error.empty());
    CHECK(peer.rfind("127.0.0.1:", 0) == 0);

    // Nothing pending: an invalid Fd and no error.
    std::string none_error;
    CHECK(!accept_tcp(listener.get(), peer, none_error).valid());
    CHECK(none_error.empty());

    std::string taken_error;
    CHECK(!listen_tcp("127.0.0.1", port, taken_error).valid());
    CHECK(taken_error.find("Address already in use") != std::string::npos);

    std::string bad_host;
    CHECK(!listen_tcp("no.such.host.invalid", 0, bad_host).valid());
    CHECK(bad_host.find("getaddrinfo") == 0);
}

TEST_CASE("kernel receive timestamps mark when the bytes arrived, not when they were read") {
    std::string error;
    Fd listener = listen_tcp("127.0.0.1", 0, error);
    REQUIRE(listener.valid());
    Fd client = connect_tcp("127.0.0.1", local_port(listener.get()), error);
    REQUIRE(client.valid());
    std::string peer;
    Fd server;
    for (int i = 0; i < 100000 && !server.valid(); ++i) server = accept_tcp(listener.get(), peer, error);
    REQUIRE(server.valid());
    CHECK(connect_error(client.get()) == 0);

    EventLoop loop;
    REQUIRE(loop.open(error));
    LineConn conn(loop, std::move(server), 1);
    REQUIRE(conn.start(error));
    REQUIRE(conn.enable_kernel_timestamps());
    // The kernel may switch stamping on a moment after the first socket asks
    // (it defers enabling it globally): until then reads fall back to the
    // user-space clock. Wait, boundedly, for the first stamped read.
    for (int i = 0; i < 2000 && conn.kernel_stamped_reads() == 0; ++i) {
        write_all(client.get(), "PING\n");
        timespec tick{0, 1'000'000};
        nanosleep(&tick, nullptr);
        REQUIRE(conn.read_lines([](const std::string&, int64_t) { return true; }) == LineConn::Status::Open);
    }
    REQUIRE(conn.kernel_stamped_reads() > 0);
    const uint64_t stamped_before = conn.kernel_stamped_reads();

    const int64_t before_send = realtime_ns();
    write_all(client.get(), "TIME? 1 1\n");
    const int64_t after_send = realtime_ns();
    // Read well after arrival: the stamp must still say when the data came.
    timespec pause{0, 20'000'000};
    nanosleep(&pause, nullptr);
    int64_t stamp = 0;
    const int64_t before_read = realtime_ns();
    REQUIRE(conn.read_lines([&](const std::string& line, int64_t t) {
        CHECK(line == "TIME? 1 1");
        stamp = t;
        return true;
    }) == LineConn::Status::Open);
    CHECK(conn.kernel_stamped_reads() == stamped_before + 1);
    CHECK(stamp >= before_send);
    CHECK(stamp <= after_send);
    CHECK(before_read - stamp >= 15'000'000);
}

TEST_CASE("format_address and split_address: IPv6 in brackets, an IPv4-mapped peer as IPv4") {
    sockaddr_storage ss{};
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(8080);
    REQUIRE(inet_pton(AF_INET6, "::1", &v6->sin6_addr) == 1);
    CHECK(format_address(ss) == "[::1]:8080");
    REQUIRE(inet_pton(AF_INET6, "::ffff:127.0.0.1", &v6->sin6_addr) == 1);
    CHECK(format_address(ss) == "127.0.0.1:8080");
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    ss = {};
    v4->sin_family = AF_INET;
    v4->sin_port = htons(41234);
    REQUIRE(inet_pton(AF_INET, "10.0.0.7", &v4->sin_addr) == 1);
    CHECK(format_address(ss) == "10.0.0.7:41234");

    std::string host;
    uint16_t port = 0;
    CHECK(split_address("[::1]:8080", host, port));
    CHECK((host == "::1" && port == 8080));
    CHECK(split_address("10.0.0.7:41234", host, port));
    CHECK((host == "10.0.0.7" && port == 41234));
    for (const char* bad : {"", ":80", "host", "host:", "host:0", "host:65536", "host:8o", "host:123456"}) {
        CAPTURE(bad);
        CHECK_FALSE(split_address(bad, host, port));
    }
}
