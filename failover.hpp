// failover.hpp - the backup plan and the election, as pure functions: whom
// the master ranks as its successors (sent to every slave in each PLAN), and
// in what order a slave that lost its master tries them: the Bully algorithm
// over that list, so that the best successor alive takes over and everyone
// else joins it. No I/O: tests/test_failover.cpp covers it.
//
//   slave --master gone (EOF and it refuses a reconnect, or 3 intervals of
//     |    silence)--> electing: try the old master, then successors 1, 2, ...
//     |                  |-- one answers as a master --> slave of it
//     |                  '-- I am successor k and 1..k-1 did not --> candidate
//     |                                                              |
//     '<------------- a master of a higher epoch ----------- master (epoch + 1)
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "protocol.hpp"

namespace berkeley {

// What the master knows of a slave that could take over: facts it saw
// itself, never what the slave says of itself.
struct SuccessorCandidate {
    std::string address;          // "host:port" it serves on; empty: it would not
    bool acked = false;           // acknowledged one of our corrections (not: said INSTEP)
    uint32_t missed_rounds = 0;   // in a row
    uint64_t joined_round = 0;    // the round it joined in (smaller: longer in the group)
    uint64_t join_order = 0;      // the order in which the door let it in
};

// The successors, best first, at most `k`: slaves that serve and answered the
// last round; those that took our corrections before those that did not; then
// the longest in the group, in the order they joined. Corrected by us and
// long in the group: its clock keeps the group's time and has had its rate
// trimmed longest, so taking over moves the group least. Only facts the
// master saw count: a joiner that says INSTEP, or picks an address that sorts
// first, gains nothing. Not by the last round's delay or correction either:
// those differ by noise, and a plan reshuffled every round would be a plan
// nobody can rely on for long (every slave must have heard the same one).
inline std::vector<std::string> rank_successors(std::vector<SuccessorCandidate> all, size_t k) {
    std::erase_if(all, [](const SuccessorCandidate& c) { return c.address.empty() || c.missed_rounds > 0; });
    std::sort(all.begin(), all.end(), [](const SuccessorCandidate& a, const SuccessorCandidate& b) {
        if (a.acked != b.acked) return a.acked;
        if (a.joined_round != b.joined_round) return a.joined_round < b.joined_round;
        return a.join_order < b.join_order;
    });
    std::vector<std::string> out;
    for (const SuccessorCandidate& c : all) {
        if (out.size() == k) break;
        if (std::find(out.begin(), out.end(), c.address) == out.end()) out.push_back(c.address);
    }
    return out;
}

// Two masters that see each other (one asked the other MASTER?) agree who
// yields by this order, the same on both sides, with no vote: the higher
// epoch first (it was elected later, by slaves that had lost the other),
// then the larger random token, drawn when the mastership began (two
// masters of one epoch: successors cut off from each other as they took
// over). The lower one sends its slaves to the higher (FOLLOW) and follows
// it itself.
struct MasterRank {
    uint64_t epoch = 1;
    uint64_t token = 0;
};
constexpr bool outranks(const MasterRank& a, const MasterRank& b) {
    return a.epoch != b.epoch ? a.epoch > b.epoch : a.token > b.token;
}

// The plan with as many of its successors as fit in one line, with room for
// `reserved` bytes more (a tag): three long IPv6 addresses would not.
inline Plan fit_in_a_line(Plan plan, size_t reserved) {
    while (!plan.successors.empty() && format_message(plan).size() - 1 + reserved > MAX_LINE_BYTES)
        plan.successors.pop_back();
    return plan;
}

// Whom a slave that lost its master tries, in order, and whether it takes
// over when none of them answers. Successor k tries the old master and
// successors 1..k-1 only; anyone else tries the old master and every
// successor, and starts over when none answers.
struct ElectionOrder {
    std::vector<std::string> try_in_order;
    bool take_over = false;  // when none of them answers as a master
};

inline ElectionOrder election_order(const std::string& old_master, const std::vector<std::string>& successors,
                                    const std::string& self) {
    ElectionOrder order;
    order.try_in_order.push_back(old_master);
    for (const std::string& s : successors) {
        if (s == self) {
            order.take_over = true;
            break;
        }
        if (s != old_master) order.try_in_order.push_back(s);
    }
    return order;
}

}  // namespace berkeley
