// world.hpp - the simulator's virtual world: virtual time, a network of
// links (delay, jitter, asymmetry, loss as TCP's late retransmissions,
// partitions), and nodes that run the real master and slave roles
// (master_role.hpp, slave_role.hpp) behind shells that answer MasterIo and
// SlaveIo from it. The simulator (sim.cpp) adds seeded faults and the
// invariants; the unit tests (tests/test_roles.cpp) drive whole rounds in
// it. Deterministic: everything random comes from the world's seed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "master_role.hpp"
#include "slave_role.hpp"

namespace berkeley::sim {

constexpr int64_t REAL_BASE_NS = 1'750'000'000LL * NS_PER_S;  // virtual host time at t = 0
constexpr int64_t MONO_BASE_NS = 1'000 * NS_PER_S;
constexpr int64_t RETRANSMIT_NS = 200 * NS_PER_MS;  // TCP's first retransmission timeout
constexpr uint16_t PORT = 8080;                       // every node listens there

struct Event {
    int64_t at_ns;
    uint64_t seq;
    int node;                   // whose event (a paused node's wait), -1: the world's
    uint64_t generation;        // the node's life it belongs to: a killed process's events die with it
    std::function<void()> run;
    bool operator>(const Event& o) const { return at_ns != o.at_ns ? at_ns > o.at_ns : seq > o.seq; }
};

struct Link {
    int64_t delay_ns = 0;       // one way, the fastest
    int64_t jitter_ns = 0;      // up to this much more, each way
    int64_t extra_back_ns = 0;  // asymmetry: the way back is this much slower
    double loss = 0;            // a segment's chance to wait for a retransmission
};

struct Node;

// A TCP connection between a slave (client) and a master's listener (server).
struct Conn {
    uint64_t id = 0;
    int client = -1, server = -1;
    uint64_t client_generation = 0, server_generation = 0;
    uint64_t peer = 0;          // the server's peer id for it
    bool dialed = false;        // the client is a master asking MASTER? (else a slave)
    uint64_t client_peer = 0;   // dialed: the client master's peer id for it
    bool accepted = false;      // the server's master role knows it (else: in the listener's backlog)
    bool server_closed = false, client_closed = false;  // each end's close; what it sent before still arrives
    bool server_shut = false;   // the master's end-of-file is on its way (after BYE, or its close)
    bool server_reading = true; // false: the master reads no more from it (stop_reading); lines stay unread
    bool open() const { return !server_closed && !client_closed; }
    int64_t last_to_server_ns = 0, last_to_client_ns = 0;  // TCP keeps order
    std::vector<std::pair<std::string, int64_t>> backlog;    // lines that arrived before accept
};

// What a role sends is bytes, whole lines each ending in a newline; the
// shells hand the other role one line at a time, without it (LineBuffer).
inline std::vector<std::string> lines_of(std::string_view bytes) {
    std::vector<std::string> out;
    while (!bytes.empty()) {
        const size_t end = bytes.find('\n');
        out.emplace_back(bytes.substr(0, end));
        bytes = end == std::string_view::npos ? std::string_view() : bytes.substr(end + 1);
    }
    return out;
}

class World;

class SimMasterIo final : public MasterIo {
public:
    SimMasterIo(World& sim, int node) : sim_(sim), node_(node) {}
    bool send(uint64_t peer, std::string_view line, std::string& error) override;
    std::optional<int64_t> send_stamped(uint64_t peer, std::string_view line, std::string& error) override;
    bool has_output(uint64_t) override { return false; }
    void shut_write(uint64_t peer) override;
    void close(uint64_t peer) override;
    void stop_reading(uint64_t peer) override;
    void arm(uint64_t key, int64_t due_mono_ns) override;
    void disarm(uint64_t key) override { due_.erase(key); }
    bool armed(uint64_t key) override { return due_.count(key) != 0; }
    bool nonce(Nonce& out) override;
    std::optional<uint64_t> dial(const std::string& address, std::string& error) override;
    int64_t cpu_ns() override { return 0; }
    std::map<uint64_t, int64_t> due_;
    std::map<uint64_t, uint64_t> conn_of_;  // peer id -> connection
    uint64_t next_peer_ = FIRST_PEER_KEY;

private:
    World& sim_;
    int node_;
};

class SimSlaveIo final : public SlaveIo {
public:
    SimSlaveIo(World& sim, int node) : sim_(sim), node_(node) {}
    bool connect(const std::string& address, std::string& error) override;
    bool send(std::string_view line, std::string& error) override;
    bool send_reply(std::string_view line, std::string& error) override { return send(line, error); }
    void close() override;
    void arm(int64_t due_mono_ns) override;
    void disarm() override { due_.reset(); }
    int64_t reply_leaves_real_ns(const Now& now) override { return now.real_ns; }
    bool take_over(const Plan& plan, std::string& error) override;
    std::optional<int64_t> due_;
    uint64_t conn_ = 0;  // 0: none

private:
    World& sim_;
    int node_;
};

struct Node {
    int index = 0;
    std::string address;        // where it listens: the master's port, or where a slave would serve
    bool alive = true;
    bool paused = false;
    uint64_t generation = 1;
    std::vector<std::function<void()>> held;  // what happened while it was paused
    SimClock clock;
    bool honest = true;         // not a liar, not stubborn (the simulator's to say)
    bool redirects = false;     // a master that yielded: its listener sends newcomers on (FOLLOW)
    std::string console_text;   // the roles' console, kept short
    EventLog log;               // no file: kept in `lines` when capture_into() asks
    std::vector<std::string> lines;
    std::optional<int64_t> last_reading_ns;  // the simulator's invariant 1
    uint64_t last_epoch = 0;                 // and 2
    std::map<uint64_t, std::string> followed;  // epoch -> the master whose PLAN it took
    MasterSettings master_settings;
    SlaveSettings slave_settings;
    std::unique_ptr<SimMasterIo> master_io;
    std::unique_ptr<MasterRole> master;
    std::unique_ptr<SimSlaveIo> slave_io;
    std::unique_ptr<SlaveRole> slave;
    Console console() { return Console{false, &console_text}; }
};

class World {
public:
    explicit World(uint64_t seed) : rng_(seed) {}
    virtual ~World() = default;

    // Nodes: "10.0.0.<index + 1>:8080", each its own process with its own clock.
    int add_node();
    void start_master(int node, const MasterSettings& s, const SimClock& clock);
    void start_slave(int node, const SlaveSettings& s, const SimClock& clock);
    void kill(int node);
    // SIGSTOP: the process handles nothing (its kernel still accepts
    // connections); SIGCONT: what it missed, it handles now, in order.
    void pause(int node) {
        if (nodes_[static_cast<size_t>(node)]->alive) nodes_[static_cast<size_t>(node)]->paused = true;
    }
    void resume(int node) {
        Node& v = *nodes_[static_cast<size_t>(node)];
        if (!v.paused) return;
        v.paused = false;
        auto held = std::move(v.held);
        for (auto& f : held) at(t_, node, std::move(f));
    }
    Node& node(int i) { return *nodes_[static_cast<size_t>(i)]; }
    size_t size() const { return nodes_.size(); }
    const std::string& address(int i) const { return nodes_[static_cast<size_t>(i)]->address; }

    // Time.
    Now now() const { return Now{MONO_BASE_NS + t_, REAL_BASE_NS + t_}; }
    int64_t t() const { return t_; }
    int64_t mono_to_t(int64_t mono) const { return mono - MONO_BASE_NS; }
    void at(int64_t t, int node, std::function<void()> run) {
        const uint64_t generation = node >= 0 ? nodes_[static_cast<size_t>(node)]->generation : 0;
        queue_.push(Event{std::max(t, t_), seq_++, node, generation, std::move(run)});
    }
    // Handle the events up to `end_t` (or until `done` says so); false when
    // nothing was left to handle.
    bool run_until(int64_t end_t, const std::function<bool()>& done = nullptr);

    // The network.
    Link& link(int a, int b) { return links_[{std::min(a, b), std::max(a, b)}]; }
    bool cut(int a, int b) const { return t_ < heal_ns_ && side_[static_cast<size_t>(a)] != side_[static_cast<size_t>(b)]; }
    void partition(std::vector<int> side, int64_t heal_t) {
        side_ = std::move(side);
        heal_ns_ = heal_t;
    }
    int64_t arrival(int from, int to, int64_t& last_ns);
    // A slave's connection, or (peer != 0) one a master dials: its peer id.
    bool connect(int client, const std::string& address, uint64_t peer = 0);
    // The master yielded: the process goes on as a slave of whom it yielded to.
    void step_down(int node);
    void deliver_to_server(uint64_t conn, std::string line);
    void deliver_to_client(uint64_t conn, std::string line);
    void close_conn(uint64_t conn, bool from_server);
    void eof_to_client(uint64_t conn);
    void accept_backlog(int node);
    void redirect(uint64_t conn, const std::string& to);
    void take_over(int node, const Plan& plan);
    std::mt19937_64& rng() { return rng_; }
    std::map<uint64_t, Conn> conns_;

    // After each event a node handled, as the shell's loop does: the master
    // role moves its round on; a master that finished exits.
    void after_turn(Node& n) {
        if (n.console_text.size() > 65536) n.console_text.erase(0, 32768);
        if (!n.master || !n.alive) return;
        n.master->after_turn(now());
        if (!n.master->finished(now())) return;
        if (!n.master->yielded_to().empty()) return step_down(n.index);
        n.master->finish(now());
        kill(n.index);
    }

protected:
    // Called after every event (the simulator checks its invariants there).
    virtual void after_event() {}
    // A broken promise seen on the wire (a slave taking two masters' PLANs in one epoch).
    virtual void violation(const std::string&) {}

    std::vector<std::unique_ptr<Node>> nodes_;
    std::mt19937_64 rng_;
    int64_t t_ = 0;
    uint64_t events_ = 0;

private:
    uint64_t seq_ = 0;
    std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue_;
    std::map<std::pair<int, int>, Link> links_;
    std::vector<int> side_;      // a partition: which side each node is on
    int64_t heal_ns_ = 0;        // the partition lasts until then
    uint64_t next_conn_ = 1;
};

// ---------------------------------------------------------------------------
// The shells: what a role asks, done on the virtual network and clock.

inline bool SimMasterIo::send(uint64_t peer, std::string_view line, std::string& error) {
    auto it = conn_of_.find(peer);
    if (it == conn_of_.end() || !sim_.conns_.count(it->second) || !sim_.conns_[it->second].open()) {
        error = "connection reset";
        return false;
    }
    const Conn& c = sim_.conns_[it->second];
    const bool ours = c.dialed && c.client == node_;  // we dialed it: we are its client
    for (std::string& one : lines_of(line)) {
        if (ours) sim_.deliver_to_server(it->second, std::move(one));
        else sim_.deliver_to_client(it->second, std::move(one));
    }
    return true;
}

inline std::optional<uint64_t> SimMasterIo::dial(const std::string& address, std::string& error) {
    const uint64_t peer = next_peer_++;
    if (!sim_.connect(node_, address, peer)) return error = "connect: bad address " + address, std::nullopt;
    return peer;
}

inline std::optional<int64_t> SimMasterIo::send_stamped(uint64_t peer, std::string_view line, std::string& error) {
    if (!send(peer, line, error)) return std::nullopt;
    return sim_.now().real_ns;
}

inline void SimMasterIo::shut_write(uint64_t peer) {
    auto it = conn_of_.find(peer);
    if (it == conn_of_.end()) return;
    const Conn& c = sim_.conns_[it->second];
    if (!(c.dialed && c.client == node_)) sim_.eof_to_client(it->second);
}

inline void SimMasterIo::close(uint64_t peer) {
    auto it = conn_of_.find(peer);
    if (it == conn_of_.end()) return;
    const Conn& c = sim_.conns_[it->second];
    sim_.close_conn(it->second, !(c.dialed && c.client == node_));
    conn_of_.erase(it);
}

inline void SimMasterIo::stop_reading(uint64_t peer) {
    auto it = conn_of_.find(peer);
    if (it != conn_of_.end() && sim_.conns_.count(it->second)) sim_.conns_[it->second].server_reading = false;
}

inline void SimMasterIo::arm(uint64_t key, int64_t due_mono_ns) {
    due_[key] = due_mono_ns;
    World& sim = sim_;
    const int node = node_;
    sim_.at(sim_.mono_to_t(due_mono_ns), node, [&sim, node, key, due_mono_ns] {
        Node& n = sim.node(node);
        if (!n.master) return;
        auto it = n.master_io->due_.find(key);
        if (it == n.master_io->due_.end() || it->second != due_mono_ns) return;  // moved or disarmed
        n.master_io->due_.erase(it);
        n.master->on_timer(key, sim.now());
        sim.after_turn(n);
    });
}

inline bool SimMasterIo::nonce(Nonce& out) {
    for (uint8_t& b : out) b = static_cast<uint8_t>(sim_.rng()());
    return true;
}

inline bool SimSlaveIo::connect(const std::string& address, std::string& error) {
    if (!sim_.connect(node_, address)) {
        error = "connect: bad address " + address;
        return false;
    }
    return true;
}

inline bool SimSlaveIo::send(std::string_view line, std::string& error) {
    // A server that closed first does not fail our send (TCP takes the bytes; they go nowhere).
    if (conn_ == 0 || !sim_.conns_.count(conn_) || sim_.conns_[conn_].client_closed) {
        error = "send: connection reset";
        return false;
    }
    for (std::string& one : lines_of(line)) sim_.deliver_to_server(conn_, std::move(one));
    return true;
}

inline void SimSlaveIo::close() {
    if (conn_ != 0) sim_.close_conn(conn_, false);
    conn_ = 0;
}

inline void SimSlaveIo::arm(int64_t due_mono_ns) {
    due_ = due_mono_ns;
    World& sim = sim_;
    const int node = node_;
    sim_.at(sim_.mono_to_t(due_mono_ns), node, [&sim, node, due_mono_ns] {
        Node& n = sim.node(node);
        if (!n.slave || n.slave_io->due_ != due_mono_ns) return;
        n.slave_io->due_.reset();
        n.slave->on_timer(sim.now());
    });
}

inline bool SimSlaveIo::take_over(const Plan& plan, std::string&) {
    close();
    disarm();
    sim_.take_over(node_, plan);
    return true;
}

// ---------------------------------------------------------------------------
// The network.

inline int node_at(const std::vector<std::unique_ptr<Node>>& nodes, const std::string& address) {
    for (const auto& n : nodes)
        if (n->address == address) return n->index;
    return -1;
}

// The SYN, and the answer: accepted (a listener is there, even a slave's
// that is not yet serving: the connection waits in its backlog), refused
// (nobody listens: the process is dead), or nothing (cut off: it hangs).
inline bool World::connect(int client, const std::string& address, uint64_t peer) {
    const int server = node_at(nodes_, address);
    if (server < 0) return false;
    Conn c;
    c.id = next_conn_++;
    c.client = client;
    c.server = server;
    c.client_generation = nodes_[client]->generation;
    c.server_generation = nodes_[server]->generation;
    c.dialed = peer != 0;
    c.client_peer = peer;
    if (c.dialed) nodes_[client]->master_io->conn_of_[peer] = c.id;
    else nodes_[client]->slave_io->conn_ = c.id;
    conns_[c.id] = c;
    int64_t unused = 0;
    const int64_t syn = arrival(client, server, unused);
    const uint64_t id = c.id;
    // The SYN reaches the server's host: its kernel answers even while the
    // process is paused (the connection waits in the backlog), and refuses
    // it (RST) when no process listens there any more.
    at(syn, -1, [this, id, server] {
        Conn& conn = conns_[id];
        if (!conn.open()) return;
        Node& s = *nodes_[server];
        int64_t back = 0;
        const int64_t when = arrival(server, conn.client, back);
        conn.last_to_client_ns = std::max(conn.last_to_client_ns, when);  // no data before the handshake's answer
        if (!s.alive || s.generation != conn.server_generation) {  // RST
            conn.server_closed = conn.client_closed = true;
            return at(when, conn.client, [this, id] {
                Conn& k = conns_[id];
                Node& cl = *nodes_[k.client];
                if (k.dialed) {
                    if (!cl.master || !cl.master_io->conn_of_.count(k.client_peer)) return;
                    cl.master->on_closed(k.client_peer, "connect: Connection refused", false, now());
                    return after_turn(cl);
                }
                if (cl.slave && cl.slave_io->conn_ == id) {
                    cl.slave_io->conn_ = 0;
                    cl.slave->on_connect_failed("connect: Connection refused", now());
                }
            });
        }
        at(t_, server, [this, server, id] {  // the process accepts when it runs
            Node& there = *nodes_[server];
            if (there.master) return accept_backlog(server);
            if (there.redirects && there.slave) redirect(id, there.slave->following() ? there.slave->master() : "");
        });
        at(when, conn.client, [this, id] {
            Conn& k = conns_[id];
            Node& cl = *nodes_[k.client];
            if (k.dialed) {
                if (!k.open() || !cl.master || !cl.master_io->conn_of_.count(k.client_peer)) return;
                cl.master->on_dialed(k.client_peer, now());
                return after_turn(cl);
            }
            if (k.client_closed || !cl.slave || cl.slave_io->conn_ != id) return;  // a server that closed at once still shook hands
            Nonce nonce{};
            for (uint8_t& b : nonce) b = static_cast<uint8_t>(rng_());
            cl.slave->on_connected(cl.address, PORT, nonce, now());
        });
    });
    return true;
}

inline void World::deliver_to_server(uint64_t id, std::string line) {
    Conn& c = conns_[id];
    const int64_t when = arrival(c.client, c.server, c.last_to_server_ns);
    at(when, c.server, [this, id, line = std::move(line)] {
        Conn& k = conns_[id];
        Node& s = *nodes_[k.server];
        if (k.server_closed || !s.alive || s.generation != k.server_generation || !k.server_reading) return;
        if (!k.accepted) return k.backlog.push_back({line, now().real_ns});
        s.master->on_line(k.peer, line, now().real_ns, now());
        after_turn(s);
    });
}

inline void World::deliver_to_client(uint64_t id, std::string line) {
    Conn& c = conns_[id];
    const int64_t when = arrival(c.server, c.client, c.last_to_client_ns);
    at(when, c.client, [this, id, line = std::move(line)] {
        Conn& k = conns_[id];
        Node& cl = *nodes_[k.client];
        if (k.dialed) {
            if (k.client_closed || !cl.master || !cl.master_io->conn_of_.count(k.client_peer)) return;
            cl.master->on_line(k.client_peer, line, now().real_ns, now());
            return after_turn(cl);
        }
        if (k.client_closed || !cl.slave || cl.slave_io->conn_ != id) return;
        // Invariant 2, from the wire: the PLANs a slave takes.
        const Parsed parsed = parse_message(line);
        if (parsed.message && std::holds_alternative<Plan>(*parsed.message)) {
            const uint64_t epoch = std::get<Plan>(*parsed.message).epoch;
            if (epoch >= cl.slave->epoch()) {
                auto [it, fresh] = cl.followed.insert({epoch, nodes_[k.server]->address});
                if (!fresh && it->second != nodes_[k.server]->address)
                    violation("slave " + cl.address + " followed two masters in epoch " + std::to_string(epoch) + ": " +
                         it->second + " and " + nodes_[k.server]->address);
            }
        }
        cl.slave->on_line(line, now().real_ns, now());
    });
}

// One end closes (or dies): the other sees end-of-file after the link's delay.
inline void World::close_conn(uint64_t id, bool from_server) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    Conn& c = it->second;
    bool& closed = from_server ? c.server_closed : c.client_closed;
    if (closed) return;
    const bool first = c.open();
    closed = true;
    if (!first) return;  // the other end closed first: it has already been told
    if (from_server) {
        eof_to_client(id);
    } else if (c.accepted) {
        const int64_t when = arrival(c.client, c.server, c.last_to_server_ns);
        at(when, c.server, [this, id] {
            Conn& k = conns_[id];
            Node& s = *nodes_[k.server];
            if (!s.master || !s.alive || s.generation != k.server_generation) return;
            s.master->on_closed(k.peer, "", false, now());
            after_turn(s);
        });
    }
}

// The master's end-of-file reaches the slave after what was sent before it.
inline void World::eof_to_client(uint64_t id) {
    Conn& c = conns_[id];
    if (c.server_shut) return;
    c.server_shut = true;
    {
        const int64_t when = arrival(c.server, c.client, c.last_to_client_ns);
        at(when, c.client, [this, id] {
            Conn& k = conns_[id];
            Node& cl = *nodes_[k.client];
            if (k.dialed) {
                if (k.client_closed || !cl.master || !cl.master_io->conn_of_.count(k.client_peer)) return;
                cl.master->on_closed(k.client_peer, "", false, now());
                return after_turn(cl);
            }
            if (!cl.slave || cl.slave_io->conn_ != id) return;
            cl.slave_io->conn_ = 0;
            cl.slave->on_closed("the master closed the connection", now());
        });
    }
}

// A slave became a master: the connections waiting in its listener's backlog are accepted now.
inline void World::accept_backlog(int node) {
    Node& s = *nodes_[node];
    for (auto& [id, c] : conns_) {
        if (c.server != node || c.accepted || !c.open() || c.server_generation != s.generation) continue;
        c.accepted = true;
        c.peer = s.master_io->next_peer_++;
        s.master_io->conn_of_[c.peer] = id;
        s.master->on_accept(c.peer, nodes_[c.client]->address, now());
        for (auto& [line, real] : c.backlog)
            if (c.server_reading) s.master->on_line(c.peer, line, real, now());
        c.backlog.clear();
    }
    after_turn(s);
}

// A master that yielded, now a slave, sends whoever comes to its address on
// to the master it follows (`to`); between masters (empty), it closes the
// connection, as node.hpp's SlaveHost::on_listener does: the newcomer retries.
inline void World::redirect(uint64_t id, const std::string& to) {
    Conn& c = conns_[id];
    if (!c.open()) return;
    c.accepted = true;
    if (!to.empty())
        for (std::string& line : lines_of(format_message(Follow{to}))) deliver_to_client(id, std::move(line));
    close_conn(id, true);
}

inline void World::take_over(int node, const Plan& plan) {
    Node& n = *nodes_[node];
    MasterSettings& s = n.master_settings;
    s = MasterSettings{};
    continue_plan(s, plan);
    s.old_master = n.slave->master();  // looked for, should it come back
    s.id = n.slave_settings.id;
    s.discipline = n.slave_settings.discipline;
    s.kernel_timestamps = n.slave_settings.kernel_timestamps;
    s.door.probes = s.probes;
    s.door.key = n.slave_settings.key;
    n.master_io = std::make_unique<SimMasterIo>(*this, node);
    n.master = std::make_unique<MasterRole>(s, *n.master_io, n.log, n.console(), n.clock);
    n.master->start(PORT, "", now());
    const int64_t t = t_;
    at(t, node, [this, node] { accept_backlog(node); });  // once the slave's handler has returned
}

inline void World::step_down(int node) {
    Node& n = *nodes_[node];
    const std::string to = n.master->yielded_to();
    const uint64_t epoch = n.master->epoch();
    n.master->finish(now());
    for (auto& [id, c] : conns_) {  // what finish() closed is closed; the rest goes too
        if (!c.open()) continue;
        if (c.server == node && c.server_generation == n.generation) close_conn(id, true);
        else if (c.client == node && c.client_generation == n.generation && c.dialed) close_conn(id, false);
    }
    SlaveSettings s = n.slave_settings;
    if (s.id.empty()) {  // the first master: a slave now, with its settings
        s.id = n.master_settings.id;
        s.discipline = n.master_settings.discipline;
        s.kernel_timestamps = n.master_settings.kernel_timestamps;
        s.key = n.master_settings.door.key;
    }
    s.master = to;
    s.epoch = epoch;
    n.slave_settings = s;
    n.redirects = true;
    n.master.reset();
    n.master_io.reset();
    n.slave_io = std::make_unique<SimSlaveIo>(*this, node);
    n.slave = std::make_unique<SlaveRole>(n.slave_settings, *n.slave_io, n.log, n.console(), n.clock);
    n.slave->start(now());
}

// The process dies: its connections are closed by its kernel (peers see
// end-of-file), its timers and its handlers' work die with it.
inline void World::kill(int node) {
    Node& n = *nodes_[node];
    if (!n.alive) return;
    for (auto& [id, c] : conns_) {
        if (!c.open()) continue;
        if (c.server == node && c.server_generation == n.generation) close_conn(id, true);
        else if (c.client == node && c.client_generation == n.generation) close_conn(id, false);
    }
    n.alive = false;
    n.paused = false;
    n.redirects = false;
    n.held.clear();
    n.master.reset();
    n.master_io.reset();
    n.slave.reset();
    n.slave_io.reset();
    n.last_reading_ns.reset();
    n.last_epoch = 0;
    n.followed.clear();
    ++n.generation;
}


inline int World::add_node() {
    auto n = std::make_unique<Node>();
    n->index = static_cast<int>(nodes_.size());
    n->address = "10.0.0." + std::to_string(nodes_.size() + 1) + ":" + std::to_string(PORT);
    nodes_.push_back(std::move(n));
    side_.push_back(0);
    return nodes_.back()->index;
}

inline void World::start_master(int index, const MasterSettings& s, const SimClock& clock) {
    Node& n = node(index);
    n.alive = true;
    n.clock = clock;
    n.master_settings = s;
    n.master_io = std::make_unique<SimMasterIo>(*this, index);
    n.master = std::make_unique<MasterRole>(n.master_settings, *n.master_io, n.log, n.console(), n.clock);
    n.master->start(PORT, n.address.substr(0, n.address.find(':')), now());
}

inline void World::start_slave(int index, const SlaveSettings& s, const SimClock& clock) {
    Node& n = node(index);
    n.alive = true;
    n.clock = clock;
    n.slave_settings = s;
    n.slave_io = std::make_unique<SimSlaveIo>(*this, index);
    n.slave = std::make_unique<SlaveRole>(n.slave_settings, *n.slave_io, n.log, n.console(), n.clock);
    n.slave->start(now());
}

inline int64_t World::arrival(int from, int to, int64_t& last_ns) {
    const Link& l = link(from, to);
    std::uniform_int_distribution<int64_t> jitter(0, l.jitter_ns);
    int64_t d = l.delay_ns + jitter(rng_) + (from > to ? l.extra_back_ns : 0);
    if (l.loss > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < l.loss) d += RETRANSMIT_NS;
    int64_t when = t_ + d;
    if (cut(from, to)) when = std::max(when, heal_ns_ + RETRANSMIT_NS);  // held until the partition heals
    last_ns = std::max(last_ns, when);  // never before what was sent earlier (ties keep their order)
    return last_ns;
}

inline bool World::run_until(int64_t end_t, const std::function<bool()>& done) {
    while (!queue_.empty()) {
        if (done && done()) return true;
        if (queue_.top().at_ns > end_t) {
            t_ = end_t;
            return true;
        }
        Event e = queue_.top();
        queue_.pop();
        t_ = e.at_ns;
        if (e.node >= 0) {
            Node& n = node(e.node);
            if (n.generation != e.generation || !n.alive) continue;  // the process it was for is gone
            if (n.paused) {
                n.held.push_back(std::move(e.run));
                continue;
            }
        }
        e.run();
        ++events_;
        after_event();
    }
    return false;
}

}  // namespace berkeley::sim
