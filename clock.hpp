// clock.hpp - the arithmetic of the Berkeley algorithm and the simulated clock.
// Pure value types and functions: no syscalls, no globals, no logging. The
// callers (master.cpp, slave.cpp) read the host clocks and pass the readings
// in, so every step here is covered by tests/test_clock.cpp.
// Time is a signed 64-bit count of nanoseconds; products use 128 bits.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace berkeley {

constexpr int64_t NS_PER_US = 1'000;
constexpr int64_t NS_PER_MS = 1'000'000;
constexpr int64_t NS_PER_S = 1'000'000'000;
constexpr int64_t PPB_PER_PPM = 1'000;

// No clock offset, reading or correction may exceed this (about 100 years),
// so that the difference of any two stays far inside int64_t.
constexpr int64_t MAX_OFFSET_NS = 100LL * 365 * 24 * 3600 * NS_PER_S;
// A simulated clock may run at most this much fast or slow (parts per billion).
constexpr int64_t MAX_RATE_PPB = 100'000'000;  // 10 %

// Floor division, so that clock arithmetic is monotonic across zero.
constexpr int64_t floor_div(__int128 a, int64_t b) {
    __int128 q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return static_cast<int64_t>(q);
}

// ---------------------------------------------------------------------------
// The simulated clock. Every process pretends to have a clock of its own:
//   clock(real) = anchor_clock + (real - anchor_real) * (1 + rate_ppb / 1e9)
// where `real` is the host's CLOCK_REALTIME. All processes on one host share
// `real`, which is what lets a run be verified exactly: the true offset of a
// clock is clock - real, read at the same instant.
struct SimClock {
    int64_t anchor_real_ns = 0;   // host time of the last re-anchoring
    int64_t anchor_clock_ns = 0;  // this clock's reading at that host time
    int64_t rate_ppb = 0;         // how much faster than the host it runs
};

constexpr SimClock make_clock(int64_t real_ns, int64_t offset_ns, int64_t rate_ppb) {
    return SimClock{real_ns, real_ns + offset_ns, rate_ppb};
}

constexpr int64_t read_clock(const SimClock& c, int64_t real_ns) {
    __int128 elapsed = static_cast<__int128>(real_ns) - c.anchor_real_ns;
    return c.anchor_clock_ns + floor_div(elapsed * (NS_PER_S + c.rate_ppb), NS_PER_S);
}

// Step the clock by `correction_ns` at host time `real_ns`. The step goes
// into the anchor's clock reading, not a new anchor, so no drift is ever
// re-rounded: a thousand steps add up to exactly their sum. Returns nullopt
// (the caller keeps the old clock) if the result would leave +/-MAX_OFFSET_NS.
constexpr std::optional<SimClock> step_clock(const SimClock& c, int64_t real_ns,
                                             int64_t correction_ns) {
    if (correction_ns > 2 * MAX_OFFSET_NS || correction_ns < -2 * MAX_OFFSET_NS) return std::nullopt;
    const __int128 offset_after = static_cast<__int128>(read_clock(c, real_ns)) + correction_ns - real_ns;
    if (offset_after > MAX_OFFSET_NS || offset_after < -MAX_OFFSET_NS) return std::nullopt;
    return SimClock{c.anchor_real_ns, c.anchor_clock_ns + correction_ns, c.rate_ppb};
}

// A random clock for a process started without --offset/--drift: offset
// uniform in +/-5 s, rate uniform in +/-50 ppm; the same seed gives the same clock.
struct ClockParams {
    int64_t offset_ns = 0;
    int64_t rate_ppb = 0;
};
constexpr int64_t DEFAULT_OFFSET_RANGE_NS = 5 * NS_PER_S;
constexpr int64_t DEFAULT_DRIFT_RANGE_PPB = 50 * PPB_PER_PPM;

inline ClockParams random_clock_params(uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int64_t> offset(-DEFAULT_OFFSET_RANGE_NS, DEFAULT_OFFSET_RANGE_NS);
    std::uniform_int_distribution<int64_t> rate(-DEFAULT_DRIFT_RANGE_PPB, DEFAULT_DRIFT_RANGE_PPB);
    ClockParams p;
    p.offset_ns = offset(rng);
    p.rate_ppb = rate(rng);
    return p;
}

// ---------------------------------------------------------------------------
// Step 1 of a round: estimate a slave's offset from one probe (Cristian).
//
//   master clock:  t0 ------------------------------------> t1
//                     \ TIME?                       CLOCK s /
//                      `-------------> s -------------------'
//   slave clock:                       read here
//
// The slave is assumed to have read its clock `s` at the midpoint of the
// round trip, when the master's clock read t0 + rtt/2. So
//   offset = s - (t0 + rtt/2),  rtt = t1 - t0,
// and the estimate is off by at most rtt/2 (rounded up: the midpoint is
// truncated to a whole nanosecond).
struct Probe {
    int64_t t0_ns = 0;     // master clock just before the request was sent
    int64_t slave_ns = 0;  // the slave's clock reading in its reply
    int64_t t1_ns = 0;     // master clock just after the reply was read
};

struct Estimate {
    int64_t offset_ns = 0;  // slave clock minus master clock
    int64_t rtt_ns = 0;     // round trip, the bound on the estimate's error
};

// nullopt for a reading that makes no sense: a negative round trip, or an
// offset beyond MAX_OFFSET_NS (a broken or lying slave, not a clock).
constexpr std::optional<Estimate> estimate_offset(const Probe& p) {
    __int128 rtt = static_cast<__int128>(p.t1_ns) - p.t0_ns;
    if (rtt < 0 || rtt > MAX_OFFSET_NS) return std::nullopt;
    __int128 midpoint = p.t0_ns + rtt / 2;
    __int128 offset = static_cast<__int128>(p.slave_ns) - midpoint;
    if (offset > MAX_OFFSET_NS || offset < -MAX_OFFSET_NS) return std::nullopt;
    return Estimate{static_cast<int64_t>(offset), static_cast<int64_t>(rtt)};
}

// Step 2: of several probes to one slave keep the one with the smallest round
// trip: it waited least in queues, so its midpoint assumption errs least.
// Ties go to the earlier probe. nullopt when there are no estimates.
inline std::optional<Estimate> best_estimate(std::span<const Estimate> estimates) {
    if (estimates.empty()) return std::nullopt;
    return *std::min_element(estimates.begin(), estimates.end(),
                             [](const Estimate& a, const Estimate& b) { return a.rtt_ns < b.rtt_ns; });
}

// Step 3: the fault-tolerant average. `offsets` holds every participant's
// offset from the master, the master's own 0 among them. Readings further
// than `max_skew_ns` from the median are left out (a broken or lying clock
// cannot pull the others away); the rest are averaged. max_skew_ns == 0 keeps
// all. The median is the lower middle reading, so at least one is kept.
struct Agreement {
    int64_t average_ns = 0;      // the agreed offset, relative to the master
    int64_t median_ns = 0;
    std::vector<bool> included;  // per offset: did it count in the average
    size_t included_count = 0;
};

inline Agreement fault_tolerant_average(std::span<const int64_t> offsets, int64_t max_skew_ns) {
    Agreement a;
    a.included.assign(offsets.size(), false);
    if (offsets.empty()) return a;
    std::vector<int64_t> sorted(offsets.begin(), offsets.end());
    std::sort(sorted.begin(), sorted.end());
    a.median_ns = sorted[(sorted.size() - 1) / 2];
    __int128 sum = 0;
    for (size_t i = 0; i < offsets.size(); ++i) {
        __int128 distance = static_cast<__int128>(offsets[i]) - a.median_ns;
        if (distance < 0) distance = -distance;
        if (max_skew_ns > 0 && distance > max_skew_ns) continue;
        a.included[i] = true;
        a.included_count++;
        sum += offsets[i];
    }
    // Round to nearest, halves away from zero, so the result does not lean.
    __int128 n = static_cast<__int128>(a.included_count);
    __int128 q = (sum >= 0 ? sum + n / 2 : sum - n / 2) / n;
    a.average_ns = static_cast<int64_t>(q);
    return a;
}

// Step 4: the correction each participant must apply: the agreed offset
// minus its own. Relative, never an absolute time, so the message's own
// transit time does not matter. For the master (offset 0) it is the average.
// Both arguments are within MAX_OFFSET_NS, so the difference cannot overflow.
constexpr int64_t correction_for(int64_t average_ns, int64_t offset_ns) {
    return average_ns - offset_ns;
}

// ---------------------------------------------------------------------------
// Units and display.

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
