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

// A signed duration in milliseconds with nanosecond digits: "+1234.567891 ms".
inline std::string format_ms(int64_t ns) {
    const char sign = ns < 0 ? '-' : '+';
    const unsigned long long mag =
        ns < 0 ? 0ULL - static_cast<unsigned long long>(ns) : static_cast<unsigned long long>(ns);
    char buf[48];
    std::snprintf(buf, sizeof buf, "%c%llu.%06llu ms", sign, mag / 1'000'000ULL, mag % 1'000'000ULL);
    return buf;
}

}  // namespace berkeley
