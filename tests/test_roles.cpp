// test_roles.cpp - whole rounds of the real master and slave roles
// (master_role.hpp, slave_role.hpp) on a virtual clock and network
// (sim/world.hpp), no socket: the textbook's example to the nanosecond, a
// liar left out, a takeover in place, and the wire the roles speak.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/role_fakes.hpp"
#include "tests/sim_group.hpp"

using namespace berkeley;
using namespace berkeley::sim;
using namespace berkeley::testing;


TEST_CASE("the textbook's round: master 3:00, slaves 3:25 and 2:50; corrections +5, -20 and +15 minutes, exactly") {
    Group g(3, NS_PER_US);  // the same delay both ways: the estimates are exact
    MasterSettings m;
    m.slaves = 2;
    m.rounds = 1;
    m.probes = 1;
    g.world.start_master(0, m, reading(THREE_OCLOCK_NS));
    g.world.start_slave(1, slave_named("3:25", g.world), reading(THREE_OCLOCK_NS + 25 * MINUTE_NS));
    g.world.start_slave(2, slave_named("2:50", g.world), reading(THREE_OCLOCK_NS - 10 * MINUTE_NS));
    REQUIRE(g.until_round_done(0, 1));
    const auto corrections = [&](int i) {
        std::vector<int64_t> out;
        for (const std::string& e : events(g[i], "adjust")) out.push_back(*field(e, "correction_ns"));
        return out;
    };
    CHECK(corrections(0) == std::vector<int64_t>{5 * MINUTE_NS});
    CHECK(corrections(1) == std::vector<int64_t>{-20 * MINUTE_NS});
    CHECK(corrections(2) == std::vector<int64_t>{15 * MINUTE_NS});
    // All three now read the same time, 3:05 and the round's few nanoseconds.
    const int64_t real = g.world.now().real_ns;
    CHECK(read_clock(g[1].clock, real) == read_clock(g[0].clock, real));
    CHECK(read_clock(g[2].clock, real) == read_clock(g[0].clock, real));
    CHECK(read_clock(g[0].clock, real) - (THREE_OCLOCK_NS + 5 * MINUTE_NS) < NS_PER_MS);
    // Each was stepped (a first correction always is), and acknowledged it.
    for (int i = 0; i < 3; ++i) CHECK(has(events(g[i], "adjust")[0], "\"mode\":\"step\""));
    CHECK(field(events(g[0], "round_done")[0], "acked") == 2);
}

TEST_CASE("a liar an hour off is left out: the honest clocks' average is the group's time") {
    Group g(6, 20 * NS_PER_US);
    MasterSettings m;
    m.slaves = 5;
    m.rounds = 3;
    g.world.start_master(0, m, reading(THREE_OCLOCK_NS));
    const int64_t offsets[] = {NS_PER_S, 2 * NS_PER_S, -NS_PER_S, -2 * NS_PER_S};
    for (int i = 1; i <= 4; ++i)
        g.world.start_slave(i, slave_named("honest" + std::to_string(i), g.world), reading(THREE_OCLOCK_NS + offsets[i - 1]));
    SlaveSettings liar = slave_named("liar", g.world);
    liar.lie_ns = 3600 * NS_PER_S;
    g.world.start_slave(5, liar, reading(THREE_OCLOCK_NS));
    REQUIRE(g.until_round_done(0, 3));
    // Round 1: the readings are 0 (the master), +-1 s, +-2 s and the liar's
    // hour: the hour is left out, the rest average to 0.
    for (const std::string& e : events(g[0], "estimate")) {
        if (field(e, "round") != 1) continue;
        CHECK(has(e, "\"included\":") );
        if (has(e, "\"slave\":\"liar\"")) CHECK(has(e, "\"included\":false"));
        else CHECK(has(e, "\"included\":true"));
    }
    const auto master_adjusts = events(g[0], "adjust");
    REQUIRE(!master_adjusts.empty());
    CHECK(std::llabs(*field(master_adjusts[0], "correction_ns")) < 100 * NS_PER_US);  // 0, but for the probes' delay
    // The honest clocks and the master agree; the liar was left out every round.
    for (const std::string& e : events(g[0], "estimate"))
        if (has(e, "\"slave\":\"liar\"")) CHECK(has(e, "\"included\":false"));
    const int64_t real = g.world.now().real_ns;
    for (int i = 1; i <= 4; ++i) {
        CAPTURE(i);
        CHECK(std::llabs(read_clock(g[i].clock, real) - read_clock(g[0].clock, real)) < 10 * NS_PER_US);
    }
}

TEST_CASE("a takeover in place: the master killed, its first successor runs the next rounds, nobody stepped") {
    Group g(4, 30 * NS_PER_US);
    MasterSettings m;
    m.slaves = 3;
    m.rounds = 0;
    g.world.start_master(0, m, reading(THREE_OCLOCK_NS));
    for (int i = 1; i <= 3; ++i)
        g.world.start_slave(i, slave_named("s" + std::to_string(i), g.world), reading(THREE_OCLOCK_NS + i * NS_PER_S));
    REQUIRE(g.until_round_done(0, 5));
    const int64_t killed_t = g.world.t();
    g.world.kill(0);
    // Someone takes over as epoch 2, and the others follow it.
    int successor = -1;
    g.world.run_until(killed_t + 30 * NS_PER_S, [&] {
        for (int i = 1; i <= 3; ++i)
            if (g[i].master && g[i].master->round() >= 7) successor = i;
        return successor > 0;
    });
    REQUIRE(successor > 0);
    CHECK(g[successor].master->epoch() == 2);
    CHECK(events(g[successor], "takeover").size() == 1);
    for (int i = 1; i <= 3; ++i) {
        if (i == successor) continue;
        CHECK(g[i].slave->following());
        CHECK(g[i].slave->master() == g.world.address(successor));
        CHECK(g[i].slave->epoch() == 2);
    }
    // Its first round came soon after the old master went quiet, and no clock was stepped after the first round.
    const auto first = events(g[successor], "round");
    REQUIRE(!first.empty());
    CHECK(*field(first[0], "real_ns") - (REAL_BASE_NS + killed_t) < 10 * NS_PER_S);
    for (int i = 1; i <= 3; ++i)
        for (const std::string& e : events(g[i], "adjust"))
            if (field(e, "round") > 1) CHECK_FALSE(has(e, "\"mode\":\"step\""));
    const int64_t real = g.world.now().real_ns;
    for (int i = 1; i <= 3; ++i)
        CHECK(std::llabs(read_clock(g[i].clock, real) - read_clock(g[successor].clock, real)) < 20 * NS_PER_US);
}

TEST_CASE("the roles speak the protocol: HELLO, WAIT, PLAN, TIME?, CLOCK, ADJUST, ACK, BYE in that order") {
    Group g(2, 10 * NS_PER_US);
    MasterSettings m;
    m.slaves = 1;
    m.rounds = 1;
    m.probes = 2;
    g.world.start_master(0, m, reading(THREE_OCLOCK_NS));
    g.world.start_slave(1, slave_named("s1", g.world), reading(THREE_OCLOCK_NS + NS_PER_S));
    REQUIRE(g.until_round_done(0, 1));
    g.world.run_until(g.world.t() + 5 * NS_PER_S);
    CHECK(events(g[1], "reply").size() == 2);
    CHECK(events(g[1], "adjust").size() == 1);
    REQUIRE(!events(g[1], "exit").empty());
    CHECK(has(events(g[1], "exit")[0], "the master said BYE"));
    CHECK(has(events(g[0], "exit")[0], "\"complete\":true"));
}


// A bug of a real run: T3 was read at the start of the request's handling
// and the lead measured from there, so every reply's T3 carried the time the
// role spent on the request, minus the fastest such time: the spread of a
// quiet group doubled. T3 names the shell's reading at the reply.
TEST_CASE("the slave's T3 is the shell's reading at the reply plus its lead, not the request's arrival") {
    RecordingSlaveIo io;
    EventLog log;
    std::string console_text;
    SimClock clock = reading(THREE_OCLOCK_NS);
    SlaveSettings s;
    s.id = "s1";
    s.master = "10.0.0.1:8080";
    s.kernel_timestamps = true;
    SlaveRole slave(s, io, log, Console{false, &console_text}, clock);
    Now now{NS_PER_S, REAL_BASE_NS};
    slave.start(now);
    slave.on_connected("", 0, std::nullopt, now);
    const int64_t arrived = REAL_BASE_NS + 1'000;
    now.real_ns = REAL_BASE_NS + 5'000;  // the event is handled 4 us after the kernel stamped it ...
    io.reply_read_at_ns = REAL_BASE_NS + 9'000;  // ... the shell reads its clock for the reply 4 us later ...
    io.lead_ns = 2'000;                           // ... and the line leaves 2 us after that
    slave.on_line("TIME? 1 1", arrived, now);
    REQUIRE(!io.sent.empty());
    std::string line = io.sent.back();
    while (!line.empty() && line.back() == '\n') line.pop_back();
    const Parsed p = parse_message(line);
    REQUIRE(p.message);
    const auto* reply = std::get_if<ClockReply>(&*p.message);
    REQUIRE(reply);
    CHECK(reply->t2_ns == THREE_OCLOCK_NS + 1'000);
    REQUIRE(reply->t3_ns);
    CHECK(*reply->t3_ns == THREE_OCLOCK_NS + 11'000);
}
