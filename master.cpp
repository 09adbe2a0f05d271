// master.cpp - the Berkeley time daemon. It waits for N slaves, then runs
// rounds: probe every slave's clock (several probes each, concurrently),
// keep each slave's best estimate, agree on the fault-tolerant average with
// its own clock counted as offset 0, send every slave the correction it must
// add, and correct itself. The arithmetic is clock.hpp, the sockets net.hpp,
// the shared secret's handshake and tags auth.hpp; this file is the policy
// and the wiring.
// Reading order: options; Peer and Master; THE ROUND (start_round ..
// finish_round: the textbook's steps); the main loop and timers; connections
// and the admission defences; main().
#include <algorithm>
#include <cinttypes>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "auth.hpp"
#include "cli.hpp"
#include "clock.hpp"
#include "eventlog.hpp"
#include "failover.hpp"
#include "net.hpp"
#include "protocol.hpp"
#include "units.hpp"

namespace {

using namespace berkeley;

constexpr uint16_t DEFAULT_PORT = 8080;
constexpr uint64_t DEFAULT_ROUNDS = 5;
constexpr int64_t DEFAULT_INTERVAL_NS = 1 * NS_PER_S;
constexpr uint32_t DEFAULT_PROBES = 4;
constexpr int64_t DEFAULT_TIMEOUT_NS = 500 * NS_PER_MS;
constexpr uint32_t DEFAULT_MAX_MISSED = 3;
constexpr size_t DEFAULT_MAX_SLAVES = 10'000;
constexpr size_t MAX_SLAVES = 100'000;
constexpr int64_t SHUTDOWN_GRACE_NS = 2 * NS_PER_S;  // for BYE to reach the slaves
constexpr int64_t HELLO_TIMEOUT_NS = 5 * NS_PER_S;   // a connection must say HELLO by then
constexpr size_t MAX_PENDING_HELLOS = 1024;          // connections not yet past HELLO
constexpr int64_t AUTH_FAILURE_DELAY_NS = 1 * NS_PER_S;  // a wrong proof is answered this late
constexpr int64_t WAIT_HEARTBEAT_NS = 1 * NS_PER_S;  // WAIT to joined slaves before round 1 (at most;
                                                     // once an interval if that is shorter)
constexpr int64_t TAKEOVER_GRACE_NS = 200 * NS_PER_MS;  // after taking over: the first round once
                                                        // the first slave is back, and this long after
constexpr int64_t BY_HAND_TIMEOUT_NS = 600 * NS_PER_S;  // --by-hand: time to type an answer
constexpr int64_t BY_HAND_INTERVAL_NS = 60 * NS_PER_S;
constexpr uint64_t RESERVED_FDS = 32;                // log, epoll, listener, stdio, slack
// An honest slave sends at most HELLO, one CLOCK per probe and an ACK per
// round; a peer sending far more is flooding and is dropped.
constexpr uint32_t FLOOD_SLACK_LINES = 8;
// Event-loop tokens: the listener's file events, the round's timer; each
// peer's file events and its own timer share the peer's token, from FIRST_PEER_TOKEN.
constexpr uint64_t LISTENER_TOKEN = 0;
constexpr uint64_t ROUND_TIMER = 1;
constexpr uint64_t QUIET_TIMER = 2;       // the end of a window of quieted events
constexpr uint64_t FIRST_PEER_TOKEN = 3;
// Floods leave no lasting trace: of the events about connections that never
// became slaves (refused, dropped before a valid HELLO), the first
// QUIET_BURST of each reason in a window of QUIET_WINDOW_NS are logged and
// printed; the rest are counted and summed up when the window ends.
constexpr uint32_t QUIET_BURST = 10;
constexpr int64_t QUIET_WINDOW_NS = 10 * NS_PER_S;
constexpr size_t QUIET_REASONS = 32;  // kinds of reason told apart; the rest are "other"

struct Options {
    size_t slaves = 0;
    std::string bind = "127.0.0.1";
    uint16_t port = DEFAULT_PORT;
    uint64_t rounds = DEFAULT_ROUNDS;
    int64_t interval_ns = DEFAULT_INTERVAL_NS;
    uint32_t probes = DEFAULT_PROBES;
    int64_t timeout_ns = DEFAULT_TIMEOUT_NS;
    int64_t max_skew_ns = ADAPTIVE_WINDOW;  // Step 3's window: adaptive, 0 (keep all) or fixed
    uint32_t max_missed = DEFAULT_MAX_MISSED;
    size_t max_slaves = DEFAULT_MAX_SLAVES;
    bool explain = false;   // print each round as the textbook's steps
    bool by_hand = false;   // for a person typing the protocol with nc
    bool failover = true;   // name successors in each PLAN
    uint64_t first_round = 1;
    // Taking over (set by a slave that execs this program, see slave.cpp's take_over):
    std::string id = "master";        // in the log and the console
    uint64_t epoch = 1;
    int listen_fd = -1;               // the slave's listening socket, inherited
    std::optional<SimClock> clock;    // the slave's clock, to be kept
    bool takeover = false;            // do not wait for N: start once the slaves are back
    CommonOptions common;  // clock, discipline, timestamps, secret, log
};

CliResult parse_options(int argc, char** argv, Options& o) {
    o.common.seed = default_seed();
    std::vector<OptionSpec> specs = {
        {"port", "P", "TCP port to listen on (0 picks a free one) [8080]", store_integer("port", o.port, 0, 65535)},
        {"bind", "ADDR", "address to listen on                     [127.0.0.1]", store_text(o.bind)},
        {"rounds", "K", "rounds to run, 0 = until SIGINT/SIGTERM  [5]", store_integer("rounds", o.rounds, 0, INT64_MAX)},
        {"interval", "SEC", "from one round's start to the next's     [1]",
         store_scaled("interval", o.interval_ns, 9, NS_PER_MS, 86400 * NS_PER_S)},
        {"probes", "P", "clock requests per slave per round       [4]", store_integer("probes", o.probes, 1, MAX_PROBES)},
        {"timeout-ms", "MS", "how long to wait for one reply           [500]",
         store_scaled("timeout-ms", o.timeout_ns, 6, NS_PER_MS, 3600 * NS_PER_S)},
        {"max-skew", "MS", "leave out readings further than MS from the median,\n"
         "                         0 keeps all; auto: 3 robust deviations of the readings [auto]",
         [&o](std::string_view text) -> std::optional<std::string> {
             if (text == "auto") {
                 o.max_skew_ns = ADAPTIVE_WINDOW;
                 return std::nullopt;
             }
             return store_scaled("max-skew", o.max_skew_ns, 6, 0, MAX_OFFSET_NS)(text);
         }},
        {"max-missed", "K", "drop a slave after K missed rounds in a row [3]",
         store_integer("max-missed", o.max_missed, 1, 1'000'000)},
        {"max-slaves", "M", "most slaves at once; one more gets ERROR [10000, or N]",
         store_integer("max-slaves", o.max_slaves, 1, MAX_SLAVES)},
        {"explain", nullptr, "print each round as the textbook's steps, with the numbers", store_flag(o.explain, true)},
        {"by-hand", nullptr, "for typing the protocol with nc: 1 probe, no HELLO deadline, 10 min to\n"
         "                         answer, 60 s rounds, mistakes answered with what was expected",
         store_flag(o.by_hand, true)},
        {"no-failover", nullptr, "send no PLAN, name no successors: when this master dies, its slaves\n"
         "                         wait for it to come back (as before failover; implied by --by-hand)",
         store_flag(o.failover, false)},
        {"takeover", "PLAN", "for a slave taking over (slave.cpp): continue the group of this PLAN\n"
         "                         line as its next epoch, with its settings",
         [&o](std::string_view text) -> std::optional<std::string> {
             const Parsed parsed = parse_message(text);
             if (!parsed.message || !std::holds_alternative<Plan>(*parsed.message))
                 return "--takeover takes a PLAN line: " + (parsed.error.empty() ? "not a PLAN" : parsed.error);
             const Plan& plan = std::get<Plan>(*parsed.message);
             o.takeover = true;
             o.epoch = plan.epoch + 1;
             o.first_round = plan.round + 1;
             o.rounds = plan.rounds;
             o.interval_ns = plan.interval_ns;
             o.probes = plan.probes;
             o.timeout_ns = plan.timeout_ns;
             o.max_skew_ns = plan.max_skew_ns;
             o.max_missed = plan.max_missed;
             return std::nullopt;
         }},
        {"id", "NAME", "this process's name in the log           [master]", store_text(o.id)},
        {"listen-fd", "FD", "serve on this inherited listening socket instead of --bind/--port",
         store_integer("listen-fd", o.listen_fd, 0, 1'000'000)},
        {"resume-clock", "STATE", "start from this saved clock state (slave.cpp's take_over)",
         [&o](std::string_view text) -> std::optional<std::string> {
             o.clock = parse_clock_state(text);
             if (!o.clock) return "bad --resume-clock state";
             return std::nullopt;
         }},
        {"log-append", nullptr, "append to --log instead of truncating it", store_flag(o.common.log_append, true)},
    };
    for (OptionSpec& s : common_options(o.common)) specs.push_back(std::move(s));
    const char* synopsis = "./master N [options]        run Berkeley rounds for N slaves";
    std::vector<std::string> args;
    CliResult r = parse_command_line(argc, argv, "master", synopsis, specs, args);
    if (!r.run) return r;
    auto mistake = [&](const std::string& problem) {
        return CliResult{false, 2, "error: " + problem + "\n" + usage_text(synopsis, specs)};
    };
    if (auto problem = common_problem(o.common)) return mistake(*problem);
    if (o.by_hand && !o.common.secret_file.empty())
        return mistake("--by-hand is for typing the plain protocol; nobody types the tags --secret-file asks for");
    if (args.empty()) return mistake("missing N, the number of slaves to wait for");
    if (args.size() > 1) return mistake("unexpected argument " + args[1]);
    const auto n = parse_decimal(args[0], 0);
    if (!n || *n < 1 || *n > static_cast<int64_t>(MAX_SLAVES))
        return mistake("N must be a number of slaves from 1 to " + std::to_string(MAX_SLAVES));
    o.slaves = static_cast<size_t>(*n);
    if (o.max_slaves == DEFAULT_MAX_SLAVES) o.max_slaves = std::max(o.max_slaves, o.slaves);  // room for N by default
    if (o.slaves > o.max_slaves) return mistake("N is larger than --max-slaves");
    if (o.by_hand) o.failover = false;  // a person typing plays no successor
    if (o.by_hand) {  // a person's pace, where the options were left at their defaults
        if (o.probes == DEFAULT_PROBES) o.probes = 1;
        if (o.timeout_ns == DEFAULT_TIMEOUT_NS) o.timeout_ns = BY_HAND_TIMEOUT_NS;
        if (o.interval_ns == DEFAULT_INTERVAL_NS) o.interval_ns = BY_HAND_INTERVAL_NS;
    }
    return r;
}

// One connection, and once it said HELLO, one slave.
struct Peer {
    // The connection.
    uint64_t token = 0;            // its file events and its timer in the loop
    std::unique_ptr<LineConn> conn;
    std::string address;           // "127.0.0.1:53491"
    std::string drop_reason;       // set: remove this peer at the next reap()
    bool write_shut = false;       // after BYE: our side of the stream is closed
    // Authentication (with a secret): see auth.hpp's diagram.
    enum class Auth { Plain, WantChallenge, WantProof, Failing, Proven } auth = Auth::Plain;
    Nonce slave_nonce{}, master_nonce{};
    std::string auth_failure;      // Failing: told when AUTH_FAILURE_DELAY_NS is over
    std::unique_ptr<Session> session;  // Proven: tags every line both ways (allocated: most groups have no secret)
    // Membership.
    std::string id;                // from HELLO; empty until then
    uint32_t missed_rounds = 0;    // consecutive rounds without a usable reply
    bool in_step = false;          // applied one of our corrections (ACK), or said INSTEP: it votes
    std::string serve_address;     // where it would serve as master ("host:port"); empty: nowhere
    uint64_t joined_round = 0;     // the round it joined in: the successors' ranking
    // Its best probes of the last rounds, carried forward (Step 2 across
    // rounds), and its rate (Step 6) from them.
    SampleFilter filter;
    bool carried = false;          // ACKed this round's ADJUST: its filter moved along with it
    Applied how = Applied::Step;   // how that correction was applied (a slew takes time to settle)
    int64_t round_correction_ns = 0;  // and its size
    int64_t corrected_real_ns = 0; // host time its last ADJUST went out
    uint32_t rate_updates = 0;     // rate changes sent so far: the gain
    // This round.
    struct Round {
        bool probed = false;           // taking part in this round
        bool probing_done = false;
        uint32_t probes_sent = 0;
        int64_t probe_sent_real_ns = 0;  // host time just before the pending probe left
        std::vector<Estimate> estimates;
        int64_t best_at_real_ns = 0;     // host time the best of them was sent (its T1)
        std::vector<std::pair<Probe, std::optional<Estimate>>> explained;  // --explain: every probe
        int64_t best_delay_ns = 0;       // the best estimate's delay
        int64_t best_offset_ns = 0;      // and its offset
        int64_t correction_ns = 0;       // sent in ADJUST
        int64_t rate_change_ppb = 0;     // sent in ADJUST (0: none)
        Filtered filtered;               // the estimate the round used
        bool filter_restarted = false;   // this round's probe did not fit the carried ones
        bool adjusted = false;         // sent an ADJUST this round
        bool acked = false;
        uint32_t lines = 0;            // for flood detection
    } round;

    const char* name() const { return id.empty() ? address.c_str() : id.c_str(); }
};

// The participants of a round as agree_round() sees them: index 0 is the
// master itself, index i > 0 the slave who[i - 1].
struct Participants {
    std::vector<Peer*> who;
    std::vector<Reading> readings;
};

//   Waiting --N slaves--> Probing --all replies or timeouts--> Adjusting
//      ^                    ^                                     |
//      |                    '--interval--- Idle <--all ACKs or timeout
//   (start)                                 |--last round / signal--> Closing
enum class Phase { Waiting, Probing, Adjusting, Idle, Closing };

class Master {
public:
    Master(const Options& o, EventLoop& loop, EventLog& log, SimClock clock)
        : opt_(o), loop_(loop), log_(log), clock_(clock), console_{o.common.quiet} {}

    [[nodiscard]] bool listen(std::string& error);
    int run();

private:
    // The round, step by step.
    void start_round(int64_t now);
    void send_probe(Peer& p);
    void on_clock(Peer& p, const ClockReply& m, int64_t recv_real_ns);
    void probe_done(Peer& p);
    void finish_probing(int64_t now);
    Participants collect_best_estimates();
    void send_corrections(const Participants& p, const RoundResult& result);
    void count_misses();
    void correct_self(const RoundResult& result);
    void print_round(const Participants& p, const RoundResult& result);
    void explain_round(const Participants& p, const RoundResult& result);
    void on_ack(Peer& p, const Ack& m);
    void finish_round(int64_t now);
    void begin_shutdown(int64_t now, const char* why);
    Plan plan_settings() const;
    Plan plan() const;
    // Slaves with a plan leave a master silent for 3 intervals: WAIT comes
    // at least once an interval while the first round is awaited.
    int64_t heartbeat_ns() const { return std::min(WAIT_HEARTBEAT_NS, opt_.interval_ns); }
    void send_plans(bool only_if_changed = false);
    // The loop and its timers.
    void move_on(int64_t now);
    void on_round_timer(int64_t now);
    void on_peer_timer(Peer& p);
    void send_waits(int64_t now);
    // Connections and admission.
    void on_listener_ready();
    void on_peer_ready(Peer& p, uint32_t events);
    bool on_line(Peer& p, const std::string& line, int64_t recv_real_ns);
    void on_auth_line(Peer& p, const std::string& line);
    void on_challenge(Peer& p, const Nonce& slave_nonce);
    void on_proof(Peer& p, const Sha256Digest& proof);
    void fail_auth(Peer& p, const std::string& reason);
    void on_hello(Peer& p, const Hello& m);
    void on_in_step(Peer& p);
    void mistake(Peer& p, const std::string& what);
    std::string expected_from(const Peer& p) const;
    std::string wire(Peer& p, const Message& m);
    void send(Peer& p, const Message& m);
    void refuse(Peer& p, const std::string& reason);
    void drop(Peer& p, const std::string& reason);
    void reap();
    void pause_listener(const std::string& why);
    void resume_listener();
    bool quiet(const std::string& reason);
    void say_quieted();

    EventLog::Line event(std::string_view name) {
        const int64_t real = realtime_ns();
        return log_.event(name, opt_.id, read_clock(clock_, real), real);
    }
    Peer* peer(uint64_t token) {
        auto it = peers_.find(token);
        return it == peers_.end() ? nullptr : &it->second;
    }

    const Options& opt_;
    EventLoop& loop_;
    EventLog& log_;
    SimClock clock_;
    Console console_;
    Fd listener_;
    std::map<uint64_t, Peer> peers_;  // by token: connection order
    std::unordered_set<std::string> ids_;  // of the slaves that said HELLO
    GuessBudget guesses_;             // wrong proofs answered, per address
    std::vector<std::string> last_successors_;  // in the last PLAN
    std::vector<uint64_t> dropping_;  // tokens of peers to remove at the next reap()
    uint64_t next_token_ = FIRST_PEER_TOKEN;
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
    bool warned_timestamps_ = false;
    bool listener_paused_ = false;
    struct Quieted {
        uint32_t shown = 0;       // in this window
        uint64_t suppressed = 0;  // in this window, not shown
    };
    std::map<std::string, Quieted> quieted_;  // by the kind of reason, this window
};

bool Master::listen(std::string& error) {
    listener_ = opt_.listen_fd >= 0 ? Fd(opt_.listen_fd) : listen_tcp(opt_.bind, opt_.port, error);
    if (!listener_.valid()) return false;
    round_ = opt_.first_round - 1;
    if (!loop_.add(listener_.get(), EPOLLIN, LISTENER_TOKEN, error)) return false;
    const uint16_t port = local_port(listener_.get());
    if (opt_.takeover)
        console_.say("%s: took over as master (epoch %" PRIu64 ") on port %u, from round %" PRIu64 "\n",
                     opt_.id.c_str(), opt_.epoch, port, opt_.first_round);
    else
        console_.say("master listening on %s:%u, waiting for %zu slave(s)\n", opt_.bind.c_str(), port, opt_.slaves);
    event("start").num("port", port).num("slaves", static_cast<int64_t>(opt_.slaves))
        .num("epoch", static_cast<int64_t>(opt_.epoch)).str("role", "master")
        .num("offset_ns", clock_.anchor_clock_ns - clock_.anchor_real_ns).num("rate_ppb", clock_.rate_ppb)
        .num("seed", static_cast<int64_t>(opt_.common.seed & INT64_MAX))
        .str("timestamps", opt_.common.kernel_timestamps ? "kernel" : "user");
    return true;
}

// ===========================================================================
// THE ROUND, step by step. Deadlines are on CLOCK_MONOTONIC, never on the
// clock being corrected.

// Step 1: ask every slave for its clock, all at once; each next probe goes
// out as soon as the previous reply is in, so a round lasts about probes x
// one round trip. Each probe has --timeout-ms; the whole probing phase has
// that or half the interval, whichever is longer, so one slow slave cannot
// stretch every round to probes x timeout.
void Master::start_round(int64_t now) {
    ++round_;
    if (opt_.failover && round_ == opt_.first_round) send_plans(true);  // the first list, to everyone at once
    round_started_ns_ = now;
    round_started_clock_ns_ = read_clock(clock_, realtime_ns());
    phase_ = Phase::Probing;
    loop_.arm(ROUND_TIMER, now + std::max(opt_.timeout_ns, opt_.interval_ns / 2));
    event("round").num("round", static_cast<int64_t>(round_)).num("cpu_ns", cpu_time_ns());
    console_.say("\nNew synchronization cycle started (round %" PRIu64 "/%s)\n", round_,
                 opt_.rounds ? std::to_string(opt_.rounds).c_str() : "unlimited");
    probing_left_ = acks_left_ = 0;
    for (auto& [token, p] : peers_) {
        p.round = Peer::Round{};
        p.round.probed = !p.id.empty() && p.drop_reason.empty();
        p.round.probing_done = !p.round.probed;
        probing_left_ += p.round.probed;
    }
    console_.say("Number of slaves to be synchronized: %zu\n", probing_left_);
    for (auto& [token, p] : peers_)
        if (p.round.probed) send_probe(p);
}

void Master::send_probe(Peer& p) {
    ++p.round.probes_sent;
    const std::string line = wire(p, TimeQuery{round_, p.round.probes_sent});  // formatted and tagged first
    p.round.probe_sent_real_ns = realtime_ns();  // T1, read as late as possible before the send
    if (!p.conn->send(line)) return drop(p, p.conn->error());
    loop_.arm(p.token, monotonic_ns() + opt_.timeout_ns);  // no reply by then: on_peer_timer
}

// A reply to the pending probe: turn it into an estimate (T4 is the kernel's
// arrival stamp, or the host time read right after the read), then probe again.
void Master::on_clock(Peer& p, const ClockReply& m, int64_t recv_real_ns) {
    if (phase_ != Phase::Probing || p.round.probing_done || m.round != round_ || m.probe != p.round.probes_sent) {
        event("stale").str("slave", p.id).num("round", static_cast<int64_t>(m.round)).num("probe", m.probe);
        if (opt_.by_hand) mistake(p, "CLOCK for round " + std::to_string(m.round) + " probe " + std::to_string(m.probe));
        return;  // a late reply to a probe that already timed out: harmless
    }
    const int64_t t1 = read_clock(clock_, p.round.probe_sent_real_ns);
    const int64_t t4 = read_clock(clock_, recv_real_ns);
    const Probe probe = m.t3_ns ? Probe(t1, m.t2_ns, *m.t3_ns, t4) : Probe(t1, m.t2_ns, t4);
    if (opt_.explain) p.round.explained.push_back({probe, estimate_offset(probe)});
    if (auto e = estimate_offset(probe)) {
        auto& all = p.round.estimates;
        if (all.empty() || e->delay_ns < best_estimate(all)->delay_ns) p.round.best_at_real_ns = p.round.probe_sent_real_ns;
        all.push_back(*e);
    } else {
        event("rejected").str("slave", p.id).num("round", static_cast<int64_t>(round_)).num("reading_ns", m.t2_ns);
    }
    if (p.round.probes_sent < opt_.probes) send_probe(p);
    else probe_done(p);
}

// This slave is done for the round: all its probes answered, timed out, or it left.
void Master::probe_done(Peer& p) {
    if (!p.round.probed || p.round.probing_done) return;
    p.round.probing_done = true;
    loop_.disarm(p.token);
    --probing_left_;
}

// Steps 2-6 and the master's own correction, once every slave is done.
void Master::finish_probing(int64_t now) {
    const Participants all = collect_best_estimates();
    const int64_t window = skew_limit(opt_.max_skew_ns, opt_.common.discipline.step_threshold_ns, clock_.corrected);
    const RoundResult result = agree_round(all.readings, opt_.interval_ns, window);  // Steps 3, 4, 6: clock.hpp
    print_round(all, result);
    send_corrections(all, result);
    count_misses();
    correct_self(result);
    phase_ = Phase::Adjusting;
    loop_.arm(ROUND_TIMER, now + opt_.timeout_ns);  // the wait for ACKs
}

// Step 2: each slave's best probe of this round goes into its filter with
// those of the last rounds, carried forward when both clocks' last
// corrections were applied and had settled by then; the filter's estimate
// is its offset now, and (Step 6) the filter's slope its rate relative to
// the master. The master first.
Participants Master::collect_best_estimates() {
    Participants all;
    Reading self;
    self.in_step = clock_.corrected;
    const bool frequency = opt_.common.discipline.frequency;  // --no-frequency: no rates, no rate changes
    if (self_rate_ready_ && frequency) self.rate_ppb = 0;  // relative to itself
    all.readings.push_back(self);
    const int64_t now_real = realtime_ns();
    const Discipline& d = opt_.common.discipline;
    for (auto& [token, p] : peers_) {
        if (!p.round.probed || !p.drop_reason.empty()) continue;
        const bool carried = p.carried;
        p.carried = false;
        const auto best = best_estimate(p.round.estimates);
        if (!best) {
            p.filter.clear();  // a round without a reading: its corrections went unseen
            continue;
        }
        const int64_t at = p.round.best_at_real_ns;
        if (!carried || !self_applied_ || !settled(p.round_correction_ns, p.how, at - p.corrected_real_ns, d) ||
            !settled(self_correction_ns_, self_how_, at - self_corrected_real_ns_, d))
            p.filter.clear();  // a correction not acknowledged, or still being slewed at the probe
        p.round.filter_restarted = !p.filter.add({best->offset_ns, best->delay_ns, p.round.best_at_real_ns});
        p.round.filtered = *p.filter.estimate(now_real);
        Reading r;
        r.offset_ns = p.round.filtered.offset_ns;
        r.in_step = p.in_step;
        if (frequency) r.rate_ppb = p.round.filtered.rate_ppb;
        r.rate_updates = p.rate_updates;
        all.who.push_back(&p);
        all.readings.push_back(r);
        p.round.best_delay_ns = best->delay_ns;
        p.round.best_offset_ns = best->offset_ns;
    }
    return all;
}

// Step 4: every slave that answered gets its own correction, and the change
// of rate that brings it to the group's when its rate is known.
void Master::send_corrections(const Participants& all, const RoundResult& result) {
    last_spread_ns_ = 0;
    last_answered_ = all.who.size();
    const int64_t now_real = realtime_ns();
    for (size_t i = 1; i < all.readings.size(); ++i) {
        Peer& p = *all.who[i - 1];
        const Reading& r = all.readings[i];
        const Decision& d = result.each[i];
        last_spread_ns_ = std::max(last_spread_ns_, d.correction_ns < 0 ? -d.correction_ns : d.correction_ns);
        auto e = event("estimate");
        const Filtered& f = p.round.filtered;
        e.str("slave", p.id).num("round", static_cast<int64_t>(round_)).num("estimate_ns", r.offset_ns)
            .num("bound_ns", f.bound_ns).num("samples", static_cast<int64_t>(f.used))
            .num("probe_ns", p.round.best_offset_ns).num("rtt_ns", p.round.best_delay_ns)
            .num("correction_ns", d.correction_ns).flag("included", d.included);
        if (p.round.filter_restarted) e.flag("filter_restarted", true);
        if (r.rate_ppb) e.num("rate_ppb", *r.rate_ppb);
        if (d.rate_change_ppb) e.num("rate_change_ppb", *d.rate_change_ppb);
        send(p, Adjust{round_, d.correction_ns, d.rate_change_ppb});
        if (!p.drop_reason.empty()) continue;
        p.round.adjusted = true;
        p.round.correction_ns = d.correction_ns;
        p.round.rate_change_ppb = d.rate_change_ppb.value_or(0);
        p.corrected_real_ns = now_real;
        p.rate_updates += d.rate_change_ppb.has_value();
        ++acks_left_;
    }
}

// A slave that answered no probe missed the round; --max-missed in a row and it is dropped.
void Master::count_misses() {
    for (auto& [token, p] : peers_) {
        if (!p.round.probed || !p.drop_reason.empty()) continue;
        if (!p.round.estimates.empty()) {
            p.missed_rounds = 0;
            continue;
        }
        ++p.missed_rounds;
        console_.say("  %-24s %20s\n", p.id.c_str(), "no reply");
        event("missed").str("slave", p.id).num("round", static_cast<int64_t>(round_))
            .num("missed_rounds", p.missed_rounds);
        if (p.missed_rounds >= opt_.max_missed)
            refuse(p, "missed " + std::to_string(p.missed_rounds) + " rounds in a row");
    }
}

// The master is a participant too: it corrects itself by the average, and
// its rate by the group's.
void Master::correct_self(const RoundResult& result) {
    const Decision& self = result.each[0];
    const int64_t real = realtime_ns();
    const Discipline& d = opt_.common.discipline;
    const Applied how = how_applied(clock_.corrected, self.correction_ns, d);
    auto corrected = apply_correction(clock_, real, self.correction_ns, self.rate_change_ppb.value_or(0), d);
    self_applied_ = corrected.has_value();
    if (!corrected) {
        self_rate_ready_ = false;
        return;
    }
    self_rate_change_ppb_ = corrected->clock.trim_ppb - clock_.trim_ppb;  // as applied (clamped, or none)
    clock_ = corrected->clock;
    self_rate_ready_ = settled(self.correction_ns, how, opt_.interval_ns, d);
    self_correction_ns_ = self.correction_ns;
    self_how_ = how;
    self_corrected_real_ns_ = real;
    auto line = log_.event("adjust", opt_.id, read_clock(clock_, real), real);
    line.num("round", static_cast<int64_t>(round_)).num("correction_ns", self.correction_ns);
    if (self.rate_change_ppb) line.num("rate_change_ppb", *self.rate_change_ppb);
    correction_fields(line, *corrected);
}

void Master::print_round(const Participants& all, const RoundResult& result) {
    if (opt_.explain) return explain_round(all, result);
    auto note = [](const Decision& d) {
        return d.included ? "" : d.votes ? "  (left out of average)" : "  (not in step: does not vote)";
    };
    console_.say("  %-24s %20s %12s %20s\n", "participant", "estimated offset", "best delay", "correction");
    console_.say("  %-24s %20s %12s %20s%s\n", "master (self)", format_duration(0).c_str(), "-",
                 format_duration(result.each[0].correction_ns).c_str(), note(result.each[0]));
    for (size_t i = 1; i < all.readings.size(); ++i) {
        const Peer& p = *all.who[i - 1];
        console_.say("  %-24s %20s %12s %20s%s\n", p.id.c_str(), format_duration(all.readings[i].offset_ns).c_str(),
                     format_duration(p.round.best_delay_ns).c_str() + 1,
                     format_duration(result.each[i].correction_ns).c_str(), note(result.each[i]));
    }
}

// --explain: the round as a textbook tells it, with this round's numbers.
void Master::explain_round(const Participants& all, const RoundResult& result) {
    const Agreement& t = result.time;
    console_.say("  1. The master asked every slave for its clock (TIME? %" PRIu64 " 1..%u). Its own clock then: %s.\n",
                 round_, opt_.probes, format_time_of_day(round_started_clock_ns_).c_str());
    console_.say("  2. Each answer: T1, T4 on the master's clock, T2, T3 on the slave's;\n"
                 "     delay = (T4 - T1) - (T3 - T2), offset = (T2 - T1) - delay/2, off by at most delay/2.\n"
                 "     The probe with the smallest delay counts.\n");
    for (auto& [token, p] : peers_) {
        if (!p.round.probed || p.round.explained.empty()) continue;
        for (const auto& [probe, e] : p.round.explained) {
            console_.say("     %-10s T1 %s  T2 %s  T3 %s  T4 %s\n", p.id.c_str(), format_time_of_day(probe.t1_ns).c_str(),
                         format_time_of_day(probe.t2_ns).c_str(), format_time_of_day(probe.t3_ns).c_str(),
                         format_time_of_day(probe.t4_ns).c_str());
            if (e) console_.say("     %-10s delay %s, offset %s%s\n", "", format_duration(e->delay_ns).c_str() + 1,
                                format_duration(e->offset_ns).c_str(),
                                e->delay_ns == p.round.best_delay_ns ? "  <- best" : "");
            else console_.say("     %-10s rejected: a negative delay, or an offset beyond 100 years\n", "");
        }
    }
    console_.say("  3. The fault-tolerant average of the offsets (the master's own is 0):\n"
                 "     median %s; spread (1.4826 x median deviation) %s; readings within %s of the median count.\n",
                 format_duration(t.median_ns).c_str(), format_duration(t.spread_ns).c_str() + 1,
                 t.window_ns > 0 ? format_duration(t.window_ns).c_str() + 1 : "any distance");
    auto why = [&](const Decision& d, int64_t offset) -> std::string {
        if (d.included) return "counted";
        if (!d.votes) return "not counted: not in step yet, while others are (it is brought to them)";
        return "left out: " + format_duration(offset - t.median_ns) + " from the median";
    };
    console_.say("     %-10s %-16s %s\n", "master", format_duration(0).c_str(), why(result.each[0], 0).c_str());
    for (size_t i = 1; i < all.readings.size(); ++i)
        console_.say("     %-10s %-16s %s\n", all.who[i - 1]->id.c_str(), format_duration(all.readings[i].offset_ns).c_str(),
                     why(result.each[i], all.readings[i].offset_ns).c_str());
    const auto voters = std::count_if(result.each.begin(), result.each.end(), [](const Decision& d) { return d.votes; });
    if (voters == 2 && t.window_ns == MIN_WINDOW_NS)
        console_.say("     (two voters in step cannot outvote each other: the reading nearer the master's decides)\n");
    console_.say("     average %s\n", format_duration(t.average_ns).c_str());
    console_.say("  4. Each one's correction = average - its offset:\n");
    auto rate = [](const Decision& d) {
        if (!d.rate_change_ppb) return std::string();
        char text[48];
        std::snprintf(text, sizeof text, ", and its rate %+.3f ppm", static_cast<double>(*d.rate_change_ppb) / PPB_PER_PPM);
        return std::string(text);
    };
    console_.say("     master %s%s\n", format_duration(result.each[0].correction_ns).c_str(), rate(result.each[0]).c_str());
    for (size_t i = 1; i < all.readings.size(); ++i)
        console_.say("     %s -> %s%s\n", all.who[i - 1]->id.c_str(), format_duration(result.each[i].correction_ns).c_str(),
                     rate(result.each[i]).c_str());
}

void Master::on_ack(Peer& p, const Ack& m) {
    if (m.round != round_ || !p.round.adjusted || p.round.acked) {
        if (opt_.by_hand) mistake(p, "ACK " + std::to_string(m.round));
        return;  // late or repeated: harmless
    }
    p.round.acked = true;
    // Its filter follows both clocks' corrections (collect_best_estimates
    // checks that they had settled by the next probe), and both rate
    // changes as applied: the slave says what it applied when it was sent
    // one (0 for a slave that takes none); a slave that does not say is
    // taken to have applied what it was sent.
    p.how = how_applied(p.in_step, p.round.correction_ns, opt_.common.discipline);
    p.round_correction_ns = p.round.correction_ns;
    p.carried = self_applied_;
    if (p.carried) {
        p.filter.shift(p.round.correction_ns, self_correction_ns_);
        p.filter.rerate(m.rate_change_ppb.value_or(p.round.rate_change_ppb) - self_rate_change_ppb_, p.corrected_real_ns);
    }
    p.in_step = true;  // it has applied a correction: from now on it votes
    last_ack_ns_ = monotonic_ns();
    --acks_left_;
}

void Master::finish_round(int64_t now) {
    int64_t acked = 0;
    for (auto& [token, p] : peers_) {
        acked += p.round.acked;
        if (p.round.adjusted && !p.round.acked && p.drop_reason.empty())
            event("no_ack").str("slave", p.id).num("round", static_cast<int64_t>(round_));
    }
    // From the first probe to the last ACK (or the end of the wait for one),
    // and the CPU this process has used so far: what the benchmarks measure.
    const int64_t end = acked > 0 ? last_ack_ns_ : now;
    event("round_done").num("round", static_cast<int64_t>(round_)).num("duration_ns", end - round_started_ns_)
        .num("answered", static_cast<int64_t>(last_answered_)).num("acked", acked).num("cpu_ns", cpu_time_ns());
    if (opt_.rounds > 0 && round_ >= opt_.rounds) return begin_shutdown(now, "all rounds done");
    if (opt_.failover) send_plans();
    phase_ = Phase::Idle;
    loop_.arm(ROUND_TIMER, round_started_ns_ + opt_.interval_ns);
}

// The backup plan: this master's epoch and settings, and its successors
// ranked (failover.hpp) from the slaves that would serve (a sort of all of
// them: once a round, never once per HELLO).
Plan Master::plan_settings() const {
    return Plan{opt_.epoch, round_, opt_.rounds, opt_.interval_ns, opt_.probes, opt_.timeout_ns, opt_.max_skew_ns,
                opt_.max_missed, {}};
}

Plan Master::plan() const {
    Plan out = plan_settings();
    std::vector<SuccessorCandidate> candidates;
    for (const auto& [token, p] : peers_)
        if (!p.id.empty() && p.drop_reason.empty())
            candidates.push_back({p.serve_address, p.in_step, p.missed_rounds, p.joined_round});
    out.successors = rank_successors(std::move(candidates), MAX_SUCCESSORS);
    return fit_in_a_line(std::move(out), opt_.common.key ? 1 + 2 * TAG_BYTES : 0);
}

// After each round, every slave hears the plan; the log keeps it when it
// changes. As the first round starts, only a changed list is sent.
void Master::send_plans(bool only_if_changed) {
    const Plan now = plan();
    if (only_if_changed && now.successors == last_successors_) return;
    if (now.successors != last_successors_) {
        std::string list;
        for (const std::string& s : now.successors) list += (list.empty() ? "" : " ") + s;
        event("successors").num("epoch", static_cast<int64_t>(now.epoch)).num("round", static_cast<int64_t>(round_))
            .str("successors", list);
        last_successors_ = now.successors;
    }
    for (auto& [token, p] : peers_)
        if (!p.id.empty() && p.drop_reason.empty()) send(p, now);
}

// Say BYE to everyone and give the words time to arrive before closing.
void Master::begin_shutdown(int64_t now, const char* why) {
    console_.say("\nshutting down: %s\n", why);
    event("shutdown").str("reason", why).num("round", static_cast<int64_t>(round_));
    phase_ = Phase::Closing;
    close_deadline_ns_ = now + SHUTDOWN_GRACE_NS;
    loop_.arm(ROUND_TIMER, close_deadline_ns_);
    for (auto& [token, p] : peers_) {
        loop_.disarm(p.token);
        if (p.id.empty()) {
            drop(p, "shutting down");
            continue;
        }
        send(p, Bye{});
        if (p.drop_reason.empty() && !p.conn->has_output()) {
            p.conn->shutdown_write();  // BYE is out: wait for the slave to close
            p.write_shut = true;
        }
    }
}

// ===========================================================================
// The main loop: sleep until a file event or the nearest timer, handle what
// came, remove who must go, move the round on. A turn costs the events and
// timers it handles, never a walk over every peer.

int Master::run() {
    std::string error;
    while (true) {
        if (g_stop_signal && phase_ != Phase::Closing) begin_shutdown(monotonic_ns(), "signal");
        if (phase_ == Phase::Closing && (peers_.empty() || monotonic_ns() >= close_deadline_ns_)) break;
        const bool ok = loop_.run_once(
            [this](uint64_t token, uint32_t events) {
                if (token == LISTENER_TOKEN) return on_listener_ready();
                if (Peer* p = peer(token); p && p->drop_reason.empty()) on_peer_ready(*p, events);
            },
            [this](uint64_t token) {
                if (token == ROUND_TIMER) return on_round_timer(monotonic_ns());
                if (token == QUIET_TIMER) return say_quieted();
                if (Peer* p = peer(token); p && p->drop_reason.empty()) on_peer_timer(*p);
            },
            error);
        if (!ok) {
            std::fprintf(stderr, "master: %s\n", error.c_str());
            if (phase_ != Phase::Closing) begin_shutdown(monotonic_ns(), "event loop failed");
            else break;
        }
        reap();
        move_on(monotonic_ns());
        reap();  // what the round dropped (missed rounds) goes now, not at the next event
    }
    say_quieted();
    const bool complete = opt_.rounds > 0 && round_ >= opt_.rounds && phase_ == Phase::Closing;
    console_.say("finished: %" PRIu64 " round(s); %zu slave(s) answered the last one", round_, last_answered_);
    if (last_answered_ > 0) console_.say(", their corrections within %s", format_duration(last_spread_ns_).c_str() + 1);
    console_.say("\n");
    event("exit").num("rounds", static_cast<int64_t>(round_)).flag("complete", complete);
    peers_.clear();
    if (log_.lost() == 0) return 0;
    std::fprintf(stderr, "master: %llu event(s) could not be logged\n", static_cast<unsigned long long>(log_.lost()));
    return 1;
}

// After each turn: the round moves on when what it waits for is complete.
void Master::move_on(int64_t now) {
    if (phase_ == Phase::Waiting && !opt_.takeover && ids_.size() >= opt_.slaves) start_round(now);
    if (phase_ == Phase::Probing && probing_left_ == 0) finish_probing(now);
    if (phase_ == Phase::Adjusting && acks_left_ == 0) finish_round(now);
}

// The round's one timer: what it means depends on the phase.
void Master::on_round_timer(int64_t now) {
    switch (phase_) {
        case Phase::Waiting:  // after a takeover: the grace for the slaves to come back is over
            if (opt_.takeover && opt_.rounds > 0 && opt_.first_round > opt_.rounds)
                return begin_shutdown(now, "all rounds done");  // the old master had run them all
            if (opt_.takeover && !ids_.empty()) return start_round(now);
            return send_waits(now);
        case Phase::Probing:  // the round cannot wait longer for slow slaves' last probes
            for (auto& [token, p] : peers_) probe_done(p);
            return;
        case Phase::Adjusting: return finish_round(now);  // some ACKs did not come
        case Phase::Idle: return start_round(now);
        case Phase::Closing: return;  // run() sees the deadline has passed
    }
}

// A peer's own timer: before HELLO it is the HELLO deadline (or the end of a
// failed authentication's delay), while probed the deadline of its pending probe.
void Master::on_peer_timer(Peer& p) {
    if (p.auth == Peer::Auth::Failing) return refuse(p, p.auth_failure);
    if (p.id.empty()) return refuse(p, "no HELLO within " + std::to_string(HELLO_TIMEOUT_NS / NS_PER_S) + " s");
    if (phase_ == Phase::Probing) probe_done(p);
}

// While waiting for slaves, a WAIT every second tells those already here
// that this master is alive.
void Master::send_waits(int64_t now) {
    for (auto& [token, p] : peers_)
        if (!p.id.empty() && p.drop_reason.empty()) send(p, Wait{ids_.size(), opt_.slaves});
    loop_.arm(ROUND_TIMER, now + heartbeat_ns());
}

// ===========================================================================
// Connections and the admission defences: accept (the pending-HELLO cap, the
// fd pause), read (the flood limit), the handshake (its delay and budget),
// HELLO (the HELLO deadline, duplicate ids, --max-slaves), refuse, reap.

void Master::on_listener_ready() {
    for (int accepted = 0; accepted < 64; ++accepted) {
        std::string address, error;
        bool out_of_fds = false;
        Fd fd = accept_tcp(listener_.get(), address, error, &out_of_fds);
        if (out_of_fds) return pause_listener(error);
        if (!fd.valid()) {
            if (!error.empty()) std::fprintf(stderr, "master: %s\n", error.c_str());
            return;
        }
        if (phase_ == Phase::Closing) continue;  // the Fd closes it
        // Connections that have not said HELLO yet have a cap of their own,
        // so they cannot crowd out slaves; --max-slaves is checked at HELLO.
        if (peers_.size() - ids_.size() >= MAX_PENDING_HELLOS) {
            const std::string reason = "too many connections waiting to say HELLO";
            send_now(fd.get(), format_message(Error{reason}));
            if (!quiet(reason)) event("refused").str("address", address).str("reason", reason);
            continue;
        }
        const uint64_t token = next_token_++;
        auto conn = std::make_unique<LineConn>(loop_, std::move(fd), token);
        if (!conn->start(error)) {
            std::fprintf(stderr, "master: %s\n", error.c_str());
            continue;
        }
        if (opt_.common.kernel_timestamps && !conn->enable_kernel_timestamps() && !warned_timestamps_) {
            std::fprintf(stderr, "master: no kernel receive timestamps here; reading the clock after each read\n");
            warned_timestamps_ = true;
        }
        Peer& p = peers_[token];
        p.token = token;
        p.conn = std::move(conn);
        p.address = address;
        if (opt_.common.key) p.auth = Peer::Auth::WantChallenge;
        if (!opt_.by_hand) loop_.arm(token, monotonic_ns() + HELLO_TIMEOUT_NS);  // slow loris: HELLO is due by then
    }
}

void Master::on_peer_ready(Peer& p, uint32_t events) {
    if ((events & EPOLLOUT) && !p.conn->flush()) return drop(p, p.conn->error());
    if (p.write_shut == false && phase_ == Phase::Closing && !p.conn->has_output() && !p.id.empty()) {
        p.conn->shutdown_write();  // the rest of BYE went out
        p.write_shut = true;
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
    const auto status = p.conn->read_lines(
        [&](const std::string& line, int64_t recv_real_ns) { return on_line(p, line, recv_real_ns); });
    if (status == LineConn::Status::Closed)
        drop(p, p.auth == Peer::Auth::WantProof ? "closed the connection instead of proving itself (another group's secret?)"
                                                : "closed the connection");
    if (status == LineConn::Status::Failed) refuse(p, p.conn->error());
}

// Dispatch one line to its handler. False stops reading from this peer (it is being dropped).
bool Master::on_line(Peer& p, const std::string& line, int64_t recv_real_ns) {
    if (p.auth == Peer::Auth::Failing) return true;  // its answer waits out the delay, whatever it says now
    const uint32_t limit = (2 * opt_.probes + FLOOD_SLACK_LINES) * (opt_.by_hand ? 10 : 1);
    if (++p.round.lines > limit) {
        refuse(p, "flooding: more than " + std::to_string(limit) + " lines in a round");
        return false;
    }
    if (p.auth != Peer::Auth::Plain && p.auth != Peer::Auth::Proven) {
        on_auth_line(p, line);
        return p.drop_reason.empty();
    }
    if (!p.session && p.id.empty() && parse_challenge(line)) {
        refuse(p, "this master has no secret: run the slave without --secret-file");
        return false;
    }
    std::optional<std::string> opened;
    if (p.session && !(opened = p.session->in.open(line))) {
        refuse(p, "bad tag on line " + std::to_string(p.session->in.lines() + 1) +
                      ": forged, altered, replayed, reordered or cut");
        return false;
    }
    const berkeley::Parsed parsed = parse_message(opened ? *opened : line);
    if (!parsed.message) {
        mistake(p, "bad message: " + parsed.error);
        return p.drop_reason.empty();
    }
    const Message& m = *parsed.message;
    if (p.id.empty() && !std::holds_alternative<Hello>(m) && !std::holds_alternative<Error>(m)) {
        mistake(p, std::string(verb_name(m)) + " before HELLO");
        return p.drop_reason.empty();
    }
    std::visit(Overloaded{
                   [&](const Hello& h) { on_hello(p, h); },
                   [&](const ClockReply& c) { on_clock(p, c, recv_real_ns); },
                   [&](const Ack& a) { on_ack(p, a); },
                   [&](const InStep&) { on_in_step(p); },
                   [&](const Error& e) { drop(p, "sent ERROR " + e.reason); },
                   [&](const auto& other) { mistake(p, std::string(verb_name(other)) + " is a master's message"); },
               },
               m);
    return p.drop_reason.empty();
}

// A line that breaks the protocol: the peer is refused. With --by-hand a
// person is typing: say what was expected instead, and keep the connection.
void Master::mistake(Peer& p, const std::string& what) {
    if (!opt_.by_hand) return refuse(p, what);
    send(p, Error{("expected " + expected_from(p) + ", not: " + what).substr(0, MAX_REASON_BYTES)});
}

// What this peer should send next, in the words of the protocol.
std::string Master::expected_from(const Peer& p) const {
    if (p.id.empty()) return "HELLO <id>";
    if (phase_ == Phase::Probing && p.round.probed && !p.round.probing_done)
        return "CLOCK " + std::to_string(round_) + " " + std::to_string(p.round.probes_sent) +
               (opt_.common.kernel_timestamps ? " <t2> <t3>" : " <clock>");
    if (phase_ == Phase::Adjusting && p.round.adjusted && !p.round.acked) return "ACK " + std::to_string(round_);
    return "nothing now (wait for TIME?)";
}

// With a secret, nothing counts before the handshake (auth.hpp): the slave's
// challenge, then its proof. Until then the peer is a stranger.
void Master::on_auth_line(Peer& p, const std::string& line) {
    if (p.auth == Peer::Auth::WantChallenge) {
        if (auto nonce = parse_challenge(line)) return on_challenge(p, *nonce);
        const bool hello = line.rfind("HELLO", 0) == 0;
        return refuse(p, hello ? "authentication required: this master has a secret (--secret-file)"
                               : "expected AUTH <nonce> (this master has a secret)");
    }
    if (auto proof = parse_proof(line)) return on_proof(p, *proof);
    refuse(p, "expected PROOF <proof>");
}

// The slave's challenge: answer with our own nonce and our proof, so that it
// knows who we are before it tells us anything.
void Master::on_challenge(Peer& p, const Nonce& slave_nonce) {
    p.slave_nonce = slave_nonce;
    if (!random_bytes(p.master_nonce)) return refuse(p, sys_error("getrandom"));
    if (!p.conn->send(format_answer({p.master_nonce, master_proof(*opt_.common.key, p.slave_nonce, p.master_nonce)})))
        return drop(p, p.conn->error());
    p.auth = Peer::Auth::WantProof;
}

// The slave's proof, checked only while its address has budget left.
void Master::on_proof(Peer& p, const Sha256Digest& proof) {
    const std::string host = p.address.substr(0, p.address.rfind(':'));
    const int64_t now = monotonic_ns();
    if (!guesses_.may_check(host, now))
        return fail_auth(p, "authentication refused: too many wrong proofs from " + host + "; try again later");
    if (!equal_constant_time(proof, slave_proof(*opt_.common.key, p.slave_nonce, p.master_nonce))) {
        guesses_.spend(host, now);
        return fail_auth(p, "authentication failed (wrong secret)");
    }
    p.session = std::make_unique<Session>(session_for(Role::Master, *opt_.common.key, p.slave_nonce, p.master_nonce));
    p.auth = Peer::Auth::Proven;
}

// A failed authentication is answered only after AUTH_FAILURE_DELAY_NS, so
// that trying the next guess costs the prober time.
void Master::fail_auth(Peer& p, const std::string& reason) {
    p.auth = Peer::Auth::Failing;
    p.auth_failure = reason;
    loop_.arm(p.token, monotonic_ns() + AUTH_FAILURE_DELAY_NS);
}

void Master::on_hello(Peer& p, const Hello& m) {
    if (!p.id.empty()) return mistake(p, "HELLO sent twice");
    // Never two masters for one slave: it follows the highest epoch it has seen.
    if (m.epoch > opt_.epoch)
        return refuse(p, "this master's epoch " + std::to_string(opt_.epoch) + " is older than epoch " +
                             std::to_string(m.epoch) + ", which you follow");
    if (ids_.count(m.id)) return refuse(p, "id " + m.id + " is already connected");
    if (ids_.size() >= opt_.max_slaves)
        return refuse(p, "too many slaves (--max-slaves " + std::to_string(opt_.max_slaves) + ")");
    p.id = m.id;
    ids_.insert(p.id);
    p.joined_round = round_;
    if (m.serve_port != 0) p.serve_address = p.address.substr(0, p.address.rfind(':')) + ":" + std::to_string(m.serve_port);
    loop_.disarm(p.token);  // HELLO came in time
    console_.say("%s (%s) got connected successfully\n", p.address.c_str(), p.id.c_str());
    event("connected").str("slave", p.id).str("address", p.address).flag("authenticated", p.session != nullptr);
    // Say it was heard, so the slave knows this master is alive while it waits.
    send(p, Wait{ids_.size(), opt_.slaves});
    // The epoch it now follows, and the successors everyone else heard last:
    // the list changes only for all at once (send_plans), never one by one.
    if (opt_.failover) {
        Plan heard = plan_settings();
        heard.successors = last_successors_;
        send(p, heard);
    }
    if (phase_ == Phase::Waiting && opt_.takeover) {
        if (ids_.size() == 1) loop_.arm(ROUND_TIMER, monotonic_ns() + TAKEOVER_GRACE_NS);
    } else if (phase_ == Phase::Waiting) {
        console_.say("waiting for slaves: %zu/%zu\n", ids_.size(), opt_.slaves);
        if (!loop_.armed(ROUND_TIMER)) loop_.arm(ROUND_TIMER, monotonic_ns() + heartbeat_ns());
    }
}

// The slave's clock already keeps a group's time (it was corrected by an
// earlier master): it votes at once, and a new master is brought to it.
void Master::on_in_step(Peer& p) {
    if (p.in_step) return;
    p.in_step = true;
    event("in_step").str("slave", p.id);
}

// The line for a message to this peer: tagged once it proved itself.
std::string Master::wire(Peer& p, const Message& m) {
    return p.session ? p.session->out.seal(format_message(m)) : format_message(m);
}

void Master::send(Peer& p, const Message& m) {
    if (p.drop_reason.empty() && !p.conn->send(wire(p, m))) drop(p, p.conn->error());
}

// Tell the peer why, then drop it.
void Master::refuse(Peer& p, const std::string& reason) {
    if (!p.drop_reason.empty()) return;
    (void)p.conn->send(wire(p, Error{reason.substr(0, MAX_REASON_BYTES)}));
    drop(p, reason);
}

// Mark the peer for removal at the next reap(); it takes no further part in the round.
void Master::drop(Peer& p, const std::string& reason) {
    if (!p.drop_reason.empty()) return;
    p.drop_reason = reason;
    dropping_.push_back(p.token);
    probe_done(p);
    if (p.round.adjusted && !p.round.acked) --acks_left_;
    p.round.adjusted = false;
    loop_.disarm(p.token);
}

// Remove the peers marked for dropping: the only place a peer is erased
// while running, so no handler ever runs on a removed one.
void Master::reap() {
    for (uint64_t token : dropping_) {
        Peer* p = peer(token);
        if (!p) continue;
        // About a slave that said a valid HELLO: always told. About a stranger: quieted in a flood.
        if (!p->id.empty() || !quiet(p->drop_reason)) {
            if (phase_ != Phase::Closing) console_.say("%s disconnected: %s\n", p->name(), p->drop_reason.c_str());
            event("disconnected").str("slave", p->id).str("address", p->address).str("reason", p->drop_reason);
        }
        if (!p->id.empty()) ids_.erase(p->id);
        peers_.erase(token);
        if (listener_paused_) resume_listener();  // a descriptor is free again
    }
    dropping_.clear();
}

// True when an event about a stranger dropped for `reason` should be left
// out: past QUIET_BURST of its kind in this window. The kind is the reason
// up to its first ':' ("bad message: unknown verb" is a "bad message").
bool Master::quiet(const std::string& reason) {
    const int64_t now = monotonic_ns();
    if (quieted_.empty()) loop_.arm(QUIET_TIMER, now + QUIET_WINDOW_NS);  // a window opens
    std::string kind = reason.substr(0, reason.find(':'));
    if (quieted_.size() >= QUIET_REASONS && !quieted_.count(kind)) kind = "other reasons";
    Quieted& q = quieted_[kind];
    if (q.shown < QUIET_BURST) {
        ++q.shown;
        return false;
    }
    ++q.suppressed;
    return true;
}

// The end of a window: one line for each kind of reason that was quieted.
void Master::say_quieted() {
    for (const auto& [kind, q] : quieted_) {
        if (q.suppressed == 0) continue;
        console_.say("dropped %llu more connection(s) in the last %lld s that did not become slaves: %s\n",
                     static_cast<unsigned long long>(q.suppressed), static_cast<long long>(QUIET_WINDOW_NS / NS_PER_S),
                     kind.c_str());
        event("quieted").str("reason", kind).num("count", static_cast<int64_t>(q.suppressed))
            .num("window_ns", QUIET_WINDOW_NS);
    }
    quieted_.clear();  // the next event about a stranger opens a new window
}

// Out of file descriptors: stop watching the listener (it would stay
// readable and spin the loop) until a connection closes. Said once.
void Master::pause_listener(const std::string& why) {
    std::string error;
    if (!loop_.modify(listener_.get(), 0, LISTENER_TOKEN, error)) return;
    listener_paused_ = true;
    std::fprintf(stderr, "master: %s: not accepting until a connection closes\n", why.c_str());
    event("paused").str("reason", why);
}

void Master::resume_listener() {
    std::string error;
    if (loop_.modify(listener_.get(), EPOLLIN, LISTENER_TOKEN, error)) listener_paused_ = false;
}

}  // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    Options opt;
    const CliResult parsed = parse_options(argc, argv, opt);
    if (!parsed.run) return print_and_exit_code(parsed);
    EventLog log;
    EventLoop loop;
    std::string error;
    const uint64_t fd_limit = start_up("master", opt.common, log, loop, error);
    if (fd_limit == 0) {
        std::fprintf(stderr, "master: %s\n", error.c_str());
        return 1;
    }
    // Every slave is a descriptor: no promise beyond what the limit allows.
    const size_t fd_budget = fd_limit > RESERVED_FDS ? static_cast<size_t>(fd_limit - RESERVED_FDS) : 1;
    if (opt.max_slaves > fd_budget) {
        std::fprintf(stderr, "master: the open-file limit is %llu: --max-slaves lowered to %zu\n",
                     static_cast<unsigned long long>(fd_limit), fd_budget);
        opt.max_slaves = fd_budget;
    }
    if (opt.slaves > opt.max_slaves) {
        std::fprintf(stderr, "master: cannot wait for %zu slaves with %zu connections at most\n", opt.slaves,
                     opt.max_slaves);
        return 1;
    }
    Master master(opt, loop, log, opt.clock ? *opt.clock : starting_clock(opt.common, opt.common.seed, realtime_ns()));
    if (!master.listen(error)) {
        std::fprintf(stderr, "master: cannot listen: %s\n", error.c_str());
        return 1;
    }
    return master.run();
}
