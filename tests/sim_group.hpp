// sim_group.hpp - a group of roles on the simulator's virtual network
// (sim/world.hpp) for unit tests, and ways to read what they logged.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "sim/world.hpp"

namespace berkeley::testing {

using namespace berkeley::sim;

inline constexpr int64_t MINUTE_NS = 60 * NS_PER_S;
inline const int64_t THREE_OCLOCK_NS = (REAL_BASE_NS / (24 * 3600 * NS_PER_S)) * 24 * 3600 * NS_PER_S + 3 * 60 * MINUTE_NS;

// A number field of a JSON log line, or nullopt.
inline std::optional<int64_t> field(const std::string& line, const std::string& key) {
    const size_t at = line.find("\"" + key + "\":");
    if (at == std::string::npos) return std::nullopt;
    return std::stoll(line.substr(at + key.size() + 3));
}
inline bool has(const std::string& line, const std::string& text) { return line.find(text) != std::string::npos; }

// The node's events of one kind.
inline std::vector<std::string> events(Node& n, const std::string& name) {
    std::vector<std::string> out;
    for (const std::string& line : n.lines)
        if (has(line, "{\"event\":\"" + name + "\"")) out.push_back(line);
    return out;
}

// A clock that reads `clock_ns` at virtual time t = 0, with no drift.
inline SimClock reading(int64_t clock_ns) { return make_clock(REAL_BASE_NS, clock_ns - REAL_BASE_NS, 0); }

inline SlaveSettings slave_named(const std::string& id, const World& w) {
    SlaveSettings s;
    s.id = id;
    s.master = w.address(0);
    s.seed = 7;
    return s;
}

struct Group {
    World world{1};
    explicit Group(size_t nodes, int64_t delay_ns = 0) {
        for (size_t i = 0; i < nodes; ++i) world.node(world.add_node()).log.capture_into(&world.node(static_cast<int>(i)).lines);
        for (int a = 0; a < static_cast<int>(nodes); ++a)
            for (int b = a + 1; b < static_cast<int>(nodes); ++b) world.link(a, b).delay_ns = delay_ns;
    }
    Node& operator[](int i) { return world.node(i); }
    // Run until the master (node `m`) has finished round `round`, at most `limit_ns` of virtual time.
    bool until_round_done(int m, uint64_t round, int64_t limit_ns = 120 * NS_PER_S) {
        world.run_until(world.t() + limit_ns, [&] {
            Node& n = world.node(m);
            for (const std::string& line : n.lines)
                if (has(line, "\"event\":\"round_done\"") && field(line, "round") == static_cast<int64_t>(round)) return true;
            return false;
        });
        for (const std::string& line : world.node(m).lines)
            if (has(line, "\"event\":\"round_done\"") && field(line, "round") == static_cast<int64_t>(round)) return true;
        return false;
    }
};


}  // namespace berkeley::testing
