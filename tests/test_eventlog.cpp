// test_eventlog.cpp - eventlog.hpp: one JSON object per line, escaped, the
// clock pair in every event, and lost lines counted rather than fatal.
#include <doctest/doctest.h>

#include <fstream>
#include <string>
#include <unistd.h>

#include "eventlog.hpp"

using namespace berkeley;

TEST_CASE("EventLog writes one JSON object per line with the clock pair, escaped") {
    char path[] = "/tmp/berkeley-eventlog-XXXXXX";
    const int tmp = mkstemp(path);
    REQUIRE(tmp >= 0);
    Fd cleanup(tmp);
    {
        EventLog log;
        std::string error;
        REQUIRE(log.open(path, error));
        log.event("start", "s-1", -5, 7).num("port", 8080).flag("ok", true);
        log.event("lost", "s-1", 1, 2).str("reason", "said \"no\"\\\n\x01");
    }
    std::ifstream in(path);
    std::string line1, line2, extra;
    REQUIRE(std::getline(in, line1));
    REQUIRE(std::getline(in, line2));
    CHECK(!std::getline(in, extra));
    CHECK(line1 == R"({"event":"start","id":"s-1","clock_ns":-5,"real_ns":7,"port":8080,"ok":true})");
    CHECK(line2 == R"({"event":"lost","id":"s-1","clock_ns":1,"real_ns":2,"reason":"said \"no\"\\\u000a\u0001"})");
    unlink(path);

    SUBCASE("without a file nothing is written and nothing fails") {
        EventLog none;
        none.event("start", "x", 0, 0).num("a", 1);
    }
    SUBCASE("an unwritable path is an error naming the path") {
        EventLog bad;
        std::string error;
        CHECK(!bad.open("/nonexistent-dir/x.log", error));
        CHECK(error.find("/nonexistent-dir/x.log") != std::string::npos);
    }
}

TEST_CASE("EventLog counts the lines a full disk lost, and goes on") {
    EventLog log;
    std::string error;
    REQUIRE(log.open("/dev/full", error, "test_eventlog (this loss is expected)"));
    CHECK(log.lost() == 0);
    log.event("start", "m", 0, 0);
    log.event("round", "m", 0, 0).num("round", 1);
    CHECK(log.lost() == 2);
}

TEST_CASE("correction_fields: what a replay needs, by how the correction was applied") {
    char path[] = "/tmp/berkeley-eventlog-XXXXXX";
    const int tmp = mkstemp(path);
    REQUIRE(tmp >= 0);
    Fd cleanup(tmp);
    SimClock c = make_clock(0, 0, 7'000);
    c.trim_ppb = -2'000;
    c.slew_rate_ppb = 500'000;
    {
        EventLog log;
        std::string error;
        REQUIRE(log.open(path, error));
        {
            auto step = log.event("adjust", "s", 1, 2);  // written as it goes out of scope
            correction_fields(step, Corrected{c, Applied::Step});
        }
        auto slew = log.event("adjust", "s", 1, 2);
        correction_fields(slew, Corrected{c, Applied::Slew});
    }
    std::ifstream in(path);
    std::string step, slew;
    REQUIRE(std::getline(in, step));
    REQUIRE(std::getline(in, slew));
    CHECK(step == R"({"event":"adjust","id":"s","clock_ns":1,"real_ns":2,"mode":"step","rate_ppb":5000,"trim_ppb":-2000})");
    CHECK(slew == R"({"event":"adjust","id":"s","clock_ns":1,"real_ns":2,"mode":"slew","rate_ppb":5000,"trim_ppb":-2000,"slew_rate_ppb":500000})");
    unlink(path);
}
