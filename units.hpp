// units.hpp - numbers as people write and read them: decimal text to integer
// nanoseconds without floating point (for the command line), and times and
// durations for the console. Pure; tests/test_units.cpp covers it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "clock.hpp"

namespace berkeley {

// Parse a decimal number such as "-1.25" into an integer count of 10^-decimals
// units ("1.5" with decimals 6 is 1500000): how "--offset 1.5" (ms) becomes
// nanoseconds without floating point. Strict: optional sign, digits, at most
// `decimals` fraction digits, no spaces; nullopt on anything else or overflow.
inline std::optional<int64_t> parse_decimal(std::string_view text, int decimals) {
    if (text.empty()) return std::nullopt;
    bool negative = false;
    size_t i = 0;
    if (text[0] == '-' || text[0] == '+') {
        negative = text[0] == '-';
        i = 1;
    }
    __int128 value = 0;
    int fraction_digits = -1;  // -1 until the decimal point is seen
    bool any_digit = false;
    const __int128 limit = static_cast<__int128>(1) << 64;
    for (; i < text.size(); ++i) {
        char ch = text[i];
        if (ch == '.') {
            if (fraction_digits >= 0) return std::nullopt;
            fraction_digits = 0;
            continue;
        }
        if (ch < '0' || ch > '9') return std::nullopt;
        if (fraction_digits >= 0 && ++fraction_digits > decimals) return std::nullopt;
        value = value * 10 + (ch - '0');
        any_digit = true;
        if (value > limit) return std::nullopt;
    }
    if (!any_digit) return std::nullopt;
    for (int d = std::max(fraction_digits, 0); d < decimals; ++d) {
        value *= 10;
        if (value > limit) return std::nullopt;
    }
    if (negative) value = -value;
    if (value > INT64_MAX || value < INT64_MIN) return std::nullopt;
    return static_cast<int64_t>(value);
}

// The inverse of parse_decimal: an integer count of 10^-decimals units as
// the shortest decimal that parses back to it (1500000 with decimals 6 is
// "1.5", 1000000 with decimals 9 is "0.001"): how an option's valid range
// is told to a person in the unit they typed. decimals: 0 to 18.
inline std::string format_decimal(int64_t value, int decimals) {
    const unsigned long long mag =
        value < 0 ? 0ULL - static_cast<unsigned long long>(value) : static_cast<unsigned long long>(value);
    unsigned long long scale = 1;
    for (int d = 0; d < decimals; ++d) scale *= 10;
    std::string out = (value < 0 ? "-" : "") + std::to_string(mag / scale);
    unsigned long long fraction = mag % scale;
    if (fraction == 0) return out;
    int digits = decimals;
    while (fraction % 10 == 0) {
        fraction /= 10;
        --digits;
    }
    const std::string text = std::to_string(fraction);
    return out + "." + std::string(static_cast<size_t>(digits) - text.size(), '0') + text;
}

// Days since 1970-01-01 to a civil date (proleptic Gregorian), after Howard
// Hinnant's civil_from_days: pure, valid for negative days too.
struct CivilDate {
    int64_t year;
    int month, day;
};
constexpr CivilDate civil_from_days(int64_t days) {
    days += 719468;
    const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    const int64_t doe = days - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    const int day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
    const int month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
    return CivilDate{yoe + era * 400 + (month <= 2), month, day};
}

// "YYYY-MM-DD HH:MM:SS.ffffff" in UTC, truncated to the microsecond.
inline std::string format_time(int64_t ns) {
    const int64_t sec = floor_div(ns, NS_PER_S);
    const int64_t us = (ns % NS_PER_S + NS_PER_S) % NS_PER_S / NS_PER_US;
    const int64_t days = floor_div(sec, 86400);
    const int64_t sod = sec - days * 86400;
    const CivilDate d = civil_from_days(days);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04lld-%02d-%02d %02lld:%02lld:%02lld.%06lld",
                  static_cast<long long>(d.year), d.month, d.day, static_cast<long long>(sod / 3600),
                  static_cast<long long>(sod / 60 % 60), static_cast<long long>(sod % 60),
                  static_cast<long long>(us));
    return buf;
}

// A signed duration in the units a person reads: h:mm:ss from a second up
// (to the millisecond, the fraction only when there is one), ms, us or ns
// below: "+0:05:00", "-0:20:00", "+0:00:04.500", "+1.500 ms", "-12.345 us",
// "+7 ns", "+0 ns". analyze.py's fmt_duration prints exactly the same.
inline std::string format_duration(int64_t ns) {
    const char sign = ns < 0 ? '-' : '+';
    const unsigned long long mag =
        ns < 0 ? 0ULL - static_cast<unsigned long long>(ns) : static_cast<unsigned long long>(ns);
    char buf[64];
    // The unit is chosen after rounding: 999.9996 ms prints as "+0:00:01".
    if (mag >= 1'000'000'000ULL || (mag >= 1'000'000ULL && (mag + 500) / 1000 >= 1'000'000ULL)) {
        const unsigned long long total_ms = mag / 1'000'000ULL + (mag % 1'000'000ULL >= 500'000ULL);  // rounded
        const unsigned long long s = total_ms / 1'000, ms = total_ms % 1'000;
        int n = std::snprintf(buf, sizeof buf, "%c%llu:%02llu:%02llu", sign, s / 3600, s / 60 % 60, s % 60);
        if (ms > 0) std::snprintf(buf + n, sizeof buf - static_cast<size_t>(n), ".%03llu", ms);
        return buf;
    }
    // Below a second: three decimals of ms or us, rounded to nearest.
    if (mag >= 1'000'000ULL) {
        const unsigned long long thousandths = (mag + 500) / 1000;  // in us
        std::snprintf(buf, sizeof buf, "%c%llu.%03llu ms", sign, thousandths / 1000, thousandths % 1000);
    } else if (mag >= 1'000ULL) {
        std::snprintf(buf, sizeof buf, "%c%llu.%03llu us", sign, mag / 1000, mag % 1000);
    } else {
        std::snprintf(buf, sizeof buf, "%c%llu ns", sign, mag);
    }
    return buf;
}

// A clock reading as the time of day it shows (UTC), to the microsecond:
// "3:25:00.000150".
inline std::string format_time_of_day(int64_t clock_ns) {
    const int64_t day_ns = 86'400 * NS_PER_S;
    const int64_t in_day = clock_ns - floor_div(clock_ns, day_ns) * day_ns;
    const int64_t s = in_day / NS_PER_S, us = in_day % NS_PER_S / NS_PER_US;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld.%06lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60), static_cast<long long>(us));
    return buf;
}

// "H:MM[:SS[.frac]]" (H 0-23, fraction to the nanosecond) as nanoseconds
// since midnight; nullopt for anything else. "3:25" is 3 h 25 min.
inline std::optional<int64_t> parse_time_of_day(std::string_view text) {
    const size_t c1 = text.find(':');
    if (c1 == std::string_view::npos) return std::nullopt;
    const size_t c2 = text.find(':', c1 + 1);
    const std::string_view h = text.substr(0, c1);
    const std::string_view m = text.substr(c1 + 1, c2 == std::string_view::npos ? std::string_view::npos : c2 - c1 - 1);
    const std::string_view s = c2 == std::string_view::npos ? std::string_view("0") : text.substr(c2 + 1);
    auto digits = [](std::string_view d) {
        return !d.empty() && d.size() <= 2 && std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (!digits(h) || m.size() != 2 || !digits(m)) return std::nullopt;
    if (c2 != std::string_view::npos && (s.size() < 2 || s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' ||
                                         (s.size() > 2 && s[2] != '.')))
        return std::nullopt;
    const auto hours = parse_decimal(h, 0), minutes = parse_decimal(m, 0), seconds = parse_decimal(s, 9);
    if (!hours || !minutes || !seconds || *hours > 23 || *minutes > 59 || *seconds < 0 || *seconds >= 60 * NS_PER_S)
        return std::nullopt;
    return (*hours * 60 + *minutes) * 60 * NS_PER_S + *seconds;
}

}  // namespace berkeley
