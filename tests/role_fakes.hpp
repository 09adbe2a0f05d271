// role_fakes.hpp - a slave role's shell for unit tests: it records what the
// role asks (connections, lines, timers, a takeover) and lets the test play
// the network, one event at a time.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "role.hpp"

namespace berkeley {

class RecordingSlaveIo final : public SlaveIo {
public:
    int64_t lead_ns = 0, reply_read_at_ns = 0;  // the reply's T3 is read then, and leaves lead_ns later
    std::vector<std::string> connects;          // every address the role tried, in order
    std::vector<std::string> sent;              // every line sent
    std::optional<int64_t> due;                 // the role's one timer
    int take_overs = 0;
    bool connect(const std::string& address, std::string&) override {
        connects.push_back(address);
        return true;
    }
    bool send(std::string_view line, std::string&) override {
        sent.emplace_back(line);
        return true;
    }
    bool send_reply(std::string_view line, std::string& error) override { return send(line, error); }
    void close() override {}
    void arm(int64_t at) override { due = at; }
    void disarm() override { due.reset(); }
    int64_t reply_leaves_real_ns(const Now&) override { return reply_read_at_ns + lead_ns; }
    bool take_over(const Plan&, std::string&) override {
        ++take_overs;
        return true;
    }
};

}  // namespace berkeley

namespace berkeley {

// A master role's shell for unit tests: it records each peer's lines.
class RecordingMasterIo final : public MasterIo {
public:
    std::map<uint64_t, std::vector<std::string>> sent;  // by peer
    std::set<uint64_t> closed;
    std::map<uint64_t, int64_t> due;
    int64_t real_ns = 0;
    bool send(uint64_t peer, std::string_view line, std::string&) override {
        sent[peer].emplace_back(line);
        return !closed.count(peer);
    }
    std::optional<int64_t> send_stamped(uint64_t peer, std::string_view line, std::string& error) override {
        if (!send(peer, line, error)) return std::nullopt;
        return real_ns;
    }
    bool has_output(uint64_t) override { return false; }
    void shut_write(uint64_t) override {}
    void close(uint64_t peer) override { closed.insert(peer); }
    void stop_reading(uint64_t) override {}
    void arm(uint64_t key, int64_t at) override { due[key] = at; }
    void disarm(uint64_t key) override { due.erase(key); }
    bool armed(uint64_t key) override { return due.count(key) != 0; }
    bool nonce(Nonce& out) override {
        out.fill(7);
        return true;
    }
    std::vector<std::string> dialed;  // every address the role asked MASTER? of
    uint64_t next_dial = 1000;
    std::optional<uint64_t> dial(const std::string& address, std::string&) override {
        dialed.push_back(address);
        return next_dial++;
    }
    int64_t cpu_ns() override { return 0; }
};

// A line as the wire carries it, without its newline.
inline std::string without_newline(std::string line) {
    while (!line.empty() && line.back() == '\n') line.pop_back();
    return line;
}

}  // namespace berkeley
