// test_units.cpp - units.hpp: decimal text to integer units, civil dates,
// and the console's time and duration formats. Table-driven.
#include <doctest/doctest.h>

#include "units.hpp"

#include <cstdint>
#include <limits>
#include <string>

using namespace berkeley;

namespace {
constexpr int64_t I64_MIN = std::numeric_limits<int64_t>::min();
constexpr int64_t I64_MAX = std::numeric_limits<int64_t>::max();
constexpr int64_t NS_PER_DAY = 86'400 * NS_PER_S;
// A real-looking CLOCK_REALTIME reading: 2025-11-30 00:00:00 UTC.
constexpr int64_t EPOCH_2025_NS = 1'764'460'800LL * NS_PER_S;
}  // namespace

TEST_CASE("parse_decimal") {
    struct Row {
        const char* text;
        int decimals;
        std::optional<int64_t> want;
    };
    const std::vector<Row> rows = {
        {"1.5", 6, 1'500'000},
        {"-1.5", 6, -1'500'000},
        {"-0.000001", 6, -1},
        {"0.000001", 6, 1},
        {"+2", 6, 2'000'000},
        {"2", 6, 2'000'000},
        {"0", 6, 0},
        {"-0", 6, 0},
        {"0.0", 6, 0},
        {".5", 6, 500'000},
        {"-.5", 6, -500'000},
        {"5.", 6, 5'000'000},
        {"1.25", 2, 125},
        {"007", 0, 7},
        {"7", 0, 7},
        {"1.2345678", 6, std::nullopt},  // too many decimals
        {"0.0000000", 6, std::nullopt},  // too many decimals, even zeros
        {"5.0", 0, std::nullopt},
        {"", 6, std::nullopt},
        {"-", 6, std::nullopt},
        {"+", 6, std::nullopt},
        {".", 6, std::nullopt},
        {"-.", 6, std::nullopt},
        {"1.2.3", 6, std::nullopt},
        {"1..2", 6, std::nullopt},
        {"1e3", 6, std::nullopt},
        {" 1", 6, std::nullopt},
        {"1 ", 6, std::nullopt},
        {"--1", 6, std::nullopt},
        {"+-1", 6, std::nullopt},
        {"1-", 6, std::nullopt},
        {"0x10", 6, std::nullopt},
        {"1,5", 6, std::nullopt},
        {"abc", 6, std::nullopt},
        // overflow: 1e20 ms in ns
        {"100000000000000000000", 6, std::nullopt},
        {"-100000000000000000000", 6, std::nullopt},
        {"99999999999999999999999999999999999999999999999999", 0, std::nullopt},
        {"9223372036854.775807", 6, I64_MAX},
        {"9223372036854.775808", 6, std::nullopt},
        {"-9223372036854.775808", 6, I64_MIN},
        {"-9223372036854.775809", 6, std::nullopt},
        {"9223372036854775807", 0, I64_MAX},
        {"9223372036854775808", 0, std::nullopt},
        {"-9223372036854775808", 0, I64_MIN},
        {"-9223372036854775809", 0, std::nullopt},
        {"18446744073709551616", 0, std::nullopt},  // 2^64
        {"-18446744073709551616", 0, std::nullopt},
        {"9223372036854776", 6, std::nullopt},  // overflows only when scaled
        {"9223372036854", 6, 9'223'372'036'854'000'000},
    };
    for (const Row& r : rows) {
        CAPTURE(std::string(r.text));
        CAPTURE(r.decimals);
        const auto got = parse_decimal(r.text, r.decimals);
        CHECK(got.has_value() == r.want.has_value());
        if (got && r.want) CHECK(*got == *r.want);
    }
}

TEST_CASE("format_decimal: the shortest decimal that parse_decimal reads back") {
    struct Row {
        int64_t value;
        int decimals;
        const char* want;
    };
    const Row rows[] = {
        {0, 0, "0"},
        {0, 9, "0"},
        {7, 0, "7"},
        {-7, 0, "-7"},
        {1'500'000, 6, "1.5"},
        {-1'500'000, 6, "-1.5"},
        {1, 6, "0.000001"},
        {-1, 6, "-0.000001"},
        {1'000'000, 9, "0.001"},
        {86'400 * NS_PER_S, 9, "86400"},
        {1, 3, "0.001"},
        {100'000'000, 3, "100000"},
        {-100'000'000, 3, "-100000"},
        {1'020'304, 6, "1.020304"},
        {1'020'300, 6, "1.0203"},
        {I64_MAX, 0, "9223372036854775807"},
        {I64_MIN, 0, "-9223372036854775808"},
        {I64_MAX, 6, "9223372036854.775807"},
        {I64_MIN, 6, "-9223372036854.775808"},
        {I64_MIN, 9, "-9223372036.854775808"},
    };
    for (const Row& r : rows) {
        CAPTURE(r.value);
        CAPTURE(r.decimals);
        CHECK(format_decimal(r.value, r.decimals) == std::string(r.want));
        CHECK(parse_decimal(r.want, r.decimals) == r.value);
    }
    // Round trip over values of every size and sign.
    bool round_trip = true;
    for (int decimals : {0, 3, 6, 9}) {
        for (int64_t v = 1; v > 0 && v < I64_MAX / 7; v = v * 7 + 3) {
            for (int64_t x : {v, -v, v - 1, 1 - v})
                if (parse_decimal(format_decimal(x, decimals), decimals) != x) round_trip = false;
        }
    }
    CHECK(round_trip);
}

TEST_CASE("civil_from_days") {
    struct Row {
        int64_t days;
        int64_t year;
        int month, day;
    };
    const Row rows[] = {
        {0, 1970, 1, 1},         {-1, 1969, 12, 31},      {31, 1970, 2, 1},        {59, 1970, 3, 1},
        {365, 1971, 1, 1},       {11016, 2000, 2, 29},    {11017, 2000, 3, 1},     {-25509, 1900, 2, 28},
        {-25508, 1900, 3, 1},    {19782, 2024, 2, 29},    {19783, 2024, 3, 1},     {47541, 2100, 3, 1},
        {20422, 2025, 11, 30},   {20454, 2026, 1, 1},     {-135080, 1600, 3, 1},   {-719468, 0, 3, 1},
        {-719469, 0, 2, 29},     {-719528, 0, 1, 1},      {-719529, -1, 12, 31},
    };
    for (const Row& r : rows) {
        CAPTURE(r.days);
        const CivilDate d = civil_from_days(r.days);
        CHECK(d.year == r.year);
        CHECK(d.month == r.month);
        CHECK(d.day == r.day);
    }
    // Consecutive days never skip or repeat a date across 1600..2400.
    bool consecutive = true;
    CivilDate prev = civil_from_days(-135'080 - 1);
    for (int64_t days = -135'080; days < 157'000; ++days) {
        const CivilDate d = civil_from_days(days);
        const bool next_day = d.year == prev.year && d.month == prev.month && d.day == prev.day + 1;
        const bool next_month = d.year == prev.year && d.month == prev.month + 1 && d.day == 1;
        const bool next_year = d.year == prev.year + 1 && d.month == 1 && d.day == 1 && prev.month == 12 &&
                               prev.day == 31;
        if (!next_day && !next_month && !next_year) consecutive = false;
        prev = d;
    }
    CHECK(consecutive);
}

TEST_CASE("format_time") {
    struct Row {
        int64_t ns;
        const char* want;
    };
    const Row rows[] = {
        {0, "1970-01-01 00:00:00.000000"},
        {1, "1970-01-01 00:00:00.000000"},           // truncated to the microsecond
        {999, "1970-01-01 00:00:00.000000"},
        {1000, "1970-01-01 00:00:00.000001"},
        {1999, "1970-01-01 00:00:00.000001"},
        {999'999'999, "1970-01-01 00:00:00.999999"},
        {-1, "1969-12-31 23:59:59.999999"},
        {-1000, "1969-12-31 23:59:59.999999"},
        {-1001, "1969-12-31 23:59:59.999998"},
        {-NS_PER_S, "1969-12-31 23:59:59.000000"},
        {-NS_PER_DAY, "1969-12-31 00:00:00.000000"},
        {-14'182'940LL * NS_PER_S, "1969-07-20 20:17:40.000000"},
        {EPOCH_2025_NS, "2025-11-30 00:00:00.000000"},
        {1'767'225'600LL * NS_PER_S + 123'456'789, "2026-01-01 00:00:00.123456"},
        {1'784'118'896LL * NS_PER_S + 999'999, "2026-07-15 12:34:56.000999"},
        {1'709'164'800LL * NS_PER_S, "2024-02-29 00:00:00.000000"},
        {1'709'251'199LL * NS_PER_S + 999'999'999, "2024-02-29 23:59:59.999999"},
        {951'782'400LL * NS_PER_S, "2000-02-29 00:00:00.000000"},
        {I64_MAX, "2262-04-11 23:47:16.854775"},
        {I64_MIN + NS_PER_S, "1677-09-21 00:12:44.145224"},
    };
    for (const Row& r : rows) {
        CAPTURE(r.ns);
        CHECK(format_time(r.ns) == std::string(r.want));
    }
}

TEST_CASE("format_time(INT64_MIN): no signed overflow") {
    CHECK(format_time(I64_MIN) == std::string("1677-09-21 00:12:43.145224"));
}

TEST_CASE("format_duration: h:mm:ss from a second, ms / us / ns below, always signed") {
    struct Row {
        int64_t ns;
        const char* want;
    };
    const Row rows[] = {
        {0, "+0 ns"},
        {7, "+7 ns"},
        {-999, "-999 ns"},
        {1'000, "+1.000 us"},
        {12'345, "+12.345 us"},
        {-999'999, "-999.999 us"},
        {1'000'000, "+1.000 ms"},
        {1'500'000, "+1.500 ms"},
        {999'999'499, "+999.999 ms"},
        {999'999'500, "+0:00:01"},  // rounds up to a second, and takes a second's format
        {NS_PER_S, "+0:00:01"},
        {59'900'000'000, "+0:00:59.900"},
        {300 * NS_PER_S, "+0:05:00"},
        {-1'200 * NS_PER_S, "-0:20:00"},
        {900 * NS_PER_S, "+0:15:00"},
        {4'508'406'123, "+0:00:04.508"},
        {4'508'500'000, "+0:00:04.509"},
        {300 * NS_PER_S + 499'999, "+0:05:00"},  // an estimate's microseconds do not clutter minutes
        {3'600 * NS_PER_S, "+1:00:00"},
        {100'000 * NS_PER_S, "+27:46:40"},
        {NS_PER_S + 999'999'999, "+0:00:02"},  // rounds up to the next whole second
        {1'500 * NS_PER_S - 50'000, "+0:25:00"},  // 24:59.99995
        {I64_MIN, "-2562047:47:16.855"},
        {I64_MAX, "+2562047:47:16.855"},
    };
    for (const Row& r : rows) {
        CAPTURE(r.ns);
        CHECK(format_duration(r.ns) == std::string(r.want));
    }
}

TEST_CASE("parse_time_of_day and format_time_of_day") {
    const int64_t MIN = 60 * NS_PER_S;
    CHECK(*parse_time_of_day("3:25") == 205 * MIN);
    CHECK(*parse_time_of_day("03:25") == 205 * MIN);
    CHECK(*parse_time_of_day("2:50:30") == 170 * MIN + 30 * NS_PER_S);
    CHECK(*parse_time_of_day("23:59:59.999999999") == 1440 * MIN - 1);
    CHECK(*parse_time_of_day("0:00") == 0);
    for (const char* bad : {"", "3", "3:5", "24:00", "3:60", "3:25:60", "3:25:5", "3:25:05x", "-1:00", "3:25:", ":25",
                            "3:25:05.1234567891", "123:00", "3:25:+5"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_time_of_day(bad).has_value());
    }
    CHECK(format_time_of_day(EPOCH_2025_NS + 205 * MIN + 150'000) == "3:25:00.000150");
    CHECK(format_time_of_day(EPOCH_2025_NS - 1) == "23:59:59.999999");
    CHECK(format_time_of_day(-NS_PER_S) == "23:59:59.000000");
}
