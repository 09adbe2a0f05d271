// slave_role.hpp - a Berkeley slave as a role: it answers every clock
// request at once from its clock, adds each correction it is sent and
// acknowledges it (the textbook's two handlers, on_time_query and
// on_adjust); it never receives an absolute time, only corrections. Around
// them: finding the master (retrying with back-off), making it prove the
// secret first (auth.hpp), following one master per epoch, and the election
// when the master is gone (failover.hpp). Fed events and the time, it
// answers through SlaveIo (role.hpp): no socket, no clock.
//
//   waiting --attempt--> connecting --up--> connected (following a master)
//      ^  <---refused / failed / lost---'        | master gone, a plan:
//      |                                          v
//      '-- none answered <-- electing: the old master, then successors in
//                            order; successor k with none before it answering
//                            --> takes over (SlaveIo::take_over) as epoch + 1
#pragma once

#include <cinttypes>
#include <optional>
#include <random>
#include <string>

#include "auth.hpp"
#include "simclock.hpp"
#include "eventlog.hpp"
#include "failover.hpp"
#include "protocol.hpp"
#include "role.hpp"
#include "units.hpp"

namespace berkeley {

// Retries back off exponentially with full jitter: a delay drawn from 0 up
// to a ceiling that doubles from FIRST_RETRY_NS to MAX_RETRY_NS, so that
// thousands of slaves refused at once do not all come back at once.
constexpr int64_t FIRST_RETRY_NS = 50 * NS_PER_MS;
constexpr int64_t MAX_RETRY_NS = 1 * NS_PER_S;

struct SlaveSettings {
    std::string id;
    std::string master;               // "host:port" (IPv6 in brackets)
    int64_t connect_timeout_ns = 30 * NS_PER_S;
    int64_t lie_ns = 0;               // fault injection: every answer this far off
    bool ignore_corrections = false;  // fault injection: acknowledge, apply nothing
    Discipline discipline;
    bool kernel_timestamps = true;    // two readings per reply (T2, T3), else one
    std::optional<HmacSha256> key;    // the group key: the master proves it first
    uint64_t epoch = 0;               // the epoch this node already followed or led (a master that yielded)
    uint64_t seed = 0;                // the clock's, and the back-off's jitter
};

class SlaveRole {
public:
    enum class State { Waiting, Connecting, Connected, Master, Done };

    SlaveRole(const SlaveSettings& s, SlaveIo& io, EventLog& log, Console console, SimClock& clock)
        : s_(s), io_(io), log_(log), console_(console), clock_(clock), rng_(s.seed ^ 0x9E3779B97F4A7C15ULL),
          epoch_(s.epoch) {}

    void start(const Now& now);
    // The shell's answers to connect(): `serving` is where this slave would
    // serve as master ("host:port", empty: nowhere), `serve_port` its port;
    // `nonce` 32 random bytes for the handshake (nullopt: none to be had).
    void on_connected(const std::string& serving, uint16_t serve_port, const std::optional<Nonce>& nonce, const Now& now);
    void on_connect_failed(const std::string& error, const Now& now);
    // A line from the master; false: stop reading, the connection is over.
    bool on_line(const std::string& line, int64_t recv_real_ns, const Now& now);
    void on_closed(const std::string& why, const Now& now) { enter(now), lose_master(why); }
    void on_timer(const Now& now);
    void stop(const char* why, const Now& now) {
        enter(now);
        if (state_ != State::Done) finish(0, why);
    }

    State state() const { return state_; }
    bool done() const { return state_ == State::Done; }
    int exit_code() const { return exit_code_; }
    uint64_t epoch() const { return epoch_; }                       // the highest epoch followed
    const std::string& master() const { return master_address_; }  // the master followed, or last followed
    bool following() const { return state_ == State::Connected && heard_ && !electing_; }
    const std::string& id() const { return s_.id; }

private:
    void try_connect();
    void on_answer(const std::string& line);
    std::string wire(const Message& m);
    bool send(const Message& m);
    void on_time_query(const TimeQuery& m, int64_t recv_real_ns);
    void on_adjust(const Adjust& m);
    void on_wait(const Wait& m);
    void on_plan(const Plan& m);
    void on_error(const Error& m);
    void on_follow(const Follow& m);
    int64_t silence_ns() const;
    int64_t plan_wait_ns(int intervals) const;
    void drop_connection(const std::string& why);
    void candidate_refused(const std::string& why, bool alive);
    void elect();
    void next_candidate();
    void take_over();
    void retry_later();
    void lose_master(const std::string& why);
    void give_up();
    void violation(const std::string& what);
    void finish(int code, const std::string& why);

    void enter(const Now& now) { now_ = now; }
    EventLog::Line event(std::string_view name) {
        return log_.event(name, s_.id, read_clock(clock_, now_.real_ns), now_.real_ns);
    }

    const SlaveSettings& s_;
    SlaveIo& io_;
    EventLog& log_;
    Console console_;
    SimClock& clock_;                 // the node's clock: a master we become keeps it
    Now now_;                         // the event being handled
    State state_ = State::Waiting;
    int64_t retry_delay_ns_ = FIRST_RETRY_NS;  // the back-off's ceiling now
    std::mt19937_64 rng_;                      // its jitter
    int64_t give_up_at_ns_ = 0;       // monotonic: end of the connect timeout
    bool heard_ = false;              // has the master said anything valid on this connection
    bool said_waiting_ = false;       // told the console we are waiting for a master to answer
    // With a secret (auth.hpp): our challenge, then the session once the master proved itself.
    Nonce nonce_{};
    bool awaiting_proof_ = false;
    std::optional<Session> session_;
    uint64_t last_wait_joined_ = 0;   // the last WAIT's count, so each is printed once
    int64_t last_heard_ns_ = 0;       // monotonic
    uint64_t last_adjust_round_ = 0;
    uint64_t last_query_round_ = 0;   // (round, probe) of the last TIME? answered on
    uint32_t last_query_probe_ = 0;   // this connection: an honest master only goes forward
    std::string failure_;             // why the last attempt failed, for the final error
    int exit_code_ = 0;
    // Failover (failover.hpp): where we would serve, the last plan, the election.
    std::string self_address_;        // "host:port" we would serve on, as the master sees it
    uint16_t serve_port_ = 0;
    std::string master_address_;      // the master we follow, or last followed
    std::string target_;              // the address being tried now
    std::optional<Plan> plan_;        // the last PLAN of the master we follow
    uint64_t epoch_ = 0;              // the highest epoch we have followed
    uint64_t plan_epoch_on_connection_ = 0;  // the epoch this connection's master said first (0: none yet)
    ElectionOrder election_;          // while electing: whom to try, in order
    size_t candidate_ = 0;
    bool electing_ = false;
    bool elected_ = false;            // the master we follow was found by election, not configured
    bool retry_candidate_ = false;    // the next attempt goes to the same candidate
};

inline void SlaveRole::start(const Now& now) {
    enter(now);
    const int64_t clock = read_clock(clock_, now.real_ns);
    console_.say("%s: clock starts at %s (offset %s, drift %+.3f ppm)\n", s_.id.c_str(), format_time(clock).c_str(),
                 format_duration(clock - now.real_ns).c_str(), static_cast<double>(clock_.rate_ppb) / PPB_PER_PPM);
    event("start").num("offset_ns", clock_.anchor_clock_ns - clock_.anchor_real_ns).num("rate_ppb", clock_.rate_ppb)
        .num("seed", static_cast<int64_t>(s_.seed & INT64_MAX))
        .str("timestamps", s_.kernel_timestamps ? "kernel" : "user");
    give_up_at_ns_ = now.mono_ns + s_.connect_timeout_ns;
    master_address_ = target_ = s_.master;
    try_connect();
}

inline void SlaveRole::try_connect() {
    std::string error;
    if (io_.connect(target_, error)) {
        state_ = State::Connecting;
        // A candidate whose handshake hangs (its SYNs dropped) is passed over like a silent one.
        io_.arm(electing_ ? std::min(give_up_at_ns_, now_.mono_ns + plan_wait_ns(2)) : give_up_at_ns_);
        return;
    }
    failure_ = error;
    if (electing_) return next_candidate();
    retry_later();
}

inline void SlaveRole::retry_later() {
    state_ = State::Waiting;
    // Say once that we are waiting, so that a slave started before its master is not silent.
    if (!said_waiting_ && !electing_ && failure_.rfind("connect", 0) == 0) {
        said_waiting_ = true;
        console_.say("%s: no master at %s yet (%s); trying again for up to %s\n", s_.id.c_str(), target_.c_str(),
                     failure_.c_str(), format_duration(give_up_at_ns_ - now_.mono_ns).c_str() + 1);
    }
    std::uniform_int_distribution<int64_t> jitter(0, retry_delay_ns_);
    io_.arm(now_.mono_ns + jitter(rng_));
}

// This slave's one timer: the next connection attempt, giving up on a
// handshake, or silence from the master (it answers HELLO with WAIT at once
// and repeats it every second until its first round; after that its rounds
// keep talking). Silence is checked lazily: the timer is not moved each time
// the master speaks, only re-armed here if it did.
inline void SlaveRole::on_timer(const Now& now) {
    enter(now);
    switch (state_) {
        case State::Waiting:
            if (now.mono_ns >= give_up_at_ns_) return give_up();
            retry_delay_ns_ = std::min(retry_delay_ns_ * 2, MAX_RETRY_NS);
            if (electing_ && retry_candidate_) {  // a candidate that refused us for now
                retry_candidate_ = false;
                return try_connect();
            }
            if (electing_) return elect();  // the list again, from the top
            return try_connect();
        case State::Connecting:  // a handshake that never finishes (SYN dropped)
            io_.close();
            if (electing_ && now.mono_ns < give_up_at_ns_) {
                failure_ = "connect: no answer from " + target_;
                return next_candidate();
            }
            return give_up();
        case State::Connected: {
            const int64_t silence = silence_ns();
            if (now.mono_ns < last_heard_ns_ + silence) return io_.arm(last_heard_ns_ + silence);
            return lose_master("no word from the master for " + std::to_string(silence / NS_PER_MS) + " ms");
        }
        case State::Master:
        case State::Done: return;
    }
}

inline void SlaveRole::give_up() {
    const std::string where = master_address_;
    if (failure_.empty() || failure_.rfind("connect", 0) == 0)
        return finish(1, "could not reach the master at " + where + (failure_.empty() ? "" : " (" + failure_ + ")") +
                             "; is ./master running?");
    finish(1, "gave up on the master at " + where + ": " + failure_);
}

inline void SlaveRole::on_connect_failed(const std::string& error, const Now& now) {
    enter(now);
    if (state_ != State::Connecting) return;
    io_.close();
    failure_ = error;
    if (electing_) return next_candidate();
    retry_later();
}

inline void SlaveRole::on_connected(const std::string& serving, uint16_t serve_port, const std::optional<Nonce>& nonce,
                                    const Now& now) {
    enter(now);
    if (state_ != State::Connecting) return;
    if (!serving.empty() && self_address_.empty()) {
        self_address_ = serving;
        serve_port_ = serve_port;
        event("serving").str("address", self_address_);
    }
    state_ = State::Connected;
    // With a secret, the master must prove itself before we say who we are.
    session_.reset();
    awaiting_proof_ = s_.key.has_value();
    if (awaiting_proof_ && !nonce) return lose_master("no random bytes for a nonce");
    if (nonce) nonce_ = *nonce;
    // A clock already corrected keeps a group's time: say so, so that a new
    // master is brought to it rather than it to the master.
    std::string first = format_challenge(nonce_);
    if (!awaiting_proof_) {
        first = format_message(Hello{s_.id, serve_port_, epoch_});
        if (clock_.corrected) first += format_message(InStep{});
    }
    std::string error;
    if (!io_.send(first, error)) return lose_master(error);
    io_.arm(now.mono_ns + silence_ns());
    heard_ = false;  // the back-off and the give-up time reset only once the master talks
    last_heard_ns_ = now.mono_ns;
    last_wait_joined_ = 0;
    last_query_round_ = last_adjust_round_ = 0;  // a new master counts rounds anew
    last_query_probe_ = 0;
    plan_epoch_on_connection_ = 0;
    console_.say("%s: connected to %s at %s\n", s_.id.c_str(), electing_ ? "a candidate" : "the master", target_.c_str());
    event("connected").str("master", target_);
}

// Dispatch one line from the master to its handler. False: stop reading, the connection is gone.
inline bool SlaveRole::on_line(const std::string& line, int64_t recv_real_ns, const Now& now) {
    enter(now);
    if (state_ != State::Connected) return false;
    if (awaiting_proof_) {
        on_answer(line);
        return state_ == State::Connected;
    }
    // The master proved itself, but refused our proof (its guess budget for
    // our address is spent, say): that answer comes before its first tagged
    // line. A live master: keep trying, with back-off.
    if (session_ && session_->in.lines() == 0 && line.rfind("ERROR ", 0) == 0) {
        const std::string why = "the master refused our proof: " + line.substr(6, MAX_REASON_BYTES);
        if (electing_) {
            candidate_refused(why, true);
        } else {
            heard_ = true;  // a live master: a fresh connect timeout
            lose_master(why);
        }
        return false;
    }
    std::optional<std::string> opened;
    if (session_ && !(opened = session_->in.open(line))) {
        violation("bad tag on line " + std::to_string(session_->in.lines() + 1) +
                  " from the master: forged, altered, replayed, reordered or cut");
        return false;
    }
    const Parsed parsed = parse_message(opened ? *opened : line);
    if (!parsed.message) {
        violation("bad message: " + parsed.error);
        return false;
    }
    const Message& m = *parsed.message;
    if (std::holds_alternative<Wait>(m) || std::holds_alternative<TimeQuery>(m) || std::holds_alternative<Adjust>(m) ||
        std::holds_alternative<Plan>(m) || std::holds_alternative<Follow>(m)) {
        last_heard_ns_ = now.mono_ns;  // the master is alive
        if (!heard_) retry_delay_ns_ = FIRST_RETRY_NS;
        heard_ = true;
        said_waiting_ = false;
        if (electing_) {  // the candidate answers as a master: the election is over for us
            electing_ = false;
            elected_ = elected_ || target_ != master_address_;
            master_address_ = target_;
            console_.say("%s: following the master at %s\n", s_.id.c_str(), master_address_.c_str());
        }
    }
    std::visit(Overloaded{
                   [&](const Wait& w) { on_wait(w); },
                   [&](const Plan& p) { on_plan(p); },
                   [&](const TimeQuery& q) { on_time_query(q, recv_real_ns); },
                   [&](const Adjust& a) { on_adjust(a); },
                   [&](const Bye&) { finish(0, "the master said BYE"); },
                   [&](const Follow& f) { on_follow(f); },
                   [&](const Error& e) { on_error(e); },
                   [&](const auto& other) { violation(std::string(verb_name(other)) + " is a slave's message"); },
               },
               m);
    return state_ == State::Connected;
}

// ---------------------------------------------------------------------------
// The textbook's slave: two handlers.

// Answer at once. With kernel timestamps the reply carries two readings:
// the clock when the request arrived (the kernel's stamp, so the time this
// process took to wake up does not count) and the clock as the reply leaves.
// With user timestamps it is Cristian's single reading, of that last moment.
// The line is built after that reading (it holds it): the shell reads its
// clock at the reply and adds its estimate of how long building and
// sending one takes (reply_leaves_real_ns), so that T3 names the moment the
// line leaves, as the master's T1 does.
inline void SlaveRole::on_time_query(const TimeQuery& m, int64_t recv_real_ns) {
    if (m.round < last_query_round_ || (m.round == last_query_round_ && m.probe <= last_query_probe_))
        return violation("TIME? " + std::to_string(m.round) + " " + std::to_string(m.probe) + " repeats or goes back");
    last_query_round_ = m.round;
    last_query_probe_ = m.probe;
    const bool two = s_.kernel_timestamps;
    const int64_t t2 = read_clock(clock_, recv_real_ns);
    const int64_t sent_real = io_.reply_leaves_real_ns(now_);
    const int64_t t3 = read_clock(clock_, sent_real);  // T3: as the line will leave
    const int64_t lie = s_.lie_ns;
    const ClockReply reply = two ? ClockReply{m.round, m.probe, t2 + lie, t3 + lie}
                                 : ClockReply{m.round, m.probe, t3 + lie, std::nullopt};
    std::string error;
    if (!io_.send_reply(wire(reply), error)) return lose_master(error);
    auto e = log_.event("reply", s_.id, t3, sent_real);  // the log keeps the truth
    e.num("round", static_cast<int64_t>(m.round)).num("probe", m.probe);
    if (two) e.num("arrived_ns", t2).num("arrived_real_ns", recv_real_ns);
    if (lie != 0) e.num("lie_ns", lie);
}

// Add the correction (stepped or slewed) and the change
// of rate, and say so (Step 5, simclock.hpp).
inline void SlaveRole::on_adjust(const Adjust& m) {
    if (m.round <= last_adjust_round_)  // applying it twice would double the step
        return violation("ADJUST " + std::to_string(m.round) + " repeats or goes back");
    if (s_.ignore_corrections) {
        last_adjust_round_ = m.round;
        event("ignored").num("round", static_cast<int64_t>(m.round)).num("correction_ns", m.correction_ns);
        const auto none = m.rate_change_ppb ? std::optional<int64_t>(0) : std::nullopt;  // it applied nothing
        send(Ack{m.round, none});
        return;
    }
    // Our clock keeps a group's time: a master we reached by election does
    // not step it, it is slewed there (an impostor, or a member whose clock
    // left the group, moves it at the slew rate at most: README's threat
    // model; two groups that drifted apart merge the same way).
    Discipline discipline = s_.discipline;
    if (elected_ && clock_.corrected && how_applied(true, m.correction_ns + s_.lie_ns, discipline) == Applied::Step) {
        event("step_refused").num("round", static_cast<int64_t>(m.round)).num("correction_ns", m.correction_ns);
        discipline.step_threshold_ns = INT64_MAX;  // slewed instead
    }
    // A liar takes the correction its lie was answered with too, and no rate
    // change (those answer its lie as well), so that its clock keeps the
    // master's time and its every answer is the same lie.
    const int64_t real = now_.real_ns;
    const int64_t rate_change = s_.lie_ns != 0 ? 0 : m.rate_change_ppb.value_or(0);
    const int64_t trim_before = clock_.trim_ppb;
    auto corrected = apply_correction(clock_, real, m.correction_ns + s_.lie_ns, rate_change, discipline);
    if (!corrected) return violation("correction " + std::to_string(m.correction_ns) + " out of range");
    clock_ = corrected->clock;
    last_adjust_round_ = m.round;
    const int64_t clock = read_clock(clock_, real);
    auto e = event("adjust");
    e.num("round", static_cast<int64_t>(m.round)).num("correction_ns", m.correction_ns + s_.lie_ns);
    if (s_.lie_ns != 0) e.num("lie_ns", s_.lie_ns);
    if (m.rate_change_ppb) e.num("rate_change_ppb", *m.rate_change_ppb);
    correction_fields(e, *corrected);
    // Slewed, the correction is still being added: show the time it is heading for.
    console_.say("%s: Synchronized time at the slave is: %s (correction %s, %s)\n", s_.id.c_str(),
                 format_time(clock + slew_remaining(clock_, real)).c_str(),
                 format_duration(m.correction_ns + s_.lie_ns).c_str(),
                 corrected->how == Applied::Step ? "stepped" : "slewing");
    // Say what change of rate was applied, when one was sent: the master's
    // filter re-rates its samples by it (a liar, --no-frequency or the trim's
    // limit apply less than was sent, or nothing).
    const auto applied = m.rate_change_ppb ? std::optional<int64_t>(corrected->clock.trim_ppb - trim_before)
                                           : std::nullopt;
    send(Ack{m.round, applied});
}

// ---------------------------------------------------------------------------
// Following the master.

// The master's answer to our challenge: its nonce and its proof. Nothing it
// says before a right proof is believed: an ERROR may come from an impostor,
// so it does not end us (we retry until the connect timeout), and a wrong
// proof closes the connection without a word.
inline void SlaveRole::on_answer(const std::string& line) {
    const auto answer = parse_answer(line);
    if (!answer) {
        const Parsed parsed = parse_message(line);
        if (parsed.message && std::holds_alternative<Error>(*parsed.message)) {
            const std::string why = "the master refused us before proving itself: " + std::get<Error>(*parsed.message).reason;
            if (electing_) return candidate_refused(why, true);  // maybe busy: give it its time
            return lose_master(why);
        }
        return lose_master("the master did not prove itself (expected AUTH <nonce> <proof>)");
    }
    const HmacSha256& key = *s_.key;
    if (!equal_constant_time(answer->proof, master_proof(key, nonce_, answer->master_nonce)))
        return lose_master("the master's proof is wrong: it does not know our secret (an impostor?)");
    awaiting_proof_ = false;
    session_ = session_for(Role::Slave, key, nonce_, answer->master_nonce);
    std::string out = format_proof(slave_proof(key, nonce_, answer->master_nonce)) + wire(Hello{s_.id, serve_port_, epoch_});
    if (clock_.corrected) out += wire(InStep{});
    std::string error;
    if (!io_.send(out, error)) lose_master(error);
}

// The line for a message to the master: tagged once it proved itself.
inline std::string SlaveRole::wire(const Message& m) {
    return session_ ? session_->out.seal(format_message(m)) : format_message(m);
}

inline bool SlaveRole::send(const Message& m) {
    std::string error;
    if (io_.send(wire(m), error)) return true;
    lose_master(error);
    return false;
}

// A wrong secret will not get better by retrying; anything else (too many
// slaves, missed rounds, our id still taken) may.
inline void SlaveRole::on_error(const Error& m) {
    const bool final = m.reason.rfind("authentication", 0) == 0 || m.reason.find("has no secret") != std::string::npos;
    if (final) return finish(1, "the master refused us: " + m.reason);
    // A candidate that refuses us is alive, a master busy or full for now,
    // unless it is a master of an older epoch: then it is not ours.
    const bool older = m.reason.find("is older than epoch") != std::string::npos;
    if (electing_) return candidate_refused("a candidate refused us: " + m.reason, !older);
    // Our master, busy or full for now: keep trying it, never give up on
    // it. But one of an older epoch than we followed is not ours: once
    // --connect-timeout passes without ours, we exit (a supervisor starts us
    // afresh), or one epoch we were once told, true or not, locks us out.
    drop_connection("the master refused us: " + m.reason);
    if (!older) give_up_at_ns_ = now_.mono_ns + s_.connect_timeout_ns;
    heard_ = false;
    retry_later();
}

// The master heard our HELLO (and repeats it while it waits for the others).
inline void SlaveRole::on_wait(const Wait& m) {
    if (m.joined == last_wait_joined_) return;
    last_wait_joined_ = m.joined;
    if (m.joined < m.needed)
        console_.say("%s: the master is waiting for slaves: %" PRIu64 "/%" PRIu64 "\n", s_.id.c_str(), m.joined, m.needed);
}

// The master broke the protocol: tell it why, close, and start over (an
// honest master that restarted will be found again).
inline void SlaveRole::violation(const std::string& what) {
    std::string error;
    (void)io_.send(wire(Error{what.substr(0, MAX_REASON_BYTES)}), error);
    lose_master("protocol violation: " + what);
}

// The master went away without BYE: try again until the connect timeout.
inline void SlaveRole::lose_master(const std::string& why) {
    if (state_ != State::Connected && state_ != State::Connecting) return;  // already over
    drop_connection(why);
    // A session that worked earns a fresh connect timeout; a connection the
    // master never used (refused, or closed at once) does not.
    if (heard_) give_up_at_ns_ = now_.mono_ns + s_.connect_timeout_ns;
    heard_ = false;
    if (electing_) return next_candidate();  // this candidate did not answer as a master
    if (plan_ && !plan_->successors.empty()) return elect();
    retry_later();
}

// Say why the connection ends, and let it go.
inline void SlaveRole::drop_connection(const std::string& why) {
    console_.say("%s: lost the master: %s; reconnecting\n", s_.id.c_str(), why.c_str());
    event("lost").str("reason", why);
    io_.close();
    state_ = State::Waiting;
    failure_ = why;
}

// With a plan, a master is gone after three intervals without a word (plus
// a probe's timeout). A candidate that accepted us but does not answer as a
// master within two intervals (plus a timeout) is passed over: alive, it
// would have taken over by then. Without a plan: --connect-timeout.
inline int64_t SlaveRole::silence_ns() const {
    if (!plan_ || plan_->successors.empty()) return s_.connect_timeout_ns;
    return plan_wait_ns(electing_ && !heard_ ? 2 : 3);
}

// `intervals` of the plan's interval and a probe's timeout: how long a live
// master may be silent. Never beyond --connect-timeout, whatever a PLAN says.
inline int64_t SlaveRole::plan_wait_ns(int intervals) const {
    const __int128 wait = static_cast<__int128>(intervals) * plan_->interval_ns + plan_->timeout_ns;
    return static_cast<int64_t>(std::min<__int128>(wait, s_.connect_timeout_ns));
}

// A candidate refused us. Alive (busy, full, our id still taken there): it
// answered, so it is no dead master to be replaced; try it again shortly,
// until --connect-timeout (passing it over, a successor after it would take
// over beside it: two masters). Not ours (an older epoch): the next one.
inline void SlaveRole::candidate_refused(const std::string& why, bool alive) {
    drop_connection(why);
    heard_ = false;
    if (!alive) return next_candidate();
    retry_candidate_ = true;
    state_ = State::Waiting;
    std::uniform_int_distribution<int64_t> jitter(FIRST_RETRY_NS / 2, FIRST_RETRY_NS);
    io_.arm(now_.mono_ns + jitter(rng_));
}

// ---------------------------------------------------------------------------
// Failover. The master names its successors in each PLAN; when it is gone we
// try it once more, then the successors in order (failover.hpp). Successor k
// takes over when the old master and successors 1..k-1 do not answer.

inline void SlaveRole::on_plan(const Plan& m) {
    if (m.epoch < epoch_)
        return violation("PLAN of epoch " + std::to_string(m.epoch) + ", older than epoch " + std::to_string(epoch_) +
                         ", which we follow");
    // A master's epoch is fixed for its life: it cannot claim a higher one later.
    if (plan_epoch_on_connection_ != 0 && m.epoch != plan_epoch_on_connection_)
        return violation("PLAN of epoch " + std::to_string(m.epoch) + " from the master of epoch " +
                         std::to_string(plan_epoch_on_connection_));
    plan_epoch_on_connection_ = m.epoch;
    const bool changed = !plan_ || plan_->epoch != m.epoch || plan_->successors != m.successors;
    const int64_t silence_before = silence_ns();
    epoch_ = m.epoch;
    plan_ = m;
    // The timer was armed for the silence allowed before (--connect-timeout
    // without a plan): a plan with successors allows 3 intervals from now on.
    if (silence_ns() < silence_before) io_.arm(last_heard_ns_ + silence_ns());
    if (!changed) return;
    std::string list;
    for (const std::string& s : m.successors) list += (list.empty() ? "" : " ") + s;
    event("plan").num("epoch", static_cast<int64_t>(m.epoch)).num("round", static_cast<int64_t>(m.round))
        .str("successors", list);
}

// Our master yielded to one that outranks it (a partition healed, say): we
// follow that one now. Not an election: our master, proven, sent us there.
inline void SlaveRole::on_follow(const Follow& m) {
    console_.say("%s: the master yielded to the master at %s: following it\n", s_.id.c_str(), m.address.c_str());
    event("follow").str("master", m.address).str("from", master_address_);
    drop_connection("the master yielded to " + m.address);
    master_address_ = target_ = m.address;
    give_up_at_ns_ = now_.mono_ns + s_.connect_timeout_ns;
    heard_ = electing_ = false;
    retry_delay_ns_ = FIRST_RETRY_NS;
    try_connect();
}

// The master is gone: the list to try, from its top.
inline void SlaveRole::elect() {
    election_ = election_order(master_address_, plan_->successors, self_address_);
    candidate_ = 0;
    electing_ = true;
    event("electing").num("epoch", static_cast<int64_t>(epoch_)).str("old_master", master_address_)
        .flag("successor", election_.take_over);
    target_ = election_.try_in_order.front();
    try_connect();
}

// The candidate tried did not answer as a master: the next one; after the
// last, take over if we are a successor, else start over after a back-off.
inline void SlaveRole::next_candidate() {
    if (++candidate_ < election_.try_in_order.size()) {
        target_ = election_.try_in_order[candidate_];
        return try_connect();
    }
    if (election_.take_over) return take_over();
    retry_later();
}

// Successor and nobody before us answered: become the master of the plan's
// next epoch, in this process, with our clock, our log and the plan's
// settings (the shell starts the master role on the listener it holds).
// Nobody is stepped: our clock already keeps the group's time.
inline void SlaveRole::take_over() {
    const Plan& plan = *plan_;
    console_.say("%s: no master and no successor before us answered: taking over (epoch %" PRIu64 ")\n",
                 s_.id.c_str(), plan.epoch + 1);
    event("takeover").num("epoch", static_cast<int64_t>(plan.epoch + 1)).num("round", static_cast<int64_t>(plan.round))
        .str("old_master", master_address_).str("address", self_address_);
    std::string error;
    state_ = State::Master;
    electing_ = false;
    // Until its first round ranks its own, the new master names the
    // successors after us: were it to die at once, the rest could still elect.
    Plan ours = plan;
    std::erase(ours.successors, self_address_);
    if (io_.take_over(ours, error)) return;
    // It could not: go on as a slave, and try the list again.
    state_ = State::Waiting;
    console_.warn("%s: cannot take over: %s\n", s_.id.c_str(), error.c_str());
    event("lost").str("reason", "cannot take over: " + error);
    election_.take_over = false;
    retry_later();
}

inline void SlaveRole::finish(int code, const std::string& why) {
    if (code != 0) console_.warn("%s: %s\n", s_.id.c_str(), why.c_str());
    else console_.say("%s: %s; exiting\n", s_.id.c_str(), why.c_str());
    event("exit").num("code", code).str("reason", why);
    io_.close();
    io_.disarm();
    state_ = State::Done;
    exit_code_ = code;
}

}  // namespace berkeley
