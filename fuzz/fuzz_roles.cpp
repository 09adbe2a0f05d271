// fuzz_roles.cpp - libFuzzer target over the roles' state machines: the
// master's round and door (master_role.hpp, door.hpp) and the slave
// (slave_role.hpp) fed arbitrary sequences of events, at arbitrary times:
// connections opened and closed, lines (well-formed with hostile numbers,
// or garbage), timers, a stop. The bytes choose each event. What must hold,
// whatever comes: no crash and no sanitizer report; every line a role sends
// is one the protocol accepts; a slave's clock never goes back once in step
// and its epoch never goes back; the master's round counters stay
// consistent (its assertions are on in this build). Built by `make fuzz`.
#include <cassert>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "master_role.hpp"
#include "slave_role.hpp"
#include "property.hpp"

using namespace berkeley;

namespace {

// The input, read as the choices of the events.
class Bytes {
public:
    Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    bool empty() const { return pos_ >= size_; }
    uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
    int64_t number() {  // small ones most often, any 64-bit value sometimes
        const uint8_t kind = byte();
        uint64_t v = 0;
        const int n = kind % 4 == 0 ? 8 : kind % 4;
        for (int i = 0; i < n; ++i) v = (v << 8) | byte();
        return static_cast<int64_t>((kind & 0x80) ? 0 - v : v);  // two's complement: any int64_t
    }
    std::string text(size_t most) {
        std::string out;
        const size_t n = byte() % (most + 1);
        for (size_t i = 0; i < n && !empty(); ++i) out += static_cast<char>(byte());
        return out;
    }

private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

// Every line a role sends must be one line the protocol accepts (or, with a
// secret, a handshake line or a tagged one: none here, the groups are plain).
void check_sent(std::string_view bytes) {
    while (!bytes.empty()) {
        const size_t end = bytes.find('\n');
        check(end != std::string_view::npos, "a role sends whole lines");
        const std::string line(bytes.substr(0, end));
        check(line.size() <= MAX_LINE_BYTES, "a role's line fits the limit");
        if (!parse_message(line).message) std::fprintf(stderr, "unparsable: %s (%s)\n", line.c_str(), parse_message(line).error.c_str());
        check(parse_message(line).message.has_value(), "a role's line parses");
        bytes = bytes.substr(end + 1);
    }
}

struct Timers {
    std::map<uint64_t, int64_t> due;
};

class FuzzMasterIo final : public MasterIo {
public:
    std::set<uint64_t> open;
    std::set<uint64_t> not_read;  // stop_reading: no more lines from them
    Timers timers;
    int64_t real_ns = 0;
    bool fail_sends = false;
    bool send(uint64_t peer, std::string_view line, std::string& error) override {
        check_sent(line);
        if (!open.count(peer) || fail_sends) return error = "send: broken pipe", false;
        return true;
    }
    std::optional<int64_t> send_stamped(uint64_t peer, std::string_view line, std::string& error) override {
        if (!send(peer, line, error)) return std::nullopt;
        return real_ns;
    }
    bool has_output(uint64_t) override { return false; }
    void shut_write(uint64_t) override {}
    void close(uint64_t peer) override { open.erase(peer); }
    void stop_reading(uint64_t peer) override { not_read.insert(peer); }
    void arm(uint64_t key, int64_t due) override { timers.due[key] = due; }
    void disarm(uint64_t key) override { timers.due.erase(key); }
    bool armed(uint64_t key) override { return timers.due.count(key) != 0; }
    bool nonce(Nonce& out) override {
        out.fill(7);
        return true;
    }
    std::optional<uint64_t> dial(const std::string&, std::string&) override {
        open.insert(next_dial);
        return next_dial++;
    }
    uint64_t next_dial = 1ULL << 32;  // apart from the peers the fuzzer accepts
    int64_t cpu_ns() override { return 0; }
};

class FuzzSlaveIo final : public SlaveIo {
public:
    bool connected = false, connecting = false, allow_take_over = false;
    std::optional<int64_t> due;
    bool connect(const std::string& address, std::string& error) override {
        check(!address.empty(), "a slave connects somewhere");
        if (address == "nowhere") return error = "connect: refused", false;
        connecting = true;
        return true;
    }
    bool send(std::string_view line, std::string& error) override {
        check_sent(line);
        if (!connected) return error = "not connected", false;
        return true;
    }
    bool send_reply(std::string_view line, std::string& error) override { return send(line, error); }
    void close() override { connected = connecting = false; }
    void arm(int64_t at) override { due = at; }
    void disarm() override { due.reset(); }
    int64_t reply_leaves_real_ns(const Now& now) override { return now.real_ns; }
    bool take_over(const Plan&, std::string& error) override {
        connected = connecting = false;
        return allow_take_over || (error = "not in this test", false);
    }
};

// A line a peer might send: well-formed with hostile numbers, or anything.
std::string line_from(Bytes& in, bool to_master) {
    const auto u = [&] { return std::to_string(static_cast<uint64_t>(in.number())); };
    const auto i = [&] { return std::to_string(in.number()); };
    switch (in.byte() % (to_master ? 8 : 9)) {
        case 0: return in.text(80);  // anything at all
        case 1: return to_master ? "HELLO s" + std::to_string(in.byte() % 4) + (in.byte() % 2 ? " " + u() + " " + u() : "")
                                 : "WAIT " + u() + " " + u();
        case 2: return to_master ? "CLOCK " + u() + " " + u() + " " + i() + (in.byte() % 2 ? " " + i() : "")
                                 : "TIME? " + u() + " " + u();
        case 3: return to_master ? "ACK " + u() + (in.byte() % 2 ? " " + i() : "") : "ADJUST " + u() + " " + i() + (in.byte() % 2 ? " " + i() : "");
        case 4: return to_master ? "INSTEP" : "PLAN " + u() + " " + u() + " " + u() + " " + u() + " " + u() + " " + u() + " " + i() + " " + u() + (in.byte() % 2 ? " 10.0.0.9:1" : "");
        case 5: return "ERROR " + in.text(20);
        case 6: return to_master ? "BYE" : "BYE";
        case 7: return to_master ? "CLOCK " + std::to_string(in.byte() % 4) + " " + std::to_string(in.byte() % 5) + " " + i() + " " + i()
                                 : "TIME? " + std::to_string(in.byte() % 4) + " " + std::to_string(in.byte() % 5);
        default: return "ADJUST " + std::to_string(in.byte() % 4) + " " + i();
    }
}

void fuzz_master(Bytes& in) {
    MasterSettings s;
    s.slaves = 1 + in.byte() % 3;
    s.rounds = in.byte() % 4;
    s.probes = 1 + in.byte() % 3;
    s.takeover = in.byte() % 4 == 0;
    s.explain = in.byte() % 2;
    s.door.by_hand = in.byte() % 4 == 0;
    s.door.max_slaves = 1 + in.byte() % 4;
    s.door.probes = s.probes;
    FuzzMasterIo io;
    EventLog log;
    std::string console_text;
    SimClock clock = make_clock(1'700'000'000 * NS_PER_S, in.number() % NS_PER_S, in.number() % 100'000);
    MasterRole master(s, io, log, Console{false, &console_text}, clock);
    Now now{NS_PER_S, 1'700'000'000 * NS_PER_S};
    io.real_ns = now.real_ns;
    master.start(8080, "127.0.0.1", now);
    uint64_t next_peer = FIRST_PEER_KEY;
    for (int steps = 0; steps < 400 && !in.empty(); ++steps) {
        const int64_t dt = in.byte() % 3 == 0 ? in.number() % (2 * NS_PER_S) : 0;
        if (dt > 0) now.mono_ns += dt, now.real_ns += dt;  // time only moves forward
        io.real_ns = now.real_ns;
        const uint64_t peer = io.open.empty() ? next_peer : FIRST_PEER_KEY + in.byte() % (next_peer - FIRST_PEER_KEY + 1);
        switch (in.byte() % 6) {
            case 0:
                io.open.insert(next_peer);
                master.on_accept(next_peer++, "10.0.0." + std::to_string(in.byte()) + ":5000", now);
                break;
            case 1:
            case 2:
                if (io.open.count(peer) && !io.not_read.count(peer)) master.on_line(peer, line_from(in, true), now.real_ns - in.byte(), now);
                break;
            case 3:
                if (master.listens_to(peer)) master.on_closed(peer, in.byte() % 2 ? "" : "recvmsg: reset", in.byte() % 2, now);
                break;
            case 4: {  // the timers that have fallen due, in order
                std::vector<std::pair<int64_t, uint64_t>> due;
                for (auto [key, at] : io.timers.due)
                    if (at <= now.mono_ns) due.push_back({at, key});
                std::sort(due.begin(), due.end());
                for (auto [at, key] : due)
                    if (io.timers.due.count(key) && io.timers.due[key] == at) {
                        io.timers.due.erase(key);
                        master.on_timer(key, now);
                    }
                break;
            }
            default:
                if (in.byte() % 8 == 0) master.stop("signal", now);
                io.fail_sends = in.byte() % 16 == 0;
                break;
        }
        master.after_turn(now);
        if (master.finished(now)) break;
    }
    master.finish(now);
}

void fuzz_slave(Bytes& in) {
    SlaveSettings s;
    s.id = "s1";
    s.master = in.byte() % 8 == 0 ? "nowhere" : "10.0.0.1:8080";
    s.connect_timeout_ns = 1 + in.number() % (60 * NS_PER_S);
    if (s.connect_timeout_ns <= 0) s.connect_timeout_ns = NS_PER_S;
    s.lie_ns = in.byte() % 8 == 0 ? in.number() % NS_PER_S : 0;
    s.ignore_corrections = in.byte() % 8 == 0;
    s.kernel_timestamps = in.byte() % 2;
    s.seed = in.byte();
    FuzzSlaveIo io;
    io.allow_take_over = in.byte() % 2;
    EventLog log;
    std::string console_text;
    SimClock clock = make_clock(1'700'000'000 * NS_PER_S, in.number() % NS_PER_S, in.number() % 100'000);
    SlaveRole slave(s, io, log, Console{false, &console_text}, clock);
    Now now{NS_PER_S, 1'700'000'000 * NS_PER_S};
    slave.start(now);
    std::optional<int64_t> last_reading;
    uint64_t last_epoch = 0;
    for (int steps = 0; steps < 400 && !in.empty() && !slave.done(); ++steps) {
        const int64_t dt = in.byte() % 3 == 0 ? in.number() % (2 * NS_PER_S) : 0;
        if (dt > 0) now.mono_ns += dt, now.real_ns += dt;
        switch (in.byte() % 6) {
            case 0:
                if (io.connecting) {
                    io.connecting = false;
                    io.connected = true;
                    slave.on_connected(in.byte() % 2 ? "10.0.0.2:9000" : "", 9000, Nonce{}, now);
                }
                break;
            case 1:
                if (io.connecting) {
                    io.connecting = false;
                    slave.on_connect_failed("connect: refused", now);
                }
                break;
            case 2:
            case 3:
                if (io.connected) slave.on_line(line_from(in, false), now.real_ns - in.byte(), now);
                break;
            case 4:
                if (io.connected) {
                    io.connected = false;
                    slave.on_closed("the master closed the connection", now);
                }
                break;
            default:
                if (io.due && *io.due <= now.mono_ns) {
                    io.due.reset();
                    slave.on_timer(now);
                }
                break;
        }
        if (clock.corrected) {
            const int64_t reading = read_clock(clock, now.real_ns);
            check(!last_reading || reading >= *last_reading, "a clock in step never goes back");
            last_reading = reading;
        }
        check(slave.epoch() >= last_epoch, "a slave's epoch never goes back");
        last_epoch = slave.epoch();
        if (slave.state() == SlaveRole::State::Master) break;  // the node hosts a master now
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    Bytes in(data + 1, size - 1);
    if (data[0] % 2) fuzz_master(in);
    else fuzz_slave(in);
    return 0;
}
