// slave.cpp - a Berkeley slave: it connects to the master (retrying until it
// is up), answers every clock request at once from its simulated clock, adds
// each correction it is sent to that clock and acknowledges it. It never
// receives an absolute time, only corrections. With --secret-file it makes
// the master prove the secret before it says or accepts anything (auth.hpp).
// --count K runs K of them on one loop. The clock model is clock.hpp, the
// sockets net.hpp.
#include <algorithm>
#include <array>
#include <cinttypes>
#include <climits>
#include <memory>
#include <random>
#include <string>
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

constexpr int64_t DEFAULT_CONNECT_TIMEOUT_NS = 30 * NS_PER_S;
// Retries back off exponentially with full jitter: a delay drawn from 0 up
// to a ceiling that doubles from FIRST_RETRY_NS to MAX_RETRY_NS, so that
// thousands of slaves refused at once do not all come back at once.
constexpr int64_t FIRST_RETRY_NS = 50 * NS_PER_MS;
constexpr int64_t MAX_RETRY_NS = 1 * NS_PER_S;
constexpr int64_t MAX_COUNT = 100'000;
constexpr size_t MAX_TAKEOVER_SLAVES = 100'000;  // a master we become admits what its open-file limit allows

struct Options {
    std::string host = "127.0.0.1";
    uint16_t port = 8080;
    std::string id;
    size_t count = 1;
    int64_t connect_timeout_ns = DEFAULT_CONNECT_TIMEOUT_NS;
    int64_t lie_ns = 0;             // fault injection, for experiments and tests
    int serve_port = -1;            // -1: auto (a free port when alone in its process), 0: none
    bool ignore_corrections = false;
    CommonOptions common;  // clock, discipline, timestamps, secret, log
};

CliResult parse_options(int argc, char** argv, Options& o) {
    o.common.seed = default_seed();
    o.id = "slave-" + std::to_string(getpid());
    std::vector<OptionSpec> specs = {
        {"host", "HOST", "the master's address                     [127.0.0.1]", store_text(o.host)},
        {"port", "P", "the master's port                        [8080]", store_integer("port", o.port, 1, 65535)},
        {"id", "NAME", "name to announce (letters, digits, -_.:) [slave-<pid>]", store_text(o.id)},
        {"count", "K", "run K slaves in this process, ids NAME-1..NAME-K [1]", store_integer("count", o.count, 1, MAX_COUNT)},
        {"connect-timeout", "SEC", "give up when not connected for this long, at least 0.001 [30]",
         store_scaled("connect-timeout", o.connect_timeout_ns, 9, NS_PER_MS, 86400 * NS_PER_S)},
        {"lie", "MS", "a liar, for experiments: every answer MS off its clock, which\n"
         "                         itself follows the master's time, ignoring rate changes [0]",
         store_scaled("lie", o.lie_ns, 6, -MAX_OFFSET_NS / 2, MAX_OFFSET_NS / 2)},
        {"ignore-corrections", nullptr, "a stubborn clock, for experiments: acknowledge corrections, apply none",
         store_flag(o.ignore_corrections, true)},
        {"serve", "PORT", "the port to serve on should this slave take over as master: auto (a free\n"
         "                         one; none with --count above 1), off, or a number [auto]",
         [&o](std::string_view text) -> std::optional<std::string> {
             if (text == "auto") o.serve_port = -1;
             else if (text == "off") o.serve_port = 0;
             else if (auto problem = store_integer("serve", o.serve_port, 1, 65535)(text)) return problem;
             return std::nullopt;
         }},
    };
    for (OptionSpec& spec : common_options(o.common)) specs.push_back(std::move(spec));
    const char* synopsis = "./slave [options]           join a Berkeley master and follow its corrections";
    std::vector<std::string> args;
    CliResult r = parse_command_line(argc, argv, "slave", synopsis, specs, args);
    if (!r.run) return r;
    auto mistake = [&](const std::string& problem) {
        return CliResult{false, 2, "error: " + problem + "\n" + usage_text(synopsis, specs)};
    };
    if (auto problem = common_problem(o.common)) return mistake(*problem);
    if (!args.empty()) return mistake("unexpected argument " + args[0]);
    if (o.serve_port > 0 && o.count > 1)
        return mistake("--serve PORT is for one slave: a slave that takes over runs ./master in its process");
    const std::string longest = o.count > 1 ? o.id + "-" + std::to_string(o.count) : o.id;
    if (const char* why = id_problem(longest)) return mistake("bad --id '" + o.id + "': " + why);
    return r;
}

// How long building a CLOCK line takes (formatting it, and tagging it with a
// secret), so that its T3 can name the moment the line is sent: the fastest
// of the last BUILD_SAMPLES builds of every slave in this process, once there
// are MIN_BUILD_SAMPLES. The fastest, because an estimate too long would
// shorten the probe's measured delay and make a biased probe look best.
class BuildTime {
public:
    static constexpr size_t BUILD_SAMPLES = 64;
    static constexpr size_t MIN_BUILD_SAMPLES = 4;
    int64_t predict_ns() const {
        if (count_ < MIN_BUILD_SAMPLES) return 0;
        return *std::min_element(samples_.begin(), samples_.begin() + std::min(count_, BUILD_SAMPLES));
    }
    void add(int64_t ns) { samples_[count_++ % BUILD_SAMPLES] = std::max<int64_t>(ns, 0); }

private:
    std::array<int64_t, BUILD_SAMPLES> samples_{};
    size_t count_ = 0;
};

class Slave {
public:
    enum class State { Waiting, Connecting, Connected, Done };

    Slave(const Options& o, EventLoop& loop, EventLog& log, BuildTime& build, std::string id, uint64_t seed,
          uint64_t token)
        : opt_(o), loop_(loop), log_(log), build_(build), id_(std::move(id)), seed_(seed),
          clock_(starting_clock(o.common, seed, realtime_ns())), token_(token), console_{o.common.quiet},
          rng_(seed ^ 0x9E3779B97F4A7C15ULL) {}

    void start(int64_t now);
    void on_ready(uint32_t events);
    void on_timer(int64_t now);
    bool done() const { return state_ == State::Done; }
    int exit_code() const { return exit_code_; }
    void stop(const char* why);

private:
    void try_connect(int64_t now);
    void on_connected(int64_t now);
    bool on_line(const std::string& line, int64_t recv_real_ns);
    void on_answer(const std::string& line);
    std::string wire(const Message& m);
    void on_time_query(const TimeQuery& m, int64_t recv_real_ns);
    void on_adjust(const Adjust& m);
    void on_wait(const Wait& m);
    void on_plan(const Plan& m);
    int64_t silence_ns() const;
    void drop_connection(const std::string& why);
    void candidate_refused(const std::string& why, bool alive);
    void open_listener(int connected_fd);
    void elect(int64_t now);
    void next_candidate(int64_t now);
    void take_over();
    void on_error(const Error& m);
    void retry_later(int64_t now);
    void lose_master(const std::string& why);
    void give_up();
    void violation(const std::string& what);
    void finish(int code, const std::string& why);

    EventLog::Line event(std::string_view name) {
        const int64_t real = realtime_ns();
        return log_.event(name, id_, read_clock(clock_, real), real);
    }
    EventLog::Line event_at(std::string_view name, int64_t clock_ns, int64_t real_ns) {
        return log_.event(name, id_, clock_ns, real_ns);
    }

    const Options& opt_;
    EventLoop& loop_;
    EventLog& log_;
    BuildTime& build_;  // shared by the slaves of this process
    std::string id_;
    uint64_t seed_;
    SimClock clock_;
    uint64_t token_;
    Console console_;
    State state_ = State::Waiting;
    Fd connecting_;                  // while the TCP handshake is under way
    std::unique_ptr<LineConn> conn_;  // once connected
    std::unique_ptr<LineConn> retired_;  // closed from inside its own read: freed on the next event
    int64_t retry_delay_ns_ = FIRST_RETRY_NS;  // the back-off's ceiling now
    std::mt19937_64 rng_;                      // its jitter
    int64_t give_up_at_ns_ = 0;       // monotonic: end of the connect timeout
    bool heard_ = false;              // has the master said anything valid on this connection
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
    Fd listener_;                     // listening, unwatched, for the day we take over
    std::string self_address_;        // "host:port" of listener_, as the master sees it
    std::string master_address_;      // the master we follow, or last followed
    std::string target_;              // the address being tried now
    std::optional<Plan> plan_;        // the last PLAN of the master we follow
    uint64_t epoch_ = 0;              // the highest epoch we have followed
    ElectionOrder election_;          // while electing: whom to try, in order
    size_t candidate_ = 0;
    bool electing_ = false;
    int64_t candidate_until_ns_ = 0;  // monotonic: the patience for the candidate being tried
    bool retry_candidate_ = false;    // the next attempt goes to the same candidate
};

void Slave::start(int64_t now) {
    const int64_t real = realtime_ns();
    const int64_t clock = read_clock(clock_, real);
    console_.say("%s: clock starts at %s (offset %s, drift %+.3f ppm)\n", id_.c_str(), format_time(clock).c_str(),
                 format_duration(clock - real).c_str(), static_cast<double>(clock_.rate_ppb) / PPB_PER_PPM);
    event_at("start", clock, real).num("offset_ns", clock_.anchor_clock_ns - clock_.anchor_real_ns).num("rate_ppb", clock_.rate_ppb)
        .num("seed", static_cast<int64_t>(seed_ & INT64_MAX))
        .str("timestamps", opt_.common.kernel_timestamps ? "kernel" : "user");
    give_up_at_ns_ = now + opt_.connect_timeout_ns;
    master_address_ = target_ = (opt_.host.find(':') != std::string::npos ? "[" + opt_.host + "]" : opt_.host) + ":" +
                                std::to_string(opt_.port);
    try_connect(now);
}

void Slave::try_connect(int64_t now) {
    std::string error;
    std::string host;
    uint16_t port = 0;
    if (!split_address(target_, host, port)) host = opt_.host, port = opt_.port;
    connecting_ = connect_tcp(host, port, error);
    if (connecting_.valid() && loop_.add(connecting_.get(), EPOLLOUT, token_, error)) {
        state_ = State::Connecting;
        // A candidate whose handshake hangs (its SYNs dropped) is passed over like a silent one.
        loop_.arm(token_, electing_ ? std::min(give_up_at_ns_, now + 2 * plan_->interval_ns + plan_->timeout_ns)
                                    : give_up_at_ns_);
        return;
    }
    connecting_.reset();
    failure_ = error;
    if (electing_) return next_candidate(now);
    retry_later(now);
}

void Slave::retry_later(int64_t now) {
    state_ = State::Waiting;
    std::uniform_int_distribution<int64_t> jitter(0, retry_delay_ns_);
    loop_.arm(token_, now + jitter(rng_));
}

// This slave's one timer: the next connection attempt, giving up on a
// handshake, or silence from the master (it answers HELLO with WAIT at once
// and repeats it every second until its first round; after that its rounds
// keep talking). Silence is checked lazily: the timer is not moved each time
// the master speaks, only re-armed here if it did.
void Slave::on_timer(int64_t now) {
    retired_.reset();
    switch (state_) {
        case State::Waiting:
            if (now >= give_up_at_ns_) return give_up();
            retry_delay_ns_ = std::min(retry_delay_ns_ * 2, MAX_RETRY_NS);
            if (electing_ && retry_candidate_) {  // a candidate that refused us for now
                retry_candidate_ = false;
                return try_connect(now);
            }
            if (electing_) return elect(now);  // the list again, from the top
            return try_connect(now);
        case State::Connecting:  // a handshake that never finishes (SYN dropped)
            loop_.remove(connecting_.get());
            connecting_.reset();
            if (electing_ && now < give_up_at_ns_) {
                failure_ = "connect: no answer from " + target_;
                return next_candidate(now);
            }
            return give_up();
        case State::Connected: {
            const int64_t silence = silence_ns();
            if (now < last_heard_ns_ + silence) return loop_.arm(token_, last_heard_ns_ + silence);
            return lose_master("no word from the master for " + std::to_string(silence / NS_PER_MS) + " ms");
        }
        case State::Done: return;
    }
}

void Slave::give_up() {
    const std::string where = master_address_;
    if (failure_.empty() || failure_.rfind("connect", 0) == 0)
        return finish(1, "could not reach the master at " + where + (failure_.empty() ? "" : " (" + failure_ + ")") +
                             "; is ./master running?");
    finish(1, "gave up on the master at " + where + ": " + failure_);
}

void Slave::on_ready(uint32_t events) {
    retired_.reset();
    const int64_t now = monotonic_ns();
    if (state_ == State::Connecting) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        loop_.remove(connecting_.get());
        const int err = connect_error(connecting_.get());
        if (err == 0) return on_connected(now);
        failure_ = std::string("connect: ") + std::strerror(err);
        connecting_.reset();
        if (electing_) return next_candidate(now);
        return retry_later(now);
    }
    if (state_ != State::Connected) return;
    if ((events & EPOLLOUT) && !conn_->flush()) return lose_master(conn_->error());
    auto status = conn_->read_lines(
        [this](const std::string& line, int64_t recv_real_ns) { return on_line(line, recv_real_ns); });
    if (state_ != State::Connected) return;  // on_line ended the connection
    if (status == LineConn::Status::Closed) lose_master("the master closed the connection");
    else if (status == LineConn::Status::Failed) lose_master(conn_->error());
}

void Slave::on_connected(int64_t now) {
    std::string error;
    if (!listener_.valid()) open_listener(connecting_.get());
    conn_ = std::make_unique<LineConn>(loop_, std::move(connecting_), token_);
    if (opt_.common.kernel_timestamps && !conn_->enable_kernel_timestamps())
        console_.say("%s: no kernel receive timestamps here; reading the clock after each read\n", id_.c_str());
    // With a secret, the master must prove itself before we say who we are.
    session_.reset();
    awaiting_proof_ = opt_.common.key.has_value();
    if (awaiting_proof_ && !random_bytes(nonce_)) return lose_master(sys_error("getrandom"));
    // A clock already corrected keeps a group's time: say so, so that a new
    // master is brought to it rather than it to the master.
    std::string first = format_challenge(nonce_);
    if (!awaiting_proof_) {
        first = format_message(Hello{id_, listener_.valid() ? local_port(listener_.get()) : uint16_t(0), epoch_});
        if (clock_.corrected) first += format_message(InStep{});
    }
    if (!conn_->start(error) || !conn_->send(first)) return lose_master(error.empty() ? conn_->error() : error);
    state_ = State::Connected;
    loop_.arm(token_, now + silence_ns());
    heard_ = false;  // the back-off and the give-up time reset only once the master talks
    last_heard_ns_ = now;
    last_wait_joined_ = 0;
    last_query_round_ = last_adjust_round_ = 0;  // a new master counts rounds anew
    last_query_probe_ = 0;
    console_.say("%s: connected to %s at %s\n", id_.c_str(), electing_ ? "a candidate" : "the master", target_.c_str());
    event("connected").str("master", target_);
}

// Dispatch one line from the master to its handler. False: stop reading, the connection is gone.
bool Slave::on_line(const std::string& line, int64_t recv_real_ns) {
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
        std::holds_alternative<Plan>(m)) {
        last_heard_ns_ = monotonic_ns();  // the master is alive
        if (!heard_) retry_delay_ns_ = FIRST_RETRY_NS;
        heard_ = true;
        if (electing_) {  // the candidate answers as a master: the election is over for us
            electing_ = false;
            master_address_ = target_;
            console_.say("%s: following the master at %s\n", id_.c_str(), master_address_.c_str());
        }
    }
    std::visit(Overloaded{
                   [&](const Wait& w) { on_wait(w); },
                   [&](const Plan& p) { on_plan(p); },
                   [&](const TimeQuery& q) { on_time_query(q, recv_real_ns); },
                   [&](const Adjust& a) { on_adjust(a); },
                   [&](const Bye&) { finish(0, "the master said BYE"); },
                   [&](const Error& e) { on_error(e); },
                   [&](const auto& other) { violation(std::string(verb_name(other)) + " is a slave's message"); },
               },
               m);
    return state_ == State::Connected;
}

// The master's answer to our challenge: its nonce and its proof. Nothing it
// says before a right proof is believed: an ERROR may come from an impostor,
// so it does not end us (we retry until the connect timeout), and a wrong
// proof closes the connection without a word.
void Slave::on_answer(const std::string& line) {
    const auto answer = parse_answer(line);
    if (!answer) {
        const Parsed parsed = parse_message(line);
        if (parsed.message && std::holds_alternative<Error>(*parsed.message))
        {
            const std::string why = "the master refused us before proving itself: " + std::get<Error>(*parsed.message).reason;
            if (electing_) return candidate_refused(why, true);  // maybe busy: give it its time
            return lose_master(why);
        }
        return lose_master("the master did not prove itself (expected AUTH <nonce> <proof>)");
    }
    const HmacSha256& key = *opt_.common.key;
    if (!equal_constant_time(answer->proof, master_proof(key, nonce_, answer->master_nonce)))
        return lose_master("the master's proof is wrong: it does not know our secret (an impostor?)");
    awaiting_proof_ = false;
    session_ = session_for(Role::Slave, key, nonce_, answer->master_nonce);
    std::string out = format_proof(slave_proof(key, nonce_, answer->master_nonce)) +
                      wire(Hello{id_, listener_.valid() ? local_port(listener_.get()) : uint16_t(0), epoch_});
    if (clock_.corrected) out += wire(InStep{});
    if (!conn_->send(out)) lose_master(conn_->error());
}

// The line for a message to the master: tagged once it proved itself.
std::string Slave::wire(const Message& m) {
    return session_ ? session_->out.seal(format_message(m)) : format_message(m);
}

// A wrong secret will not get better by retrying; anything else (too many
// slaves, missed rounds, our id still taken) may.
void Slave::on_error(const Error& m) {
    const bool final = m.reason.rfind("authentication", 0) == 0 || m.reason.find("has no secret") != std::string::npos;
    if (final) return finish(1, "the master refused us: " + m.reason);
    // A candidate that refuses us is alive, a master busy or full for now,
    // unless it is a master of an older epoch: then it is not ours.
    if (electing_)
        return candidate_refused("a candidate refused us: " + m.reason,
                                 m.reason.find("is older than epoch") == std::string::npos);
    // Our master, busy or full for now: keep trying it, never give up on it.
    drop_connection("the master refused us: " + m.reason);
    const int64_t now = monotonic_ns();
    give_up_at_ns_ = now + opt_.connect_timeout_ns;
    heard_ = false;
    retry_later(now);
}

// The master heard our HELLO (and repeats it while it waits for the others).
void Slave::on_wait(const Wait& m) {
    if (m.joined == last_wait_joined_) return;
    last_wait_joined_ = m.joined;
    if (m.joined < m.needed)
        console_.say("%s: the master is waiting for slaves: %" PRIu64 "/%" PRIu64 "\n", id_.c_str(), m.joined, m.needed);
}

// Answer at once. With kernel timestamps the reply carries two readings:
// the clock when the request arrived (the kernel's stamp, so the time this
// process took to wake up does not count) and the clock as the reply leaves.
// With user timestamps it is Cristian's single reading, of that last moment.
// The line is built after that reading (it holds it): the reading is taken
// ahead by BuildTime's estimate, so that it names the moment of the send as
// the master's T1 does (the master builds and tags its line before reading
// T1; a tag costs about a microsecond here).
void Slave::on_time_query(const TimeQuery& m, int64_t recv_real_ns) {
    if (m.round < last_query_round_ || (m.round == last_query_round_ && m.probe <= last_query_probe_))
        return violation("TIME? " + std::to_string(m.round) + " " + std::to_string(m.probe) + " repeats or goes back");
    last_query_round_ = m.round;
    last_query_probe_ = m.probe;
    const bool two = opt_.common.kernel_timestamps;
    const int64_t t2 = read_clock(clock_, recv_real_ns);
    const int64_t build_ns = build_.predict_ns();
    const int64_t real = realtime_ns();
    const int64_t t3 = read_clock(clock_, real + build_ns);  // T3: as the line will leave
    const int64_t lie = opt_.lie_ns;
    const ClockReply reply = two ? ClockReply{m.round, m.probe, t2 + lie, t3 + lie}
                                 : ClockReply{m.round, m.probe, t3 + lie, std::nullopt};
    const std::string line = wire(reply);
    build_.add(realtime_ns() - real);
    if (!conn_->send(line)) return lose_master(conn_->error());
    auto e = event_at("reply", t3, real + build_ns);  // the log keeps the truth
    e.num("round", static_cast<int64_t>(m.round)).num("probe", m.probe);
    if (two) e.num("arrived_ns", t2).num("arrived_real_ns", recv_real_ns);
    if (lie != 0) e.num("lie_ns", lie);
}

void Slave::on_adjust(const Adjust& m) {
    if (m.round <= last_adjust_round_)  // applying it twice would double the step
        return violation("ADJUST " + std::to_string(m.round) + " repeats or goes back");
    const int64_t real = realtime_ns();
    if (opt_.ignore_corrections) {
        last_adjust_round_ = m.round;
        event("ignored").num("round", static_cast<int64_t>(m.round)).num("correction_ns", m.correction_ns);
        const auto none = m.rate_change_ppb ? std::optional<int64_t>(0) : std::nullopt;  // it applied nothing
        if (!conn_->send(wire(Ack{m.round, none}))) lose_master(conn_->error());
        return;
    }
    // A liar takes the correction its lie was answered with too, and no rate
    // change (those answer its lie as well), so that its clock keeps the
    // master's time and its every answer is the same lie.
    const int64_t rate_change = opt_.lie_ns != 0 ? 0 : m.rate_change_ppb.value_or(0);
    const int64_t trim_before = clock_.trim_ppb;
    auto corrected = apply_correction(clock_, real, m.correction_ns + opt_.lie_ns, rate_change, opt_.common.discipline);
    if (!corrected) return violation("correction " + std::to_string(m.correction_ns) + " out of range");
    clock_ = corrected->clock;
    last_adjust_round_ = m.round;
    const int64_t clock = read_clock(clock_, real);
    auto e = event_at("adjust", clock, real);
    e.num("round", static_cast<int64_t>(m.round)).num("correction_ns", m.correction_ns + opt_.lie_ns);
    if (opt_.lie_ns != 0) e.num("lie_ns", opt_.lie_ns);
    if (m.rate_change_ppb) e.num("rate_change_ppb", *m.rate_change_ppb);
    correction_fields(e, *corrected);
    // Slewed, the correction is still being added: show the time it is heading for.
    console_.say("%s: Synchronized time at the slave is: %s (correction %s, %s)\n", id_.c_str(),
                 format_time(clock + slew_remaining(clock_, real)).c_str(),
                 format_duration(m.correction_ns + opt_.lie_ns).c_str(),
                 corrected->how == Applied::Step ? "stepped" : "slewing");
    // Say what change of rate was applied, when one was sent: the master's
    // filter re-rates its samples by it (a liar, --no-frequency or the trim's
    // limit apply less than was sent, or nothing).
    const auto applied = m.rate_change_ppb ? std::optional<int64_t>(corrected->clock.trim_ppb - trim_before)
                                           : std::nullopt;
    if (!conn_->send(wire(Ack{m.round, applied}))) lose_master(conn_->error());
}

// The master broke the protocol: tell it why, close, and start over (an
// honest master that restarted will be found again).
void Slave::violation(const std::string& what) {
    (void)conn_->send(wire(Error{what.substr(0, MAX_REASON_BYTES)}));
    lose_master("protocol violation: " + what);
}

// The master went away without BYE: try again until the connect timeout.
void Slave::lose_master(const std::string& why) {
    drop_connection(why);
    const int64_t now = monotonic_ns();
    // A session that worked earns a fresh connect timeout; a connection the
    // master never used (refused, or closed at once) does not.
    if (heard_) give_up_at_ns_ = now + opt_.connect_timeout_ns;
    heard_ = false;
    if (electing_) return next_candidate(now);  // this candidate did not answer as a master
    if (plan_ && !plan_->successors.empty()) return elect(now);
    retry_later(now);
}

// Say why the connection ends, and let it go: unwatched now, freed on the
// next event (we may be inside its own read).
void Slave::drop_connection(const std::string& why) {
    console_.say("%s: lost the master: %s; reconnecting\n", id_.c_str(), why.c_str());
    event("lost").str("reason", why);
    if (conn_) conn_->stop_watching();
    retired_ = std::move(conn_);
    failure_ = why;
}

// With a plan, a master is gone after three intervals without a word (plus
// a probe's timeout). A candidate that accepted us but does not answer as a
// master within two intervals (plus a timeout) is passed over: alive, it
// would have taken over by then. Without a plan: --connect-timeout.
int64_t Slave::silence_ns() const {
    if (!plan_ || plan_->successors.empty()) return opt_.connect_timeout_ns;
    const int64_t bound = (electing_ && !heard_ ? 2 : 3) * plan_->interval_ns + plan_->timeout_ns;
    return std::min(opt_.connect_timeout_ns, bound);
}

// A candidate refused us. Alive (busy, full, our id still taken there): try
// it again shortly, for as long as its patience lasts; then, or when it is
// not ours (an older epoch), the next one.
void Slave::candidate_refused(const std::string& why, bool alive) {
    drop_connection(why);
    heard_ = false;
    const int64_t now = monotonic_ns();
    if (!alive || now >= candidate_until_ns_) return next_candidate(now);
    retry_candidate_ = true;
    state_ = State::Waiting;
    std::uniform_int_distribution<int64_t> jitter(FIRST_RETRY_NS / 2, FIRST_RETRY_NS);
    loop_.arm(token_, now + jitter(rng_));
}

// ---------------------------------------------------------------------------
// Failover. The master names its successors in each PLAN; when it is gone we
// try it once more, then the successors in order (failover.hpp). Successor k
// takes over when the old master and successors 1..k-1 do not answer.

// Listen where we would serve as master, on the address we reach the master
// from; nobody is accepted until we take over (connections wait in the backlog).
void Slave::open_listener(int connected_fd) {
    if (opt_.serve_port == 0 || (opt_.serve_port < 0 && opt_.count > 1)) return;
    const std::string local = local_address(connected_fd);
    std::string host, error;
    uint16_t unused = 0;
    if (!split_address(local, host, unused)) return;
    listener_ = listen_tcp(host, opt_.serve_port > 0 ? static_cast<uint16_t>(opt_.serve_port) : 0, error);
    if (!listener_.valid()) {
        console_.say("%s: cannot serve as a successor: %s\n", id_.c_str(), error.c_str());
        return;
    }
    self_address_ = local.substr(0, local.rfind(':')) + ":" + std::to_string(local_port(listener_.get()));
    event("serving").str("address", self_address_);
}

// Successor and nobody before us answered: become the master, by running
// ./master in this process with our clock, our listening socket, our log and
// the plan's settings, as the plan's next epoch. Nobody is stepped: our
// clock already keeps the group's time.
void Slave::take_over() {
    const Plan& plan = *plan_;
    console_.say("%s: no master and no successor before us answered: taking over (epoch %" PRIu64 ")\n", id_.c_str(),
                 plan.epoch + 1);
    event("takeover").num("epoch", static_cast<int64_t>(plan.epoch + 1)).num("round", static_cast<int64_t>(plan.round))
        .str("old_master", master_address_).str("address", self_address_);
    char exe[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    std::string master = n > 0 ? std::string(exe, static_cast<size_t>(n)) : std::string("./slave");
    master = master.substr(0, master.rfind('/') + 1) + "master";
    const int fd = listener_.get();
    const int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);  // the one descriptor the master inherits
    auto fixed = [](int64_t v, int64_t unit, int decimals) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%s%lld.%0*lld", v < 0 ? "-" : "", static_cast<long long>(std::llabs(v) / unit),
                      decimals, static_cast<long long>(std::llabs(v) % unit));
        return std::string(buf);
    };
    const Discipline& d = opt_.common.discipline;
    std::vector<std::string> args = {
        master, "1", "--takeover", format_message(plan).substr(0, format_message(plan).size() - 1),
        "--id", id_, "--listen-fd", std::to_string(fd), "--max-slaves", std::to_string(MAX_TAKEOVER_SLAVES),
        "--resume-clock", format_clock_state(clock_),
        "--timestamps", opt_.common.kernel_timestamps ? "kernel" : "user",
        "--step-threshold", fixed(d.step_threshold_ns, NS_PER_MS, 6),
        "--slew-rate", fixed(d.slew_rate_ppb, PPB_PER_PPM, 3),
    };
    if (!d.frequency) args.push_back("--no-frequency");
    if (opt_.common.quiet) args.push_back("--quiet");
    if (!opt_.common.secret_file.empty()) args.insert(args.end(), {"--secret-file", opt_.common.secret_file});
    if (!opt_.common.log_path.empty()) args.insert(args.end(), {"--log", opt_.common.log_path, "--log-append"});
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::fflush(stdout);
    execv(master.c_str(), argv.data());
    // Still here: the exec failed. Go on as a slave, and try the list again.
    const std::string why = sys_error("execv") + " (" + master + ")";
    std::fprintf(stderr, "%s: cannot take over: %s\n", id_.c_str(), why.c_str());
    event("lost").str("reason", "cannot take over: " + why);
    if (flags >= 0) fcntl(fd, F_SETFD, flags);
    election_.take_over = false;
    retry_later(monotonic_ns());
}

void Slave::on_plan(const Plan& m) {
    if (m.epoch < epoch_)
        return violation("PLAN of epoch " + std::to_string(m.epoch) + ", older than epoch " + std::to_string(epoch_) +
                         ", which we follow");
    const bool changed = !plan_ || plan_->epoch != m.epoch || plan_->successors != m.successors;
    epoch_ = m.epoch;
    plan_ = m;
    if (!changed) return;
    std::string list;
    for (const std::string& s : m.successors) list += (list.empty() ? "" : " ") + s;
    event("plan").num("epoch", static_cast<int64_t>(m.epoch)).num("round", static_cast<int64_t>(m.round))
        .str("successors", list);
}

// The master is gone: the list to try, from its top.
void Slave::elect(int64_t now) {
    election_ = election_order(master_address_, plan_->successors, self_address_);
    candidate_ = 0;
    electing_ = true;
    candidate_until_ns_ = now + 2 * plan_->interval_ns + plan_->timeout_ns;
    event("electing").num("epoch", static_cast<int64_t>(epoch_)).str("old_master", master_address_)
        .flag("successor", election_.take_over);
    target_ = election_.try_in_order.front();
    try_connect(now);
}

// The candidate tried did not answer as a master: the next one; after the
// last, take over if we are a successor, else start over after a back-off.
void Slave::next_candidate(int64_t now) {
    if (++candidate_ < election_.try_in_order.size()) {
        target_ = election_.try_in_order[candidate_];
        candidate_until_ns_ = now + 2 * plan_->interval_ns + plan_->timeout_ns;
        return try_connect(now);
    }
    if (election_.take_over) return take_over();
    retry_later(now);
}

void Slave::stop(const char* why) {
    if (state_ != State::Done) finish(0, why);
}

void Slave::finish(int code, const std::string& why) {
    if (code != 0) std::fprintf(stderr, "%s: %s\n", id_.c_str(), why.c_str());
    else console_.say("%s: %s; exiting\n", id_.c_str(), why.c_str());
    event("exit").num("code", code).str("reason", why);
    retired_ = std::move(conn_);
    if (connecting_.valid()) loop_.remove(connecting_.get());
    connecting_.reset();
    loop_.disarm(token_);
    state_ = State::Done;
    exit_code_ = code;
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
    if (start_up("slave", opt.common, log, loop, error) == 0) {
        std::fprintf(stderr, "slave: %s\n", error.c_str());
        return 1;
    }
    // --count K: K independent slaves on this one loop, each its own
    // connection, clock (seed + i) and id; the token of each is its index.
    BuildTime build;
    std::vector<std::unique_ptr<Slave>> slaves;
    for (size_t i = 0; i < opt.count; ++i) {
        std::string id = opt.count == 1 ? opt.id : opt.id + "-" + std::to_string(i + 1);
        slaves.push_back(std::make_unique<Slave>(opt, loop, log, build, std::move(id), opt.common.seed + i, i));
    }
    for (auto& s : slaves) s->start(monotonic_ns());
    size_t running = 0;
    for (const auto& s : slaves) running += !s->done();
    // Run one slave's handler, and count it out if that ended it.
    auto handle = [&](uint64_t token, auto&& what) {
        if (token >= slaves.size() || slaves[token]->done()) return;
        what(*slaves[token]);
        if (slaves[token]->done()) --running;
    };
    int code = 0;
    while (running > 0) {
        if (g_stop_signal) {
            for (auto& s : slaves) s->stop(g_stop_signal == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)");
            break;
        }
        const bool ok = loop.run_once(
            [&](uint64_t token, uint32_t events) { handle(token, [&](Slave& s) { s.on_ready(events); }); },
            [&](uint64_t token) { handle(token, [&](Slave& s) { s.on_timer(monotonic_ns()); }); }, error);
        if (!ok) {
            std::fprintf(stderr, "slave: %s\n", error.c_str());
            for (auto& s : slaves) s->stop("event loop failed");
            code = 1;
            break;
        }
    }
    for (const auto& s : slaves) code = std::max(code, s->exit_code());
    if (log.lost() > 0) {
        std::fprintf(stderr, "slave: %llu event(s) could not be logged\n", static_cast<unsigned long long>(log.lost()));
        code = std::max(code, 1);
    }
    return code;
}
