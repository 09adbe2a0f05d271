// Tests for door.hpp, through the round that owns it (MasterRole) and a
// fake MasterIo that records what the role asks of its shell: a connection
// whose proof failed is read no more and still refused after the delay; a
// churn of slaves that never answer a round is summed up, and past ten
// joins a slave is told when it answers (in sim/world.hpp's virtual world).
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "sim/world.hpp"

using namespace berkeley;

namespace {

class RecordingIo final : public MasterIo {
public:
    std::map<uint64_t, std::vector<std::string>> sent;  // by peer, each line with its newline
    std::set<uint64_t> open, not_read;
    std::map<uint64_t, int64_t> due;
    bool send(uint64_t peer, std::string_view line, std::string& error) override {
        if (!open.count(peer)) return error = "closed", false;
        sent[peer].emplace_back(line);
        return true;
    }
    std::optional<int64_t> send_stamped(uint64_t peer, std::string_view line, std::string& error) override {
        if (!send(peer, line, error)) return std::nullopt;
        return 0;
    }
    bool has_output(uint64_t) override { return false; }
    void shut_write(uint64_t) override {}
    void close(uint64_t peer) override { open.erase(peer); }
    void stop_reading(uint64_t peer) override { not_read.insert(peer); }
    void arm(uint64_t key, int64_t due_mono_ns) override { due[key] = due_mono_ns; }
    void disarm(uint64_t key) override { due.erase(key); }
    bool armed(uint64_t key) override { return due.count(key) != 0; }
    bool nonce(Nonce& out) override {
        out.fill(9);
        return true;
    }
    std::optional<uint64_t> dial(const std::string&, std::string& error) override { return error = "not here", std::nullopt; }
    int64_t cpu_ns() override { return 0; }
};

// A master with a secret, one connection accepted, its challenge answered.
struct Challenged {
    const HmacSha256 key{"the group's passphrase"};  // made directly: the stretch is slow on purpose
    MasterSettings settings;
    RecordingIo io;
    EventLog log;
    std::string console;
    SimClock clock = make_clock(1'700'000'000 * NS_PER_S, 0, 0);
    std::optional<MasterRole> master;
    Now now{NS_PER_S, 1'700'000'000 * NS_PER_S};
    const uint64_t peer = FIRST_PEER_KEY;
    Nonce slave_nonce{};

    Challenged() {
        settings.rounds = 0;
        settings.door.key = key;
        master.emplace(settings, io, log, Console{false, &console}, clock);
        master->start(8080, "127.0.0.1", now);
        io.open.insert(peer);
        master->on_accept(peer, "10.0.0.9:5000", now);
        slave_nonce.fill(1);
        REQUIRE(line(format_challenge(slave_nonce)));
        REQUIRE(io.sent[peer].size() == 1);  // the master's nonce and proof
    }
    // Hand the role one line (with or without its newline), as the shell does; its answer: read on?
    bool line(std::string text) {
        if (!text.empty() && text.back() == '\n') text.pop_back();
        const bool read_on = master->on_line(peer, text, now.real_ns, now);
        master->after_turn(now);
        return read_on;
    }
    Nonce master_nonce() const {
        Nonce n{};
        n.fill(9);
        return n;
    }
};

}  // namespace

TEST_CASE("a connection whose proof failed is read no more, and refused when the delay is over") {
    Challenged c;
    CHECK_FALSE(c.line(format_proof(Sha256Digest{})));  // a wrong proof: stop reading at once
    CHECK(c.io.not_read.count(c.peer) == 1);
    // Were a shell to read on regardless, nothing it hands in counts or is answered.
    for (int i = 0; i < 1000; ++i) CHECK_FALSE(c.line("garbage"));
    CHECK_FALSE(c.line("HELLO intruder"));
    CHECK(c.io.sent[c.peer].size() == 1);
    CHECK(c.io.open.count(c.peer) == 1);
    // The delay over: told why, then closed.
    REQUIRE(c.io.due.count(c.peer) == 1);
    CHECK(c.io.due[c.peer] == c.now.mono_ns + AUTH_FAILURE_DELAY_NS);
    c.now.mono_ns += AUTH_FAILURE_DELAY_NS;
    c.now.real_ns += AUTH_FAILURE_DELAY_NS;
    c.master->on_timer(c.peer, c.now);
    c.master->after_turn(c.now);
    CHECK(c.io.sent[c.peer].back() == "ERROR authentication failed (wrong secret)\n");
    CHECK(c.io.open.count(c.peer) == 0);
}

TEST_CASE("a connection whose proof is right is read on") {
    Challenged c;
    CHECK(c.line(format_proof(slave_proof(c.key, c.slave_nonce, c.master_nonce()))));
    CHECK(c.io.not_read.empty());
    Session session = session_for(Role::Slave, c.key, c.slave_nonce, c.master_nonce());
    CHECK(c.line(session.out.seal("HELLO friend\n")));
    CHECK(c.master->listens_to(c.peer));
    CHECK(c.console.find("(friend) got connected successfully") != std::string::npos);
}

TEST_CASE("slaves that join and leave without answering a round: ten told in pairs, the rest summed up") {
    MasterSettings settings;
    settings.slaves = 1000;  // it waits: no round, nobody answers
    RecordingIo io;
    EventLog log;
    std::vector<std::string> lines;
    log.capture_into(&lines);
    std::string console;
    SimClock clock = make_clock(1'700'000'000 * NS_PER_S, 0, 0);
    MasterRole master(settings, io, log, Console{false, &console}, clock);
    Now now{NS_PER_S, 1'700'000'000 * NS_PER_S};
    master.start(8080, "127.0.0.1", now);
    const auto count = [&](const std::string& text) {
        return std::count_if(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(text) != std::string::npos; });
    };
    for (uint64_t i = 0; i < 30; ++i) {
        const uint64_t peer = FIRST_PEER_KEY + i;
        io.open.insert(peer);
        master.on_accept(peer, "10.0.0.9:" + std::to_string(5000 + i), now);
        CHECK(master.on_line(peer, "HELLO churn-" + std::to_string(i), now.real_ns, now));
        CHECK(master.on_line(peer, "INSTEP", now.real_ns, now));
        CHECK_FALSE(master.on_line(peer, "garbage", now.real_ns, now));
        master.after_turn(now);
        CHECK(io.open.count(peer) == 0);
    }
    CHECK(count("\"event\":\"connected\"") == QUIET_BURST);
    CHECK(count("\"event\":\"in_step\"") == QUIET_BURST);
    CHECK(count("\"event\":\"disconnected\"") == QUIET_BURST);  // the leaves of those told, and no other
    CHECK(count("\"slave\":\"churn-9\"") == 3);
    CHECK(count("\"slave\":\"churn-10\"") == 0);
    CHECK(count("\"event\":\"quieted\"") == 0);
    REQUIRE(io.due.count(QUIET_TIMER) == 1);
    now.mono_ns = io.due[QUIET_TIMER];
    master.on_timer(QUIET_TIMER, now);
    REQUIRE(count("\"event\":\"quieted\"") == 1);
    CHECK(count("\"reason\":\"bad message\",\"count\":20,\"window_ns\":10000000000,\"joined\":true") == 1);
    CHECK(console.find("quieted 20 slave(s) in the last 10 s that joined and left before answering a round: bad message") !=
          std::string::npos);
    // A new window: ten joins told again.
    io.open.insert(FIRST_PEER_KEY + 30);
    master.on_accept(FIRST_PEER_KEY + 30, "10.0.0.9:6000", now);
    CHECK(master.on_line(FIRST_PEER_KEY + 30, "HELLO again", now.real_ns, now));
    CHECK(count("\"slave\":\"again\"") == 1);
}

TEST_CASE("past ten joins at once, a slave's joining is told when it answers its first round") {
    constexpr int SLAVES = 12;
    sim::World world(3);
    std::vector<std::string> lines;
    for (int i = 0; i <= SLAVES; ++i) world.add_node();
    world.node(0).log.capture_into(&lines);
    MasterSettings m;
    m.slaves = SLAVES;
    m.rounds = 1;
    world.start_master(0, m, make_clock(sim::REAL_BASE_NS, 0, 0));
    for (int i = 1; i <= SLAVES; ++i) {
        SlaveSettings s;
        s.id = "s" + std::to_string(i);
        s.master = world.address(0);
        world.start_slave(i, s, make_clock(sim::REAL_BASE_NS, i * NS_PER_MS, 0));
    }
    world.run_until(60 * NS_PER_S);
    std::vector<std::string> connected, estimates;
    for (const std::string& l : lines) {
        if (l.find("\"event\":\"connected\"") != std::string::npos) connected.push_back(l);
        if (l.find("\"event\":\"estimate\"") != std::string::npos) estimates.push_back(l);
    }
    REQUIRE(connected.size() == SLAVES);
    CHECK(estimates.size() == SLAVES);
    for (size_t i = 0; i < connected.size(); ++i)
        CHECK((connected[i].find("\"deferred\":true") != std::string::npos) == (i >= QUIET_BURST));
    for (const std::string& l : lines) CHECK(l.find("\"event\":\"quieted\"") == std::string::npos);
}
