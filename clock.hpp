// clock.hpp - the arithmetic of the Berkeley algorithm, in the order of a
// round (Gusella & Zatti, "The Accuracy of the Clock Synchronization Achieved
// by TEMPO in Berkeley UNIX 4.3BSD", IEEE TSE 15(7), 1989): estimate each
// slave's offset from a probe, keep the best probe, agree on a fault-tolerant
// average, correct everyone. Then the simulated clock and its discipline
// (step, slew, frequency). Pure value types and functions: no syscalls, no
// globals, no logging; tests/test_clock.cpp covers it in the same order.
// Time is a signed 64-bit count of nanoseconds; products use 128 bits.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
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
// Ties go to the earlier probe. nullopt when there are no estimates.
inline std::optional<Estimate> best_estimate(std::span<const Estimate> estimates) {
    if (estimates.empty()) return std::nullopt;
    return *std::min_element(estimates.begin(), estimates.end(),
                             [](const Estimate& a, const Estimate& b) { return a.delay_ns < b.delay_ns; });
}

// Step 2, across rounds: the clock filter. On a link with jitter one round's
// best probe is still a poor one most rounds; the good ones are rare. So the
// master keeps each slave's best probe of the last FILTER_ROUNDS rounds and
// carries them forward (as NTP's clock filter and chrony do): every
// correction since moves the stored offsets by what it changed between the
// two clocks (shift), every rate change re-expresses them as if the new
// rate had always run (rerate). Then all of them estimate the offset now:
//   - each weighs 1 / (its delay beyond the smallest + a floor)^2: the ones
//     that waited least in queues carry the estimate; the floor, a quarter
//     of the median excess (at least 1 us), lets them all weigh alike on a
//     quiet link, where the excess is scheduling noise, not asymmetry;
//   - a weighted least-squares line through them gives the offset now (its
//     value at `now`) and the slave's remaining rate relative to the master
//     (its slope): a rate one noisy round cannot push around, since the line
//     spans up to FILTER_ROUNDS rounds (a slope from the few best samples
//     alone, close in time, tilted by tens of ppm, and every round applied
//     it again);
//   - the error bound is half the delay, weighted the same way: each
//     sample's true offset lies within half its delay, so their weighted
//     average does too (as long as the rate holds).
// A sample that cannot be the same clock as the others (from the third on:
// it misses the line by more than half its own delay, half the widest
// stored delay, 1 us and FILTER_SLACK_PPB of the time since the newest
// stored sample: a correction not applied, a clock stepped behind our back)
// starts the filter afresh: a broken clock is then measured round by round.
// Not the time since the oldest: at 20 ppm of 31 s that hid a 300 us step on
// a quiet link, and the line took it for a rate.
struct Sample {
    int64_t offset_ns = 0;  // slave minus master, carried forward to the current corrections and rate
    int64_t delay_ns = 0;
    int64_t at_ns = 0;      // host time of the probe (its T1)
};

// What the filter stores of a Sample (16 bytes, not 24: a master keeps 32
// of them for each of up to 10,000 slaves): the delay in whole ns up to
// about 4.3 s (longer ones are stored as that, no better than it), the time
// in units of FILTER_TIME_UNIT_NS after the filter's base (76 hours in all;
// the base moves up as old samples leave). A time off by up to 64 us moves
// a carried offset by that times the relative rate: under 7 ns at 100 ppm.
struct StoredSample {
    int64_t offset_ns = 0;
    uint32_t delay_ns = 0;
    uint32_t at_units = 0;
};
constexpr int64_t FILTER_TIME_UNIT_NS = 64 * NS_PER_US;

struct Filtered {
    int64_t offset_ns = 0;            // at the time asked for
    int64_t bound_ns = 0;             // |error| <= this on a symmetric link: half the delays, weighted as the samples
    int64_t delay_ns = 0;             // the smallest delay among the samples
    size_t used = 0;                  // samples on the line: all in the filter
    std::optional<int64_t> rate_ppb;  // the slope, when two or more samples were used
};

constexpr size_t FILTER_ROUNDS = 32;
constexpr int64_t FILTER_SLACK_PPB = 20'000;  // 20 ppm: rate errors while the frequency locks

class SampleFilter {
public:
    size_t size() const { return count_; }
    void clear() { count_ = next_ = 0; }

    // Add this round's best probe; false when it started the filter afresh.
    bool add(const Sample& s) {
        bool kept = true;
        // One sample alone says nothing of the rate, which may be anything
        // until the frequency locks: the second one is always taken.
        if (const auto pred = count_ >= 2 ? estimate(s.at_ns) : std::nullopt) {
            const __int128 miss = static_cast<__int128>(s.offset_ns) - pred->offset_ns;
            const __int128 room = s.delay_ns / 2 + widest_half_delay() + NS_PER_US +
                                  static_cast<__int128>(FILTER_SLACK_PPB) * (s.at_ns - newest_at()) / NS_PER_S;
            if (miss > room || -miss > room) {
                clear();
                kept = false;
            }
        }
        if (count_ > 0 && !fits(s.at_ns)) rebase(s.at_ns);
        if (count_ == 0) base_ns_ = s.at_ns;
        ring_[next_] = {s.offset_ns, static_cast<uint32_t>(std::clamp<int64_t>(s.delay_ns, 0, UINT32_MAX)),
                        static_cast<uint32_t>((s.at_ns - base_ns_) / FILTER_TIME_UNIT_NS)};
        next_ = (next_ + 1) % FILTER_ROUNDS;
        count_ = std::min(count_ + 1, FILTER_ROUNDS);
        return kept;
    }

    // Both clocks were corrected: the slave by `slave_ns`, the master by
    // `master_ns`; the slave's offset from the master moved by the difference.
    void shift(int64_t slave_ns, int64_t master_ns) {
        for (size_t i = 0; i < count_; ++i) ring_[i].offset_ns += slave_ns - master_ns;
    }

    // The slave's rate relative to the master changed by `ppb` at host time
    // `at_ns`: each sample becomes what it would have read at the new rate.
    void rerate(int64_t ppb, int64_t at_ns) {
        for (size_t i = 0; i < count_; ++i)
            ring_[i].offset_ns -= static_cast<int64_t>(static_cast<__int128>(ppb) * (at_ns - at(i)) / NS_PER_S);
    }

    std::optional<Filtered> estimate(int64_t now_ns) const {
        if (count_ == 0) return std::nullopt;
        std::array<Sample, FILTER_ROUNDS> all{};  // the stored samples, whole again
        for (size_t i = 0; i < count_; ++i) all[i] = {ring_[i].offset_ns, ring_[i].delay_ns, at(i)};
        Filtered f;
        f.used = count_;
        f.delay_ns = all[0].delay_ns;
        for (size_t i = 0; i < count_; ++i) f.delay_ns = std::min(f.delay_ns, all[i].delay_ns);
        // Each sample's weight: 1 / (its delay beyond the smallest + floor)^2.
        // The floor is a quarter of the median excess (at least 1 us): with
        // jitter the few fast samples carry the line; on a quiet link all
        // weigh alike and the line averages them all.
        std::array<int64_t, FILTER_ROUNDS> excess{};
        for (size_t i = 0; i < count_; ++i) excess[i] = all[i].delay_ns - f.delay_ns;
        std::array<int64_t, FILTER_ROUNDS> sorted = excess;
        std::sort(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(count_));
        const long double floor = static_cast<long double>(std::max(NS_PER_US, sorted[count_ / 2] / 4));
        // The weighted line, in long double around the newest sample (values stay small).
        const Sample& base = all[(next_ + FILTER_ROUNDS - 1) % FILTER_ROUNDS];
        long double sw = 0, st = 0, so = 0;
        std::array<long double, FILTER_ROUNDS> w{};
        for (size_t i = 0; i < count_; ++i) {
            const long double e = static_cast<long double>(excess[i]) + floor;
            w[i] = 1 / (e * e);
            sw += w[i];
            st += w[i] * static_cast<long double>(all[i].at_ns - base.at_ns);
            so += w[i] * static_cast<long double>(all[i].offset_ns - base.offset_ns);
        }
        const long double mt = st / sw, mo = so / sw;
        long double stt = 0, sto = 0, bound = 0;
        for (size_t i = 0; i < count_; ++i) {
            const long double dt = static_cast<long double>(all[i].at_ns - base.at_ns) - mt;
            stt += w[i] * dt * dt;
            sto += w[i] * dt * (static_cast<long double>(all[i].offset_ns - base.offset_ns) - mo);
            bound += w[i] * static_cast<long double>(all[i].delay_ns) / 2;
        }
        // The bound: each sample errs by at most half its delay, and so does
        // their weighted average (the line's value where the weight is).
        f.bound_ns = static_cast<int64_t>(std::llround(bound / sw));
        long double slope = 0;  // ns per ns
        if (count_ >= 2 && stt > 0) {
            slope = sto / stt;
            const long double ppb = slope * NS_PER_S;
            if (ppb > MAX_RATE_PPB || ppb < -MAX_RATE_PPB) slope = 0;
            else f.rate_ppb = static_cast<int64_t>(std::llround(ppb));
        }
        const long double at_now = static_cast<long double>(now_ns - base.at_ns) - mt;
        f.offset_ns = base.offset_ns + static_cast<int64_t>(std::llround(mo + slope * at_now));
        return f;
    }

private:
    int64_t at(size_t i) const { return base_ns_ + static_cast<int64_t>(ring_[i].at_units) * FILTER_TIME_UNIT_NS; }
    int64_t newest_at() const { return at((next_ + FILTER_ROUNDS - 1) % FILTER_ROUNDS); }
    int64_t widest_half_delay() const {
        uint32_t widest = 0;
        for (size_t i = 0; i < count_; ++i) widest = std::max(widest, ring_[i].delay_ns);
        return (static_cast<int64_t>(widest) + 1) / 2;
    }
    bool fits(int64_t t) const { return t >= base_ns_ && (t - base_ns_) / FILTER_TIME_UNIT_NS <= UINT32_MAX; }

    // A sample at `t` beyond the stored times' range: keep the samples
    // within range of it, oldest first, counted from the oldest of them.
    // Time going back (the host clock stepped) keeps none.
    void rebase(int64_t t) {
        std::array<Sample, FILTER_ROUNDS> kept{};
        size_t n = 0;
        for (size_t k = 0; k < count_; ++k) {
            const size_t i = (next_ + FILTER_ROUNDS - count_ + k) % FILTER_ROUNDS;
            if (t >= at(i) && (t - at(i)) / FILTER_TIME_UNIT_NS <= UINT32_MAX)
                kept[n++] = {ring_[i].offset_ns, ring_[i].delay_ns, at(i)};
        }
        clear();
        if (n == 0) return;
        base_ns_ = kept[0].at_ns;
        for (size_t k = 0; k < n; ++k)
            ring_[k] = {kept[k].offset_ns, static_cast<uint32_t>(kept[k].delay_ns),
                        static_cast<uint32_t>((kept[k].at_ns - base_ns_) / FILTER_TIME_UNIT_NS)};
        count_ = n;
        next_ = n % FILTER_ROUNDS;
    }

    std::array<StoredSample, FILTER_ROUNDS> ring_{};
    int64_t base_ns_ = 0;  // host time the stored times count from
    size_t count_ = 0, next_ = 0;
};

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
constexpr int64_t MAX_TRIM_PPB = 500'000;

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

// Can a rate be read `since_ns` after a correction? Only once it is fully
// applied: a step at once, a slew by half the time (with room to spare).
constexpr bool settled(int64_t correction_ns, Applied how, int64_t since_ns, const Discipline& d) {
    if (how == Applied::Step) return true;
    const __int128 magnitude = correction_ns < 0 ? -static_cast<__int128>(correction_ns) : correction_ns;
    return magnitude * NS_PER_S * 2 <= static_cast<__int128>(d.slew_rate_ppb) * since_ns;
}

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
