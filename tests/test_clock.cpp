// test_clock.cpp - the pure arithmetic of clock.hpp, in its order: the steps
// of a Berkeley round, then the simulated clock and its discipline. Table-driven
// where the cases are data; each table row is CAPTUREd so a failure names it.
#include <doctest/doctest.h>

#include "clock.hpp"
#include "filter.hpp"
#include "simclock.hpp"

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

using namespace berkeley;

namespace {

constexpr int64_t I64_MIN = std::numeric_limits<int64_t>::min();
constexpr int64_t I64_MAX = std::numeric_limits<int64_t>::max();
constexpr int64_t NS_PER_DAY = 86'400 * NS_PER_S;
constexpr int64_t NS_PER_HOUR = 3'600 * NS_PER_S;
// A real-looking CLOCK_REALTIME reading: 2025-11-30 00:00:00 UTC.
constexpr int64_t EPOCH_2025_NS = 1'764'460'800LL * NS_PER_S;

// True when step_clock on a clock at offset Off, stepped by Corr at host time
// Real, is a constant expression. Signed overflow is undefined behaviour, and
// undefined behaviour is never a constant expression: so this detects an
// overflow inside step_clock deterministically, without relying on UBSan.
template <int64_t Real, int64_t Off, int64_t Corr>
constexpr bool step_is_overflow_free = requires {
    typename std::bool_constant<step_clock(make_clock(Real, Off, 0), Real, Corr).has_value()>;
};

}  // namespace

// ---------------------------------------------------------------------------
// The textbook steps, in the order of a round.

TEST_CASE("estimate_offset") {
    SUBCASE("symmetric delays give the exact offset") {
        struct Row {
            int64_t offset_ns, one_way_ns;
        };
        const Row rows[] = {
            {0, 0},
            {0, 50 * NS_PER_US},
            {1, 1},
            {-1, 1},
            {123'456'789, 250'000},
            {-123'456'789, 250'000},
            {3 * NS_PER_HOUR, 1 * NS_PER_MS},
            {-3 * NS_PER_HOUR, 1 * NS_PER_MS},
            {40 * NS_PER_DAY, 7},
            {-40 * NS_PER_DAY, 7},
            {MAX_OFFSET_NS, 3},
            {-MAX_OFFSET_NS, 3},
        };
        for (const Row& r : rows) {
            CAPTURE(r.offset_ns);
            CAPTURE(r.one_way_ns);
            const int64_t t0 = EPOCH_2025_NS + 987'654'321;  // real-looking epoch time
            const Probe p{t0, t0 + r.one_way_ns + r.offset_ns, t0 + 2 * r.one_way_ns};
            const auto e = estimate_offset(p);
            REQUIRE(e.has_value());
            CHECK(e->offset_ns == r.offset_ns);
            CHECK(e->delay_ns == 2 * r.one_way_ns);
        }
    }

    SUBCASE("zero rtt") {
        const auto e = estimate_offset(Probe{EPOCH_2025_NS, EPOCH_2025_NS - 17, EPOCH_2025_NS});
        REQUIRE(e.has_value());
        CHECK(e->delay_ns == 0);
        CHECK(e->offset_ns == -17);
    }

    SUBCASE("odd rtt: midpoint is t0 + rtt/2 truncated") {
        // rtt 3: midpoint t0 + 1.
        auto e = estimate_offset(Probe{1000, 1001, 1003});
        REQUIRE(e.has_value());
        CHECK(e->delay_ns == 3);
        CHECK(e->offset_ns == 0);
        // rtt 1: midpoint t0.
        e = estimate_offset(Probe{-1000, -1000, -999});
        REQUIRE(e.has_value());
        CHECK(e->delay_ns == 1);
        CHECK(e->offset_ns == 0);
        // Negative t0 and odd rtt: still t0 + floor(rtt/2), rtt being >= 0.
        e = estimate_offset(Probe{-EPOCH_2025_NS, -EPOCH_2025_NS + 100, -EPOCH_2025_NS + 201});
        REQUIRE(e.has_value());
        CHECK(e->delay_ns == 201);
        CHECK(e->offset_ns == 0);
    }

    SUBCASE("negative rtt is refused") {
        CHECK_FALSE(estimate_offset(Probe{1000, 1000, 999}).has_value());
        CHECK_FALSE(estimate_offset(Probe{EPOCH_2025_NS, EPOCH_2025_NS, EPOCH_2025_NS - NS_PER_S}).has_value());
        CHECK_FALSE(estimate_offset(Probe{I64_MAX, 0, I64_MIN}).has_value());
    }

    SUBCASE("absurd readings are refused, without overflow") {
        const int64_t t0 = EPOCH_2025_NS;
        CHECK_FALSE(estimate_offset(Probe{t0, I64_MIN, t0 + 1000}).has_value());
        CHECK_FALSE(estimate_offset(Probe{t0, I64_MAX, t0 + 1000}).has_value());
        CHECK_FALSE(estimate_offset(Probe{0, I64_MAX, 0}).has_value());
        CHECK_FALSE(estimate_offset(Probe{0, I64_MIN, 0}).has_value());
        CHECK_FALSE(estimate_offset(Probe{I64_MIN, I64_MAX, I64_MIN}).has_value());
        CHECK_FALSE(estimate_offset(Probe{I64_MAX, I64_MIN, I64_MAX}).has_value());
        // An rtt beyond MAX_OFFSET_NS is as absurd as an offset beyond it.
        CHECK_FALSE(estimate_offset(Probe{I64_MIN, 0, I64_MAX}).has_value());
        CHECK_FALSE(estimate_offset(Probe{0, 0, MAX_OFFSET_NS + 2}).has_value());
        // The offset bound is inclusive.
        CHECK(estimate_offset(Probe{0, MAX_OFFSET_NS, 0}).has_value());
        CHECK(estimate_offset(Probe{0, -MAX_OFFSET_NS, 0}).has_value());
        CHECK_FALSE(estimate_offset(Probe{0, MAX_OFFSET_NS + 1, 0}).has_value());
        CHECK_FALSE(estimate_offset(Probe{0, -MAX_OFFSET_NS - 1, 0}).has_value());
    }

    SUBCASE("asymmetric delays: the error is at most rtt/2, rounded up") {
        struct Row {
            int64_t true_offset_ns, out_ns, back_ns;
        };
        const Row rows[] = {
            {0, 0, 1000},       {0, 1000, 0},         {0, 1, 0},          {0, 0, 1},
            {500, 10, 990},     {-500, 990, 10},      {7 * NS_PER_HOUR, 100'000, 3},
            {-2 * NS_PER_DAY, 3, 100'000},            {NS_PER_S, NS_PER_MS, 5 * NS_PER_MS},
            {-NS_PER_S, 5 * NS_PER_MS, NS_PER_MS},    {123, 7, 8},        {-123, 8, 7},
        };
        for (const Row& r : rows) {
            CAPTURE(r.true_offset_ns);
            CAPTURE(r.out_ns);
            CAPTURE(r.back_ns);
            const int64_t t0 = EPOCH_2025_NS + 5;
            // The slave reads its clock when the request arrives (master time t0 + out).
            const Probe p{t0, t0 + r.out_ns + r.true_offset_ns, t0 + r.out_ns + r.back_ns};
            const auto e = estimate_offset(p);
            REQUIRE(e.has_value());
            CHECK(e->delay_ns == r.out_ns + r.back_ns);
            // The midpoint is truncated to whole ns, so for an odd rtt the
            // bound is ceil(rtt/2), not rtt/2.
            const int64_t err = e->offset_ns - r.true_offset_ns;
            const int64_t bound = (e->delay_ns + 1) / 2;
            CHECK(err <= bound);
            CHECK(err >= -bound);
            // Exactly: the error is out - floor(rtt/2).
            CHECK(err == r.out_ns - e->delay_ns / 2);
        }
    }
}

TEST_CASE("estimate_offset with two slave readings (NTP's four timestamps)") {
    // Symmetric 10 us each way, slave holds the request 30 us, offset +5 s:
    // exact, whatever the holding time.
    const int64_t t1 = EPOCH_2025_NS, off = 5 * NS_PER_S;
    for (int64_t held : {int64_t{0}, int64_t{30'000}, int64_t{5'000'000}}) {
        CAPTURE(held);
        const Probe p(t1, t1 + 10'000 + off, t1 + 10'000 + held + off, t1 + 20'000 + held);
        auto e = estimate_offset(p);
        REQUIRE(e);
        CHECK(e->offset_ns == off);
        CHECK(e->delay_ns == 20'000);
    }
    // Equal readings: exactly Cristian's midpoint.
    for (int64_t s : {int64_t{-17}, int64_t{0}, int64_t{1001}, int64_t{99'999}}) {
        CAPTURE(s);
        CHECK(estimate_offset(Probe(1000, s, s, 1003))->offset_ns == estimate_offset(Probe(1000, s, 1003))->offset_ns);
    }
    // Asymmetric delays: off by at most delay/2 (rounded up).
    const auto e = estimate_offset(Probe(0, 1'000, 1'500, 2'000));  // out 1000, back 500
    REQUIRE(e);
    CHECK(e->delay_ns == 1'500);
    CHECK(std::abs(e->offset_ns) <= 750);
    // Nonsense: the answer left before the request arrived; a negative delay.
    CHECK_FALSE(estimate_offset(Probe(0, 500, 499, 1'000)));
    CHECK_FALSE(estimate_offset(Probe(0, 0, 2'000, 1'000)));
}

TEST_CASE("best_estimate") {
    CHECK_FALSE(best_estimate({}).has_value());

    const std::vector<Estimate> one{{5, 9}};
    auto b = best_estimate(one);
    REQUIRE(b.has_value());
    CHECK(b->offset_ns == 5);
    CHECK(b->delay_ns == 9);

    const std::vector<Estimate> several{{10, 300}, {20, 100}, {30, 200}, {40, 150}};
    b = best_estimate(several);
    REQUIRE(b.has_value());
    CHECK(b->offset_ns == 20);
    CHECK(b->delay_ns == 100);

    const std::vector<Estimate> last{{10, 300}, {20, 200}, {30, 0}};
    b = best_estimate(last);
    REQUIRE(b.has_value());
    CHECK(b->offset_ns == 30);

    const std::vector<Estimate> tie{{10, 300}, {-1, 50}, {2, 50}, {3, 50}, {4, 60}};
    b = best_estimate(tie);
    REQUIRE(b.has_value());
    CHECK(b->offset_ns == -1);  // the first of the smallest rtt
    CHECK(b->delay_ns == 50);

    const std::vector<Estimate> all_tied{{7, 1}, {8, 1}, {9, 1}};
    b = best_estimate(all_tied);
    REQUIRE(b.has_value());
    CHECK(b->offset_ns == 7);
}

// --- Step 2 across rounds: the clock filter ---------------------------------

TEST_CASE("SampleFilter: one sample is that sample, with half its delay as the bound") {
    SampleFilter f;
    CHECK_FALSE(f.estimate(0).has_value());
    CHECK(f.add({1'000, 300, 5 * NS_PER_S}));
    const auto e = f.estimate(6 * NS_PER_S);
    REQUIRE(e.has_value());
    CHECK(e->offset_ns == 1'000);
    CHECK(e->bound_ns == 150);
    CHECK(e->delay_ns == 300);
    CHECK(e->used == 1);
    CHECK_FALSE(e->rate_ppb.has_value());
}

TEST_CASE("SampleFilter: with jitter the fast samples carry the estimate and the rate") {
    // A slave running 2 ppm fast of the master: offset 2,000 ns a second.
    // Every fourth probe came through fast (delay 100 ns, exact); the rest
    // waited in a queue one way (delay 90 us) and read 30 us off.
    SampleFilter f;
    for (int64_t k = 0; k < 16; ++k) {
        const int64_t at = k * NS_PER_S, truth = 2'000 * k;
        const bool fast = k % 4 == 0;
        f.add({truth + (fast ? 0 : 30'000), fast ? 100 : 90'000, at});
    }
    const auto e = f.estimate(16 * NS_PER_S);
    REQUIRE(e.has_value());
    CHECK(e->used == 16);
    CHECK(e->delay_ns == 100);
    // An unweighted line would be 22,500 ns off; the weighted one is a
    // fraction of the queued samples' 30 us error.
    CHECK(std::abs(e->offset_ns - 32'000) < 8'000);
    REQUIRE(e->rate_ppb.has_value());
    CHECK(std::abs(*e->rate_ppb - 2'000) < 500);
    CHECK(e->bound_ns < 10'000);  // far below the queued samples' 45 us
}

TEST_CASE("SampleFilter: on a quiet link every sample weighs alike and the line is exact") {
    // Delays 10 us give or take 0.6 us of scheduling noise: within the
    // 1 us floor, so all weigh (nearly) alike.
    SampleFilter f;
    for (int64_t k = 0; k < 10; ++k) f.add({500 + 3'000 * k, 10'000 + (k % 3) * 300, k * NS_PER_S});
    const auto e = f.estimate(10 * NS_PER_S);
    REQUIRE(e.has_value());
    CHECK(e->used == 10);
    CHECK(std::abs(e->offset_ns - 30'500) <= 1);
    CHECK(std::abs(*e->rate_ppb - 3'000) <= 1);
    CHECK(e->bound_ns >= 5'000);
    CHECK(e->bound_ns <= 5'300);
}

TEST_CASE("SampleFilter: two samples give the line through them") {
    SampleFilter f;
    f.add({0, 10, 0});
    f.add({1'000, 20, NS_PER_S});
    const auto e = f.estimate(2 * NS_PER_S);
    REQUIRE(e.has_value());
    CHECK(e->used == 2);
    CHECK(e->offset_ns == 2'000);
    CHECK(*e->rate_ppb == 1'000);
    CHECK(e->bound_ns >= 5);
    CHECK(e->bound_ns <= 10);
}

TEST_CASE("SampleFilter: only the last FILTER_ROUNDS samples count") {
    SampleFilter f;
    for (int64_t k = 0; k < 40; ++k) f.add({0, k == 3 ? 1 : 1'000, k * NS_PER_S});  // the best one, long gone
    CHECK(f.size() == FILTER_ROUNDS);
    CHECK(f.estimate(40 * NS_PER_S)->delay_ns == 1'000);
}

TEST_CASE("SampleFilter: corrections and rate changes carry the samples forward") {
    SampleFilter f;
    // Offset 10 us, 5 ppm fast, sampled for 3 s.
    for (int64_t k = 0; k < 3; ++k) f.add({10'000 + 5'000 * k, 100, k * NS_PER_S});
    // At 3 s the master sends the slave -25 us and corrects itself by -5 us:
    // the slave moves 20 us towards the master, and its rate by -5 ppm.
    f.shift(-25'000, -5'000);
    f.rerate(-5'000, 3 * NS_PER_S);
    const auto e = f.estimate(4 * NS_PER_S);
    REQUIRE(e.has_value());
    CHECK(e->offset_ns == 5'000);  // 25,000 at 3 s, less 20,000, and no longer drifting
    CHECK(*e->rate_ppb == 0);
    // The next sample fits the carried ones: no restart.
    CHECK(f.add({5'000, 100, 4 * NS_PER_S}));
    CHECK(f.size() == 4);
}

TEST_CASE("SampleFilter: a sample that cannot be the same clock starts afresh") {
    SampleFilter f;
    for (int64_t k = 0; k < 4; ++k) f.add({0, 2'000, k * NS_PER_S});
    // Within half the delays and the slack for rate errors: kept.
    CHECK(f.add({2'000 + FILTER_SLACK_PPB * 4 / 1'000, 2'000, 4 * NS_PER_S}));
    CHECK(f.size() == 5);
    // A correction the slave never applied: 1 ms off what the filter expects.
    CHECK_FALSE(f.add({1'000'000, 2'000, 5 * NS_PER_S}));
    CHECK(f.size() == 1);
    CHECK(f.estimate(5 * NS_PER_S)->offset_ns == 1'000'000);
}

TEST_CASE("SampleFilter: stored compactly, long delays and long gaps are handled") {
    SampleFilter f;
    f.add({0, 10 * NS_PER_S, 0});  // a 10 s delay is stored as about 4.3 s
    CHECK(f.estimate(0)->delay_ns == UINT32_MAX);
    // Times are kept in 64 us units after the filter's base: the odd ns are lost, not the sample.
    f.add({5, 1'000, NS_PER_S + 999});
    CHECK(f.size() == 2);
    // Hour-long rounds keep their samples (76 hours of them), and a rate.
    SampleFilter h;
    for (int64_t k = 0; k < 40; ++k) h.add({1'000 * k, 1'000, k * 3'600 * NS_PER_S});
    CHECK(h.size() == FILTER_ROUNDS);
    CHECK(h.estimate(40 * 3'600 * NS_PER_S)->rate_ppb.has_value());
    // Beyond 76 hours the older samples leave; time going back keeps none.
    SampleFilter g;
    g.add({0, 1'000, 0});
    g.add({0, 1'000, NS_PER_S});
    g.add({0, 1'000, 300'000 * NS_PER_S});
    CHECK(g.size() == 1);
    g.add({0, 1'000, 300'001 * NS_PER_S});
    CHECK(g.size() == 2);
    g.add({0, 1'000, 4'000 * NS_PER_S});
    CHECK(g.size() == 1);
    CHECK(g.estimate(4'000 * NS_PER_S)->offset_ns == 0);
}

TEST_CASE("SampleFilter: extreme values neither overflow nor invent a rate") {
    SampleFilter f;
    f.add({MAX_OFFSET_NS, 0, 0});
    CHECK(f.estimate(MAX_OFFSET_NS)->offset_ns == MAX_OFFSET_NS);
    f.clear();
    // Two samples 1 ns apart 100 ms apart in offset: beyond MAX_RATE_PPB, no rate.
    f.add({0, 1'000'000'000, 0});
    f.add({100'000'000, 1'000'000'000, 1});
    const auto e = f.estimate(1);
    REQUIRE(e.has_value());
    CHECK_FALSE(e->rate_ppb.has_value());
}

TEST_CASE("fault_tolerant_average: table") {
    struct Row {
        const char* name;
        std::vector<int64_t> offsets;
        int64_t max_skew_ns;
        int64_t want_median, want_average;
        std::vector<bool> want_included;
    };
    const int64_t H = NS_PER_HOUR;
    const std::vector<Row> rows = {
        {"single value", {0}, 1000, 0, 0, {true}},
        {"single negative value", {-77}, 1, -77, -77, {true}},
        {"master + 1 slave (even)", {0, 100}, 1000, 0, 50, {true, true}},
        {"master + 2 slaves (odd)", {0, 100, 200}, 1000, 100, 100, {true, true, true}},
        {"master + 3 slaves (even), lower middle", {0, 300, 100, 200}, 1000, 100, 150, {true, true, true, true}},
        {"master + 4 slaves (odd)", {0, -20, 40, 10, -30}, 1000, 0, 0, {true, true, true, true, true}},
        {"outlier hours off excluded", {0, 10, -10, 20, 5 * H}, 1000, 10, 5, {true, true, true, true, false}},
        {"outlier hours off included with max_skew 0", {0, 10, -10, 20, 5 * H}, 0, 10, (5 * H + 20) / 5,
         {true, true, true, true, true}},
        {"negative outlier excluded", {0, 10, -3 * H, 20}, 100, 0, 10, {true, true, false, true}},
        {"skew boundary is inclusive", {0, 100, 200, 301}, 100, 100, 100, {true, true, true, false}},
        {"even count: lower middle median decides", {0, 100, 200, 300}, 100, 100, 100, {true, true, true, false}},
        {"negative offsets", {-100, -200, -300}, 1000, -200, -200, {true, true, true}},
        {"two clusters: the middle nearer the master wins", {0, 1, 2, H, H + 1, H + 2}, 10, 2, 1,
         {true, true, true, false, false, false}},
        {"one liar against the master alone: the master is the median", {0, -5 * NS_PER_S}, 1000, 0, 0,
         {true, false}},
        {"one liar ahead of the master alone", {0, 5 * NS_PER_S}, 1000, 0, 0, {true, false}},
        {"two middles equally near the master: the lower", {-10, 10}, 1000, -10, 0, {true, true}},
        {"max_skew 1 ns keeps at least the median", {0, 1000, 2000}, 1, 1000, 1000, {false, true, false}},
        {"max_skew 1 ns, all far apart, even", {-5000, 5000, 0, 10'000}, 1, 0, 0, {false, false, true, false}},
        {"duplicates of the median all kept", {7, 7, 7, 9}, 1, 7, 7, {true, true, true, false}},
        // Rounding to nearest, halves away from zero.
        {"round +0.5 up", {0, 1}, 0, 0, 1, {true, true}},
        {"round -0.5 down (median: the middle nearer the master)", {0, -1}, 0, 0, -1, {true, true}},
        {"round +1/3 down", {0, 0, 1}, 0, 0, 0, {true, true, true}},
        {"round +2/3 up", {0, 1, 1}, 0, 1, 1, {true, true, true}},
        {"round -1/3 to zero", {0, 0, -1}, 0, 0, 0, {true, true, true}},
        {"round -2/3 down", {0, -1, -1}, 0, -1, -1, {true, true, true}},
        {"round +2.5 up", {2, 3}, 0, 2, 3, {true, true}},
        {"round -2.5 down (median: the middle nearer the master)", {-2, -3}, 0, -2, -3, {true, true}},
        {"round +1.25", {0, 1, 2, 2}, 0, 1, 1, {true, true, true, true}},
        {"round +1.75", {1, 2, 2, 2}, 0, 2, 2, {true, true, true, true}},
        {"round -1.75", {-1, -2, -2, -2}, 0, -2, -2, {true, true, true, true}},
        {"huge offsets, no overflow", {MAX_OFFSET_NS, MAX_OFFSET_NS - 1, MAX_OFFSET_NS}, 0, MAX_OFFSET_NS,
         MAX_OFFSET_NS, {true, true, true}},
        {"huge opposite offsets", {MAX_OFFSET_NS, -MAX_OFFSET_NS}, 0, -MAX_OFFSET_NS, 0, {true, true}},
        {"huge opposite offsets, skewed", {MAX_OFFSET_NS, -MAX_OFFSET_NS, 0}, NS_PER_S, 0, 0,
         {false, false, true}},
    };
    for (const Row& r : rows) {
        const std::string name = r.name;
        CAPTURE(name);
        REQUIRE(r.want_included.size() == r.offsets.size());
        const Agreement a = fault_tolerant_average(r.offsets, r.max_skew_ns);
        CHECK(a.median_ns == r.want_median);
        CHECK(a.average_ns == r.want_average);
        CHECK(a.included == r.want_included);
        size_t count = 0;
        for (bool inc : r.want_included) count += inc ? 1 : 0;
        CHECK(a.included_count == count);
    }
}

TEST_CASE("fault_tolerant_average: edge cases and properties") {
    SUBCASE("empty input") {
        const Agreement a = fault_tolerant_average({}, 1000);
        CHECK(a.included.empty());
        CHECK(a.included_count == 0);
        CHECK(a.average_ns == 0);
    }

    SUBCASE("10000 entries near MAX_OFFSET_NS do not overflow") {
        std::vector<int64_t> big(10'000, MAX_OFFSET_NS);
        for (size_t i = 0; i < big.size(); i += 2) big[i] = MAX_OFFSET_NS - 1;
        Agreement a = fault_tolerant_average(big, 0);
        CHECK(a.included_count == 10'000);
        CHECK(a.average_ns == MAX_OFFSET_NS);  // mean is MAX - 0.5: rounds away from zero
        CHECK(a.median_ns == MAX_OFFSET_NS - 1);

        std::vector<int64_t> neg(10'000, -MAX_OFFSET_NS);
        for (size_t i = 0; i < neg.size(); i += 2) neg[i] = -MAX_OFFSET_NS + 1;
        a = fault_tolerant_average(neg, 0);
        CHECK(a.included_count == 10'000);
        CHECK(a.average_ns == -MAX_OFFSET_NS);  // mean is -MAX + 0.5: rounds away from zero
        CHECK(a.median_ns == -MAX_OFFSET_NS + 1);  // of the two middles, the one nearer 0

        std::vector<int64_t> mixed(10'000);
        for (size_t i = 0; i < mixed.size(); ++i) mixed[i] = (i % 2 == 0) ? MAX_OFFSET_NS : -MAX_OFFSET_NS;
        a = fault_tolerant_average(mixed, NS_PER_S);
        CHECK(a.median_ns == -MAX_OFFSET_NS);
        CHECK(a.included_count == 5'000);
        CHECK(a.average_ns == -MAX_OFFSET_NS);
    }

    SUBCASE("at least one reading is always included") {
        const std::vector<std::vector<int64_t>> sets = {
            {0}, {0, 1}, {0, 2, 4}, {9, 0, 3, 6}, {-MAX_OFFSET_NS, 0, MAX_OFFSET_NS}, {100, -100, 300, -300, 500}};
        for (const auto& s : sets) {
            for (int64_t skew : {int64_t{1}, int64_t{2}, NS_PER_S}) {
                CAPTURE(s.size());
                CAPTURE(skew);
                const Agreement a = fault_tolerant_average(s, skew);
                CHECK(a.included_count >= 1);
                CHECK(a.included.size() == s.size());
            }
        }
    }

    SUBCASE("property: every participant's correction brings it to the average") {
        uint64_t state = 0x1234'5678'9ABC'DEF0ULL;
        auto next = [&state] {  // xorshift64*, deterministic
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            return state * 0x2545F4914F6CDD1DULL;
        };
        for (int trial = 0; trial < 500; ++trial) {
            const size_t n = 1 + next() % 40;
            std::vector<int64_t> offsets(n);
            offsets[0] = 0;  // the master
            const int64_t spread = trial % 3 == 0 ? MAX_OFFSET_NS : (trial % 3 == 1 ? NS_PER_S : 1000);
            for (size_t i = 1; i < n; ++i)
                offsets[i] = static_cast<int64_t>(next() % static_cast<uint64_t>(2 * spread + 1)) - spread;
            const int64_t skew = static_cast<int64_t>(next() % static_cast<uint64_t>(spread)) ;
            const Agreement a = fault_tolerant_average(offsets, skew);
            CAPTURE(trial);
            bool all_equal = true;
            bool in_bounds = true;
            int64_t lo = I64_MAX, hi = I64_MIN;
            for (size_t i = 0; i < n; ++i) {
                if (offsets[i] + correction_for(a.average_ns, offsets[i]) != a.average_ns) all_equal = false;
                if (a.included[i]) {
                    lo = std::min(lo, offsets[i]);
                    hi = std::max(hi, offsets[i]);
                }
            }
            // The average lies among the readings it was taken from.
            if (a.average_ns < lo || a.average_ns > hi) in_bounds = false;
            CHECK(all_equal);
            CHECK(in_bounds);
            CHECK(a.included_count >= 1);
            CHECK(correction_for(a.average_ns, 0) == a.average_ns);  // the master's own correction
        }
    }
}

TEST_CASE("fault_tolerant_average, adaptive window: the readings set their own filter") {
    struct Row {
        const char* name;
        std::vector<int64_t> offsets;
        int64_t want_average;
        std::vector<bool> want_included;
    };
    const int64_t S = NS_PER_S, H = NS_PER_HOUR, MIN = 60 * S;
    const std::vector<Row> rows = {
        // Master 3:00, slaves 3:25 and 2:50: +5 min, all three averaged.
        {"the textbook example", {0, 25 * MIN, -10 * MIN}, 5 * MIN, {true, true, true}},
        {"an hour off among clocks seconds apart", {0, 2 * S, -3 * S, S, H}, 0, {true, true, true, true, false}},
        {"in step: a 1 us lie among clocks 100 ns apart", {0, 100, -80, 50, 1'000}, 18, {true, true, true, true, false}},
        {"in step: two colluding 20 us lies of five", {0, 60, -40, 20'000, 20'000}, 7, {true, true, true, false, false}},
        {"the master is the outlier: it is left out", {0, H, H + S, H - S}, H, {false, true, true, true}},
        {"the window is at least MIN_WINDOW_NS", {0, 0, 0, 0, MIN_WINDOW_NS}, MIN_WINDOW_NS / 5,
         {true, true, true, true, true}},
        {"just past MIN_WINDOW_NS", {0, 0, 0, 0, MIN_WINDOW_NS + 1}, 0, {true, true, true, true, false}},
        {"master + 1 slave: two clocks average", {0, 5 * S}, 5 * S / 2, {true, true}},
        {"seconds apart at a fresh start: all averaged", {0, 4 * S, -3 * S, 2 * S}, 750'000'000,
         {true, true, true, true}},
    };
    for (const Row& r : rows) {
        const std::string name = r.name;
        CAPTURE(name);
        const Agreement a = fault_tolerant_average(r.offsets);
        CHECK(a.average_ns == r.want_average);
        CHECK(a.included == r.want_included);
        CHECK(a.window_ns >= MIN_WINDOW_NS);
    }
    // The spread is 1.4826 x the MAD; the window WINDOW_SPREADS of them.
    const Agreement t = fault_tolerant_average(std::vector<int64_t>{0, 25 * MIN, -10 * MIN});
    CHECK(t.median_ns == 0);
    CHECK(t.spread_ns == 10 * MIN / 10'000 * 14'826);
    CHECK(t.window_ns == WINDOW_SPREADS * t.spread_ns);
    // Explicit windows keep their meaning: 0 keeps all, a width is a width.
    CHECK(fault_tolerant_average(std::vector<int64_t>{0, 1, H}, 0).included_count == 3);
    CHECK(fault_tolerant_average(std::vector<int64_t>{0, 1, H}, 10).included_count == 2);
}

TEST_CASE("fault_tolerant_average, adaptive: no minority moves the result past its bound") {
    // Honest readings within +/-h of 0, f < n/2 liars anywhere: the average
    // stays within h + f/n x window of the honest readings.
    uint64_t state = 0xC0FFEE;
    auto next = [&state] {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return state * 0x2545F4914F6CDD1DULL;
    };
    for (int trial = 0; trial < 2000; ++trial) {
        const size_t n = 3 + next() % 12;
        const size_t liars = next() % ((n + 1) / 2);  // fewer than half
        const int64_t h = 1 + static_cast<int64_t>(next() % 1'000);
        std::vector<int64_t> offsets;
        for (size_t i = 0; i < n - liars; ++i) offsets.push_back(static_cast<int64_t>(next() % (2 * h + 1)) - h);
        for (size_t i = 0; i < liars; ++i) {
            const int64_t lie = static_cast<int64_t>(next() % (2 * NS_PER_S)) - NS_PER_S;
            offsets.push_back(trial % 2 ? lie : h + static_cast<int64_t>(next() % 2'000));
        }
        const Agreement a = fault_tolerant_average(offsets);
        CAPTURE(trial);
        CHECK(a.median_ns >= -h);
        CHECK(a.median_ns <= h);
        const __int128 bound = h + static_cast<__int128>(liars) * a.window_ns / static_cast<__int128>(n) + 1;
        CHECK(std::abs(a.average_ns) <= bound);
    }
}

TEST_CASE("correction_for") {
    struct Row {
        int64_t average, offset, want;
    };
    const Row rows[] = {
        {0, 0, 0},           {100, 0, 100},        {0, 100, -100},       {100, 100, 0},
        {-50, 50, -100},     {50, -50, 100},       {MAX_OFFSET_NS, -MAX_OFFSET_NS, 2 * MAX_OFFSET_NS},
        {-MAX_OFFSET_NS, MAX_OFFSET_NS, -2 * MAX_OFFSET_NS},
    };
    for (const Row& r : rows) {
        CAPTURE(r.average);
        CAPTURE(r.offset);
        CHECK(correction_for(r.average, r.offset) == r.want);
    }
    static_assert(correction_for(5, 3) == 2);
}

// ---------------------------------------------------------------------------
// The simulated clock and its discipline.

TEST_CASE("floor_div rounds toward minus infinity for every sign combination") {
    struct Row {
        int64_t a, b, want;
    };
    const Row rows[] = {
        {0, 1, 0},       {0, -1, 0},       {0, 7, 0},        {0, -7, 0},
        {6, 3, 2},       {-6, 3, -2},      {6, -3, -2},      {-6, -3, 2},    // exact
        {7, 2, 3},       {-7, 2, -4},      {7, -2, -4},      {-7, -2, 3},    // inexact
        {1, 1000, 0},    {-1, 1000, -1},   {1, -1000, -1},   {-1, -1000, 0},
        {999, 1000, 0},  {-999, 1000, -1}, {1000, 1000, 1},  {-1000, 1000, -1},
        {-1001, 1000, -2},
        {I64_MAX, 1, I64_MAX},             {I64_MIN, 1, I64_MIN},
        {I64_MAX, NS_PER_S, 9'223'372'036}, {I64_MIN, NS_PER_S, -9'223'372'037},
    };
    for (const Row& r : rows) {
        CAPTURE(r.a);
        CAPTURE(r.b);
        CHECK(floor_div(r.a, r.b) == r.want);
    }
    // 128-bit numerators, as read_clock produces them.
    const __int128 big = static_cast<__int128>(I64_MAX) * 3 + 1;
    CHECK(floor_div(big, 3) == I64_MAX);
    CHECK(floor_div(-big, 3) == -I64_MAX - 1);
    static_assert(floor_div(-7, 2) == -4);
}

TEST_CASE("SimClock: make_clock and read_clock") {
    SUBCASE("zero drift preserves the offset exactly") {
        const int64_t offsets[] = {0, 1, -1, 5 * NS_PER_S, -5 * NS_PER_S, NS_PER_HOUR, -3 * NS_PER_DAY,
                                   MAX_OFFSET_NS, -MAX_OFFSET_NS};
        const int64_t times[] = {0, 1, -1, EPOCH_2025_NS, EPOCH_2025_NS + 123'456'789, -NS_PER_DAY};
        for (int64_t off : offsets) {
            for (int64_t anchor : times) {
                const SimClock c = make_clock(anchor, off, 0);
                CHECK(c.anchor_real_ns == anchor);
                CHECK(c.anchor_clock_ns == anchor + off);
                CHECK(c.rate_ppb == 0);
                for (int64_t dt : {int64_t{0}, int64_t{1}, int64_t{-1}, NS_PER_S, -NS_PER_S, 10 * NS_PER_DAY}) {
                    CAPTURE(off);
                    CAPTURE(anchor);
                    CAPTURE(dt);
                    CHECK(read_clock(c, anchor + dt) - (anchor + dt) == off);
                }
            }
        }
    }

    SUBCASE("a rate in ppb advances the clock exactly") {
        struct Row {
            int64_t rate_ppb, elapsed_ns, want_advance_ns;
        };
        const Row rows[] = {
            {50'000, NS_PER_S, NS_PER_S + 50 * NS_PER_US},            // +50 ppm: 1 s + 50 us
            {-50'000, NS_PER_S, NS_PER_S - 50 * NS_PER_US},           // -50 ppm: 1 s - 50 us
            {50'000, -NS_PER_S, -NS_PER_S - 50 * NS_PER_US},          // backwards in host time
            {-50'000, -NS_PER_S, -NS_PER_S + 50 * NS_PER_US},
            {1, NS_PER_S, NS_PER_S + 1},                              // 1 ppb
            {1, NS_PER_S - 1, NS_PER_S - 1},                          // floor: 0.999999999 ns lost
            {-1, NS_PER_S - 1, NS_PER_S - 2},                         // floor, not truncation
            {1, -1, -2},                                              // floor(-1.000000001)
            {MAX_RATE_PPB, NS_PER_S, NS_PER_S + NS_PER_S / 10},       // +10 %
            {-MAX_RATE_PPB, NS_PER_S, NS_PER_S - NS_PER_S / 10},      // -10 %
            {50'000, NS_PER_DAY, NS_PER_DAY + 50'000LL * 86'400},     // a day at 50 ppm: 4.32 s
            {0, 1, 1},
        };
        for (const Row& r : rows) {
            CAPTURE(r.rate_ppb);
            CAPTURE(r.elapsed_ns);
            const SimClock c = make_clock(EPOCH_2025_NS, 42, r.rate_ppb);
            CHECK(read_clock(c, EPOCH_2025_NS) == EPOCH_2025_NS + 42);
            CHECK(read_clock(c, EPOCH_2025_NS + r.elapsed_ns) - (EPOCH_2025_NS + 42) == r.want_advance_ns);
        }
    }

    SUBCASE("monotonic over a sweep of host times, negative elapsed included") {
        const int64_t rates[] = {0, 1, -1, 50'000, -50'000, 999'999, MAX_RATE_PPB, -MAX_RATE_PPB};
        const int64_t offsets[] = {0, -7 * NS_PER_HOUR, 3 * NS_PER_DAY, MAX_OFFSET_NS / 2};
        for (int64_t rate : rates) {
            for (int64_t off : offsets) {
                const SimClock c = make_clock(EPOCH_2025_NS, off, rate);
                int64_t previous = read_clock(c, EPOCH_2025_NS - 3'000'000);
                bool monotonic = true;
                // Fine steps around the anchor, where floor vs truncation matters...
                for (int64_t dt = -3'000'000 + 1; dt <= 3'000'000; dt += 997) {
                    const int64_t now = read_clock(c, EPOCH_2025_NS + dt);
                    if (now < previous) monotonic = false;
                    previous = now;
                }
                // ...and coarse steps over days on either side.
                previous = read_clock(c, EPOCH_2025_NS - 30 * NS_PER_DAY);
                for (int64_t dt = -30 * NS_PER_DAY; dt <= 30 * NS_PER_DAY; dt += NS_PER_HOUR + 12'345) {
                    const int64_t now = read_clock(c, EPOCH_2025_NS + dt);
                    if (now < previous) monotonic = false;
                    previous = now;
                }
                CAPTURE(rate);
                CAPTURE(off);
                CHECK(monotonic);
            }
        }
    }

    SUBCASE("huge offsets: days, hours, MAX_OFFSET_NS") {
        const int64_t offsets[] = {NS_PER_HOUR, -NS_PER_HOUR, 365 * NS_PER_DAY, -365 * NS_PER_DAY,
                                   MAX_OFFSET_NS, -MAX_OFFSET_NS};
        for (int64_t off : offsets) {
            CAPTURE(off);
            const SimClock c = make_clock(EPOCH_2025_NS, off, 50'000);
            CHECK(read_clock(c, EPOCH_2025_NS) - EPOCH_2025_NS == off);
            CHECK(read_clock(c, EPOCH_2025_NS + NS_PER_S) - (EPOCH_2025_NS + NS_PER_S) == off + 50 * NS_PER_US);
        }
    }
}

TEST_CASE("step_clock") {
    const SimClock base = make_clock(EPOCH_2025_NS, 2 * NS_PER_S, 50'000);

    SUBCASE("an exact step, applied at a later host time, keeps the rate") {
        const int64_t at = EPOCH_2025_NS + 10 * NS_PER_S;
        const int64_t before = read_clock(base, at);
        CHECK(before == EPOCH_2025_NS + 2 * NS_PER_S + 10 * NS_PER_S + 500 * NS_PER_US);
        for (int64_t corr : {int64_t{0}, int64_t{1}, int64_t{-1}, -2 * NS_PER_S, 3 * NS_PER_HOUR, -5 * NS_PER_DAY}) {
            CAPTURE(corr);
            const auto stepped = step_clock(base, at, corr);
            REQUIRE(stepped.has_value());
            CHECK(stepped->rate_ppb == base.rate_ppb);
            CHECK(read_clock(*stepped, at) == before + corr);
            // Rate preserved: one more host second is 1 s + 50 us on the clock.
            CHECK(read_clock(*stepped, at + NS_PER_S) == before + corr + NS_PER_S + 50 * NS_PER_US);
        }
    }

    SUBCASE("1000 steps of +1 ns accumulate no rounding error") {
        SimClock c = make_clock(EPOCH_2025_NS, 0, 33'333);  // a rate that does not divide evenly
        int64_t real = EPOCH_2025_NS;
        for (int i = 0; i < 1000; ++i) {
            real += 1'234'567;  // host time moves on between corrections
            const auto s = step_clock(c, real, 1);
            REQUIRE(s.has_value());
            c = *s;
        }
        // Without the steps the clock would read: start + floor(elapsed * (1 + rate)).
        const SimClock unstepped = make_clock(EPOCH_2025_NS, 0, 33'333);
        const int64_t end = EPOCH_2025_NS + 1000LL * 1'234'567;
        const int64_t drift_only = read_clock(unstepped, end) - end;
        const int64_t stepped_offset = read_clock(c, end) - end;
        // Steps never re-round the drift: the stepped clock is exactly the
        // unstepped one plus the sum of the steps.
        CHECK(drift_only == 41'151);
        CHECK(stepped_offset == drift_only + 1000);
        CHECK(c.rate_ppb == 33'333);

        // With zero rate there is no flooring at all: exactly 1000 ns.
        SimClock z = make_clock(EPOCH_2025_NS, -5, 0);
        for (int i = 0; i < 1000; ++i) {
            const auto s = step_clock(z, EPOCH_2025_NS + i * 1'000'003LL, 1);
            REQUIRE(s.has_value());
            z = *s;
        }
        CHECK(read_clock(z, EPOCH_2025_NS + 77 * NS_PER_S) - (EPOCH_2025_NS + 77 * NS_PER_S) == 995);

        // With a rate, stepping at the same host time is exact too.
        SimClock r = make_clock(EPOCH_2025_NS, 0, -12'345);
        const int64_t at = EPOCH_2025_NS + 987'654'321;
        const int64_t start = read_clock(r, at);
        for (int i = 0; i < 1000; ++i) {
            const auto s = step_clock(r, at, 1);
            REQUIRE(s.has_value());
            r = *s;
        }
        CHECK(read_clock(r, at) == start + 1000);
    }

    SUBCASE("refusal when the result leaves +/-MAX_OFFSET_NS") {
        const SimClock c = make_clock(EPOCH_2025_NS, 0, 0);
        CHECK(step_clock(c, EPOCH_2025_NS, MAX_OFFSET_NS).has_value());
        CHECK(step_clock(c, EPOCH_2025_NS, -MAX_OFFSET_NS).has_value());
        CHECK_FALSE(step_clock(c, EPOCH_2025_NS, MAX_OFFSET_NS + 1).has_value());
        CHECK_FALSE(step_clock(c, EPOCH_2025_NS, -MAX_OFFSET_NS - 1).has_value());

        const SimClock far = make_clock(EPOCH_2025_NS, MAX_OFFSET_NS - 10, 0);
        CHECK(step_clock(far, EPOCH_2025_NS, 10).has_value());
        CHECK_FALSE(step_clock(far, EPOCH_2025_NS, 11).has_value());
        const auto back = step_clock(far, EPOCH_2025_NS, -2 * MAX_OFFSET_NS + 10);
        REQUIRE(back.has_value());
        CHECK(read_clock(*back, EPOCH_2025_NS) - EPOCH_2025_NS == -MAX_OFFSET_NS);
        CHECK_FALSE(step_clock(far, EPOCH_2025_NS, -2 * MAX_OFFSET_NS + 9).has_value());
    }

    SUBCASE("refusal when the correction itself is beyond 2*MAX_OFFSET_NS") {
        const SimClock c = make_clock(EPOCH_2025_NS, -MAX_OFFSET_NS, 0);
        CHECK_FALSE(step_clock(c, EPOCH_2025_NS, 2 * MAX_OFFSET_NS + 1).has_value());
        CHECK_FALSE(step_clock(c, EPOCH_2025_NS, -2 * MAX_OFFSET_NS - 1).has_value());
        CHECK_FALSE(step_clock(c, EPOCH_2025_NS, I64_MAX).has_value());
        CHECK_FALSE(step_clock(c, EPOCH_2025_NS, I64_MIN).has_value());
        // From -MAX, +2*MAX lands exactly on +MAX: allowed.
        const auto s = step_clock(c, EPOCH_2025_NS, 2 * MAX_OFFSET_NS);
        REQUIRE(s.has_value());
        CHECK(read_clock(*s, EPOCH_2025_NS) - EPOCH_2025_NS == MAX_OFFSET_NS);
    }

    SUBCASE("a correction within 2*MAX_OFFSET_NS that overshoots is refused without overflow") {
        // A clock at +MAX_OFFSET_NS stepped by +2*MAX_OFFSET_NS: now + correction
        // is about 1.1e19 > INT64_MAX. It must be refused, and computed without
        // signed overflow. Checked at compile time (UB is never a constant
        // expression), so the failure is deterministic and does not abort a
        // -fno-sanitize-recover build.
        CHECK((step_is_overflow_free<EPOCH_2025_NS, 0, MAX_OFFSET_NS>));
        CHECK((step_is_overflow_free<EPOCH_2025_NS, -MAX_OFFSET_NS, 2 * MAX_OFFSET_NS>));
        CHECK((step_is_overflow_free<EPOCH_2025_NS, 0, I64_MAX>));
        CHECK((step_is_overflow_free<EPOCH_2025_NS, MAX_OFFSET_NS, 2 * MAX_OFFSET_NS>));
        CHECK((step_is_overflow_free<0, MAX_OFFSET_NS, 2 * MAX_OFFSET_NS>));
        CHECK((step_is_overflow_free<-EPOCH_2025_NS, -MAX_OFFSET_NS, -2 * MAX_OFFSET_NS>));
    }
}

TEST_CASE("random_clock_params") {
    SUBCASE("same seed, same params") {
        for (uint64_t seed : {uint64_t{0}, uint64_t{1}, uint64_t{42}, std::numeric_limits<uint64_t>::max()}) {
            CAPTURE(seed);
            const ClockParams a = random_clock_params(seed);
            const ClockParams b = random_clock_params(seed);
            CHECK(a.offset_ns == b.offset_ns);
            CHECK(a.rate_ppb == b.rate_ppb);
        }
    }
    SUBCASE("different seeds differ, and stay in +/-5 s and +/-50000 ppb") {
        std::set<int64_t> offsets;
        std::set<int64_t> rates;
        bool in_range = true;
        bool saw_negative_offset = false, saw_positive_offset = false;
        bool saw_negative_rate = false, saw_positive_rate = false;
        const int seeds = 5000;
        for (int s = 0; s < seeds; ++s) {
            const ClockParams p = random_clock_params(static_cast<uint64_t>(s) * 0x9E3779B97F4A7C15ULL);
            if (p.offset_ns < -5 * NS_PER_S || p.offset_ns > 5 * NS_PER_S) in_range = false;
            if (p.rate_ppb < -50'000 || p.rate_ppb > 50'000) in_range = false;
            saw_negative_offset |= p.offset_ns < 0;
            saw_positive_offset |= p.offset_ns > 0;
            saw_negative_rate |= p.rate_ppb < 0;
            saw_positive_rate |= p.rate_ppb > 0;
            offsets.insert(p.offset_ns);
            rates.insert(p.rate_ppb);
        }
        CHECK(in_range);
        CHECK(offsets.size() == static_cast<size_t>(seeds));  // 1e10 values: collisions implausible
        CHECK(rates.size() > 4000);                            // 100001 values: a few birthday collisions
        CHECK(saw_negative_offset);
        CHECK(saw_positive_offset);
        CHECK(saw_negative_rate);
        CHECK(saw_positive_rate);
        const ClockParams p1 = random_clock_params(1), p2 = random_clock_params(2);
        CHECK((p1.offset_ns != p2.offset_ns || p1.rate_ppb != p2.rate_ppb));
    }
}

TEST_CASE("slew_clock: monotonic, continuous, and exactly the full correction in the end") {
    struct Case {
        int64_t rate_ppb, correction_ns, slew_rate_ppb;
    };
    const Case cases[] = {
        {0, 1'000'000, 500'000},  {0, -1'000'000, 500'000}, {50'000, -333'333, 500'000},
        {-50'000, 777'777, 500'000}, {12'345, -1, 500'000},  {0, 127'999'999, 500'000},
        {-100'000, -50'000, 1},      {0, 3, 7},
    };
    for (const Case& k : cases) {
        CAPTURE(k.rate_ppb);
        CAPTURE(k.correction_ns);
        CAPTURE(k.slew_rate_ppb);
        const SimClock base = make_clock(EPOCH_2025_NS, 5 * NS_PER_S, k.rate_ppb);
        const int64_t at = EPOCH_2025_NS + 123'456'789;
        const auto slewed = slew_clock(base, at, k.correction_ns, k.slew_rate_ppb);
        REQUIRE(slewed.has_value());
        // No jump at the instant of the correction.
        CHECK(read_clock(*slewed, at) == read_clock(base, at));
        CHECK(slew_remaining(*slewed, at) == k.correction_ns);
        // Duration: |c| / rate, rounded up.
        const __int128 whole = static_cast<__int128>(k.correction_ns < 0 ? -k.correction_ns : k.correction_ns) * NS_PER_S;
        const int64_t duration = static_cast<int64_t>((whole + k.slew_rate_ppb - 1) / k.slew_rate_ppb);
        const int64_t end = at + duration;
        // Exactly the full correction once the slew is over, and forever after.
        for (int64_t later : {end, end + 1, end + 10 * NS_PER_S}) {
            CAPTURE(later);
            CHECK(read_clock(*slewed, later) == read_clock(base, later) + k.correction_ns);
            CHECK(slew_remaining(*slewed, later) == 0);
        }
        if (duration > 1) CHECK(slew_remaining(*slewed, end - 1) != 0);
        // Monotonic, 1 ns steps around the start and the end, coarse across.
        int64_t prev = read_clock(*slewed, at - 1000);
        auto probe = [&](int64_t real) {
            const int64_t now = read_clock(*slewed, real);
            CHECK(now >= prev);
            prev = now;
        };
        for (int64_t t = at - 999; t <= at + 2000; ++t) probe(t);
        const int64_t step = std::max<int64_t>(1, duration / 2000);
        for (int64_t t = at + 2001; t < end - 2000; t += step) probe(t);
        for (int64_t t = std::max(end - 2000, at + 2001); t <= end + 2000; ++t) probe(t);
    }
}

TEST_CASE("a new correction replaces what is left of the previous slew") {
    const SimClock base = make_clock(EPOCH_2025_NS, 0, 0);
    auto first = slew_clock(base, EPOCH_2025_NS, 10 * NS_PER_MS, 500'000);  // 20 s to apply
    REQUIRE(first);
    const int64_t mid = EPOCH_2025_NS + 4 * NS_PER_S;                     // 2 ms applied
    CHECK(read_clock(*first, mid) - mid == 2 * NS_PER_MS);
    CHECK(slew_remaining(*first, mid) == 8 * NS_PER_MS);
    auto second = slew_clock(*first, mid, -1 * NS_PER_MS, 500'000);        // 2 s to apply
    REQUIRE(second);
    CHECK(read_clock(*second, mid) == read_clock(*first, mid));
    const int64_t after = mid + 100 * NS_PER_S;
    CHECK(read_clock(*second, after) - after == 1 * NS_PER_MS);  // 2 ms done, then -1 ms: the 8 ms left were dropped
    // A step also ends a slew.
    auto stepped = step_clock(*first, mid, 5);
    REQUIRE(stepped);
    CHECK(slew_remaining(*stepped, mid) == 0);
    CHECK(read_clock(*stepped, after) - after == 2 * NS_PER_MS + 5);
}

TEST_CASE("reanchor changes nothing a reader can see, sub-nanosecond fractions included") {
    SimClock c = make_clock(EPOCH_2025_NS, -7, 33'333);
    c.trim_ppb = -1'234;
    SimClock r = c;
    int64_t real = EPOCH_2025_NS;
    for (int i = 0; i < 5000; ++i) {
        real += 1'000'003 + i;
        r = reanchor(r, real);
        CHECK(r.anchor_frac >= 0);
        CHECK(r.anchor_frac < NS_PER_S);
    }
    for (int64_t t : {real, real + 1, real + 999'999'937, real + 86400 * NS_PER_S}) CHECK(read_clock(r, t) == read_clock(c, t));
}

TEST_CASE("apply_correction: step at and above the threshold, slew below it") {
    const Discipline d;  // 128 ms, 500 ppm
    const SimClock base = *step_clock(make_clock(EPOCH_2025_NS, 0, 0), EPOCH_2025_NS, 0);  // in step
    const int64_t at = EPOCH_2025_NS + NS_PER_S;
    struct Case {
        int64_t correction_ns;
        Applied how;
    };
    const Case cases[] = {
        {0, Applied::Slew},
        {1, Applied::Slew},
        {-1, Applied::Slew},
        {d.step_threshold_ns - 1, Applied::Slew},
        {-(d.step_threshold_ns - 1), Applied::Slew},
        {d.step_threshold_ns, Applied::Step},
        {-d.step_threshold_ns, Applied::Slew},       // in step: never back
        {-3 * 3600 * NS_PER_S, Applied::Slew},
        {3 * 3600 * NS_PER_S, Applied::Step},
    };
    for (const Case& k : cases) {
        CAPTURE(k.correction_ns);
        auto r = apply_correction(base, at, k.correction_ns, 0, d);
        REQUIRE(r);
        CHECK(r->how == k.how);
        const int64_t jump = read_clock(r->clock, at) - read_clock(base, at);
        CHECK(jump == (k.how == Applied::Step ? k.correction_ns : 0));
        // Once a slew has run its course (|c| / 500 ppm), the whole correction is in.
        const int64_t done = at + (k.how == Applied::Slew ? std::abs(k.correction_ns) * 2'000 : 0) + NS_PER_S;
        CHECK(read_clock(r->clock, done) - read_clock(base, done) == k.correction_ns);
    }
    // Threshold 0 steps everything; out-of-range corrections are refused either way.
    CHECK(apply_correction(base, at, 1, 0, Discipline{0, DEFAULT_SLEW_RATE_PPB, true})->how == Applied::Step);
    // A clock's first correction is stepped, however small: it is not in step yet.
    const SimClock fresh = make_clock(EPOCH_2025_NS, 0, 0);
    CHECK(apply_correction(fresh, at, 1, 0, d)->how == Applied::Step);
    CHECK(apply_correction(fresh, at, -NS_PER_S, 0, d)->how == Applied::Step);  // back too: not in step yet
    CHECK(apply_correction(fresh, at, 1, 0, d)->clock.corrected);
    CHECK_FALSE(apply_correction(base, at, 2 * MAX_OFFSET_NS + 1, 0, d));
    CHECK_FALSE(apply_correction(base, at, MAX_OFFSET_NS + 1, 0, Discipline{INT64_MAX, 1, true}));
    CHECK_FALSE(apply_correction(base, at, -MAX_OFFSET_NS - 1, 0, d));
}

TEST_CASE("apply_correction: an in-step clock never reads earlier than it did, whatever it is told") {
    const Discipline d;
    SimClock c = *step_clock(make_clock(EPOCH_2025_NS, 0, 0), EPOCH_2025_NS, 0);
    int64_t real = EPOCH_2025_NS, last = read_clock(c, real);
    const int64_t corrections[] = {-5 * NS_PER_S, -1, -DEFAULT_STEP_THRESHOLD_NS, 3 * NS_PER_S, -3 * NS_PER_HOUR, 7};
    for (int64_t corr : corrections) {
        auto r = apply_correction(c, real, corr, 0, d);
        REQUIRE(r);
        c = r->clock;
        for (int i = 0; i < 100; ++i, real += 10 * NS_PER_MS) {
            const int64_t now = read_clock(c, real);
            CHECK(now >= last);
            last = now;
        }
    }
}

TEST_CASE("apply_correction: the rate change moves the trim, bounded, and only the future") {
    const Discipline d;
    const SimClock base = *step_clock(make_clock(EPOCH_2025_NS, 0, 0), EPOCH_2025_NS, 0);
    const int64_t at = EPOCH_2025_NS + NS_PER_S;
    auto r = apply_correction(base, at, 0, -12'345, d);
    REQUIRE(r);
    CHECK(r->clock.trim_ppb == -12'345);
    CHECK(read_clock(r->clock, at) == read_clock(base, at));  // no jump at the change
    CHECK(read_clock(r->clock, at + NS_PER_S) - (at + NS_PER_S) == -12'345);
    CHECK(apply_correction(r->clock, at, 0, -MAX_TRIM_PPB, d)->clock.trim_ppb == -MAX_TRIM_PPB);
    CHECK(apply_correction(base, at, 0, 3 * MAX_TRIM_PPB, d)->clock.trim_ppb == MAX_TRIM_PPB);
    Discipline off = d;
    off.frequency = false;
    CHECK(apply_correction(base, at, 0, 5'000, off)->clock.trim_ppb == 0);
}

TEST_CASE("many slewed corrections accumulate no rounding error") {
    Discipline d;
    d.frequency = false;
    SimClock c = make_clock(EPOCH_2025_NS, 0, 41'999);
    const SimClock untouched = c;
    int64_t real = EPOCH_2025_NS;
    int64_t total = 0;
    for (int i = 0; i < 1000; ++i) {
        real += 1'000'000'007;  // > 3 us / 500 ppm: each slew completes before the next
        const int64_t corr = (i % 2 ? 3'001 : -1'777);
        auto r = apply_correction(c, real, corr, 0, d);
        REQUIRE(r);
        c = r->clock;
        total += corr;
    }
    const int64_t end = real + NS_PER_S;
    CHECK(read_clock(c, end) == read_clock(untouched, end) + total);
}

TEST_CASE("Step 6 pieces: settled, relative_rate_ppb, agreed_rate_ppb, rate_change_ppb") {
    const Discipline d;  // 500 ppm slews
    CHECK(settled(5 * NS_PER_S, Applied::Step, 1, d));
    CHECK(settled(250 * NS_PER_US, Applied::Slew, NS_PER_S, d));       // 0.5 s of 1 s
    CHECK_FALSE(settled(251 * NS_PER_US, Applied::Slew, NS_PER_S, d));
    CHECK(settled(-250 * NS_PER_US, Applied::Slew, NS_PER_S, d));
    CHECK_FALSE(settled(1, Applied::Slew, 0, d));

    CHECK(*relative_rate_ppb(50 * NS_PER_US, NS_PER_S) == 50'000);   // 50 us in 1 s: 50 ppm
    CHECK(*relative_rate_ppb(-3, 1'000) == -3'000'000);
    CHECK_FALSE(relative_rate_ppb(1, 0));
    CHECK_FALSE(relative_rate_ppb(NS_PER_S, NS_PER_S));            // 100 %: not a rate
    CHECK_FALSE(relative_rate_ppb(I64_MIN / 2, I64_MAX / 2 + 1));  // -100 %: no overflow, no rate
    CHECK(*relative_rate_ppb(-MAX_OFFSET_NS / 10, MAX_OFFSET_NS) == -MAX_RATE_PPB);

    CHECK(agreed_rate_ppb({}) == 0);
    CHECK(agreed_rate_ppb(std::vector<int64_t>{0, 30, -10}) == 0);
    CHECK(agreed_rate_ppb(std::vector<int64_t>{0, 30, 20}) == 20);
    CHECK(agreed_rate_ppb(std::vector<int64_t>{0, 30, 20, 500'000}) == 20);  // a liar's "rate" is outvoted

    CHECK(rate_change_ppb(60, 0) == -60);  // to the master's rate, all of it at first
    CHECK(rate_change_ppb(-60, 1) == 30);
    CHECK(rate_change_ppb(60, 2) == -20);
    CHECK(rate_change_ppb(60, 3) == -15);
    CHECK(rate_change_ppb(60, 1'000) == -15);  // never below a quarter
    CHECK(rate_change_ppb(MAX_RATE_PPB, 0) == -2 * MAX_TRIM_PPB);

    CHECK(master_rate_change_ppb(61'000, MASTER_RATE_TAU_NS) == 30'500);  // one time constant: half
    CHECK(master_rate_change_ppb(-61'000, MASTER_RATE_TAU_NS / 60) == -1'000);
    CHECK(master_rate_change_ppb(5'000, 0) == 0);
    CHECK(master_rate_change_ppb(MAX_RATE_PPB, INT64_MAX / 4) == 2 * MAX_TRIM_PPB - 1);
}

TEST_CASE("agree_round: who votes, and the corrections of the textbook example") {
    const int64_t MIN = 60 * NS_PER_S;
    SUBCASE("fresh start: everyone votes; +5 / -20 / +15 min") {
        const std::vector<Reading> r = {{0, false, {}, 0}, {25 * MIN, false, {}, 0}, {-10 * MIN, false, {}, 0}};
        const RoundResult x = agree_round(r, NS_PER_S);
        CHECK(x.time.average_ns == 5 * MIN);
        CHECK(x.each[0].correction_ns == 5 * MIN);
        CHECK(x.each[1].correction_ns == -20 * MIN);
        CHECK(x.each[2].correction_ns == 15 * MIN);
        for (const Decision& d : x.each) CHECK((d.votes && d.included));
        CHECK_FALSE(x.rate_ppb);
    }
    SUBCASE("master in step: a newcomer is corrected but does not vote") {
        const std::vector<Reading> r = {{0, true, {}, 0}, {100, true, {}, 0}, {7 * NS_PER_S, false, {}, 0}};
        const RoundResult x = agree_round(r, NS_PER_S);
        CHECK(x.time.average_ns == 50);
        CHECK_FALSE(x.each[2].votes);
        CHECK(x.each[2].correction_ns == 50 - 7 * NS_PER_S);
    }
    SUBCASE("a restarted master: the in-step slaves decide, the master is brought to them") {
        const int64_t X = 3 * NS_PER_S;  // the new master is 3 s behind the group
        const std::vector<Reading> r = {
            {0, false, {}, 0}, {X, true, {}, 0}, {X + 40, true, {}, 0}, {X - 30, true, {}, 0},
            {X - 9'900 * NS_PER_MS, true, {}, 0},  // a liar 9.9 s behind, claiming to be in step
        };
        const RoundResult x = agree_round(r, NS_PER_S);
        CHECK_FALSE(x.each[0].votes);
        CHECK_FALSE(x.each[4].included);
        CHECK(std::abs(x.each[0].correction_ns - X) <= 40);  // the master steps to the group
        for (size_t i = 1; i <= 3; ++i) CHECK(std::abs(x.each[i].correction_ns) <= 70);  // they stay put
    }
    SUBCASE("a fresh master: a minority claiming to be in step does not decide alone") {
        const std::vector<Reading> r = {{0, false, {}, 0}, {NS_PER_S, false, {}, 0}, {2 * NS_PER_S, false, {}, 0},
                                        {-3 * NS_PER_S, true, {}, 0}};  // one says INSTEP
        const RoundResult x = agree_round(r, NS_PER_S);
        for (const Decision& d : x.each) CHECK(d.votes);
        CHECK(x.time.average_ns == 0);
        // Half the slaves is no majority; two of three is, and they decide.
        const std::vector<Reading> half = {{0, false, {}, 0}, {NS_PER_S, true, {}, 0}, {5 * NS_PER_S, false, {}, 0}};
        CHECK(agree_round(half, NS_PER_S).each[0].votes);
        const std::vector<Reading> most = {{0, false, {}, 0}, {NS_PER_S, true, {}, 0}, {NS_PER_S, true, {}, 0},
                                           {5 * NS_PER_S, false, {}, 0}};
        CHECK_FALSE(agree_round(most, NS_PER_S).each[0].votes);
        CHECK(agree_round(most, NS_PER_S).time.average_ns == NS_PER_S);
        // One slave, in step: the restarted master is brought to it.
        const std::vector<Reading> one = {{0, false, {}, 0}, {NS_PER_S / 2, true, {}, 0}};
        CHECK(agree_round(one, NS_PER_S).each[0].correction_ns == NS_PER_S / 2);
    }
    SUBCASE("two voters: at a fresh start they average; in step the master's reading decides") {
        const std::vector<Reading> fresh = {{0, false, {}, 0}, {-5 * NS_PER_S, false, {}, 0}};
        CHECK(agree_round(fresh, NS_PER_S).time.average_ns == -5 * NS_PER_S / 2);
        const std::vector<Reading> in_step = {{0, true, {}, 0}, {-5 * NS_PER_S, true, {}, 0}};
        const RoundResult x = agree_round(in_step, NS_PER_S);
        CHECK(x.time.average_ns == 0);
        CHECK_FALSE(x.each[1].included);
        CHECK(agree_round(in_step, NS_PER_S, 0).time.average_ns == -5 * NS_PER_S / 2);  // unless told to keep all
    }
    SUBCASE("rates: only from readings that agreed, and a change for whoever has a rate") {
        const std::vector<Reading> r = {
            {0, true, 0, 0}, {10, true, 2'000, 0}, {-10, true, 1'000, 1}, {5'000, true, 400'000, 0}, {5, true, {}, 0}};
        const RoundResult x = agree_round(r, NS_PER_S);
        CHECK_FALSE(x.each[3].included);
        REQUIRE(x.rate_ppb);
        CHECK(*x.rate_ppb == 1'000);  // median of {0, 2000, 1000}: the liar's 400 ppm does not count
        CHECK(*x.each[0].rate_change_ppb == master_rate_change_ppb(1'000, NS_PER_S));  // slowly
        CHECK(*x.each[1].rate_change_ppb == -2'000);  // each slave to the master's rate
        CHECK(*x.each[2].rate_change_ppb == -500);
        CHECK(*x.each[3].rate_change_ppb == -400'000);  // sent, even though it did not vote
        CHECK_FALSE(x.each[4].rate_change_ppb);
    }
}

namespace {
// A group on one host, run by the pure functions as master.cpp runs them:
// each round the master measures every slave's offset (plus noise), agrees,
// and everyone applies its correction and rate change. Honest clocks drift;
// a liar answers with the master's clock plus a fixed lie; a stubborn clock
// ignores what it is told.
struct Group {
    struct Member {
        SimClock clock;
        int64_t lie_ns = 0;
        bool liar = false, stubborn = false;
        bool rate_ready = false;
        uint32_t rate_updates = 0;
    };
    std::vector<Member> m;  // m[0] is the master
    int64_t real = EPOCH_2025_NS;
    Discipline d;
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    int64_t noise_ns = 0;

    int64_t noise() {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        if (noise_ns == 0) return 0;
        return static_cast<int64_t>((rng >> 33) % static_cast<uint64_t>(2 * noise_ns + 1)) - noise_ns;
    }
    void add(int64_t offset_ns, int64_t drift_ppb) { m.push_back({make_clock(real, offset_ns, drift_ppb)}); }
    int64_t offset_of(const Member& x) const { return read_clock(x.clock, real) - real; }

    // One round after `interval_ns`. Returns the honest clocks' spread before it.
    int64_t round(int64_t interval_ns) {
        real += interval_ns;
        const int64_t master_at = read_clock(m[0].clock, real);
        const bool self_ready = m[0].rate_ready;
        std::vector<Reading> readings(m.size());
        for (size_t i = 0; i < m.size(); ++i) {
            Reading& r = readings[i];
            r.in_step = m[i].clock.corrected || (m[i].liar && m[0].clock.corrected);
            r.offset_ns = i == 0 ? 0 : m[i].liar ? m[i].lie_ns : read_clock(m[i].clock, real) - master_at + noise();
            if (m[i].rate_ready && self_ready) r.rate_ppb = relative_rate_ppb(r.offset_ns, interval_ns);
            r.rate_updates = m[i].rate_updates;
        }
        const int64_t spread = honest_spread();
        const RoundResult x = agree_round(readings, interval_ns);
        for (size_t i = 0; i < m.size(); ++i) {
            Member& who = m[i];
            const Decision& dec = x.each[i];
            if (who.stubborn || who.liar) continue;
            const Applied how = how_applied(who.clock.corrected, dec.correction_ns, d);
            auto next = apply_correction(who.clock, real, dec.correction_ns, dec.rate_change_ppb.value_or(0), d);
            REQUIRE(next);
            who.clock = next->clock;
            who.rate_ready = settled(dec.correction_ns, how, interval_ns, d);
            who.rate_updates += dec.rate_change_ppb.has_value();
        }
        return spread;
    }
    int64_t honest_spread() const {
        int64_t lo = I64_MAX, hi = I64_MIN;
        for (const Member& x : m) {
            if (x.liar || x.stubborn) continue;
            lo = std::min(lo, offset_of(x));
            hi = std::max(hi, offset_of(x));
        }
        return hi - lo;
    }
    // The honest clocks' mean offset from the host clock.
    int64_t honest_offset() const {
        __int128 sum = 0;
        int64_t n = 0;
        for (const Member& x : m)
            if (!x.liar && !x.stubborn) sum += offset_of(x), ++n;
        return static_cast<int64_t>(sum / n);
    }
};

Group drifting_group(size_t clocks, int64_t noise_ns) {
    Group g;
    g.noise_ns = noise_ns;
    const int64_t drifts[] = {0, 50'000, -50'000, 31'000, -17'000, 44'000, -8'000};
    for (size_t i = 0; i < clocks; ++i)
        g.add(static_cast<int64_t>(i) * 700 * NS_PER_MS - NS_PER_S, drifts[i % std::size(drifts)]);
    return g;
}
}  // namespace

TEST_CASE("frequency: after three rounds the spread before a round is under 2 us, at any interval") {
    for (int64_t interval : {200 * NS_PER_MS, NS_PER_S, 5 * NS_PER_S, 10 * NS_PER_S}) {
        for (int64_t noise : {int64_t{0}, int64_t{100}}) {
            CAPTURE(interval);
            CAPTURE(noise);
            Group g = drifting_group(5, noise);
            for (int r = 1; r <= 3; ++r) g.round(interval);
            int64_t worst = 0;
            for (int r = 4; r <= 40; ++r) worst = std::max(worst, g.round(interval));
            CHECK(worst <= 2 * NS_PER_US);
        }
    }
}

TEST_CASE("frequency under noise and attack: no oscillation, no runaway, bounded trims") {
    SUBCASE("2 us of noise per measurement, 0.2 s rounds, 2000 rounds") {
        Group g = drifting_group(5, 2'000);
        int64_t worst_trim = 0;
        for (int r = 0; r < 2000; ++r) {
            g.round(200 * NS_PER_MS);
            for (const auto& x : g.m) worst_trim = std::max(worst_trim, std::abs(x.clock.trim_ppb));
        }
        CHECK(worst_trim <= MAX_TRIM_PPB);
        // Rates converge to the group's: every clock's rate (drift + trim) within a few ppm of the others.
        int64_t lo = I64_MAX, hi = I64_MIN;
        for (const auto& x : g.m) {
            lo = std::min(lo, x.clock.rate_ppb + x.clock.trim_ppb);
            hi = std::max(hi, x.clock.rate_ppb + x.clock.trim_ppb);
        }
        CHECK(hi - lo <= 20'000);  // 2 us / 0.2 s of noise is 10 ppm per measurement
        CHECK(g.round(200 * NS_PER_MS) <= 10 * NS_PER_US);
    }
    SUBCASE("noise-free, the trims settle: the last 20 rounds change no trim") {
        Group g = drifting_group(4, 0);
        for (int r = 0; r < 60; ++r) g.round(NS_PER_S);
        std::vector<int64_t> trims;
        for (const auto& x : g.m) trims.push_back(x.clock.trim_ppb);
        for (int r = 0; r < 20; ++r) g.round(NS_PER_S);
        for (size_t i = 0; i < g.m.size(); ++i) CHECK(std::abs(g.m[i].clock.trim_ppb - trims[i]) <= 2);
    }
}

TEST_CASE("no minority drags the honest ensemble: liars of every size, colluders, a stubborn clock") {
    // Honest clocks with drift 0, +/-300 ns of measurement noise, 120 rounds of 1 s.
    // The honest ensemble may move at most 1 ppm (120 us), and stays within 2 us.
    struct Attack {
        const char* name;
        int liars;
        int64_t lie_ns;
        bool stubborn;
    };
    const Attack attacks[] = {
        {"one liar, 1 us", 1, 1'000, false},         {"one liar, 20 us", 1, 20'000, false},
        {"one liar, 0.4 ms", 1, 400'000, false},     {"one liar, 100 ms", 1, 100 * NS_PER_MS, false},
        {"two colluding, 1 us", 2, 1'000, false},    {"two colluding, 20 us", 2, 20'000, false},
        {"two colluding, 0.4 ms", 2, 400'000, false}, {"two colluding, 100 ms", 2, 100 * NS_PER_MS, false},
        {"a stubborn clock 200 ppm fast", 0, 0, true},
    };
    for (const Attack& a : attacks) {
        const std::string name = a.name;
        CAPTURE(name);
        Group g;
        g.noise_ns = 300;
        for (int i = 0; i < 5 - a.liars - (a.stubborn ? 1 : 0); ++i) g.add(i * 100 * NS_PER_MS, 0);
        for (int i = 0; i < a.liars; ++i) {
            g.add(0, 0);
            g.m.back().liar = true;
            g.m.back().lie_ns = a.lie_ns;
        }
        if (a.stubborn) {
            g.add(0, 200'000);
            g.m.back().stubborn = true;
        }
        g.round(NS_PER_S);  // the first round steps everyone together
        const int64_t start = g.honest_offset();
        int64_t worst_spread = 0;
        for (int r = 0; r < 120; ++r) worst_spread = std::max(worst_spread, g.round(NS_PER_S));
        CHECK(std::abs(g.honest_offset() - start) <= 120 * NS_PER_US);
        CHECK(worst_spread <= 2 * NS_PER_US);
        for (const auto& x : g.m) CHECK(std::abs(x.clock.trim_ppb) <= 1'000);  // no trim learned from lies
    }
}

TEST_CASE("noise alone does not walk the group's rate away") {
    // +/-1 us of noise on every reading, 0.1 s rounds for 120 s: the rate a
    // round measures is +/-20 ppm of noise, yet the ensemble moves < 1 ppm.
    Group g;
    g.noise_ns = 1'000;
    for (int i = 0; i < 5; ++i) g.add(i * 100 * NS_PER_MS, 0);
    g.round(100 * NS_PER_MS);
    const int64_t start = g.honest_offset();
    int64_t worst = 0;
    for (int r = 0; r < 1'200; ++r) worst = std::max(worst, g.round(100 * NS_PER_MS));
    CHECK(std::abs(g.honest_offset() - start) <= 120 * NS_PER_US);
    CHECK(worst <= 5 * NS_PER_US);
}
