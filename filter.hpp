// filter.hpp - Step 2 across rounds: each slave's clock filter. The master
// keeps the best probe of each of the last FILTER_ROUNDS rounds, carried
// forward through every correction and rate change, and reads the slave's
// offset now (and its rate, Step 6) off a weighted line through them. Pure:
// tests/test_clock.cpp covers it.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>

#include "clock.hpp"

namespace berkeley {

// The clock filter. On a link with jitter one round's
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
    std::optional<int64_t> rate_ppb;  // the slope, when two or more samples pin it within MAX_RATE_ERROR_PPB
    int64_t rate_error_ppb = 0;       // how far off the slope can be, from the samples' own error bounds
};

constexpr size_t FILTER_ROUNDS = 32;
constexpr int64_t FILTER_SLACK_PPB = 20'000;  // 20 ppm: rate errors while the frequency locks
// A rate is said only when the samples pin it this well: each sample's
// offset is off by up to half its delay beyond the fastest (plus the floor;
// the fastest delay's own asymmetry moves all of them alike and drops out
// of a slope), so the line's slope is off by up to sum(w |dt| e) / sum(w dt^2).
// On a rough link two samples a second apart say nothing of a rate (a
// millisecond of jitter is 1,000 ppm): a rate that wrong, applied, pins the
// trim at its limit. Better no rate until the samples span enough time.
constexpr int64_t MAX_RATE_ERROR_PPB = 50'000;  // 50 ppm: the default drift range

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
        long double stt = 0, sto = 0, bound = 0, slope_error = 0;
        for (size_t i = 0; i < count_; ++i) {
            const long double dt = static_cast<long double>(all[i].at_ns - base.at_ns) - mt;
            stt += w[i] * dt * dt;
            slope_error += w[i] * std::fabs(dt) * (static_cast<long double>(excess[i]) + floor) / 2;
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
            const long double error_ppb = slope_error / stt * NS_PER_S;
            f.rate_error_ppb = static_cast<int64_t>(std::min<long double>(std::llround(error_ppb), MAX_RATE_PPB));
            if (ppb > MAX_RATE_PPB || ppb < -MAX_RATE_PPB) slope = 0;
            else if (error_ppb <= MAX_RATE_ERROR_PPB) f.rate_ppb = static_cast<int64_t>(std::llround(ppb));
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

}  // namespace berkeley
