// role.hpp - what a role may ask of the shell that hosts it. A role (the
// master's round and door, the slave) reads no clock and touches no socket:
// each event comes in with the time it happened (Now), and everything the
// role does to the world goes out through one of the calls below. The shell
// (node.hpp) answers them with epoll and sockets; a unit test, the fuzzer
// and the simulator (sim/sim.cpp) answer them with a virtual network and
// virtual time, so all of them drive the very code the programs run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "auth.hpp"
#include "protocol.hpp"

namespace berkeley {

// The instant an event is handled: CLOCK_MONOTONIC for deadlines, the host's
// real time for reading the simulated clock (never the other way round).
struct Now {
    int64_t mono_ns = 0;
    int64_t real_ns = 0;
};

// The master's side: its connections by peer id (chosen by the shell at
// accept), and its timers by key.
class MasterIo {
public:
    virtual ~MasterIo() = default;
    // Queue a line for a peer; false (with `error`) when the connection failed.
    [[nodiscard]] virtual bool send(uint64_t peer, std::string_view line, std::string& error) = 0;
    // Send a probe: the shell reads the host clock as late as it can before
    // the line leaves and returns it (T1); nullopt (with `error`) on failure.
    [[nodiscard]] virtual std::optional<int64_t> send_stamped(uint64_t peer, std::string_view line,
                                                              std::string& error) = 0;
    virtual bool has_output(uint64_t peer) = 0;
    virtual void shut_write(uint64_t peer) = 0;  // after BYE: the peer sees end-of-file
    virtual void close(uint64_t peer) = 0;       // the role is done with it
    // Read nothing more from this peer (its proof failed; its answer waits
    // out a delay): what it sends then stays in the kernel's buffers until
    // TCP's flow control holds it back, and costs the master nothing.
    // Lines to it still go out; its hanging up is still an on_closed.
    virtual void stop_reading(uint64_t peer) = 0;
    virtual void arm(uint64_t key, int64_t due_mono_ns) = 0;
    virtual void disarm(uint64_t key) = 0;
    virtual bool armed(uint64_t key) = 0;
    [[nodiscard]] virtual bool nonce(Nonce& out) = 0;  // 32 random bytes for a handshake
    // A connection of the master's own to "host:port", to ask who is master
    // there: a new peer id (its lines, close and timer come as any peer's),
    // and on_dialed once it is up. Nullopt (with `error`) when it cannot start.
    virtual std::optional<uint64_t> dial(const std::string& address, std::string& error) = 0;
    virtual int64_t cpu_ns() = 0;                      // this process's CPU time, for the benchmarks' log fields
};

// The slave's side: one connection at a time (to its master, or to a
// candidate while electing), one timer.
class SlaveIo {
public:
    virtual ~SlaveIo() = default;
    // Start connecting to "host:port"; the answer comes as on_connected or
    // on_connect_failed. False (with `error`) when it cannot even start.
    [[nodiscard]] virtual bool connect(const std::string& address, std::string& error) = 0;
    [[nodiscard]] virtual bool send(std::string_view line, std::string& error) = 0;
    // Send the reply whose T3 was read at reply_leaves_real_ns(): the shell
    // learns from it how long building and sending a reply really takes.
    [[nodiscard]] virtual bool send_reply(std::string_view line, std::string& error) = 0;
    virtual void close() = 0;  // the connection (or the attempt) is over
    virtual void arm(int64_t due_mono_ns) = 0;
    virtual void disarm() = 0;
    // T3's moment: the host time at which a reply built from now will
    // leave. The shell reads its clock here, at the reply, not at the
    // event's start (parsing and checking the request come between), and
    // adds how long building and sending one took lately (0 until it knows).
    virtual int64_t reply_leaves_real_ns(const Now& now) = 0;
    // Become the master of the group this PLAN describes, in this process,
    // on the listener the shell holds, with this clock. False (with `error`)
    // when it cannot; the slave then goes on as one.
    [[nodiscard]] virtual bool take_over(const Plan& plan, std::string& error) = 0;
};

}  // namespace berkeley
