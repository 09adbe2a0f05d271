// master.cpp - the Berkeley time daemon. It waits for N slaves, then runs
// rounds: probe every slave's clock (several probes each, concurrently),
// estimate each offset from the fastest round trip, agree on the
// fault-tolerant average with its own clock counted as offset 0, and send
// every slave the correction it must add. The arithmetic lives in clock.hpp,
// the sockets in net.hpp; this file is the policy and the wiring.
// Reading order: options; Peer and Master; the main loop; connections
// (accept, read, one handler per message: on_hello, on_clock, on_ack;
// refuse, reap); the round, step by step (advance, start_round, send_probe,
// finish_probing, finish_round); main().
#include <algorithm>
#include <cinttypes>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "clock.hpp"
#include "eventlog.hpp"
#include "net.hpp"
#include "protocol.hpp"

namespace {

using namespace berkeley;

constexpr const char* USAGE =
    "usage: ./master N [options]        run Berkeley rounds for N slaves\n"
    "  --port P               TCP port to listen on (0 picks a free one) [8080]\n"
    "  --bind ADDR            address to listen on                     [127.0.0.1]\n"
    "  --rounds K             rounds to run, 0 = until SIGINT/SIGTERM  [5]\n"
    "  --interval SEC         from one round's start to the next's     [1]\n"
    "  --probes P             clock requests per slave per round       [4]\n"
    "  --timeout-ms MS        how long to wait for one reply           [500]\n"
    "  --max-skew MS          leave out readings further from the median (0: none) [10000]\n"
    "  --max-missed K         drop a slave after K missed rounds in a row [3]\n"
    "  --max-slaves M         most slaves at once; one more gets ERROR [10000]\n";

constexpr uint16_t DEFAULT_PORT = 8080;
constexpr uint64_t DEFAULT_ROUNDS = 5;
constexpr int64_t DEFAULT_INTERVAL_NS = 1 * NS_PER_S;
constexpr uint32_t DEFAULT_PROBES = 4;
constexpr int64_t DEFAULT_TIMEOUT_NS = 500 * NS_PER_MS;
// Twice the default random offset range: honest simulated clocks can start
// up to 10 s apart, so only a reading beyond that is taken for a fault.
constexpr int64_t DEFAULT_MAX_SKEW_NS = 10 * NS_PER_S;
constexpr uint32_t DEFAULT_MAX_MISSED = 3;
constexpr size_t DEFAULT_MAX_SLAVES = 10'000;
constexpr size_t MAX_SLAVES = 100'000;
constexpr int64_t SHUTDOWN_GRACE_NS = 2 * NS_PER_S;  // for BYE to reach the slaves
constexpr int64_t HELLO_TIMEOUT_NS = 5 * NS_PER_S;   // a connection must say HELLO by then
constexpr size_t MAX_PENDING_HELLOS = 1024;          // connections not yet past HELLO
constexpr int64_t WAIT_HEARTBEAT_NS = 1 * NS_PER_S;  // WAIT to joined slaves before round 1
constexpr uint64_t RESERVED_FDS = 32;                // log, epoll, listener, stdio, slack
// An honest slave sends at most HELLO, one CLOCK per probe and an ACK per
// round; a peer sending far more is flooding and is dropped.
constexpr uint32_t FLOOD_SLACK_LINES = 8;
constexpr uint64_t LISTENER_TOKEN = 0;

struct Options {
    size_t slaves = 0;
    std::string bind = "127.0.0.1";
    uint16_t port = DEFAULT_PORT;
    uint64_t rounds = DEFAULT_ROUNDS;
    int64_t interval_ns = DEFAULT_INTERVAL_NS;
    uint32_t probes = DEFAULT_PROBES;
    int64_t timeout_ns = DEFAULT_TIMEOUT_NS;
    int64_t max_skew_ns = DEFAULT_MAX_SKEW_NS;
    uint32_t max_missed = DEFAULT_MAX_MISSED;
    size_t max_slaves = DEFAULT_MAX_SLAVES;
    CommonOptions common;  // clock, discipline, timestamps, secret, log
};

Options parse_options(int argc, char** argv) {
    Options o;
    o.common.seed = default_seed();
    const std::string usage = std::string(USAGE) + COMMON_USAGE;
    Args a(argc, argv, usage.c_str());
    bool have_n = false;
    while (a.next()) {
        const std::string_view f = a.current();
        if (f == "--port") o.port = static_cast<uint16_t>(a.integer(0, 65535));
        else if (f == "--bind") o.bind = a.value();
        else if (f == "--rounds") o.rounds = static_cast<uint64_t>(a.integer(0, INT64_MAX));
        else if (f == "--interval") o.interval_ns = a.scaled(9, NS_PER_MS, 86400 * NS_PER_S);
        else if (f == "--probes") o.probes = static_cast<uint32_t>(a.integer(1, MAX_PROBES));
        else if (f == "--timeout-ms") o.timeout_ns = a.scaled(6, NS_PER_MS, 3600 * NS_PER_S);
        else if (f == "--max-skew") o.max_skew_ns = a.scaled(6, 0, MAX_OFFSET_NS);
        else if (f == "--max-missed") o.max_missed = static_cast<uint32_t>(a.integer(1, 1'000'000));
        else if (f == "--max-slaves") o.max_slaves = static_cast<size_t>(a.integer(1, MAX_SLAVES));
        else if (parse_common_option(a, o.common, "master")) continue;
        else if (!f.empty() && f[0] == '-') a.fail("unknown option " + std::string(f));
        else if (have_n) a.fail("unexpected argument " + std::string(f));
        else {
            auto n = parse_decimal(f, 0);
            if (!n || *n < 1 || *n > static_cast<int64_t>(MAX_SLAVES))
                a.fail("N must be a number of slaves from 1 to " + std::to_string(MAX_SLAVES));
            o.slaves = static_cast<size_t>(*n);
            have_n = true;
        }
    }
    if (!have_n) a.fail("missing N, the number of slaves to wait for");
    if (o.slaves > o.max_slaves) a.fail("N is larger than --max-slaves");
    return o;
}

// One connected slave and what this round has learned about it.
struct Peer {
    std::unique_ptr<LineConn> conn;
    std::string address;           // "127.0.0.1:53491"
    std::string id;                // from HELLO; empty until then
    std::string drop_reason;       // set: remove this peer at the next reap()
    int64_t accepted_ns = 0;       // monotonic; HELLO is due HELLO_TIMEOUT_NS later
    uint32_t lines_this_round = 0; // for flood detection
    uint32_t missed_rounds = 0;    // consecutive rounds without a usable reply
    bool in_round = false;         // probed in the current round
    uint32_t probes_sent = 0;
    int64_t probe_sent_real_ns = 0;  // host time just before the pending probe left
    int64_t probe_deadline_ns = 0;   // monotonic
    bool probing_done = false;
    std::vector<Estimate> estimates;
    bool adjusted = false;  // sent an ADJUST this round
    bool acked = false;
    bool in_step = false;     // has applied one of our corrections (ACKed): averaged from then on
    bool write_shut = false;  // after BYE: our side of the stream is closed

    const char* name() const { return id.empty() ? address.c_str() : id.c_str(); }
};

enum class Phase { Waiting, Probing, Adjusting, Idle, Closing };

class Master {
public:
    Master(const Options& o, EventLoop& loop, EventLog& log, SimClock clock)
        : opt_(o), loop_(loop), log_(log), clock_(clock), console_{o.common.quiet} {}

    [[nodiscard]] bool listen(std::string& error);
    int run();

private:
    // Events.
    void on_listener_ready();
    void on_peer_ready(uint64_t token, uint32_t events);
    bool on_line(Peer& p, const std::string& line, int64_t recv_real_ns);
    void on_hello(Peer& p, const Message& m);
    void on_clock(Peer& p, const Message& m, int64_t recv_real_ns);
    void on_ack(Peer& p, const Message& m);
    void refuse(Peer& p, const std::string& reason);
    void pause_listener(const std::string& why);
    void resume_listener();
    void reap();
    // The round, step by step.
    void advance(int64_t now_ns);
    void start_round(int64_t now_ns);
    void send_probe(Peer& p);
    void finish_probing(int64_t now_ns);
    void finish_round(int64_t now_ns);
    void begin_shutdown(int64_t now_ns, const char* why);
    int64_t next_deadline_ns() const;
    int64_t round_deadline_ns() const;

    EventLog::Line event(std::string_view name) {
        const int64_t real = realtime_ns();
        return log_.event(name, "master", read_clock(clock_, real), real);
    }

    const Options& opt_;
    EventLoop& loop_;
    EventLog& log_;
    SimClock clock_;
    Console console_;
    Fd listener_;
    std::map<uint64_t, Peer> peers_;  // by token: connection order
    uint64_t next_token_ = LISTENER_TOKEN + 1;
    Phase phase_ = Phase::Waiting;
    uint64_t round_ = 0;
    int64_t round_started_ns_ = 0;
    int64_t probing_deadline_ns_ = 0;
    int64_t next_wait_ns_ = 0;  // the next WAIT heartbeat, while waiting for slaves
    int64_t ack_deadline_ns_ = 0;
    int64_t last_ack_ns_ = 0;
    int64_t close_deadline_ns_ = 0;
    size_t last_answered_ = 0;     // slaves with an estimate in the last round
    int64_t last_spread_ns_ = 0;   // their largest |correction|
    bool warned_timestamps_ = false;
    bool listener_paused_ = false;
    std::unordered_set<std::string> ids_;  // of the slaves that said HELLO
};

bool Master::listen(std::string& error) {
    listener_ = listen_tcp(opt_.bind, opt_.port, error);
    if (!listener_.valid()) return false;
    if (!loop_.add(listener_.get(), EPOLLIN, LISTENER_TOKEN, error)) return false;
    const uint16_t port = local_port(listener_.get());
    console_.say("master listening on %s:%u, waiting for %zu slave(s)\n", opt_.bind.c_str(), port, opt_.slaves);
    event("start").num("port", port).num("slaves", static_cast<int64_t>(opt_.slaves))
        .num("offset_ns", clock_.anchor_clock_ns - clock_.anchor_real_ns).num("rate_ppb", clock_.rate_ppb)
        .num("seed", static_cast<int64_t>(opt_.common.seed & INT64_MAX))
        .str("timestamps", opt_.common.kernel_timestamps ? "kernel" : "user");
    return true;
}

// ---------------------------------------------------------------------------
// The main loop: sleep until an event or the nearest deadline, handle it,
// remove who must go, move the round on.

int Master::run() {
    while (true) {
        int64_t now = monotonic_ns();
        if (g_stop_signal && phase_ != Phase::Closing) begin_shutdown(now, "signal");
        if (phase_ == Phase::Closing && (peers_.empty() || now >= close_deadline_ns_)) break;
        const int64_t deadline = next_deadline_ns();
        const int64_t timeout = deadline < 0 ? -1 : std::max<int64_t>(0, deadline - now);
        for (const Ready& r : loop_.wait(timeout)) {
            if (r.token == LISTENER_TOKEN) on_listener_ready();
            else on_peer_ready(r.token, r.events);
        }
        reap();
        advance(monotonic_ns());
        reap();  // what advance refused (no HELLO in time, missed rounds) goes now, not at the next event
    }
    const bool complete = opt_.rounds > 0 && round_ >= opt_.rounds && phase_ == Phase::Closing;
    console_.say("finished: %" PRIu64 " round(s); %zu slave(s) answered the last one", round_, last_answered_);
    if (last_answered_ > 0)
        console_.say(", their corrections within %.3f us", static_cast<double>(last_spread_ns_) / NS_PER_US);
    console_.say("\n");
    event("exit").num("rounds", static_cast<int64_t>(round_)).flag("complete", complete);
    peers_.clear();
    return 0;
}

// ---------------------------------------------------------------------------
// Connections: accept, read, dispatch one handler per message, refuse, reap.

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
            send_now(fd.get(), format_message(Message::error(reason)));
            event("refused").str("address", address).str("reason", reason);
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
        p.conn = std::move(conn);
        p.address = address;
        p.accepted_ns = monotonic_ns();
    }
}

void Master::on_peer_ready(uint64_t token, uint32_t events) {
    auto it = peers_.find(token);
    if (it == peers_.end()) return;  // removed earlier in this batch
    Peer& p = it->second;
    if (!p.drop_reason.empty()) return;
    if (events & EPOLLOUT) {
        if (!p.conn->flush()) p.drop_reason = p.conn->error();
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        auto status = p.conn->read_lines(
            [&](const std::string& line, int64_t recv_real_ns) { return on_line(p, line, recv_real_ns); });
        if (status == LineConn::Status::Closed && p.drop_reason.empty()) p.drop_reason = "closed the connection";
        if (status == LineConn::Status::Failed && p.drop_reason.empty()) refuse(p, p.conn->error());
    }
}

// Dispatch one line. False stops reading from this peer (it is being dropped).
bool Master::on_line(Peer& p, const std::string& line, int64_t recv_real_ns) {
    if (++p.lines_this_round > 2 * opt_.probes + FLOOD_SLACK_LINES) {
        refuse(p, "flooding: more than " + std::to_string(2 * opt_.probes + FLOOD_SLACK_LINES) + " lines in a round");
        return false;
    }
    Parsed parsed = parse_message(line);
    if (!parsed.message) {
        refuse(p, "bad message: " + parsed.error);
        return false;
    }
    const Message& m = *parsed.message;
    if (m.verb != Verb::Hello && m.verb != Verb::Error && p.id.empty()) {
        refuse(p, std::string(verb_name(m.verb)) + " before HELLO");
        return false;
    }
    switch (m.verb) {
        case Verb::Hello: on_hello(p, m); break;
        case Verb::Clock: on_clock(p, m, recv_real_ns); break;
        case Verb::Ack: on_ack(p, m); break;
        case Verb::Error: p.drop_reason = "sent ERROR " + m.text; break;
        case Verb::Wait:
        case Verb::TimeQuery:
        case Verb::Adjust:
        case Verb::Bye: refuse(p, std::string(verb_name(m.verb)) + " is a master's message"); break;
    }
    return p.drop_reason.empty();
}

void Master::on_hello(Peer& p, const Message& m) {
    if (!p.id.empty()) return refuse(p, "HELLO sent twice");
    // Checked before anything else is revealed; the secret itself is never logged.
    if (!opt_.common.secret.empty() && !secrets_equal(opt_.common.secret, m.secret))
        return refuse(p, m.secret.empty() ? "authentication required (no secret in HELLO)"
                                          : "authentication failed (wrong secret)");
    if (ids_.count(m.text)) return refuse(p, "id " + m.text + " is already connected");
    if (ids_.size() >= opt_.max_slaves)
        return refuse(p, "too many slaves (--max-slaves " + std::to_string(opt_.max_slaves) + ")");
    p.id = m.text;
    ids_.insert(p.id);
    console_.say("%s (%s) got connected successfully\n", p.address.c_str(), p.id.c_str());
    event("connected").str("slave", p.id).str("address", p.address);
    // Say it was heard, so the slave knows this master is alive while it waits.
    if (!p.conn->send(format_message(Message::wait(ids_.size(), opt_.slaves)))) p.drop_reason = p.conn->error();
    if (phase_ == Phase::Waiting) console_.say("waiting for slaves: %zu/%zu\n", ids_.size(), opt_.slaves);
}

// A reply to the pending probe: turn it into an estimate (t1 is the host time
// read right after the read that completed the line), then probe again.
void Master::on_clock(Peer& p, const Message& m, int64_t recv_real_ns) {
    if (phase_ != Phase::Probing || !p.in_round || p.probing_done || m.round != round_ ||
        m.probe != p.probes_sent) {
        event("stale").str("slave", p.id).num("round", static_cast<int64_t>(m.round))
            .num("probe", m.probe);
        return;  // a late reply to a probe that already timed out: harmless
    }
    const int64_t t1 = read_clock(clock_, p.probe_sent_real_ns);
    const int64_t t4 = read_clock(clock_, recv_real_ns);
    const Probe probe = m.sent_ns ? Probe(t1, m.value_ns, *m.sent_ns, t4) : Probe(t1, m.value_ns, t4);
    if (auto e = estimate_offset(probe)) p.estimates.push_back(*e);
    else event("rejected").str("slave", p.id).num("round", static_cast<int64_t>(round_))
             .num("reading_ns", m.value_ns);
    if (p.probes_sent < opt_.probes) send_probe(p);
    else p.probing_done = true;
}

void Master::on_ack(Peer& p, const Message& m) {
    if (m.round != round_ || !p.adjusted || p.acked) return;
    p.acked = true;
    p.in_step = true;  // it has applied a correction: from now on it counts in the average
    last_ack_ns_ = monotonic_ns();
}

// Tell the peer why, then drop it at the next reap().
void Master::refuse(Peer& p, const std::string& reason) {
    (void)p.conn->send(format_message(Message::error(reason.substr(0, MAX_REASON_BYTES))));
    p.drop_reason = reason;
}

// Remove peers marked for dropping: the only place a peer is erased while
// running, so no handler ever runs on a removed one.
void Master::reap() {
    for (auto it = peers_.begin(); it != peers_.end();) {
        Peer& p = it->second;
        if (p.drop_reason.empty()) {
            ++it;
            continue;
        }
        if (phase_ != Phase::Closing) console_.say("%s disconnected: %s\n", p.name(), p.drop_reason.c_str());
        event("disconnected").str("slave", p.id).str("address", p.address).str("reason", p.drop_reason);
        ids_.erase(p.id);
        it = peers_.erase(it);
        if (listener_paused_) resume_listener();  // a descriptor is free again
    }
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

// ---------------------------------------------------------------------------
// The round, step by step. Deadlines are on CLOCK_MONOTONIC, never on the
// clock being corrected.

int64_t Master::next_deadline_ns() const {
    int64_t hello_due = -1;  // the earliest HELLO deadline, -1 for none
    for (const auto& [token, p] : peers_)
        if (p.id.empty() && p.drop_reason.empty() && (hello_due < 0 || p.accepted_ns + HELLO_TIMEOUT_NS < hello_due))
            hello_due = p.accepted_ns + HELLO_TIMEOUT_NS;
    const int64_t round_due = round_deadline_ns();
    if (hello_due < 0) return round_due;
    return round_due < 0 ? hello_due : std::min(hello_due, round_due);
}

int64_t Master::round_deadline_ns() const {
    switch (phase_) {
        case Phase::Waiting: return ids_.empty() ? -1 : next_wait_ns_;
        case Phase::Probing: {
            int64_t d = INT64_MAX;
            for (const auto& [token, p] : peers_)
                if (p.in_round && !p.probing_done) d = std::min(d, p.probe_deadline_ns);
            return d == INT64_MAX ? 0 : std::min(d, probing_deadline_ns_);  // 0: nobody left, go on now
        }
        case Phase::Adjusting: return ack_deadline_ns_;
        case Phase::Idle: return round_started_ns_ + opt_.interval_ns;
        case Phase::Closing: return close_deadline_ns_;
    }
    return -1;
}

// Move the round forward as far as its state allows.
void Master::advance(int64_t now) {
    for (auto& [token, p] : peers_)  // slow loris: connected, but no HELLO in time
        if (p.id.empty() && p.drop_reason.empty() && now >= p.accepted_ns + HELLO_TIMEOUT_NS)
            refuse(p, "no HELLO within " + std::to_string(HELLO_TIMEOUT_NS / NS_PER_S) + " s");
    if (phase_ == Phase::Waiting && ids_.size() >= opt_.slaves) start_round(now);
    if (phase_ == Phase::Waiting && now >= next_wait_ns_) {  // a heartbeat for those already here
        for (auto& [token, p] : peers_)
            if (!p.id.empty() && p.drop_reason.empty() && !p.conn->send(format_message(Message::wait(ids_.size(), opt_.slaves))))
                p.drop_reason = p.conn->error();
        next_wait_ns_ = now + WAIT_HEARTBEAT_NS;
    }
    if (phase_ == Phase::Probing) {
        bool all_done = true;
        for (auto& [token, p] : peers_) {
            if (!p.in_round || p.probing_done) continue;
            // No reply in time, or a slave so slow that the round must go on without its last probes.
            if (now >= p.probe_deadline_ns || now >= probing_deadline_ns_) p.probing_done = true;
            else all_done = false;
        }
        if (all_done) finish_probing(now);
    }
    if (phase_ == Phase::Adjusting) {
        bool all_acked = std::all_of(peers_.begin(), peers_.end(),
                                     [](const auto& kv) { return !kv.second.adjusted || kv.second.acked; });
        if (all_acked || now >= ack_deadline_ns_) finish_round(now);
    }
    if (phase_ == Phase::Idle && now >= round_started_ns_ + opt_.interval_ns) start_round(now);
    if (phase_ == Phase::Closing) {
        for (auto& [token, p] : peers_) {
            if (p.write_shut || p.conn->has_output()) continue;
            p.conn->shutdown_write();  // BYE is out: wait for the slave to close
            p.write_shut = true;
        }
    }
}

void Master::start_round(int64_t now) {
    ++round_;
    round_started_ns_ = now;
    // Each probe has --timeout-ms; the whole probing phase has that or half
    // the interval, whichever is longer, so one slow slave cannot stretch
    // every round to probes x timeout.
    probing_deadline_ns_ = now + std::max(opt_.timeout_ns, opt_.interval_ns / 2);
    phase_ = Phase::Probing;
    event("round").num("round", static_cast<int64_t>(round_)).num("cpu_ns", cpu_time_ns());
    console_.say("\nNew synchronization cycle started (round %" PRIu64 "/%s)\n", round_,
                 opt_.rounds ? std::to_string(opt_.rounds).c_str() : "unlimited");
    size_t n = 0;
    for (auto& [token, p] : peers_) {
        p.in_round = !p.id.empty();
        p.probing_done = !p.in_round;
        p.probes_sent = 0;
        p.estimates.clear();
        p.adjusted = p.acked = false;
        p.lines_this_round = 0;
        if (p.in_round) ++n;
    }
    console_.say("Number of clients to be synchronized: %zu\n", n);
    // The first probe to every slave at once; each next one as soon as the
    // previous reply is in, so the round lasts about probes x one round trip.
    for (auto& [token, p] : peers_)
        if (p.in_round) send_probe(p);
}

void Master::send_probe(Peer& p) {
    ++p.probes_sent;
    const std::string line = format_message(Message::time_query(round_, p.probes_sent));
    p.probe_sent_real_ns = realtime_ns();  // read as late as possible before the send
    if (!p.conn->send(line)) {
        p.drop_reason = p.conn->error();
        p.probing_done = true;
        return;
    }
    p.probe_deadline_ns = monotonic_ns() + opt_.timeout_ns;
}

// Steps 2-4: best probe per slave, fault-tolerant average with the master as
// offset 0, and a correction for everyone.
void Master::finish_probing(int64_t now) {
    // Who counts: once the master is in step (after its first correction), a
    // slave joins the average only after it has taken a correction itself, so
    // a newcomer is brought to the agreed time without pulling everyone else.
    const bool in_step = clock_.corrected;
    struct Answer {
        Peer* peer;
        Estimate best;
        int index;  // in `offsets`, or -1: not averaged (a newcomer)
    };
    std::vector<Answer> answers;
    std::vector<int64_t> offsets{0};  // the master's own clock, relative to itself
    for (auto& [token, p] : peers_) {
        if (!p.in_round || !p.drop_reason.empty()) continue;
        if (auto e = best_estimate(p.estimates)) {
            const bool eligible = !in_step || p.in_step;
            answers.push_back({&p, *e, eligible ? static_cast<int>(offsets.size()) : -1});
            if (eligible) offsets.push_back(e->offset_ns);
        }
    }
    const int64_t skew = skew_limit(opt_.max_skew_ns, opt_.common.discipline.step_threshold_ns, in_step);
    const Agreement agreed = fault_tolerant_average(offsets, skew);

    console_.say("  %-24s %20s %12s %20s\n", "participant", "estimated offset", "best rtt", "correction");
    console_.say("  %-24s %20s %12s %20s%s\n", "master (self)", format_ms(0).c_str(), "-",
                 format_ms(agreed.average_ns).c_str(), agreed.included[0] ? "" : "  (left out of average)");
    last_spread_ns_ = 0;
    last_answered_ = answers.size();
    for (const Answer& a : answers) {
        Peer& p = *a.peer;
        const int64_t correction = correction_for(agreed.average_ns, a.best.offset_ns);
        const bool included = a.index >= 0 && agreed.included[static_cast<size_t>(a.index)];
        last_spread_ns_ = std::max(last_spread_ns_, correction < 0 ? -correction : correction);
        console_.say("  %-24s %20s %9.1f us %20s%s\n", p.id.c_str(), format_ms(a.best.offset_ns).c_str(),
                     static_cast<double>(a.best.rtt_ns) / NS_PER_US, format_ms(correction).c_str(),
                     included ? "" : a.index < 0 ? "  (joining: not averaged)" : "  (left out of average)");
        event("estimate").str("slave", p.id).num("round", static_cast<int64_t>(round_))
            .num("estimate_ns", a.best.offset_ns).num("rtt_ns", a.best.rtt_ns)
            .num("correction_ns", correction).flag("included", included);
        if (!p.conn->send(format_message(Message::adjust(round_, correction)))) p.drop_reason = p.conn->error();
        p.adjusted = true;
    }
    for (auto& [token, p] : peers_) {
        if (!p.in_round || !p.drop_reason.empty()) continue;
        if (!p.estimates.empty()) {
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
    // The master is a participant too: it corrects itself by the average.
    const int64_t real = realtime_ns();
    if (auto corrected = apply_correction(clock_, real, agreed.average_ns, opt_.common.discipline)) {
        clock_ = corrected->clock;
        auto line = log_.event("adjust", "master", read_clock(clock_, real), real);
        line.num("round", static_cast<int64_t>(round_)).num("correction_ns", agreed.average_ns);
        correction_fields(line, *corrected);
    }
    phase_ = Phase::Adjusting;
    ack_deadline_ns_ = now + opt_.timeout_ns;
}

void Master::finish_round(int64_t now) {
    int64_t acked = 0;
    for (auto& [token, p] : peers_) {
        acked += p.acked;
        if (p.adjusted && !p.acked && p.drop_reason.empty())
            event("no_ack").str("slave", p.id).num("round", static_cast<int64_t>(round_));
    }
    // From the first probe to the last ACK (or the end of the wait for one),
    // and the CPU this process has used so far: what the benchmarks measure.
    const int64_t end = acked > 0 ? last_ack_ns_ : now;
    event("round_done").num("round", static_cast<int64_t>(round_)).num("duration_ns", end - round_started_ns_)
        .num("answered", static_cast<int64_t>(last_answered_)).num("acked", acked).num("cpu_ns", cpu_time_ns());
    if (opt_.rounds > 0 && round_ >= opt_.rounds) return begin_shutdown(now, "all rounds done");
    phase_ = Phase::Idle;
}

// Say BYE to everyone and give the words time to arrive before closing.
void Master::begin_shutdown(int64_t now, const char* why) {
    console_.say("\nshutting down: %s\n", why);
    event("shutdown").str("reason", why).num("round", static_cast<int64_t>(round_));
    phase_ = Phase::Closing;
    close_deadline_ns_ = now + SHUTDOWN_GRACE_NS;
    for (auto& [token, p] : peers_) {
        if (p.id.empty()) {
            p.drop_reason = "shutting down";
            continue;
        }
        if (!p.conn->send(format_message(Message::bye()))) p.drop_reason = p.conn->error();
    }
}

}  // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    Options opt = parse_options(argc, argv);
    EventLog log;
    EventLoop loop;
    const uint64_t fd_limit = start_up("master", opt.common, log, loop);
    if (fd_limit == 0) return 1;
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
    Master master(opt, loop, log, make_clock(opt.common, opt.common.seed, realtime_ns()));
    std::string error;
    if (!master.listen(error)) {
        std::fprintf(stderr, "master: cannot listen: %s\n", error.c_str());
        return 1;
    }
    return master.run();
}
