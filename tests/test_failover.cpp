// test_failover.cpp - failover.hpp: the ranking of successors and the order
// of the election, case by case.
#include <doctest/doctest.h>

#include <algorithm>

#include "failover.hpp"

using namespace berkeley;

TEST_CASE("rank_successors: corrected by us first, then the longest in the group, in the order they joined") {
    std::vector<SuccessorCandidate> all = {
        {"10.0.0.1:9001", false, 0, 1, 1},  // never acknowledged a correction of ours
        {"10.0.0.2:9002", true, 0, 3, 6},   // corrected, joined in round 3
        {"10.0.0.4:9004", true, 0, 1, 2},   // corrected, joined in round 1, second
        {"10.0.0.3:9003", true, 0, 1, 3},   // corrected, joined in round 1, third
        {"", true, 0, 0, 4},                // serves nowhere (a --count swarm)
        {"10.0.0.6:9006", true, 2, 0, 5},   // missed the last rounds
    };
    CHECK(rank_successors(all, 3) == std::vector<std::string>{"10.0.0.4:9004", "10.0.0.3:9003", "10.0.0.2:9002"});
    CHECK(rank_successors(all, 10) ==
          std::vector<std::string>{"10.0.0.4:9004", "10.0.0.3:9003", "10.0.0.2:9002", "10.0.0.1:9001"});
    CHECK(rank_successors(all, 0).empty());
    CHECK(rank_successors({}, 3).empty());
}

TEST_CASE("rank_successors: the same group gives the same plan, whatever the order it is listed in") {
    std::vector<SuccessorCandidate> all = {
        {"10.0.0.9:1", true, 0, 1, 3}, {"10.0.0.8:1", true, 0, 1, 2}, {"10.0.0.7:1", true, 0, 1, 1}, {"10.0.0.7:1", true, 0, 1, 1}};
    const auto plan = rank_successors(all, 3);
    CHECK(plan == std::vector<std::string>{"10.0.0.7:1", "10.0.0.8:1", "10.0.0.9:1"});
    std::reverse(all.begin(), all.end());
    CHECK(rank_successors(all, 3) == plan);
}

TEST_CASE("outranks: the higher epoch, then the larger token; the same answer on both sides") {
    CHECK(outranks({2, 1}, {1, 99}));
    CHECK_FALSE(outranks({1, 99}, {2, 1}));
    CHECK(outranks({3, 7}, {3, 5}));
    CHECK_FALSE(outranks({3, 5}, {3, 7}));
    CHECK_FALSE(outranks({3, 5}, {3, 5}));  // itself
}

TEST_CASE("election_order: the Bully algorithm over the successor list") {
    const std::vector<std::string> plan = {"s1:1", "s2:2", "s3:3"};
    SUBCASE("successor 1 tries only the old master, then takes over") {
        const ElectionOrder o = election_order("m:8080", plan, "s1:1");
        CHECK(o.try_in_order == std::vector<std::string>{"m:8080"});
        CHECK(o.take_over);
    }
    SUBCASE("successor 3 defers to 1 and 2") {
        const ElectionOrder o = election_order("m:8080", plan, "s3:3");
        CHECK(o.try_in_order == std::vector<std::string>{"m:8080", "s1:1", "s2:2"});
        CHECK(o.take_over);
    }
    SUBCASE("any other slave tries everyone and never takes over") {
        const ElectionOrder o = election_order("m:8080", plan, "x:9");
        CHECK(o.try_in_order == std::vector<std::string>{"m:8080", "s1:1", "s2:2", "s3:3"});
        CHECK_FALSE(o.take_over);
    }
    SUBCASE("a slave that serves nowhere") {
        const ElectionOrder o = election_order("m:8080", plan, "");
        CHECK_FALSE(o.take_over);
        CHECK(o.try_in_order.size() == 4);
    }
    SUBCASE("no plan: the old master only, as before failover") {
        const ElectionOrder o = election_order("m:8080", {}, "s1:1");
        CHECK(o.try_in_order == std::vector<std::string>{"m:8080"});
        CHECK_FALSE(o.take_over);
    }
    SUBCASE("the old master in its own plan (a master that was a successor) is tried once") {
        const ElectionOrder o = election_order("s1:1", plan, "s3:3");
        CHECK(o.try_in_order == std::vector<std::string>{"s1:1", "s2:2"});
    }
}

TEST_CASE("fit_in_a_line: as many successors as one line holds, its tag included") {
    const std::string v6 = "[fd00:1234:5678:9abc:def0:1234:5678:9abc]:65535";
    Plan plan{MAX_EPOCH, 18446744073709551615ULL, 18446744073709551615ULL, 86'400'000'000'000, 100,
              3'600'000'000'000, 9'223'372'036'854'775'807, 1'000'000, 18446744073709551615ULL, {v6, v6, v6}};
    const Plan fitted = fit_in_a_line(plan, 33);
    CHECK(fitted.successors.size() < 3);
    CHECK(format_message(fitted).size() - 1 + 33 <= MAX_LINE_BYTES);
    CHECK(parse_message(format_message(fitted).substr(0, format_message(fitted).size() - 1)).message.has_value());
    // Short IPv4 addresses all fit.
    Plan ipv4{1, 7, 0, 1'000'000'000, 4, 500'000'000, -1, 3, 0, {"127.0.0.1:41234", "127.0.0.1:41235", "127.0.0.1:41236"}};
    CHECK(fit_in_a_line(ipv4, 33) == ipv4);
}
