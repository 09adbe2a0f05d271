// explain.hpp - the console's account of a round: the master's table, or
// with --explain the round as a textbook tells it, with its numbers. It says
// what the round really did: which reading was averaged for each slave (one
// probe, or its clock filter's line over earlier rounds), who was left out
// and how far from the median, and where a change of rate comes from. Text
// only: it decides nothing (the round, master_role.hpp, hands it the story).
#pragma once

#include <algorithm>
#include <cinttypes>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eventlog.hpp"
#include "clock.hpp"
#include "filter.hpp"
#include "simclock.hpp"
#include "units.hpp"

namespace berkeley {

using ExplainedProbe = std::pair<Probe, std::optional<Estimate>>;  // a probe, and what it gave

struct SlaveStory {
    std::string_view name;
    Reading reading;                 // what was averaged (the filter's value now)
    int64_t best_delay_ns = 0;       // this round's best probe
    int64_t best_offset_ns = 0;
    Filtered filtered;
    bool filter_restarted = false;
    const std::vector<ExplainedProbe>* probes = nullptr;  // --explain: every probe of the round
};

struct RoundStory {
    uint64_t round = 0;
    uint32_t probes = 0;
    int64_t started_clock_ns = 0;    // the master's clock as the round began
    int64_t interval_ns = 0;
    bool frequency = true;
    const RoundResult& result;       // each[0] is the master
    std::vector<SlaveStory> slaves;  // each[i] is slaves[i - 1]
};

// Why a participant's reading did or did not count, in a few words.
inline std::string why_counted(const Decision& d, int64_t offset_ns, const Agreement& t) {
    if (d.included) return "counted";
    if (!d.votes) return "not counted: not in step yet, while others are (it is brought to them)";
    return "left out: " + format_duration(offset_ns - t.median_ns) + " from the median, outside the window of " +
           (format_duration(t.window_ns).c_str() + 1);
}

// The table printed every round.
inline void print_table(const Console& out, const RoundStory& s) {
    const Agreement& t = s.result.time;
    auto note = [&](const Decision& d, int64_t offset_ns) {
        if (d.included) return std::string();
        if (!d.votes) return std::string("  (not in step: does not vote)");
        return "  (left out: " + format_duration(offset_ns - t.median_ns) + " from the median, window " +
               (format_duration(t.window_ns).c_str() + 1) + ")";
    };
    out.say("  %-24s %20s %12s %20s\n", "participant", "estimated offset", "best delay", "correction");
    out.say("  %-24s %20s %12s %20s%s\n", "master (self)", format_duration(0).c_str(), "-",
            format_duration(s.result.each[0].correction_ns).c_str(), note(s.result.each[0], 0).c_str());
    for (size_t i = 1; i <= s.slaves.size(); ++i) {
        const SlaveStory& p = s.slaves[i - 1];
        out.say("  %-24.*s %20s %12s %20s%s\n", static_cast<int>(p.name.size()), p.name.data(),
                format_duration(p.reading.offset_ns).c_str(), format_duration(p.best_delay_ns).c_str() + 1,
                format_duration(s.result.each[i].correction_ns).c_str(),
                note(s.result.each[i], p.reading.offset_ns).c_str());
    }
}

inline std::string ppm_text(int64_t ppb) {
    char text[48];
    std::snprintf(text, sizeof text, "%+.3f ppm", static_cast<double>(ppb) / PPB_PER_PPM);
    return text;
}

// --explain: the round as a textbook tells it, numbered as README's table
// of steps (the one numbering of the code, the docs and this output).
inline void explain_round(const Console& out, const RoundStory& s) {
    const Agreement& t = s.result.time;
    out.say("  1. The master asked every slave for its clock (TIME? %" PRIu64 " 1..%u). Its own clock then: %s.\n"
            "     Each answer: T1, T4 on the master's clock, T2, T3 on the slave's;\n"
            "     delay = (T4 - T1) - (T3 - T2), offset = (T2 - T1) - delay/2, off by at most delay/2.\n",
            s.round, s.probes, format_time_of_day(s.started_clock_ns).c_str());
    for (const SlaveStory& p : s.slaves) {
        if (!p.probes) continue;
        const int w = static_cast<int>(std::max<size_t>(p.name.size(), 10));
        for (const auto& [probe, e] : *p.probes) {
            out.say("     %-*.*s T1 %s  T2 %s  T3 %s  T4 %s\n", w, static_cast<int>(p.name.size()), p.name.data(),
                    format_time_of_day(probe.t1_ns).c_str(), format_time_of_day(probe.t2_ns).c_str(),
                    format_time_of_day(probe.t3_ns).c_str(), format_time_of_day(probe.t4_ns).c_str());
            if (e) out.say("     %-*s delay %s, offset %s%s\n", w, "", format_duration(e->delay_ns).c_str() + 1,
                           format_duration(e->offset_ns).c_str(), e->delay_ns == p.best_delay_ns ? "  <- best" : "");
            else out.say("     %-*s rejected: a negative delay, or an offset beyond 100 years\n", w, "");
        }
    }
    out.say("  2. Each slave's probe with the smallest delay joins its best probes of the last %zu rounds\n"
            "     (the clock filter); the reading averaged is the filter's line now, the probe itself when alone.\n",
            FILTER_ROUNDS);
    for (const SlaveStory& p : s.slaves) {
        const Filtered& f = p.filtered;
        const int64_t reading = p.reading.offset_ns;
        if (f.used <= 1)
            out.say("     %-10.*s %s, this probe alone%s\n", static_cast<int>(p.name.size()), p.name.data(),
                    format_duration(reading).c_str(),
                    p.filter_restarted ? " (it did not fit the earlier ones: the filter starts afresh)" : "");
        else
            out.say("     %-10.*s %s, the filter's line through %zu rounds' best probes, within %s\n",
                    static_cast<int>(p.name.size()), p.name.data(), format_duration(reading).c_str(), f.used,
                    format_duration(f.bound_ns).c_str() + 1);
    }
    out.say("  3. The fault-tolerant average of the offsets (the master's own is 0):\n"
            "     median %s; spread (1.4826 x median deviation) %s; readings within %s of the median count.\n",
            format_duration(t.median_ns).c_str(), format_duration(t.spread_ns).c_str() + 1,
            t.window_ns > 0 ? format_duration(t.window_ns).c_str() + 1 : "any distance");
    out.say("     %-10s %-16s %s\n", "master", format_duration(0).c_str(), why_counted(s.result.each[0], 0, t).c_str());
    for (size_t i = 1; i <= s.slaves.size(); ++i) {
        const SlaveStory& p = s.slaves[i - 1];
        out.say("     %-10.*s %-16s %s\n", static_cast<int>(p.name.size()), p.name.data(),
                format_duration(p.reading.offset_ns).c_str(),
                why_counted(s.result.each[i], p.reading.offset_ns, t).c_str());
    }
    const auto voters = std::count_if(s.result.each.begin(), s.result.each.end(), [](const Decision& d) { return d.votes; });
    if (voters == 2 && t.window_ns == MIN_WINDOW_NS)
        out.say("     (two voters in step cannot outvote each other: the reading nearer the master's decides)\n");
    out.say("     average %s\n", format_duration(t.average_ns).c_str());
    out.say("  4. Each one's correction = average - its offset:\n");
    out.say("     master %s\n", format_duration(s.result.each[0].correction_ns).c_str());
    for (size_t i = 1; i <= s.slaves.size(); ++i)
        out.say("     %.*s -> %s\n", static_cast<int>(s.slaves[i - 1].name.size()), s.slaves[i - 1].name.data(),
                format_duration(s.result.each[i].correction_ns).c_str());
    out.say("  5. Each clock adds its correction: stepped when it is its first, or forward by the step threshold\n"
            "     or more; slewed otherwise (a clock in step never goes back).\n");
    std::string rates;
    const Decision& self = s.result.each[0];
    if (self.rate_change_ppb && s.result.rate_ppb)
        rates += "     master " + ppm_text(*self.rate_change_ppb) + ", a step toward the median rate of the counted clocks, " +
                 ppm_text(*s.result.rate_ppb) + "\n";
    for (size_t i = 1; i <= s.slaves.size(); ++i) {
        const SlaveStory& p = s.slaves[i - 1];
        const Decision& d = s.result.each[i];
        if (d.rate_change_ppb && p.reading.rate_ppb)
            rates += "     " + std::string(p.name) + " " + ppm_text(*d.rate_change_ppb) + ", as its filter's slope says it runs " +
                     ppm_text(*p.reading.rate_ppb) + " off the master (" + std::to_string(p.filtered.used) + " rounds)\n";
    }
    if (!s.frequency) out.say("  6. No changes of rate: --no-frequency.\n");
    else if (rates.empty())
        out.say("  6. No changes of rate yet: a rate needs a filter of two or more rounds that pins it within %s.\n",
                ppm_text(MAX_RATE_ERROR_PPB).c_str() + 1);
    else out.say("  6. Each change of rate (sent with the correction):\n%s", rates.c_str());
}

}  // namespace berkeley
