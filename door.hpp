// door.hpp - the master's door: who gets in, and the defences that keep the
// round safe from everyone else. It keeps the connections (Peer), runs the
// handshake of a shared secret (auth.hpp) with its delay and guess budget,
// caps the connections that have not said HELLO, drops floods, admits HELLO
// (one id once, --max-slaves, never an older epoch than the slave follows)
// and quiets the log in a flood, of strangers or of slaves that join and
// leave without ever answering a round. Lines that pass go to the round
// (master_role.hpp) through DoorKeeper. Like the round it reads no clock and
// touches no socket: the time and MasterIo come from the round.
//
//   accepted --AUTH--> challenged --PROOF ok--> proven --HELLO--> joined
//      |  (no secret: HELLO at once)       '--wrong--> failing --1 s--> refused
//      |                                             (read no more)
//      '--no HELLO in 5 s, a flood, a bad line--> refused (ERROR, then closed)
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "auth.hpp"
#include "clock.hpp"
#include "filter.hpp"
#include "simclock.hpp"
#include "eventlog.hpp"
#include "explain.hpp"
#include "protocol.hpp"
#include "role.hpp"

namespace berkeley {

// The master's timers, by key: the round's, the door's window of quieted
// events, and each peer's own (its HELLO deadline, its pending probe), keyed
// by its peer id from FIRST_PEER_KEY on.
constexpr uint64_t ROUND_TIMER = 1;
constexpr uint64_t QUIET_TIMER = 2;
constexpr uint64_t FIRST_PEER_KEY = 3;

constexpr int64_t HELLO_TIMEOUT_NS = 5 * NS_PER_S;       // a connection must say HELLO by then
constexpr size_t MAX_PENDING_HELLOS = 1024;              // connections not yet past HELLO
constexpr int64_t AUTH_FAILURE_DELAY_NS = 1 * NS_PER_S;  // a wrong proof is answered this late
// An honest slave sends at most HELLO, one CLOCK per probe and an ACK per
// round; a peer sending far more is flooding and is dropped.
constexpr uint32_t FLOOD_SLACK_LINES = 8;
// Floods leave no lasting trace: of the events about connections that never
// became slaves (refused, dropped before a valid HELLO), the first
// QUIET_BURST of each reason in a window of QUIET_WINDOW_NS are logged and
// printed; the rest are counted and summed up when the window ends. Joins
// too: past QUIET_BURST in a window, a slave's joining is told only once it
// answers a round (late), and one that leaves before is only counted.
constexpr uint32_t QUIET_BURST = 10;
constexpr int64_t QUIET_WINDOW_NS = 10 * NS_PER_S;
constexpr size_t QUIET_REASONS = 32;  // kinds of reason told apart; the rest are "other"

struct DoorSettings {
    size_t max_slaves = 10'000;
    uint32_t probes = 4;               // for the flood limit
    bool by_hand = false;              // a person typing: mistakes answered, no HELLO deadline
    std::optional<HmacSha256> key;     // the group key: the handshake, and a tag on every line
};

// One connection, and once it said HELLO, one slave.
struct Peer {
    // The connection.
    uint64_t id = 0;               // the shell's peer id: its connection and its timer
    std::string address;           // "127.0.0.1:53491"
    std::string drop_reason;       // set: remove this peer at the next reap()
    bool write_shut = false;       // after BYE: our side of the stream is closed
    // Authentication (with a secret): see auth.hpp's diagram.
    enum class Auth { Plain, WantChallenge, WantProof, Failing, Proven } auth = Auth::Plain;
    Nonce slave_nonce{}, master_nonce{};
    std::string auth_failure;      // Failing: told when AUTH_FAILURE_DELAY_NS is over
    std::unique_ptr<Session> session;  // Proven: tags every line both ways (allocated: most groups have no secret)
    // Membership.
    std::string name;              // from HELLO; empty until then
    bool told = false;             // its joining was logged (at HELLO, or at its first answered round): so is the rest
    uint32_t missed_rounds = 0;    // consecutive rounds without a usable reply
    bool in_step = false;          // applied one of our corrections (ACK), or said INSTEP: it votes
    bool acked = false;            // applied one of our corrections: seen, not said (the successors' ranking)
    std::string serve_address;     // where it would serve as master ("host:port"); empty: nowhere
    uint64_t joined_round = 0;     // the round it joined in: the successors' ranking
    uint64_t join_order = 0;       // the order the door let it in: the successors' ranking
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
        int64_t probe_sent_real_ns = 0;  // host time just before the pending probe left (T1)
        std::vector<Estimate> estimates;
        int64_t best_at_real_ns = 0;     // host time the best of them was sent (its T1)
        std::vector<ExplainedProbe> explained;  // --explain: every probe
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

    bool joined() const { return !name.empty(); }
    const char* label() const { return name.empty() ? address.c_str() : name.c_str(); }
};

// What the door needs of the round behind it.
class DoorKeeper {
public:
    virtual ~DoorKeeper() = default;
    virtual void on_joined(Peer& p) = 0;    // a valid HELLO
    virtual void on_leaving(Peer& p) = 0;   // being dropped: out of the round
    virtual void on_clock(Peer& p, const ClockReply& m, int64_t recv_real_ns) = 0;
    virtual void on_ack(Peer& p, const Ack& m) = 0;
    virtual std::string expected_from(const Peer& p) const = 0;
    virtual uint64_t current_round() const = 0;
    virtual uint64_t current_epoch() const = 0;
    // Another master, from `host`, asks who we are.
    virtual IAmMaster on_master_query(const WhoIsMaster& q, const std::string& host) = 0;
    virtual bool closing() const = 0;
    virtual EventLog::Line event(std::string_view name) = 0;
    virtual const Console& console() const = 0;
    virtual MasterIo& io() = 0;
    virtual const Now& now() const = 0;
};

class Door {
public:
    Door(const DoorSettings& s, DoorKeeper& round) : s_(s), round_(round) {}

    void on_accept(uint64_t peer, const std::string& address);
    bool on_line(uint64_t peer, const std::string& line, int64_t recv_real_ns);
    void on_closed(uint64_t peer, const std::string& why, bool tell);
    bool on_timer(Peer& p);  // true: it was the door's deadline
    void on_answered(Peer& p);  // a slave answered a round: its joining is told if it was not
    void say_quieted();

    void send(Peer& p, const Message& m);
    std::string wire(Peer& p, const Message& m);
    void refuse(Peer& p, const std::string& reason);
    void drop(Peer& p, const std::string& reason);
    void mistake(Peer& p, const std::string& what);
    void reap();
    void close_all();

    Peer* peer(uint64_t id) {
        auto it = peers_.find(id);
        return it == peers_.end() ? nullptr : &it->second;
    }
    template <typename F> void for_each(F&& f) {
        for (auto& [id, p] : peers_) f(p);
    }
    template <typename F> void for_each(F&& f) const {
        for (const auto& [id, p] : peers_) f(p);
    }
    size_t joined() const { return names_.size(); }
    bool empty() const { return peers_.empty(); }

private:
    void on_auth_line(Peer& p, const std::string& line);
    void on_challenge(Peer& p, const Nonce& slave_nonce);
    void on_proof(Peer& p, const Sha256Digest& proof);
    void fail_auth(Peer& p, const std::string& reason);
    void on_hello(Peer& p, const Hello& m);
    void on_in_step(Peer& p);
    void tell_joined(Peer& p, bool late);
    void open_window();
    bool quiet(const std::string& reason);
    bool quiet_join();
    void count_churned(const std::string& reason);

    const DoorSettings& s_;
    DoorKeeper& round_;
    std::map<uint64_t, Peer> peers_;         // by peer id: connection order
    std::unordered_set<std::string> names_;  // of the slaves that said HELLO
    uint64_t joins_ = 0;                     // HELLOs admitted so far: each one's join_order
    GuessBudget guesses_;                    // wrong proofs answered, per address
    std::vector<uint64_t> dropping_;         // peers to remove at the next reap()
    struct Quieted {
        uint32_t shown = 0;       // in this window
        uint64_t suppressed = 0;  // in this window, not shown
    };
    bool window_open_ = false;                // QUIET_TIMER ends it
    std::map<std::string, Quieted> quieted_;  // strangers dropped, by the kind of reason, this window
    uint32_t joins_told_ = 0;                 // this window
    std::map<std::string, uint64_t> churned_; // slaves gone untold, by the kind of reason, this window
};

inline void Door::on_accept(uint64_t peer, const std::string& address) {
    MasterIo& io = round_.io();
    if (round_.closing()) return io.close(peer);
    // Connections that have not said HELLO yet have a cap of their own, so
    // they cannot crowd out slaves; --max-slaves is checked at HELLO.
    if (peers_.size() - names_.size() >= MAX_PENDING_HELLOS) {
        const std::string reason = "too many connections waiting to say HELLO";
        std::string error;
        (void)io.send(peer, format_message(Error{reason}), error);
        io.close(peer);
        if (!quiet(reason)) round_.event("refused").str("address", address).str("reason", reason);
        return;
    }
    Peer& p = peers_[peer];
    p.id = peer;
    p.address = address;
    if (s_.key) p.auth = Peer::Auth::WantChallenge;
    if (!s_.by_hand) io.arm(peer, round_.now().mono_ns + HELLO_TIMEOUT_NS);  // slow loris: HELLO is due by then
}

// Dispatch one line to its handler. False stops reading from this peer (it is being dropped).
inline bool Door::on_line(uint64_t id, const std::string& line, int64_t recv_real_ns) {
    Peer* found = peer(id);
    if (!found || !found->drop_reason.empty()) return false;
    Peer& p = *found;
    if (p.auth == Peer::Auth::Failing) return false;  // read no more (fail_auth): its answer waits out the delay
    const uint32_t limit = (2 * s_.probes + FLOOD_SLACK_LINES) * (s_.by_hand ? 10 : 1);
    if (++p.round.lines > limit) {
        refuse(p, "flooding: more than " + std::to_string(limit) + " lines in a round");
        return false;
    }
    // Another master asks who is master here (failover.hpp's ranking): a
    // connection's first line, with or without a secret; answered, closed.
    if (!p.joined() && !p.session && line.rfind("MASTER? ", 0) == 0) {
        const Parsed q = parse_message(line);
        if (!q.message || !std::holds_alternative<WhoIsMaster>(*q.message)) return refuse(p, "bad MASTER?"), false;
        std::string error;
        const std::string host = p.address.substr(0, p.address.rfind(':'));
        (void)round_.io().send(p.id, format_message(round_.on_master_query(std::get<WhoIsMaster>(*q.message), host)), error);
        round_.io().shut_write(p.id);
        drop(p, "asked who is master");
        return false;
    }
    if (p.auth != Peer::Auth::Plain && p.auth != Peer::Auth::Proven) {
        on_auth_line(p, line);
        return p.drop_reason.empty() && p.auth != Peer::Auth::Failing;
    }
    if (!p.session && !p.joined() && parse_challenge(line)) {
        refuse(p, "this master has no secret: run the slave without --secret-file");
        return false;
    }
    std::optional<std::string> opened;
    if (p.session && !(opened = p.session->in.open(line))) {
        refuse(p, "bad tag on line " + std::to_string(p.session->in.lines() + 1) +
                      ": forged, altered, replayed, reordered or cut");
        return false;
    }
    const Parsed parsed = parse_message(opened ? *opened : line);
    if (!parsed.message) {
        mistake(p, "bad message: " + parsed.error);
        return p.drop_reason.empty();
    }
    const Message& m = *parsed.message;
    if (!p.joined() && !std::holds_alternative<Hello>(m) && !std::holds_alternative<Error>(m)) {
        mistake(p, std::string(verb_name(m)) + " before HELLO");
        return p.drop_reason.empty();
    }
    std::visit(Overloaded{
                   [&](const Hello& h) { on_hello(p, h); },
                   [&](const ClockReply& c) { round_.on_clock(p, c, recv_real_ns); },
                   [&](const Ack& a) { round_.on_ack(p, a); },
                   [&](const InStep&) { on_in_step(p); },
                   [&](const Error& e) { drop(p, "sent ERROR " + e.reason); },
                   [&](const auto& other) { mistake(p, std::string(verb_name(other)) + " is a master's message"); },
               },
               m);
    return p.drop_reason.empty();
}

// The connection ended (`why` empty: the peer closed it) or failed (`tell`:
// a read failed, say why before closing).
inline void Door::on_closed(uint64_t id, const std::string& why, bool tell) {
    Peer* p = peer(id);
    if (!p) return;
    if (tell) return refuse(*p, why);
    if (!why.empty()) return drop(*p, why);
    drop(*p, p->auth == Peer::Auth::WantProof ? "closed the connection instead of proving itself (another group's secret?)"
                                              : "closed the connection");
}

// A peer's own timer, before HELLO: the HELLO deadline, or the end of a
// failed authentication's delay. False: not the door's (a probe's timeout).
inline bool Door::on_timer(Peer& p) {
    if (p.auth == Peer::Auth::Failing) return refuse(p, p.auth_failure), true;
    if (!p.joined()) return refuse(p, "no HELLO within " + std::to_string(HELLO_TIMEOUT_NS / NS_PER_S) + " s"), true;
    return false;
}

// A line that breaks the protocol: the peer is refused. With --by-hand a
// person is typing: say what was expected instead, and keep the connection.
inline void Door::mistake(Peer& p, const std::string& what) {
    if (!s_.by_hand) return refuse(p, what);
    send(p, Error{("expected " + round_.expected_from(p) + ", not: " + what).substr(0, MAX_REASON_BYTES)});
}

// With a secret, nothing counts before the handshake (auth.hpp): the slave's
// challenge, then its proof. Until then the peer is a stranger.
inline void Door::on_auth_line(Peer& p, const std::string& line) {
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
inline void Door::on_challenge(Peer& p, const Nonce& slave_nonce) {
    MasterIo& io = round_.io();
    p.slave_nonce = slave_nonce;
    if (!io.nonce(p.master_nonce)) return refuse(p, "no random bytes for a nonce");
    std::string error;
    if (!io.send(p.id, format_answer({p.master_nonce, master_proof(*s_.key, p.slave_nonce, p.master_nonce)}), error))
        return drop(p, error);
    p.auth = Peer::Auth::WantProof;
}

// The slave's proof, checked only while its address has budget left.
inline void Door::on_proof(Peer& p, const Sha256Digest& proof) {
    const std::string host = p.address.substr(0, p.address.rfind(':'));
    const int64_t now = round_.now().mono_ns;
    if (!guesses_.may_check(host, now))
        return fail_auth(p, "authentication refused: too many wrong proofs from " + host + "; try again later");
    if (!equal_constant_time(proof, slave_proof(*s_.key, p.slave_nonce, p.master_nonce))) {
        guesses_.spend(host, now);
        return fail_auth(p, "authentication failed (wrong secret)");
    }
    p.session = std::make_unique<Session>(session_for(Role::Master, *s_.key, p.slave_nonce, p.master_nonce));
    p.auth = Peer::Auth::Proven;
}

// A failed authentication is answered only after AUTH_FAILURE_DELAY_NS, so
// that trying the next guess costs the prober time. Meanwhile the connection
// is not read: whatever it sends (a flood, say) waits in the kernel's
// buffers, then TCP holds it back, and nothing of it is ever looked at.
inline void Door::fail_auth(Peer& p, const std::string& reason) {
    p.auth = Peer::Auth::Failing;
    p.auth_failure = reason;
    round_.io().stop_reading(p.id);
    round_.io().arm(p.id, round_.now().mono_ns + AUTH_FAILURE_DELAY_NS);
}

inline void Door::on_hello(Peer& p, const Hello& m) {
    if (p.joined()) return mistake(p, "HELLO sent twice");
    if (names_.count(m.id)) return refuse(p, "id " + m.id + " is already connected");
    if (names_.size() >= s_.max_slaves)
        return refuse(p, "too many slaves (--max-slaves " + std::to_string(s_.max_slaves) + ")");
    // Never two masters for one slave: it follows the highest epoch it has
    // seen. (The slave gives up after --connect-timeout of such refusals.)
    if (m.epoch > round_.current_epoch())
        return refuse(p, "this master's epoch " + std::to_string(round_.current_epoch()) + " is older than epoch " +
                             std::to_string(m.epoch) + ", which you follow");
    p.name = m.id;
    p.join_order = ++joins_;
    names_.insert(p.name);
    if (m.serve_port != 0) p.serve_address = p.address.substr(0, p.address.rfind(':')) + ":" + std::to_string(m.serve_port);
    round_.io().disarm(p.id);  // HELLO came in time
    p.told = !quiet_join();
    if (p.told) tell_joined(p, false);
    round_.on_joined(p);
}

// A slave answered a round: a slave, not a flood. If its joining was
// quieted, it is told now.
inline void Door::on_answered(Peer& p) {
    if (p.told) return;
    p.told = true;
    tell_joined(p, true);
}

inline void Door::tell_joined(Peer& p, bool late) {
    round_.console().say("%s (%s) got connected successfully\n", p.address.c_str(), p.name.c_str());
    {
        auto e = round_.event("connected");
        e.str("slave", p.name).str("address", p.address).flag("authenticated", p.session != nullptr);
        if (late) e.flag("deferred", true);
    }
    if (late && p.in_step) round_.event("in_step").str("slave", p.name);
}

// The slave's clock already keeps a group's time (it was corrected by an
// earlier master): it votes at once, and a new master is brought to it.
inline void Door::on_in_step(Peer& p) {
    if (p.in_step) return;
    p.in_step = true;
    if (p.told) round_.event("in_step").str("slave", p.name);  // else with its joining, if ever
}

// The line for a message to this peer: tagged once it proved itself.
inline std::string Door::wire(Peer& p, const Message& m) {
    return p.session ? p.session->out.seal(format_message(m)) : format_message(m);
}

inline void Door::send(Peer& p, const Message& m) {
    std::string error;
    if (p.drop_reason.empty() && !round_.io().send(p.id, wire(p, m), error)) drop(p, error);
}

// Tell the peer why, then drop it.
inline void Door::refuse(Peer& p, const std::string& reason) {
    if (!p.drop_reason.empty()) return;
    const std::string why = reason.empty() ? "refused" : reason;  // ERROR needs a reason
    std::string error;
    (void)round_.io().send(p.id, wire(p, Error{why.substr(0, MAX_REASON_BYTES)}), error);
    drop(p, why);
}

// Mark the peer for removal at the next reap(); it takes no further part in the round.
inline void Door::drop(Peer& p, const std::string& reason) {
    if (!p.drop_reason.empty()) return;
    p.drop_reason = reason;
    dropping_.push_back(p.id);
    round_.on_leaving(p);
    round_.io().disarm(p.id);
}

// Remove the peers marked for dropping: the only place a peer is erased
// while running, so no handler ever runs on a removed one.
inline void Door::reap() {
    for (uint64_t id : dropping_) {
        Peer* p = peer(id);
        if (!p) continue;
        // About a slave whose joining was told: always told. About a
        // stranger, or a slave gone untold: quieted in a flood.
        if (p->joined() && !p->told) {
            count_churned(p->drop_reason);
        } else if (p->joined() || !quiet(p->drop_reason)) {
            if (!round_.closing()) round_.console().say("%s disconnected: %s\n", p->label(), p->drop_reason.c_str());
            round_.event("disconnected").str("slave", p->name).str("address", p->address).str("reason", p->drop_reason);
        }
        if (p->joined()) names_.erase(p->name);
        peers_.erase(id);
        round_.io().close(id);
    }
    dropping_.clear();
}

inline void Door::close_all() {
    for (auto& [id, p] : peers_) round_.io().close(id);
    peers_.clear();
    names_.clear();
    dropping_.clear();
}

// The kind of a reason, for summing up: up to its first ':' ("bad message:
// unknown verb" is a "bad message"); past QUIET_REASONS kinds, the rest.
template <typename Counts> std::string kind_of(const std::string& reason, const Counts& counts) {
    std::string kind = reason.substr(0, reason.find(':'));
    if (counts.size() >= QUIET_REASONS && !counts.count(kind)) kind = "other reasons";
    return kind;
}

inline void Door::open_window() {
    if (window_open_) return;
    window_open_ = true;
    round_.io().arm(QUIET_TIMER, round_.now().mono_ns + QUIET_WINDOW_NS);
}

// True when an event about a stranger dropped for `reason` should be left
// out: past QUIET_BURST of its kind in this window.
inline bool Door::quiet(const std::string& reason) {
    open_window();
    Quieted& q = quieted_[kind_of(reason, quieted_)];
    if (q.shown < QUIET_BURST) {
        ++q.shown;
        return false;
    }
    ++q.suppressed;
    return true;
}

// True when a slave's joining should not be told yet: past QUIET_BURST
// joins in this window. It is told when the slave answers a round
// (on_answered); one that leaves before is counted (count_churned).
inline bool Door::quiet_join() {
    open_window();
    if (joins_told_ >= QUIET_BURST) return true;
    ++joins_told_;
    return false;
}

inline void Door::count_churned(const std::string& reason) {
    open_window();
    ++churned_[kind_of(reason, churned_)];
}

// The end of a window: one line for each kind of reason that was quieted.
inline void Door::say_quieted() {
    for (const auto& [kind, q] : quieted_) {
        if (q.suppressed == 0) continue;
        round_.console().say("dropped %llu more connection(s) in the last %lld s that did not become slaves: %s\n",
                             static_cast<unsigned long long>(q.suppressed),
                             static_cast<long long>(QUIET_WINDOW_NS / NS_PER_S), kind.c_str());
        round_.event("quieted").str("reason", kind).num("count", static_cast<int64_t>(q.suppressed))
            .num("window_ns", QUIET_WINDOW_NS);
    }
    for (const auto& [kind, count] : churned_) {
        round_.console().say("quieted %llu slave(s) in the last %lld s that joined and left before answering a round: %s\n",
                             static_cast<unsigned long long>(count), static_cast<long long>(QUIET_WINDOW_NS / NS_PER_S),
                             kind.c_str());
        round_.event("quieted").str("reason", kind).num("count", static_cast<int64_t>(count))
            .num("window_ns", QUIET_WINDOW_NS).flag("joined", true);
    }
    quieted_.clear();  // the next event that may be quieted opens a new window
    churned_.clear();
    joins_told_ = 0;
    window_open_ = false;
}

}  // namespace berkeley
