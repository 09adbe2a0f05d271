// test_election.cpp - failover that can be neither split nor hijacked: each
// case is a way an adversarial review got two masters, no master or a
// hijacked group, replayed on the real roles (the simulator's world, or a
// role driven event by event) so that it stays fixed.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/role_fakes.hpp"
#include "tests/sim_group.hpp"

using namespace berkeley;
using namespace berkeley::sim;
using namespace berkeley::testing;

namespace {

// A master and `slaves` slaves 30 us apart, running until stopped.
MasterSettings endless(size_t slaves) {
    MasterSettings m;
    m.slaves = slaves;
    m.rounds = 0;
    return m;
}

void start_group(Group& g, size_t slaves, const MasterSettings& m) {
    g.world.start_master(0, m, reading(THREE_OCLOCK_NS));
    for (int i = 1; i <= static_cast<int>(slaves); ++i)
        g.world.start_slave(i, slave_named("s" + std::to_string(i), g.world), reading(THREE_OCLOCK_NS + i * NS_PER_S));
}

// Who is a master now, by node.
std::vector<int> masters(Group& g) {
    std::vector<int> out;
    for (int i = 0; i < static_cast<int>(g.world.size()); ++i)
        if (g[i].alive && g[i].master && g[i].master->phase() != Phase::Closing) out.push_back(i);
    return out;
}

// A slave driven by hand: it followed the master at 10.0.0.1:8080 (epoch 1)
// with successors 10.0.0.2 and us, 10.0.0.3; it is in step.
struct HandSlave {
    RecordingSlaveIo io;
    EventLog log;
    std::string console_text;
    SimClock clock = reading(THREE_OCLOCK_NS);
    SlaveSettings s;
    std::unique_ptr<SlaveRole> role;
    Now now{NS_PER_S, REAL_BASE_NS};
    std::vector<std::string> lines;

    HandSlave() {
        s.id = "s3";
        s.master = "10.0.0.1:8080";
        log.capture_into(&lines);
        role = std::make_unique<SlaveRole>(s, io, log, Console{false, &console_text}, clock);
        role->start(now);
        role->on_connected("10.0.0.3:8080", 8080, std::nullopt, now);
        hear(Plan{1, 1, 0, NS_PER_S, 4, NS_PER_S / 2, -1, 3, 0, {"10.0.0.2:8080", "10.0.0.3:8080"}});
        hear(Adjust{1, 1000, std::nullopt});
        REQUIRE(clock.corrected);
    }
    void hear(const Message& m) { role->on_line(without_newline(format_message(m)), now.real_ns, now); }
    void advance(int64_t ns) { now.mono_ns += ns, now.real_ns += ns; }
    // The master is gone; the old master refuses the connection: the role tries successor 1 next.
    void lose_master() {
        advance(10 * NS_PER_MS);
        role->on_closed("the master closed the connection", now);
        REQUIRE(io.connects.back() == "10.0.0.1:8080");
        role->on_connect_failed("connect: Connection refused", now);
        REQUIRE(io.connects.back() == "10.0.0.2:8080");
    }
};

}  // namespace

TEST_CASE("a new master names the successors after it from its first PLAN on") {
    Group g(5, 30 * NS_PER_US);
    start_group(g, 4, endless(4));
    REQUIRE(g.until_round_done(0, 5));
    g.world.kill(0);
    int successor = -1;
    g.world.run_until(g.world.t() + 30 * NS_PER_S, [&] {
        for (int i = 1; i <= 4; ++i)
            if (g[i].master && g[i].master->round() >= 8) successor = i;
        return successor > 0;
    });
    REQUIRE(successor > 0);
    // Had it died at once, the others would still have known whom to elect.
    for (int i = 1; i <= 4; ++i) {
        if (i == successor) continue;
        CAPTURE(i);
        for (const std::string& e : events(g[i], "plan"))
            if (field(e, "epoch") == 2) CHECK_FALSE(has(e, "\"successors\":\"\""));
    }
}

TEST_CASE("a master frozen early in a run is replaced after 3 intervals of silence, not --connect-timeout") {
    Group g(4, 30 * NS_PER_US);
    start_group(g, 3, endless(3));  // the slaves' --connect-timeout is 30 s
    REQUIRE(g.until_round_done(0, 2));
    const int64_t frozen = g.world.t();
    g.world.pause(0);
    g.world.run_until(frozen + 8 * NS_PER_S, [&] {
        for (int i = 1; i <= 3; ++i)
            if (g[i].master) return true;
        return false;
    });
    int took_over = 0;
    for (int i = 1; i <= 3; ++i) took_over += !events(g[i], "takeover").empty();
    CHECK(took_over == 1);
}

TEST_CASE("a joiner that says INSTEP and whose address sorts first is not made successor 1") {
    Group g(11, 30 * NS_PER_US);  // node 10 is 10.0.0.11:8080, which sorts before 10.0.0.2:8080
    start_group(g, 3, endless(4));
    g.world.run_until(g.world.t() + 50 * NS_PER_MS);  // the honest slaves have joined
    SimClock claims = reading(THREE_OCLOCK_NS + 3600 * NS_PER_S);
    claims.corrected = true;  // an hour off, and says INSTEP
    g.world.start_slave(10, slave_named("sorts-first", g.world), claims);
    REQUIRE(g.until_round_done(0, 3));
    const auto lists = events(g[0], "successors");
    REQUIRE(!lists.empty());
    const std::string& last = lists.back();
    const size_t at = last.find("\"successors\":\"");
    REQUIRE(at != std::string::npos);
    CHECK(last.substr(at + 14, g.world.address(10).size()) != g.world.address(10));
}

TEST_CASE("a slave in step is not stepped by a master it reached by election: it slews") {
    HandSlave h;
    h.lose_master();
    h.role->on_connected("10.0.0.3:8080", 8080, std::nullopt, h.now);
    h.hear(Plan{2, 1, 0, NS_PER_S, 4, NS_PER_S / 2, -1, 3, 0, {"10.0.0.3:8080"}});
    const int64_t before = read_clock(h.clock, h.now.real_ns);
    h.hear(Adjust{2, 3600 * NS_PER_S, std::nullopt});  // an hour forward: the old group's time is not that
    CHECK(read_clock(h.clock, h.now.real_ns) - before < NS_PER_S);
    CHECK(h.clock.slew_ns > 0);  // it gets there at the slew rate, as two groups that drifted apart merge
    CHECK(has(h.lines.back(), "\"event\":\"adjust\""));
    CHECK(has(h.lines[h.lines.size() - 2], "\"event\":\"step_refused\""));
}

TEST_CASE("a successor that refuses is alive: the next one does not take over while it answers") {
    HandSlave h;  // successor 2: successor 1 is 10.0.0.2:8080
    h.lose_master();
    const int64_t start = h.now.mono_ns;
    for (int step = 0; step < 2000 && h.now.mono_ns - start < 20 * NS_PER_S && h.io.take_overs == 0; ++step) {
        if (h.role->state() == SlaveRole::State::Connecting) {
            h.advance(NS_PER_MS);
            h.role->on_connected("10.0.0.3:8080", 8080, std::nullopt, h.now);
            h.hear(Error{"too many joining at once; try again shortly"});
        } else {
            REQUIRE(h.io.due);
            h.now.real_ns += *h.io.due - h.now.mono_ns;
            h.now.mono_ns = *h.io.due;
            h.role->on_timer(h.now);
        }
    }
    CHECK(h.now.mono_ns - start >= 20 * NS_PER_S);
    CHECK(h.io.take_overs == 0);
}

TEST_CASE("a slave told an epoch no master has is not locked out for good: it exits at --connect-timeout") {
    RecordingSlaveIo io;
    EventLog log;
    std::string console_text;
    SimClock clock = reading(THREE_OCLOCK_NS);
    SlaveSettings s;  // its --connect-timeout: 30 s
    s.id = "told";
    s.master = "10.0.0.1:8080";
    SlaveRole role(s, io, log, Console{false, &console_text}, clock);
    Now now{NS_PER_S, REAL_BASE_NS};
    role.start(now);
    role.on_connected("", 0, std::nullopt, now);
    // One PLAN of an epoch no honest master has (an impostor's, say); then its connection ends.
    role.on_line(without_newline(format_message(Plan{1'000'000, 1, 0, NS_PER_S, 4, NS_PER_S / 2, -1, 3, 0, {}})),
                 now.real_ns, now);
    REQUIRE(role.epoch() == 1'000'000);
    role.on_closed("the master closed the connection", now);
    const int64_t start = now.mono_ns;
    for (int step = 0; step < 5000 && !role.done(); ++step) {
        if (role.state() == SlaveRole::State::Connecting) {
            now.mono_ns += NS_PER_MS, now.real_ns += NS_PER_MS;
            role.on_connected("", 0, std::nullopt, now);
            role.on_line("ERROR this master's epoch 1 is older than epoch 1000000, which you follow", now.real_ns, now);
        } else {
            REQUIRE(io.due);
            now.real_ns += *io.due - now.mono_ns;
            now.mono_ns = *io.due;
            role.on_timer(now);
        }
    }
    REQUIRE(role.done());
    CHECK(role.exit_code() == 1);
    CHECK(now.mono_ns - start <= 31 * NS_PER_S);
}

TEST_CASE("epochs cannot wrap: a PLAN beyond MAX_EPOCH is refused") {
    CHECK_FALSE(parse_message("PLAN 18446744073709551615 1 0 1000000000 4 500000000 -1 3").message);
    CHECK_FALSE(parse_message("PLAN " + std::to_string(MAX_EPOCH + 1) + " 1 0 1000000000 4 500000000 -1 3").message);
    CHECK(parse_message("PLAN " + std::to_string(MAX_EPOCH) + " 1 0 1000000000 4 500000000 -1 3").message);
    CHECK_FALSE(parse_message("HELLO x 9000 " + std::to_string(MAX_EPOCH + 1)).message);
}

TEST_CASE("two halves healed: the lower master yields, its slaves follow the higher, one time again") {
    Group g(6, 30 * NS_PER_US);
    start_group(g, 5, endless(5));
    REQUIRE(g.until_round_done(0, 5));
    // The master and two slaves against three slaves: the three elect one of them.
    const int64_t heal = g.world.t() + 20 * NS_PER_S;
    g.world.partition({0, 0, 0, 1, 1, 1}, heal);
    g.world.run_until(heal - NS_PER_S);
    REQUIRE(masters(g).size() == 2);
    g.world.run_until(heal + 5 * NS_PER_S);
    REQUIRE(masters(g).size() == 1);
    const int m = masters(g)[0];
    CHECK(g[m].master->epoch() >= 2);
    CHECK(events(g[0], "yield").size() == 1);
    for (int i = 0; i < 6; ++i) {
        if (i == m) continue;
        CAPTURE(i);
        REQUIRE(g[i].slave);
        CHECK(g[i].slave->following());
        CHECK(g[i].slave->master() == g.world.address(m));
    }
    g.world.run_until(g.world.t() + 10 * NS_PER_S);
    const int64_t real = g.world.now().real_ns;
    for (int i = 0; i < 6; ++i)
        CHECK(std::llabs(read_clock(g[i].clock, real) - read_clock(g[m].clock, real)) < 20 * NS_PER_US);
}

TEST_CASE("--max-slaves survives a takeover") {
    Group g(4, 30 * NS_PER_US);
    MasterSettings m = endless(3);
    m.door.max_slaves = m.max_slaves_set = 3;  // as ./master --max-slaves 3 sets them
    start_group(g, 3, m);
    REQUIRE(g.until_round_done(0, 3));
    g.world.kill(0);
    g.world.run_until(g.world.t() + 30 * NS_PER_S, [&] { return !masters(g).empty(); });
    REQUIRE(masters(g).size() == 1);
    CHECK(g[masters(g)[0]].master_settings.door.max_slaves == 3);
}
