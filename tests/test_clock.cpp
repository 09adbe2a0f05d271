// test_clock.cpp - the pure arithmetic of clock.hpp, in its order: the steps
// of a Berkeley round, then the simulated clock and its discipline. Table-driven
// where the cases are data; each table row is CAPTUREd so a failure names it.
#include <doctest/doctest.h>

#include "clock.hpp"

#include <cstdint>
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
        {-d.step_threshold_ns, Applied::Step},
        {3 * 3600 * NS_PER_S, Applied::Step},
    };
    for (const Case& k : cases) {
        CAPTURE(k.correction_ns);
        auto r = apply_correction(base, at, k.correction_ns, d);
        REQUIRE(r);
        CHECK(r->how == k.how);
        const int64_t jump = read_clock(r->clock, at) - read_clock(base, at);
        CHECK(jump == (k.how == Applied::Step ? k.correction_ns : 0));
        CHECK(read_clock(r->clock, at + 1000 * NS_PER_S) - read_clock(base, at + 1000 * NS_PER_S) == k.correction_ns);
    }
    // Threshold 0 steps everything; out-of-range corrections are refused either way.
    CHECK(apply_correction(base, at, 1, Discipline{0, DEFAULT_SLEW_RATE_PPB, true})->how == Applied::Step);
    // A clock's first correction is stepped, however small: it is not in step yet.
    const SimClock fresh = make_clock(EPOCH_2025_NS, 0, 0);
    CHECK(apply_correction(fresh, at, 1, d)->how == Applied::Step);
    CHECK(apply_correction(fresh, at, 1, d)->clock.corrected);
    CHECK_FALSE(apply_correction(base, at, 2 * MAX_OFFSET_NS + 1, d));
    CHECK_FALSE(apply_correction(base, at, MAX_OFFSET_NS + 1, Discipline{INT64_MAX, 1, true}));
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
        auto r = apply_correction(c, real, corr, d);
        REQUIRE(r);
        c = r->clock;
        total += corr;
    }
    const int64_t end = real + NS_PER_S;
    CHECK(read_clock(c, end) == read_clock(untouched, end) + total);
}

namespace {
// A clock with `drift_ppb` corrected every `interval_ns` by an ideal master
// (the exact offset from the host), plus `noise_ns` of deterministic noise.
struct Loop {
    SimClock clock;
    int64_t real;
    Discipline d;
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    int64_t noise(int64_t amplitude) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        if (amplitude == 0) return 0;
        return static_cast<int64_t>((rng >> 33) % static_cast<uint64_t>(2 * amplitude + 1)) - amplitude;
    }
    int64_t round(int64_t interval_ns, int64_t noise_ns) {
        real += interval_ns;
        const int64_t offset = read_clock(clock, real) - real;
        auto r = apply_correction(clock, real, -offset + noise(noise_ns), d);
        REQUIRE(r);
        clock = r->clock;
        return offset;
    }
};
}  // namespace

TEST_CASE("frequency discipline learns the drift and stops the clocks drifting apart") {
    for (int64_t drift : {int64_t{40'000}, int64_t{-50'000}, int64_t{7}, int64_t{0}}) {
        CAPTURE(drift);
        Loop loop{make_clock(EPOCH_2025_NS, 3 * NS_PER_S, drift), EPOCH_2025_NS, Discipline{}};
        loop.round(NS_PER_S, 0);  // the first correction is a 3 s step: not learned from
        CHECK(loop.clock.trim_ppb == 0);
        for (int i = 0; i < 40; ++i) loop.round(NS_PER_S, 0);
        CHECK(std::abs(loop.clock.trim_ppb + drift) <= 50);
        // Once learned, a second without correction drifts apart by < 0.1 us.
        CHECK(std::abs(loop.round(NS_PER_S, 0)) < 100);
        // And without frequency discipline the same clock keeps drifting by drift x 1 s.
        Loop plain{make_clock(EPOCH_2025_NS, 0, drift), EPOCH_2025_NS, Discipline{}};
        plain.d.frequency = false;
        for (int i = 0; i < 10; ++i) plain.round(NS_PER_S, 0);
        CHECK(std::abs(plain.round(NS_PER_S, 0) - drift) <= 1);
    }
}

TEST_CASE("frequency discipline under noise: no oscillation, no runaway, bounded") {
    SUBCASE("+/-2 us of noise every second") {
        Loop loop{make_clock(EPOCH_2025_NS, 0, 30'000), EPOCH_2025_NS, Discipline{}};
        for (int i = 0; i < 50; ++i) loop.round(NS_PER_S, 2'000);
        int64_t worst_trim_error = 0, worst_offset = 0;
        for (int i = 0; i < 2000; ++i) {
            worst_offset = std::max(worst_offset, std::abs(loop.round(NS_PER_S, 2'000)));
            worst_trim_error = std::max(worst_trim_error, std::abs(loop.clock.trim_ppb + 30'000));
        }
        CHECK(worst_trim_error < 5'000);  // 5 ppm, against 2 us / 1 s of noise
        CHECK(worst_offset < 10'000);     // the clock stays within 10 us
    }
    SUBCASE("short intervals do not amplify the noise") {
        Loop loop{make_clock(EPOCH_2025_NS, 0, -20'000), EPOCH_2025_NS, Discipline{}};
        for (int i = 0; i < 5000; ++i) loop.round(10 * NS_PER_MS, 2'000);
        CHECK(std::abs(loop.clock.trim_ppb - 20'000) < 10'000);
    }
    SUBCASE("large corrections, unfinished slews and steps teach nothing") {
        const SimClock start = make_clock(EPOCH_2025_NS, 0, 0);
        auto first = apply_correction(start, EPOCH_2025_NS + NS_PER_S, 1'000, Discipline{});
        REQUIRE(first);
        // 100 ms one second later: too large to be drift (100000 ppm).
        auto big = apply_correction(first->clock, EPOCH_2025_NS + 2 * NS_PER_S, 100 * NS_PER_MS, Discipline{});
        REQUIRE(big);
        CHECK(big->clock.trim_ppb == 0);
        // 100 us while that 100 ms slew (200 s long) is still running: not learned.
        auto during = apply_correction(big->clock, EPOCH_2025_NS + 3 * NS_PER_S, 100'000, Discipline{});
        REQUIRE(during);
        CHECK(during->clock.trim_ppb == 0);
        // A step keeps the trim as it was.
        SimClock trimmed = first->clock;
        trimmed.trim_ppb = 1'234;
        auto stepped = apply_correction(trimmed, EPOCH_2025_NS + 9 * NS_PER_S, 5 * NS_PER_S, Discipline{});
        REQUIRE(stepped);
        CHECK(stepped->how == Applied::Step);
        CHECK(stepped->clock.trim_ppb == 1'234);
    }
    SUBCASE("an adversarial sequence cannot push the trim past +/-500 ppm") {
        SimClock c = make_clock(EPOCH_2025_NS, 0, 0);
        int64_t real = EPOCH_2025_NS;
        for (int i = 0; i < 1000; ++i) {
            real += NS_PER_S;
            auto r = apply_correction(c, real, (i % 7 == 0 ? -1 : 1) * 499 * NS_PER_US, Discipline{});
            REQUIRE(r);
            c = r->clock;
            CHECK(std::abs(c.trim_ppb) <= MAX_TRIM_PPB);
        }
    }
    CHECK(next_trim(0, 1'000, 0) == 0);
    CHECK(next_trim(0, 1'000, -5) == 0);
    CHECK(next_trim(0, 1'000, NS_PER_S) == 500);          // 1 us over 1 s + tau 1 s
    CHECK(next_trim(MAX_TRIM_PPB, 400'000, NS_PER_S) == MAX_TRIM_PPB);
}
