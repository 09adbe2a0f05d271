// clock.hpp - the arithmetic of the Berkeley algorithm, the textbook's steps
// in the order of a round (Gusella & Zatti, "The Accuracy of the Clock
// Synchronization Achieved by TEMPO in Berkeley UNIX 4.3BSD", IEEE TSE
// 15(7), 1989): estimate each slave's offset from a probe (Step 1), keep the
// best probe (Step 2), agree on a fault-tolerant average (Step 3), the
// correction for everyone (Step 4), the rate (Step 6) and who votes: read top
// to bottom, this file is the algorithm. Step 2 across rounds (the clock
// filter) is filter.hpp; the clock being corrected and Step 5, how a
// correction is applied, are simclock.hpp. Pure value types and functions:
// no syscalls, no globals, no logging; tests/test_clock.cpp covers them.
// Time is a signed 64-bit count of nanoseconds; products use 128 bits.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
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
// A clock's rate may be trimmed by at most this much (Step 6; applied in simclock.hpp).
constexpr int64_t MAX_TRIM_PPB = 500'000;

// Floor division, so that clock arithmetic is monotonic across zero.
constexpr int64_t floor_div(__int128 a, int64_t b) {
    __int128 q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return static_cast<int64_t>(q);
}

// ---------------------------------------------------------------------------
// Step 1: estimate a slave's offset from one probe.
//
//   master clock:  T1 -------------------------------------------> T4
//                    \ TIME?                               CLOCK /
//                     `------> T2 ..(slave works).. T3 ----------'
//   slave clock:               arrived            answered
//
// Cristian's method: the slave reads its clock once (T2 = T3 = s) and is
// assumed to have read it at the midpoint of the round trip, so
//   offset = s - (T1 + (T4 - T1)/2),   round trip = T4 - T1.
// With two slave readings, when the request arrived (T2) and when the answer
// left (T3), the slave's own time in between drops out (the NTP formula):
//   delay  = (T4 - T1) - (T3 - T2)            the time spent on the wire
//   offset = ((T2 - T1) + (T3 - T4)) / 2 = (T2 - T1) - delay/2
// which is Cristian's formula again when T2 = T3. Either way the estimate is
// off by at most delay/2 (rounded up: the half is floored to whole ns), and
// exactly right when the two directions take equally long.
struct Probe {
    int64_t t1_ns = 0;  // master clock as the request left
    int64_t t2_ns = 0;  // slave clock as the request arrived (or its only reading)
    int64_t t3_ns = 0;  // slave clock as the reply left (= t2 for one reading)
    int64_t t4_ns = 0;  // master clock as the reply arrived

    constexpr Probe(int64_t t1, int64_t t2, int64_t t3, int64_t t4) : t1_ns(t1), t2_ns(t2), t3_ns(t3), t4_ns(t4) {}
    // Cristian's probe: one slave reading s stands for both T2 and T3.
    constexpr Probe(int64_t t1, int64_t s, int64_t t4) : Probe(t1, s, s, t4) {}
};

struct Estimate {
    int64_t offset_ns = 0;  // slave clock minus master clock
    int64_t delay_ns = 0;   // round trip less the slave's own time; the error is at most half of it
};

// nullopt for a reading that makes no sense: a negative delay, the reply
// leaving before the request arrived, or an offset beyond MAX_OFFSET_NS (a
// broken or lying slave, not a clock).
constexpr std::optional<Estimate> estimate_offset(const Probe& p) {
    const __int128 held = static_cast<__int128>(p.t3_ns) - p.t2_ns;
    const __int128 delay = static_cast<__int128>(p.t4_ns) - p.t1_ns - held;
    if (held < 0 || delay < 0 || delay > MAX_OFFSET_NS) return std::nullopt;
    const __int128 offset = static_cast<__int128>(p.t2_ns) - p.t1_ns - delay / 2;
    if (offset > MAX_OFFSET_NS || offset < -MAX_OFFSET_NS) return std::nullopt;
    return Estimate{static_cast<int64_t>(offset), static_cast<int64_t>(delay)};
}

// Step 2: of several probes to one slave keep the one with the smallest delay: it waited least in queues, so its midpoint assumption errs least.
// Ties go to the earlier probe. nullopt when there are no estimates. Across
// rounds each slave's best probes go on into its clock filter (filter.hpp).
inline std::optional<Estimate> best_estimate(std::span<const Estimate> estimates) {
    if (estimates.empty()) return std::nullopt;
    return *std::min_element(estimates.begin(), estimates.end(),
                             [](const Estimate& a, const Estimate& b) { return a.delay_ns < b.delay_ns; });
}

// Step 3: the fault-tolerant average. `offsets` holds the offset from the
// master of every participant that votes (the master's own 0 among them
// when it votes). The centre is their median; the window around it is
// WINDOW_SPREADS robust standard deviations of the readings themselves
// (1.4826 x the median absolute deviation from the median), at least
// MIN_WINDOW_NS. Readings inside the window are averaged; the rest are left
// out (their clocks are still corrected to the result).
// Why this filter: the median and the MAD are set by the majority, whatever
// a minority says, so the window is as wide as the honest clocks are apart:
// the textbook's clocks, 25 minutes apart, are all averaged; an hour-off
// reading among clocks seconds apart is left out; in step, with the honest
// readings a few hundred ns apart, a lie of a microsecond is left out.
// What it guarantees: with fewer than half the readings faulty, the median
// lies within the honest readings, and the average within median +/- window,
// so a faulty minority of f among n moves the agreed time by at most
// f/n x window (plus the honest readings' own spread) in a round.
// What it cannot: a majority of liars decides the median, and with it everything.
// `max_skew_ns` overrides the window (--max-skew): ADAPTIVE_WINDOW for the
// rule above, 0 to keep every reading, or a fixed width.
constexpr int64_t ADAPTIVE_WINDOW = -1;
constexpr int64_t WINDOW_SPREADS = 3;
constexpr int64_t MIN_WINDOW_NS = 250;

struct Agreement {
    int64_t average_ns = 0;      // the agreed offset, relative to the master
    int64_t median_ns = 0;
    int64_t spread_ns = 0;       // robust standard deviation of the readings (1.4826 x MAD)
    int64_t window_ns = 0;       // readings within this of the median were averaged; 0: all
    std::vector<bool> included;  // per offset: did it count in the average
    size_t included_count = 0;
};

namespace detail {
constexpr __int128 abs128(__int128 v) { return v < 0 ? -v : v; }
// A middle value of `sorted` (not empty): of two, the one nearer 0 (the
// master's own reading), the lower on a tie, so with one slave the master judges.
inline int64_t middle_nearer_zero(const std::vector<int64_t>& sorted) {
    const size_t lower = (sorted.size() - 1) / 2;
    if (sorted.size() % 2 == 1 || abs128(sorted[lower + 1]) >= abs128(sorted[lower])) return sorted[lower];
    return sorted[lower + 1];
}
}  // namespace detail

inline Agreement fault_tolerant_average(std::span<const int64_t> offsets, int64_t max_skew_ns = ADAPTIVE_WINDOW) {
    Agreement a;
    a.included.assign(offsets.size(), false);
    if (offsets.empty()) return a;
    std::vector<int64_t> sorted(offsets.begin(), offsets.end());
    std::sort(sorted.begin(), sorted.end());
    a.median_ns = detail::middle_nearer_zero(sorted);
    // Deviations from the median; of two middle ones the larger (keep more, not fewer).
    std::vector<int64_t> deviation;
    for (int64_t v : sorted)
        deviation.push_back(static_cast<int64_t>(std::min<__int128>(detail::abs128(static_cast<__int128>(v) - a.median_ns), INT64_MAX)));
    std::sort(deviation.begin(), deviation.end());
    const __int128 mad = deviation[deviation.size() / 2];
    a.spread_ns = static_cast<int64_t>(std::min<__int128>(mad * 14826 / 10000, INT64_MAX));
    __int128 window = max_skew_ns;
    if (max_skew_ns == ADAPTIVE_WINDOW) window = std::max<__int128>(WINDOW_SPREADS * mad * 14826 / 10000, MIN_WINDOW_NS);
    a.window_ns = static_cast<int64_t>(std::min<__int128>(window, INT64_MAX));
    __int128 sum = 0;
    for (size_t i = 0; i < offsets.size(); ++i) {
        if (window > 0 && detail::abs128(static_cast<__int128>(offsets[i]) - a.median_ns) > window) continue;
        a.included[i] = true;
        a.included_count++;
        sum += offsets[i];
    }
    // Round to nearest, halves away from zero, so the result does not lean.
    const __int128 n = static_cast<__int128>(a.included_count);
    a.average_ns = static_cast<int64_t>((sum >= 0 ? sum + n / 2 : sum - n / 2) / n);
    return a;
}

// With a fixed --max-skew: once the clocks are in step, a reading that only
// a step could reach is not an honest clock's, so the window tightens to the
// step threshold. The adaptive window (and 0, no filter) are left alone, as
// is a zero step threshold (every correction stepped).
constexpr int64_t skew_limit(int64_t max_skew_ns, int64_t step_threshold_ns, bool in_step) {
    if (!in_step || max_skew_ns <= 0 || step_threshold_ns == 0) return max_skew_ns;
    return std::min(max_skew_ns, step_threshold_ns);
}

// Step 4: the correction each participant must apply: the agreed offset
// minus its own. Relative, never an absolute time, so the message's own
// transit time does not matter. For the master (offset 0) it is the average.
// Both arguments are within MAX_OFFSET_NS, so the difference cannot overflow.
constexpr int64_t correction_for(int64_t average_ns, int64_t offset_ns) {
    return average_ns - offset_ns;
}

// ---------------------------------------------------------------------------
// Step 5: each participant adds its correction to its clock, stepped or
// slewed, never back once in step: simclock.hpp's apply_correction.

// ---------------------------------------------------------------------------
// Step 6, frequency. The slope of a slave's clock filter (Step 2 across
// rounds: its samples carried forward through every correction and rate
// change) says how much faster than the master it runs, o/t.
// - Each slave takes the master's rate: its rate changes by -gain x o/t.
//   The gain is 1 at first (lock in one round), then 1/2, 1/3, down to
//   1/RATE_GAIN_MIN_DIVISOR, an average over the last few measurements. It
//   is measured against the master every round, so noise cannot make it
//   wander off.
// - The master is the group's frequency reference, but the group's rate is
//   its majority's: the master steers its own rate toward the median of the
//   rates whose readings were averaged (its own 0 among them when it votes),
//   slowly, with time constant MASTER_RATE_TAU_NS. One round's noise, or a
//   minority's lies, move it by little each round; a master whose oscillator
//   is the odd one out is still brought to the others' rate.
// The whole group's rate moves only through the master, and slowly: a rate
// learned from each clock's own corrections, as before, let every round's
// noise and a liar's steady push walk the whole group's rate away.
constexpr uint32_t RATE_GAIN_MIN_DIVISOR = 4;
constexpr int64_t MASTER_RATE_TAU_NS = 60 * NS_PER_S;

// The rate of a clock relative to the master (ppb, positive: faster), from
// its offset measured `since_ns` after both were corrected to one time.
// nullopt when it cannot be a rate: no time passed, or beyond MAX_RATE_PPB.
constexpr std::optional<int64_t> relative_rate_ppb(int64_t offset_ns, int64_t since_ns) {
    if (since_ns <= 0) return std::nullopt;
    const __int128 rate = static_cast<__int128>(offset_ns) * NS_PER_S / since_ns;
    if (rate > MAX_RATE_PPB || rate < -MAX_RATE_PPB) return std::nullopt;
    return static_cast<int64_t>(rate);
}

// The group's rate relative to the master: the median (of two middle ones
// the nearer the master's). 0 when nobody's rate is known.
inline int64_t agreed_rate_ppb(std::span<const int64_t> rates_ppb) {
    if (rates_ppb.empty()) return 0;
    std::vector<int64_t> sorted(rates_ppb.begin(), rates_ppb.end());
    std::sort(sorted.begin(), sorted.end());
    return detail::middle_nearer_zero(sorted);
}

// A slave's change of rate, running `rate_ppb` relative to the master, at its
// `updates`-th rate correction: toward the master's rate.
constexpr int64_t rate_change_ppb(int64_t rate_ppb, uint32_t updates) {
    const int64_t divisor = std::min<uint32_t>(updates, RATE_GAIN_MIN_DIVISOR - 1) + 1;
    return -std::clamp<int64_t>(rate_ppb, -2 * MAX_TRIM_PPB, 2 * MAX_TRIM_PPB) / divisor;
}

// The master's own change of rate toward the group's, `interval_ns` after
// the last: a fraction interval / (interval + tau) of the difference.
constexpr int64_t master_rate_change_ppb(int64_t group_rate_ppb, int64_t interval_ns) {
    if (interval_ns <= 0) return 0;
    const __int128 rate = std::clamp<int64_t>(group_rate_ppb, -2 * MAX_TRIM_PPB, 2 * MAX_TRIM_PPB);
    return static_cast<int64_t>(rate * interval_ns / (static_cast<__int128>(interval_ns) + MASTER_RATE_TAU_NS));
}

// ---------------------------------------------------------------------------
// A whole round's arithmetic, Steps 3, 4 and 6 together, as the master runs it.
// Participant 0 is the master itself (offset 0 by definition).
// Who votes: when the master is in step, it and the slaves in step with it;
// a newcomer is brought to their time and votes from the next round on. A
// master that is not in step (it has just started) lets the slaves in step
// decide when they are a majority of the slaves, so a restarted master
// is brought to the time its in-step slaves keep, not they to its; otherwise
// (a fresh start, or a few claiming to be in step) everyone votes, as in the
// textbook's round.
struct Reading {
    int64_t offset_ns = 0;            // best estimate, relative to the master
    bool in_step = false;             // has taken corrections before
    std::optional<int64_t> rate_ppb;  // relative to the master, when its last correction settled
    uint32_t rate_updates = 0;        // rate changes taken so far (the gain)
};

struct Decision {
    bool votes = false;
    bool included = false;                   // its reading counted in the average
    int64_t correction_ns = 0;               // Step 4
    std::optional<int64_t> rate_change_ppb;  // Step 6, when its rate and the group's are known
};

struct RoundResult {
    Agreement time;                   // over the voters only
    std::optional<int64_t> rate_ppb;  // the group's rate relative to the master, when known
    std::vector<Decision> each;       // per reading, the master first
};

// `interval_ns`: the time since the last round, for the master's own rate.
inline RoundResult agree_round(std::span<const Reading> readings, int64_t interval_ns,
                               int64_t max_skew_ns = ADAPTIVE_WINDOW) {
    RoundResult r;
    r.each.resize(readings.size());
    const auto slaves_in_step = readings.empty() ? size_t{0} : static_cast<size_t>(std::count_if(
        readings.begin() + 1, readings.end(), [](const Reading& x) { return x.in_step; }));
    const bool only_in_step =
        !readings.empty() && (readings[0].in_step || 2 * slaves_in_step > readings.size() - 1);
    std::vector<int64_t> offsets;
    std::vector<size_t> voter;  // offsets[k] is readings[voter[k]]
    for (size_t i = 0; i < readings.size(); ++i) {
        if (only_in_step && !readings[i].in_step) continue;
        r.each[i].votes = true;
        voter.push_back(i);
        offsets.push_back(readings[i].offset_ns);
    }
    // Two voters in step cannot outvote each other, and the spread of two
    // says nothing: the median, the master's own reading, decides alone.
    // At a fresh start two clocks simply average, as the textbook does.
    if (offsets.size() == 2 && only_in_step && max_skew_ns == ADAPTIVE_WINDOW) max_skew_ns = MIN_WINDOW_NS;
    r.time = fault_tolerant_average(offsets, max_skew_ns);
    std::vector<int64_t> rates;  // only from readings that agreed with the majority
    for (size_t k = 0; k < voter.size(); ++k) {
        Decision& d = r.each[voter[k]];
        d.included = r.time.included[k];
        const Reading& x = readings[voter[k]];
        if (d.included && x.rate_ppb) rates.push_back(*x.rate_ppb);
    }
    if (!rates.empty()) r.rate_ppb = agreed_rate_ppb(rates);
    for (size_t i = 0; i < readings.size(); ++i) {
        r.each[i].correction_ns = correction_for(r.time.average_ns, readings[i].offset_ns);
        if (i == 0 && r.rate_ppb && readings[0].rate_ppb)
            r.each[0].rate_change_ppb = master_rate_change_ppb(*r.rate_ppb, interval_ns);
        else if (i > 0 && readings[i].rate_ppb)
            r.each[i].rate_change_ppb = rate_change_ppb(*readings[i].rate_ppb, readings[i].rate_updates);
    }
    return r;
}

}  // namespace berkeley
