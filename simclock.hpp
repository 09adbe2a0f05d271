// simclock.hpp - the clock being corrected: every process simulates one on
// top of the host's clock (so that a run on one host can be verified
// exactly), and Step 5, how it takes a correction (step or slew, never back
// once in step) and a change of rate. Pure: tests/test_clock.cpp covers it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>

#include "clock.hpp"

namespace berkeley {

// ---------------------------------------------------------------------------
// The simulated clock. Every process pretends to have a clock of its own:
//   clock(real) = anchor_clock + (real - anchor_real) * (1 + (rate + trim) / 1e9)
//                 + the part of a slew applied so far
// where `real` is the host's CLOCK_REALTIME. All processes on one host share
// `real`, which is what lets a run be verified exactly: the true offset of a
// clock is clock - real, read at the same instant. The anchor keeps the
// sub-nanosecond fraction too, so re-anchoring never rounds anything away.
struct SimClock {
    int64_t anchor_real_ns = 0;   // host time of the last correction (or the start)
    int64_t anchor_clock_ns = 0;  // this clock's reading then: whole nanoseconds
    int64_t anchor_frac = 0;      //   and the fraction, in 1e-9 ns, [0, 1e9)
    int64_t rate_ppb = 0;         // simulated drift: how much faster than the host it runs
    int64_t trim_ppb = 0;         // the frequency discipline's correction of that rate
    int64_t slew_ns = 0;          // a correction being added gradually since the anchor,
    int64_t slew_rate_ppb = 0;    //   at this rate (> 0 while slew_ns != 0)
    bool corrected = false;       // has any correction been applied yet
};

constexpr SimClock make_clock(int64_t real_ns, int64_t offset_ns, int64_t rate_ppb) {
    SimClock c;
    c.anchor_real_ns = real_ns;
    c.anchor_clock_ns = real_ns + offset_ns;
    c.rate_ppb = rate_ppb;
    return c;
}

namespace detail {
// The clock at `real_ns`, in units of 1e-9 ns counted from anchor_clock_ns.
// One floor at the end (in read_clock) of a numerator that only grows with
// real_ns keeps the clock monotonic, mid-slew included.
constexpr __int128 clock_units(const SimClock& c, int64_t real_ns) {
    const __int128 elapsed = static_cast<__int128>(real_ns) - c.anchor_real_ns;
    __int128 units = c.anchor_frac + elapsed * (NS_PER_S + c.rate_ppb + c.trim_ppb);
    if (c.slew_ns != 0 && elapsed > 0) {
        const __int128 whole = static_cast<__int128>(c.slew_ns < 0 ? -c.slew_ns : c.slew_ns) * NS_PER_S;
        const __int128 done = std::min(whole, elapsed * c.slew_rate_ppb);
        units += c.slew_ns < 0 ? -done : done;
    }
    return units;
}
}  // namespace detail

constexpr int64_t read_clock(const SimClock& c, int64_t real_ns) {
    return c.anchor_clock_ns + floor_div(detail::clock_units(c, real_ns), NS_PER_S);
}

// The same clock, re-anchored at `real_ns`: it reads exactly the same at
// every instant from then on, except that what is left of a slew is dropped.
constexpr SimClock reanchor(const SimClock& c, int64_t real_ns) {
    const __int128 units = detail::clock_units(c, real_ns);
    const int64_t whole = floor_div(units, NS_PER_S);
    SimClock r = c;
    r.anchor_real_ns = real_ns;
    r.anchor_clock_ns = c.anchor_clock_ns + whole;
    r.anchor_frac = static_cast<int64_t>(units - static_cast<__int128>(whole) * NS_PER_S);
    r.slew_ns = 0;
    r.slew_rate_ppb = 0;
    return r;
}

// How much of the current slew is still to be added at `real_ns` (signed).
constexpr int64_t slew_remaining(const SimClock& c, int64_t real_ns) {
    if (c.slew_ns == 0) return 0;
    const __int128 elapsed = static_cast<__int128>(real_ns) - c.anchor_real_ns;
    const __int128 whole = static_cast<__int128>(c.slew_ns < 0 ? -c.slew_ns : c.slew_ns) * NS_PER_S;
    const __int128 left = whole - std::min(whole, std::max<__int128>(elapsed, 0) * c.slew_rate_ppb);
    const int64_t left_ns = static_cast<int64_t>((left + NS_PER_S - 1) / NS_PER_S);
    return c.slew_ns < 0 ? -left_ns : left_ns;
}

namespace detail {
constexpr bool correction_fits(const SimClock& c, int64_t real_ns, int64_t correction_ns) {
    if (correction_ns > 2 * MAX_OFFSET_NS || correction_ns < -2 * MAX_OFFSET_NS) return false;
    const __int128 offset_after = static_cast<__int128>(read_clock(c, real_ns)) + correction_ns - real_ns;
    return offset_after <= MAX_OFFSET_NS && offset_after >= -MAX_OFFSET_NS;
}
}  // namespace detail

// Step the clock by `correction_ns` at host time `real_ns`, at once, ending
// any slew. Exact: a thousand steps add up to exactly their sum. nullopt
// (the caller keeps the old clock) if the result would leave +/-MAX_OFFSET_NS.
constexpr std::optional<SimClock> step_clock(const SimClock& c, int64_t real_ns, int64_t correction_ns) {
    if (!detail::correction_fits(c, real_ns, correction_ns)) return std::nullopt;
    SimClock r = reanchor(c, real_ns);
    r.anchor_clock_ns += correction_ns;
    r.corrected = true;
    return r;
}

// Slew the clock by `correction_ns` from host time `real_ns`: run faster (or
// slower) by `slew_rate_ppb` until all of it is added, as adjtime() does.
// The clock stays continuous and monotonic. It replaces what is left of an
// earlier slew: the new correction was measured against the partly slewed clock.
constexpr std::optional<SimClock> slew_clock(const SimClock& c, int64_t real_ns, int64_t correction_ns,
                                             int64_t slew_rate_ppb) {
    if (slew_rate_ppb <= 0 || !detail::correction_fits(c, real_ns, correction_ns)) return std::nullopt;
    SimClock r = reanchor(c, real_ns);
    r.slew_ns = correction_ns;
    r.slew_rate_ppb = slew_rate_ppb;
    r.corrected = true;
    return r;
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
// Step 5, what a time service adds to the textbook: apply a correction the
// way adjtime() does, and correct the clock's rate as the group agreed.
//
// - A correction of at least `step_threshold_ns` is stepped at once; a
//   smaller one is slewed at `slew_rate_ppb`. A clock's first correction is
//   always stepped (as chrony's makestep does): it is not in step yet, and
//   slewing 100 ms at 500 ppm would take 200 s.
// - In step means no step back, ever: once a clock has taken a correction,
//   a backward one is slewed however large, so its time never goes back.
// - The rate: `rate_change_ppb` (Step 6, from the master) moves the trim,
//   bounded to +/-MAX_TRIM_PPB. The clock learns nothing by itself: its own
//   corrections hold the group's common shifts too, and a clock that learned
//   its rate from them would take a liar's steady push for a drift.
constexpr int64_t DEFAULT_STEP_THRESHOLD_NS = 128 * NS_PER_MS;  // as NTP
constexpr int64_t DEFAULT_SLEW_RATE_PPB = 500'000;             // 500 ppm, as adjtime

struct Discipline {
    int64_t step_threshold_ns = DEFAULT_STEP_THRESHOLD_NS;
    int64_t slew_rate_ppb = DEFAULT_SLEW_RATE_PPB;
    bool frequency = true;  // take the rate changes the master sends (master: send them)
};

enum class Applied { Step, Slew };
struct Corrected {
    SimClock clock;
    Applied how = Applied::Step;
};

// How a clock in this state takes a correction of `correction_ns`.
constexpr Applied how_applied(bool corrected_before, int64_t correction_ns, const Discipline& d) {
    if (!corrected_before) return Applied::Step;
    if (correction_ns < 0) return Applied::Slew;  // never back, in step
    return correction_ns >= d.step_threshold_ns ? Applied::Step : Applied::Slew;
}

constexpr std::optional<Corrected> apply_correction(const SimClock& c, int64_t real_ns, int64_t correction_ns,
                                                    int64_t rate_change_ppb, const Discipline& d) {
    const Applied how = how_applied(c.corrected, correction_ns, d);
    auto next = how == Applied::Step ? step_clock(c, real_ns, correction_ns)
                                     : slew_clock(c, real_ns, correction_ns, d.slew_rate_ppb);
    if (!next) return std::nullopt;
    if (d.frequency) {  // re-anchored above, so the new trim changes only the future
        const __int128 trim = static_cast<__int128>(c.trim_ppb) + rate_change_ppb;
        next->trim_ppb = static_cast<int64_t>(std::clamp<__int128>(trim, -MAX_TRIM_PPB, MAX_TRIM_PPB));
    }
    return Corrected{*next, how};
}

// Can a rate be read `since_ns` after a correction? Only once it is fully
// applied: a step at once, a slew by half the time (with room to spare).
constexpr bool settled(int64_t correction_ns, Applied how, int64_t since_ns, const Discipline& d) {
    if (how == Applied::Step) return true;
    const __int128 magnitude = correction_ns < 0 ? -static_cast<__int128>(correction_ns) : correction_ns;
    return magnitude * NS_PER_S * 2 <= static_cast<__int128>(d.slew_rate_ppb) * since_ns;
}

}  // namespace berkeley
