// master_role.hpp - the Berkeley time daemon as a role: it waits for N
// slaves, then runs rounds: probe every slave's clock, keep each slave's best
// estimate, agree on the fault-tolerant average with its own clock counted
// as offset 0, send every slave the correction it must add, and correct
// itself. Fed events (a connection, a line with its arrival stamp, a timer,
// the time), it answers through MasterIo (role.hpp): it reads no clock and
// touches no socket. The arithmetic is clock.hpp, who gets in door.hpp, the
// console's account of a round explain.hpp.
//
//   Waiting --N slaves--> Probing --all replies or timeouts--> Adjusting
//      ^                    ^                                     |
//      |                    '--interval--- Idle <--all ACKs or timeout
//   (start)                                 |--last round / signal--> Closing
#pragma once

#include <algorithm>
#include <cassert>
#include <cinttypes>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "clock.hpp"
#include "filter.hpp"
#include "simclock.hpp"
#include "door.hpp"
#include "eventlog.hpp"
#include "explain.hpp"
#include "failover.hpp"
#include "protocol.hpp"
#include "role.hpp"

namespace berkeley {

constexpr int64_t SHUTDOWN_GRACE_NS = 2 * NS_PER_S;  // for BYE to reach the slaves
constexpr int64_t WAIT_HEARTBEAT_NS = 1 * NS_PER_S;  // WAIT to joined slaves before round 1 (at most;
                                                     // once an interval if that is shorter)
constexpr int64_t TAKEOVER_GRACE_NS = 200 * NS_PER_MS;  // after taking over: the first round once
                                                        // the first slave is back, and this long after

// What the round needs of the options (master.cpp parses them; a slave
// taking over takes them from the PLAN it followed).
struct MasterSettings {
    std::string id = "master";  // in the log and the console
    size_t slaves = 1;          // wait for this many before round 1
    uint64_t rounds = 5;        // 0: until stopped
    uint64_t first_round = 1;
    uint64_t epoch = 1;
    bool takeover = false;      // do not wait for N: start once the slaves are back
    int64_t interval_ns = NS_PER_S;
    uint32_t probes = 4;
    int64_t timeout_ns = 500 * NS_PER_MS;
    int64_t max_skew_ns = ADAPTIVE_WINDOW;  // Step 3's window: adaptive, 0 (keep all) or fixed
    uint32_t max_missed = 3;
    bool explain = false;       // print each round as the textbook's steps
    bool failover = true;       // name successors in each PLAN
    std::vector<std::string> successors;  // after a takeover: the old plan's, until our first round ranks ours
    std::string old_master;     // after a takeover: where the old master was (it is looked for, should it return)
    uint64_t max_slaves_set = 0;  // --max-slaves as the operator set it (0: the default), passed on in PLAN
    Discipline discipline;
    bool kernel_timestamps = true;
    uint64_t seed = 0;          // for the start event
    DoorSettings door;
};

// A takeover continues the group of the PLAN it followed, as its next epoch.
inline void continue_plan(MasterSettings& s, const Plan& plan) {
    s.takeover = true;
    s.epoch = std::min(plan.epoch + 1, MAX_EPOCH);
    s.first_round = plan.round + 1;
    s.rounds = plan.rounds;
    s.interval_ns = plan.interval_ns;
    s.probes = plan.probes;
    s.timeout_ns = plan.timeout_ns;
    s.max_skew_ns = plan.max_skew_ns;
    s.max_missed = plan.max_missed;
    s.successors = plan.successors;
    s.max_slaves_set = plan.max_slaves;
    s.door.max_slaves = plan.max_slaves != 0 ? plan.max_slaves : DoorSettings{}.max_slaves;  // the shell may lower it
}

// The participants of a round as agree_round() sees them: index 0 is the
// master itself, index i > 0 the slave who[i - 1].
struct Participants {
    std::vector<Peer*> who;
    std::vector<Reading> readings;
};

enum class Phase { Waiting, Probing, Adjusting, Idle, Closing };

class MasterRole : private DoorKeeper {
public:
    MasterRole(const MasterSettings& s, MasterIo& io, EventLog& log, Console console, SimClock& clock)
        : s_(s), io_(io), log_(log), console_(console), clock_(clock), door_(s.door, *this),
          last_successors_(s.successors), epoch_(s.epoch) {
        round_ = s_.first_round - 1;
        if (!s.old_master.empty() && s.failover && !s.door.key) lost_.push_back(s.old_master);
    }

    // The shell listens on `port`: say so, and log the start.
    void start(uint16_t port, const std::string& bind, const Now& now);
    // Events, from the shell.
    void on_accept(uint64_t peer, const std::string& address, const Now& now) { enter(now), door_.on_accept(peer, address); }
    bool on_line(uint64_t peer, const std::string& line, int64_t recv_real_ns, const Now& now);
    // The connection ended (`why` empty: the peer closed it) or failed (`tell`: say why first).
    void on_closed(uint64_t peer, const std::string& why, bool tell, const Now& now);
    void on_flushed(uint64_t peer, const Now& now);
    void on_timer(uint64_t key, const Now& now);
    // A connection we dialed (MasterIo::dial) is up.
    void on_dialed(uint64_t peer, const Now& now);
    void stop(const char* why, const Now& now) {
        enter(now);
        if (phase_ != Phase::Closing) begin_shutdown(why);
    }
    // After each turn of the loop: remove who must go, move the round on.
    void after_turn(const Now& now);
    // The loop may end: closing, and everyone is gone or the grace is over.
    bool finished(const Now& now) const {
        return phase_ == Phase::Closing && (door_.empty() || now.mono_ns >= close_deadline_ns_);
    }
    // The last words, once the loop ended; the exit status.
    int finish(const Now& now);

    // Is this peer still in the group (not being dropped)? Events for it count.
    bool listens_to(uint64_t peer) {
        const Peer* p = door_.peer(peer);
        return p && p->drop_reason.empty();
    }
    // The shell stopped accepting: out of descriptors.
    void note_paused(const std::string& why, const Now& now) {
        enter(now);
        event("paused").str("reason", why);
    }

    Phase phase() const { return phase_; }
    uint64_t round() const { return round_; }
    uint64_t epoch() const { return epoch_; }
    MasterRank rank() const { return {epoch_, token_}; }
    // Set once this master yielded to one that outranks it: when finished,
    // the node follows that address as a slave, with this clock.
    const std::string& yielded_to() const { return yielded_to_; }

private:
    // The round, step by step.
    void start_round();
    void send_probe(Peer& p);
    void on_clock(Peer& p, const ClockReply& m, int64_t recv_real_ns) override;
    void probe_done(Peer& p);
    void finish_probing();
    Participants collect_best_estimates();
    void send_corrections(const Participants& all, const RoundResult& result);
    void count_misses();
    void correct_self(const RoundResult& result);
    void print_round(const Participants& all, const RoundResult& result);
    void on_ack(Peer& p, const Ack& m) override;
    void finish_round();
    void begin_shutdown(const char* why, const Message& last_word = Bye{});
    // Finding other masters.
    bool looks_for_masters() const;
    void remember_lost(const std::string& address);
    void look_for_masters();
    void on_master_answer(uint64_t peer, const std::string& line);
    IAmMaster on_master_query(const WhoIsMaster& q, const std::string& host) override;
    void yield_to(const std::string& address, const MasterRank& theirs);
    Plan plan_settings() const;
    Plan plan() const;
    void send_plans(bool only_if_changed = false);
    // Slaves with a plan leave a master silent for 3 intervals: WAIT comes
    // at least once an interval while the first round is awaited.
    int64_t heartbeat_ns() const { return std::min(WAIT_HEARTBEAT_NS, s_.interval_ns); }
    void on_round_timer();
    void send_waits();
    // What the door tells the round (DoorKeeper).
    void on_joined(Peer& p) override;
    void on_leaving(Peer& p) override;
    std::string expected_from(const Peer& p) const override;
    uint64_t current_round() const override { return round_; }
    uint64_t current_epoch() const override { return epoch_; }
    bool closing() const override { return phase_ == Phase::Closing; }
    EventLog::Line event(std::string_view name) override {
        return log_.event(name, s_.id, read_clock(clock_, now_.real_ns), now_.real_ns);
    }
    const Console& console() const override { return console_; }
    MasterIo& io() override { return io_; }
    const Now& now() const override { return now_; }

    void enter(const Now& now) { now_ = now; }

    const MasterSettings& s_;
    MasterIo& io_;
    EventLog& log_;
    Console console_;
    SimClock& clock_;   // the node's clock: ours, or the one a slave kept before it took over
    Door door_;
    Now now_;           // the event being handled
    std::vector<std::string> last_successors_;  // in the last PLAN
    uint64_t epoch_;                 // s_.epoch, or one more when a master of the same epoch yields to us
    uint64_t token_ = 0;             // this mastership's random token: the rank's tie-break
    uint16_t port_ = 0;              // where we listen: told when we ask others
    std::vector<std::string> lost_;  // where a slave we lost (or our old master) serves: looked at each round
    size_t next_look_ = 0;           // round-robin over lost_
    std::map<uint64_t, std::string> asking_;  // our own connections asking MASTER?, by peer: the address
    std::string yielded_to_;
    Phase phase_ = Phase::Waiting;
    uint64_t round_ = 0;
    int64_t round_started_ns_ = 0;   // monotonic
    int64_t round_started_clock_ns_ = 0;  // the master's own clock then (for --explain)
    size_t probing_left_ = 0;        // slaves of this round still being probed
    size_t acks_left_ = 0;           // ADJUSTs of this round not yet acknowledged
    int64_t last_ack_ns_ = 0;
    int64_t close_deadline_ns_ = 0;
    size_t last_answered_ = 0;       // slaves with an estimate in the last round
    int64_t last_spread_ns_ = 0;     // their largest |correction|
    bool self_rate_ready_ = false;   // the master's own last correction settles within an interval
    // The master's own correction this round, as applied (for the filters).
    bool self_applied_ = false;
    int64_t self_correction_ns_ = 0;
    int64_t self_rate_change_ppb_ = 0;
    Applied self_how_ = Applied::Step;
    int64_t self_corrected_real_ns_ = 0;
};

inline void MasterRole::start(uint16_t port, const std::string& bind, const Now& now) {
    enter(now);
    port_ = port;
    Nonce random{};
    if (io_.nonce(random))
        for (size_t i = 0; i < 8; ++i) token_ = token_ << 8 | random[i];
    token_ &= MAX_EPOCH - 1;  // 53 bits: exact in a JSON number
    if (s_.takeover)
        console_.say("%s: took over as master (epoch %" PRIu64 ") on port %u, from round %" PRIu64 "\n",
                     s_.id.c_str(), s_.epoch, port, s_.first_round);
    else
        console_.say("master listening on %s:%u, waiting for %zu slave(s)\n", bind.c_str(), port, s_.slaves);
    event("start").num("port", port).num("slaves", static_cast<int64_t>(s_.slaves))
        .num("epoch", static_cast<int64_t>(s_.epoch)).str("role", "master").num("token", static_cast<int64_t>(token_))
        .num("offset_ns", clock_.anchor_clock_ns - clock_.anchor_real_ns).num("rate_ppb", clock_.rate_ppb)
        .num("seed", static_cast<int64_t>(s_.seed & INT64_MAX))
        .str("timestamps", s_.kernel_timestamps ? "kernel" : "user");
    if (s_.takeover && s_.rounds > 0 && s_.first_round > s_.rounds)
        io_.arm(ROUND_TIMER, now.mono_ns);  // the old master had run them all: say so and close
}

// ===========================================================================
// THE ROUND, step by step. Deadlines are on CLOCK_MONOTONIC, never on the
// clock being corrected.

// Step 1: ask every slave for its clock, all at once; each next probe goes
// out as soon as the previous reply is in, so a round lasts about probes x
// one round trip. Each probe has --timeout-ms; the whole probing phase has
// that or half the interval, whichever is longer, so one slow slave cannot
// stretch every round to probes x timeout.
inline void MasterRole::start_round() {
    ++round_;
    if (s_.failover && round_ == s_.first_round) send_plans(true);  // the first list, to everyone at once
    round_started_ns_ = now_.mono_ns;
    round_started_clock_ns_ = read_clock(clock_, now_.real_ns);
    phase_ = Phase::Probing;
    io_.arm(ROUND_TIMER, now_.mono_ns + std::max(s_.timeout_ns, s_.interval_ns / 2));
    event("round").num("round", static_cast<int64_t>(round_)).num("cpu_ns", io_.cpu_ns());
    console_.say("\nNew synchronization cycle started (round %" PRIu64 "/%s)\n", round_,
                 s_.rounds ? std::to_string(s_.rounds).c_str() : "unlimited");
    probing_left_ = acks_left_ = 0;
    door_.for_each([&](Peer& p) {
        p.round = Peer::Round{};
        p.round.probed = p.joined() && p.drop_reason.empty();
        p.round.probing_done = !p.round.probed;
        probing_left_ += p.round.probed;
    });
    console_.say("Number of slaves to be synchronized: %zu\n", probing_left_);
    door_.for_each([&](Peer& p) {
        if (p.round.probed) send_probe(p);
    });
}

inline void MasterRole::send_probe(Peer& p) {
    ++p.round.probes_sent;
    std::string error;
    const std::string line = door_.wire(p, TimeQuery{round_, p.round.probes_sent});  // formatted and tagged first
    const auto t1_real = io_.send_stamped(p.id, line, error);  // T1: the shell reads it as late as it can
    if (!t1_real) return door_.drop(p, error);
    p.round.probe_sent_real_ns = *t1_real;
    io_.arm(p.id, now_.mono_ns + s_.timeout_ns);  // no reply by then: on_timer
}

// A reply to the pending probe: turn it into an estimate (T4 is the kernel's
// arrival stamp, or the host time read right after the read), then probe again.
inline void MasterRole::on_clock(Peer& p, const ClockReply& m, int64_t recv_real_ns) {
    if (phase_ != Phase::Probing || p.round.probing_done || m.round != round_ || m.probe != p.round.probes_sent) {
        if (p.told) event("stale").str("slave", p.name).num("round", static_cast<int64_t>(m.round)).num("probe", m.probe);
        if (s_.door.by_hand)
            door_.mistake(p, "CLOCK for round " + std::to_string(m.round) + " probe " + std::to_string(m.probe));
        return;  // a late reply to a probe that already timed out: harmless
    }
    const int64_t t1 = read_clock(clock_, p.round.probe_sent_real_ns);
    const int64_t t4 = read_clock(clock_, recv_real_ns);
    const Probe probe = m.t3_ns ? Probe(t1, m.t2_ns, *m.t3_ns, t4) : Probe(t1, m.t2_ns, t4);
    const auto e = estimate_offset(probe);
    if (s_.explain) p.round.explained.push_back({probe, e});
    if (e) {
        auto& all = p.round.estimates;
        if (all.empty() || e->delay_ns < best_estimate(all)->delay_ns) p.round.best_at_real_ns = p.round.probe_sent_real_ns;
        all.push_back(*e);
    } else if (p.told) {
        event("rejected").str("slave", p.name).num("round", static_cast<int64_t>(round_)).num("reading_ns", m.t2_ns);
    }
    if (p.round.probes_sent < s_.probes) send_probe(p);
    else probe_done(p);
}

// This slave is done for the round: all its probes answered, timed out, or it left.
inline void MasterRole::probe_done(Peer& p) {
    if (!p.round.probed || p.round.probing_done) return;
    p.round.probing_done = true;
    io_.disarm(p.id);
    assert(probing_left_ > 0);
    --probing_left_;
}

// Steps 2-6 and the master's own correction, once every slave is done.
inline void MasterRole::finish_probing() {
    const Participants all = collect_best_estimates();
    const int64_t window = skew_limit(s_.max_skew_ns, s_.discipline.step_threshold_ns, clock_.corrected);
    const RoundResult result = agree_round(all.readings, s_.interval_ns, window);  // Steps 3, 4, 6: clock.hpp
    print_round(all, result);
    send_corrections(all, result);
    count_misses();
    correct_self(result);
    phase_ = Phase::Adjusting;
    io_.arm(ROUND_TIMER, now_.mono_ns + s_.timeout_ns);  // the wait for ACKs
}

// Step 2: each slave's best probe of this round goes into its filter with
// those of the last rounds, carried forward when both clocks' last
// corrections were applied and had settled by then; the filter's estimate
// is its offset now, and (Step 6) the filter's slope its rate relative to
// the master. The master first.
inline Participants MasterRole::collect_best_estimates() {
    Participants all;
    Reading self;
    self.in_step = clock_.corrected;
    const Discipline& d = s_.discipline;
    if (self_rate_ready_ && d.frequency) self.rate_ppb = 0;  // relative to itself; --no-frequency: no rates
    all.readings.push_back(self);
    door_.for_each([&](Peer& p) {
        if (!p.round.probed || !p.drop_reason.empty()) return;
        const bool carried = p.carried;
        p.carried = false;
        const auto best = best_estimate(p.round.estimates);
        if (!best) {
            p.filter.clear();  // a round without a reading: its corrections went unseen
            return;
        }
        door_.on_answered(p);  // its joining is told now, if a flood of joins deferred it
        const int64_t at = p.round.best_at_real_ns;
        if (!carried || !self_applied_ || !settled(p.round_correction_ns, p.how, at - p.corrected_real_ns, d) ||
            !settled(self_correction_ns_, self_how_, at - self_corrected_real_ns_, d))
            p.filter.clear();  // a correction not acknowledged, or still being slewed at the probe
        p.round.filter_restarted = !p.filter.add({best->offset_ns, best->delay_ns, at});
        p.round.filtered = *p.filter.estimate(now_.real_ns);
        Reading r;
        r.offset_ns = p.round.filtered.offset_ns;
        r.in_step = p.in_step;
        if (d.frequency) r.rate_ppb = p.round.filtered.rate_ppb;
        r.rate_updates = p.rate_updates;
        all.who.push_back(&p);
        all.readings.push_back(r);
        p.round.best_delay_ns = best->delay_ns;
        p.round.best_offset_ns = best->offset_ns;
    });
    return all;
}

// Step 4: every slave that answered gets its own correction, and the change
// of rate that brings it to the group's when its rate is known.
inline void MasterRole::send_corrections(const Participants& all, const RoundResult& result) {
    last_spread_ns_ = 0;
    last_answered_ = all.who.size();
    for (size_t i = 1; i < all.readings.size(); ++i) {
        Peer& p = *all.who[i - 1];
        const Reading& r = all.readings[i];
        const Decision& d = result.each[i];
        last_spread_ns_ = std::max(last_spread_ns_, d.correction_ns < 0 ? -d.correction_ns : d.correction_ns);
        auto e = event("estimate");
        const Filtered& f = p.round.filtered;
        e.str("slave", p.name).num("round", static_cast<int64_t>(round_)).num("estimate_ns", r.offset_ns)
            .num("bound_ns", f.bound_ns).num("samples", static_cast<int64_t>(f.used))
            .num("probe_ns", p.round.best_offset_ns).num("rtt_ns", p.round.best_delay_ns)
            .num("correction_ns", d.correction_ns).flag("included", d.included);
        if (p.round.filter_restarted) e.flag("filter_restarted", true);
        if (r.rate_ppb) e.num("rate_ppb", *r.rate_ppb);
        if (d.rate_change_ppb) e.num("rate_change_ppb", *d.rate_change_ppb);
        door_.send(p, Adjust{round_, d.correction_ns, d.rate_change_ppb});
        if (!p.drop_reason.empty()) continue;
        p.round.adjusted = true;
        p.round.correction_ns = d.correction_ns;
        p.round.rate_change_ppb = d.rate_change_ppb.value_or(0);
        p.corrected_real_ns = now_.real_ns;
        p.rate_updates += d.rate_change_ppb.has_value();
        ++acks_left_;
    }
}

// A slave that answered no probe missed the round; --max-missed in a row and it is dropped.
inline void MasterRole::count_misses() {
    door_.for_each([&](Peer& p) {
        if (!p.round.probed || !p.drop_reason.empty()) return;
        if (!p.round.estimates.empty()) {
            p.missed_rounds = 0;
            return;
        }
        ++p.missed_rounds;
        if (p.told) {  // else quieted with its joining
            console_.say("  %-24s %20s\n", p.name.c_str(), "no reply");
            event("missed").str("slave", p.name).num("round", static_cast<int64_t>(round_))
                .num("missed_rounds", p.missed_rounds);
        }
        if (p.missed_rounds >= s_.max_missed) door_.refuse(p, "missed " + std::to_string(p.missed_rounds) + " rounds in a row");
    });
}

// The master is a participant too: it corrects itself by the average, and
// its rate by the group's.
inline void MasterRole::correct_self(const RoundResult& result) {
    const Decision& self = result.each[0];
    const int64_t real = now_.real_ns;
    const Discipline& d = s_.discipline;
    const Applied how = how_applied(clock_.corrected, self.correction_ns, d);
    auto corrected = apply_correction(clock_, real, self.correction_ns, self.rate_change_ppb.value_or(0), d);
    self_applied_ = corrected.has_value();
    if (!corrected) {
        self_rate_ready_ = false;
        return;
    }
    self_rate_change_ppb_ = corrected->clock.trim_ppb - clock_.trim_ppb;  // as applied (clamped, or none)
    clock_ = corrected->clock;
    self_rate_ready_ = settled(self.correction_ns, how, s_.interval_ns, d);
    self_correction_ns_ = self.correction_ns;
    self_how_ = how;
    self_corrected_real_ns_ = real;
    auto line = event("adjust");
    line.num("round", static_cast<int64_t>(round_)).num("correction_ns", self.correction_ns);
    if (self.rate_change_ppb) line.num("rate_change_ppb", *self.rate_change_ppb);
    correction_fields(line, *corrected);
}

// The console's account of the round (explain.hpp): a table, or with
// --explain the textbook's steps with this round's numbers.
inline void MasterRole::print_round(const Participants& all, const RoundResult& result) {
    if (console_.quiet) return;
    RoundStory story{round_, s_.probes, round_started_clock_ns_, s_.interval_ns, s_.discipline.frequency, result, {}};
    for (size_t i = 1; i < all.readings.size(); ++i) {
        const Peer& p = *all.who[i - 1];
        story.slaves.push_back({p.name, all.readings[i], p.round.best_delay_ns, p.round.best_offset_ns,
                                p.round.filtered, p.round.filter_restarted, &p.round.explained});
    }
    if (s_.explain) explain_round(console_, story);
    else print_table(console_, story);
}

inline void MasterRole::on_ack(Peer& p, const Ack& m) {
    if (m.round != round_ || !p.round.adjusted || p.round.acked) {
        if (s_.door.by_hand) door_.mistake(p, "ACK " + std::to_string(m.round));
        return;  // late or repeated: harmless
    }
    p.round.acked = true;
    // Its filter follows both clocks' corrections (collect_best_estimates
    // checks that they had settled by the next probe), and both rate
    // changes as applied: the slave says what it applied when it was sent
    // one (0 for a slave that takes none); a slave that does not say is
    // taken to have applied what it was sent.
    p.how = how_applied(p.in_step, p.round.correction_ns, s_.discipline);
    p.round_correction_ns = p.round.correction_ns;
    p.carried = self_applied_;
    if (p.carried) {
        p.filter.shift(p.round.correction_ns, self_correction_ns_);
        p.filter.rerate(m.rate_change_ppb.value_or(p.round.rate_change_ppb) - self_rate_change_ppb_, p.corrected_real_ns);
    }
    p.in_step = p.acked = true;  // it has applied a correction: from now on it votes
    last_ack_ns_ = now_.mono_ns;
    assert(acks_left_ > 0);
    --acks_left_;
}

inline void MasterRole::finish_round() {
    int64_t acked = 0;
    door_.for_each([&](Peer& p) {
        acked += p.round.acked;
        if (p.round.adjusted && !p.round.acked && p.drop_reason.empty())
            event("no_ack").str("slave", p.name).num("round", static_cast<int64_t>(round_));
    });
    // From the first probe to the last ACK (or the end of the wait for one),
    // and the CPU this process has used so far: what the benchmarks measure.
    const int64_t end = acked > 0 ? last_ack_ns_ : now_.mono_ns;
    event("round_done").num("round", static_cast<int64_t>(round_)).num("duration_ns", end - round_started_ns_)
        .num("answered", static_cast<int64_t>(last_answered_)).num("acked", acked).num("cpu_ns", io_.cpu_ns());
    if (s_.rounds > 0 && round_ >= s_.rounds) return begin_shutdown("all rounds done");
    if (s_.failover) send_plans();
    look_for_masters();
    phase_ = Phase::Idle;
    io_.arm(ROUND_TIMER, round_started_ns_ + s_.interval_ns);
}

// The backup plan: this master's epoch and settings, and its successors
// ranked (failover.hpp) from the slaves that would serve (a sort of all of
// them: once a round, never once per HELLO).
inline Plan MasterRole::plan_settings() const {
    return Plan{epoch_, round_, s_.rounds, s_.interval_ns, s_.probes, s_.timeout_ns, s_.max_skew_ns, s_.max_missed,
                s_.max_slaves_set, {}};
}

inline Plan MasterRole::plan() const {
    Plan out = plan_settings();
    std::vector<SuccessorCandidate> candidates;
    door_.for_each([&](const Peer& p) {
        if (p.joined() && p.drop_reason.empty())
            candidates.push_back({p.serve_address, p.acked, p.missed_rounds, p.joined_round, p.join_order});
    });
    out.successors = rank_successors(std::move(candidates), MAX_SUCCESSORS);
    return fit_in_a_line(std::move(out), s_.door.key ? 1 + 2 * TAG_BYTES : 0);
}

// After each round, every slave hears the plan; the log keeps it when it
// changes. As the first round starts, only a changed list is sent.
inline void MasterRole::send_plans(bool only_if_changed) {
    const Plan now = plan();
    if (only_if_changed && now.successors == last_successors_) return;
    if (now.successors != last_successors_) {
        std::string list;
        for (const std::string& s : now.successors) list += (list.empty() ? "" : " ") + s;
        event("successors").num("epoch", static_cast<int64_t>(now.epoch)).num("round", static_cast<int64_t>(round_))
            .str("successors", list);
        last_successors_ = now.successors;
    }
    door_.for_each([&](Peer& p) {
        if (p.joined() && p.drop_reason.empty()) door_.send(p, now);
    });
}

// Say BYE to everyone and give the words time to arrive before closing.
inline void MasterRole::begin_shutdown(const char* why, const Message& last_word) {
    console_.say("\nshutting down: %s\n", why);
    event("shutdown").str("reason", why).num("round", static_cast<int64_t>(round_));
    phase_ = Phase::Closing;
    close_deadline_ns_ = now_.mono_ns + SHUTDOWN_GRACE_NS;
    io_.arm(ROUND_TIMER, close_deadline_ns_);
    door_.for_each([&](Peer& p) {
        io_.disarm(p.id);
        if (!p.joined()) return door_.drop(p, "shutting down");
        door_.send(p, last_word);
        if (p.drop_reason.empty() && !io_.has_output(p.id)) {
            io_.shut_write(p.id);  // BYE is out: wait for the slave to close
            p.write_shut = true;
        }
    });
}

// ===========================================================================
// Events from the shell, and the round's timers.

inline bool MasterRole::on_line(uint64_t peer, const std::string& line, int64_t recv_real_ns, const Now& now) {
    enter(now);
    if (asking_.count(peer)) return on_master_answer(peer, line), false;
    return door_.on_line(peer, line, recv_real_ns);
}

inline void MasterRole::on_closed(uint64_t peer, const std::string& why, bool tell, const Now& now) {
    enter(now);
    auto asked = asking_.find(peer);
    if (asked == asking_.end()) return door_.on_closed(peer, why, tell);
    // Refused or not: nobody answered as a master there now. It stays on
    // the list (a process restarted there would listen again).
    io_.close(peer);
    asking_.erase(asked);
}

// The rest of a peer's output went out: after BYE, close our side.
inline void MasterRole::on_flushed(uint64_t peer, const Now& now) {
    enter(now);
    Peer* p = door_.peer(peer);
    if (!p || p->write_shut || phase_ != Phase::Closing || io_.has_output(peer) || !p->joined()) return;
    io_.shut_write(peer);
    p->write_shut = true;
}

inline void MasterRole::after_turn(const Now& now) {
    enter(now);
    door_.reap();
    if (phase_ == Phase::Waiting && !s_.takeover && door_.joined() >= s_.slaves) start_round();
    if (phase_ == Phase::Probing && probing_left_ == 0) finish_probing();
    if (phase_ == Phase::Adjusting && acks_left_ == 0) finish_round();
    door_.reap();  // what the round dropped (missed rounds) goes now, not at the next event
}

inline void MasterRole::on_timer(uint64_t key, const Now& now) {
    enter(now);
    if (key == ROUND_TIMER) return on_round_timer();
    if (key == QUIET_TIMER) return door_.say_quieted();
    if (auto asked = asking_.find(key); asked != asking_.end()) {  // no answer in time: no master there now
        io_.close(key);
        asking_.erase(asked);
        return;
    }
    Peer* p = door_.peer(key);
    if (!p || !p->drop_reason.empty()) return;
    if (door_.on_timer(*p)) return;  // the door's deadlines: HELLO, a failed proof's delay
    if (phase_ == Phase::Probing) probe_done(*p);  // its pending probe timed out
}

// The round's one timer: what it means depends on the phase.
inline void MasterRole::on_round_timer() {
    switch (phase_) {
        case Phase::Waiting:  // after a takeover: the grace for the slaves to come back is over
            if (s_.takeover && s_.rounds > 0 && s_.first_round > s_.rounds)
                return begin_shutdown("all rounds done");  // the old master had run them all
            if (s_.takeover && door_.joined() > 0) return start_round();
            return send_waits();
        case Phase::Probing:  // the round cannot wait longer for slow slaves' last probes
            door_.for_each([&](Peer& p) { probe_done(p); });
            return;
        case Phase::Adjusting: return finish_round();  // some ACKs did not come
        case Phase::Idle: return start_round();
        case Phase::Closing: return;  // finished() sees the deadline has passed
    }
}

// While waiting for slaves, a WAIT every second tells those already here
// that this master is alive.
inline void MasterRole::send_waits() {
    door_.for_each([&](Peer& p) {
        if (p.joined() && p.drop_reason.empty()) door_.send(p, Wait{door_.joined(), s_.slaves});
    });
    io_.arm(ROUND_TIMER, now_.mono_ns + heartbeat_ns());
}

// A slave said a valid HELLO (door.hpp let it in): it hears the epoch it now
// follows and the successors everyone else heard last (the list changes only
// for all at once, send_plans, never one by one).
inline void MasterRole::on_joined(Peer& p) {
    p.joined_round = round_;
    std::erase(lost_, p.serve_address);  // back with us
    door_.send(p, Wait{door_.joined(), s_.slaves});  // heard: this master is alive while it waits
    if (s_.failover) {
        Plan heard = plan_settings();
        heard.successors = last_successors_;
        door_.send(p, heard);
    }
    if (phase_ == Phase::Waiting && s_.takeover) {
        if (door_.joined() == 1) io_.arm(ROUND_TIMER, now_.mono_ns + TAKEOVER_GRACE_NS);
    } else if (phase_ == Phase::Waiting) {
        if (p.told) console_.say("waiting for slaves: %zu/%zu\n", door_.joined(), s_.slaves);
        if (!io_.armed(ROUND_TIMER)) io_.arm(ROUND_TIMER, now_.mono_ns + heartbeat_ns());
    }
}

// A peer is being dropped: it takes no further part in the round.
inline void MasterRole::on_leaving(Peer& p) {
    if (p.joined() && phase_ != Phase::Closing) remember_lost(p.serve_address);
    probe_done(p);
    if (p.round.adjusted && !p.round.acked) {
        assert(acks_left_ > 0);
        --acks_left_;
    }
    p.round.adjusted = false;
}

// ===========================================================================
// Finding other masters. A partition healed, a master frozen past the
// election and resumed, a successor that took over while the one before it
// was only cut off: two masters, each steering a part of the group. Each
// looks, once a round, at up to LOOKS_PER_ROUND of the addresses where a
// slave it lost would serve (and, after a takeover, the old master's): a
// connection of its own asking MASTER?. A master that answers with a
// higher rank (failover.hpp) gets everyone: we send our slaves there
// (FOLLOW) and follow it ourselves. A lower one will find us the same way.

constexpr size_t MAX_LOST = 16;        // addresses remembered, the newest
constexpr size_t LOOKS_PER_ROUND = 2;  // connections opened per round to look

// With a secret, masters do not look for each other yet: the MASTER
// answer is not authenticated, and an impostor answering with a higher
// rank would send the group to a master that cannot prove the secret.
inline bool MasterRole::looks_for_masters() const { return s_.failover && !s_.door.key; }

inline void MasterRole::remember_lost(const std::string& address) {
    if (address.empty() || !looks_for_masters()) return;
    std::erase(lost_, address);
    lost_.push_back(address);
    if (lost_.size() > MAX_LOST) lost_.erase(lost_.begin());
}

inline void MasterRole::look_for_masters() {
    for (size_t n = 0; n < std::min(LOOKS_PER_ROUND, lost_.size()); ++n) {
        const std::string address = lost_[next_look_++ % lost_.size()];
        bool busy = false;
        for (const auto& [peer, asked] : asking_) busy = busy || asked == address;
        if (busy) continue;
        std::string error;
        const auto peer = io_.dial(address, error);
        if (!peer) continue;
        asking_[*peer] = address;
        io_.arm(*peer, now_.mono_ns + s_.timeout_ns);
    }
}

inline void MasterRole::on_dialed(uint64_t peer, const Now& now) {
    enter(now);
    if (!asking_.count(peer)) return;
    std::string error;
    if (!io_.send(peer, format_message(WhoIsMaster{epoch_, token_, port_}), error)) {
        io_.close(peer);
        asking_.erase(peer);
    }
}

inline void MasterRole::on_master_answer(uint64_t peer, const std::string& line) {
    const std::string address = asking_[peer];
    io_.close(peer);
    asking_.erase(peer);
    const Parsed parsed = parse_message(line);
    if (!parsed.message || !std::holds_alternative<IAmMaster>(*parsed.message)) return;  // no master there
    const auto& a = std::get<IAmMaster>(*parsed.message);
    const MasterRank theirs{a.epoch, a.token};
    if (phase_ != Phase::Closing && outranks(theirs, rank())) yield_to(address, theirs);
}

// Another master asks who we are. Of the same epoch but of a lower token,
// it will yield to us and send us its slaves, which followed that epoch:
// we move to the next one first, so that none of them follows two masters
// in one epoch. Of a higher rank: we ask it back at once (a restarted
// master knows nobody to look at; its question tells it where to look),
// and yield if its answer says the same (a question is not proof enough).
inline IAmMaster MasterRole::on_master_query(const WhoIsMaster& q, const std::string& host) {
    const MasterRank theirs{q.epoch, q.token};
    if (outranks(theirs, rank()) && q.port != 0 && looks_for_masters()) {
        remember_lost(host + ":" + std::to_string(q.port));
        next_look_ = lost_.size() - 1;  // that one first
        look_for_masters();
    }
    if (q.epoch == epoch_ && outranks(rank(), theirs) && epoch_ < MAX_EPOCH) {
        ++epoch_;
        event("epoch").num("epoch", static_cast<int64_t>(epoch_))
            .str("reason", "a master of epoch " + std::to_string(q.epoch) + " will yield to us");
        if (s_.failover) send_plans();
    }
    return IAmMaster{epoch_, token_};
}

// A master that outranks us: our slaves go there, and so do we (the shell
// starts a slave of `address` with our clock once we are finished).
inline void MasterRole::yield_to(const std::string& address, const MasterRank& theirs) {
    console_.say("%s: the master at %s outranks us (epoch %" PRIu64 " against our %" PRIu64 "): following it\n",
                 s_.id.c_str(), address.c_str(), theirs.epoch, epoch_);
    event("yield").str("to", address).num("epoch", static_cast<int64_t>(theirs.epoch))
        .num("our_epoch", static_cast<int64_t>(epoch_)).num("slaves", static_cast<int64_t>(door_.joined()));
    yielded_to_ = address;
    for (auto& [peer, asked] : asking_) io_.close(peer);
    asking_.clear();
    begin_shutdown("yielded to a master that outranks us", Follow{address});
}

// What this peer should send next, in the words of the protocol (--by-hand).
inline std::string MasterRole::expected_from(const Peer& p) const {
    if (!p.joined()) return "HELLO <id>";
    if (phase_ == Phase::Probing && p.round.probed && !p.round.probing_done)
        return "CLOCK " + std::to_string(round_) + " " + std::to_string(p.round.probes_sent) +
               (s_.kernel_timestamps ? " <t2> <t3>" : " <clock>");
    if (phase_ == Phase::Adjusting && p.round.adjusted && !p.round.acked) return "ACK " + std::to_string(round_);
    return "nothing now (wait for TIME?)";
}

inline int MasterRole::finish(const Now& now) {
    enter(now);
    door_.say_quieted();
    const bool complete = s_.rounds > 0 && round_ >= s_.rounds && phase_ == Phase::Closing;
    console_.say("finished: %" PRIu64 " round(s); %zu slave(s) answered the last one", round_, last_answered_);
    if (last_answered_ > 0) console_.say(", their corrections within %s", format_duration(last_spread_ns_).c_str() + 1);
    console_.say("\n");
    event("exit").num("rounds", static_cast<int64_t>(round_)).flag("complete", complete);
    door_.close_all();
    for (auto& [peer, asked] : asking_) io_.close(peer);
    asking_.clear();
    return log_.lost() == 0 ? 0 : 1;
}

}  // namespace berkeley
