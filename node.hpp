// node.hpp - the I/O shell around the roles: the one place where sockets,
// epoll and the host clocks meet the roles' events. A node is one process
// with one event loop hosting roles: a master (MasterHost: a listener and
// its connections around master_role.hpp), slaves (SlaveHost: one
// connection each around slave_role.hpp), or a slave that becomes a master
// in place when it takes over. Each role's timers and connections are
// tokens in the loop from a base of its own, so roles never mix them up.
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <unordered_map>

#include "master_role.hpp"
#include "net.hpp"
#include "os.hpp"
#include "role.hpp"

namespace berkeley {

inline Now host_now() { return Now{monotonic_ns(), realtime_ns()}; }

// A master's connections. Its tokens: base + 0 the listener, base + key
// the role's timers and each peer's connection (peer id = key).
class MasterHost final : public MasterIo {
public:
    MasterHost(EventLoop& loop, uint64_t token_base, bool kernel_timestamps)
        : loop_(loop), base_(token_base), kernel_timestamps_(kernel_timestamps) {}

    // Listen on an inherited listener (a slave taking over) or a new one.
    [[nodiscard]] bool listen(Fd listener, std::string& error) {
        listener_ = std::move(listener);
        return listener_.valid() && loop_.add(listener_.get(), EPOLLIN, base_, error);
    }
    uint16_t port() const { return local_port(listener_.get()); }
    void attach(MasterRole& role) { role_ = &role; }
    bool owns(uint64_t token) const { return token >= base_; }

    void on_file(uint64_t token, uint32_t events) {
        if (token == base_) return on_listener_ready();
        const uint64_t peer = token - base_;
        auto it = conns_.find(peer);
        if (it == conns_.end() || !role_->listens_to(peer)) return;
        LineConn& conn = *it->second;
        if ((events & EPOLLOUT) && !conn.flush()) return role_->on_closed(peer, conn.error(), false, host_now());
        role_->on_flushed(peer, host_now());
        if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
        const auto status = conn.read_lines([&](const std::string& line, int64_t recv_real_ns) {
            return role_->on_line(peer, line, recv_real_ns, host_now());
        });
        if (status == LineConn::Status::Closed) role_->on_closed(peer, "", false, host_now());
        if (status == LineConn::Status::Failed) role_->on_closed(peer, conn.error(), true, host_now());
    }
    void on_timer(uint64_t token) { role_->on_timer(token - base_, host_now()); }

    // MasterIo
    bool send(uint64_t peer, std::string_view line, std::string& error) override {
        LineConn* c = conn(peer);
        if (c && c->send(line)) return true;
        error = c ? c->error() : "not connected";
        return false;
    }
    std::optional<int64_t> send_stamped(uint64_t peer, std::string_view line, std::string& error) override {
        LineConn* c = conn(peer);
        const int64_t t1_real_ns = realtime_ns();  // as late as it can be read before the send
        if (c && c->send(line)) return t1_real_ns;
        error = c ? c->error() : "not connected";
        return std::nullopt;
    }
    bool has_output(uint64_t peer) override {
        LineConn* c = conn(peer);
        return c && c->has_output();
    }
    void shut_write(uint64_t peer) override {
        if (LineConn* c = conn(peer)) c->shutdown_write();
    }
    void close(uint64_t peer) override {
        conns_.erase(peer);
        if (paused_) resume_listener();  // a descriptor is free again
    }
    void arm(uint64_t key, int64_t due_mono_ns) override { loop_.arm(base_ + key, due_mono_ns); }
    void disarm(uint64_t key) override { loop_.disarm(base_ + key); }
    bool armed(uint64_t key) override { return loop_.armed(base_ + key); }
    bool nonce(Nonce& out) override { return random_bytes(out); }
    int64_t cpu_ns() override { return cpu_time_ns(); }

private:
    LineConn* conn(uint64_t peer) {
        auto it = conns_.find(peer);
        return it == conns_.end() ? nullptr : it->second.get();
    }

    void on_listener_ready() {
        for (int accepted = 0; accepted < 64; ++accepted) {
            std::string address, error;
            bool out_of_fds = false;
            Fd fd = accept_tcp(listener_.get(), address, error, &out_of_fds);
            if (out_of_fds) return pause_listener(error);
            if (!fd.valid()) {
                if (!error.empty()) std::fprintf(stderr, "master: %s\n", error.c_str());
                return;
            }
            const uint64_t peer = next_peer_++;
            auto c = std::make_unique<LineConn>(loop_, std::move(fd), base_ + peer);
            if (!c->start(error)) {
                std::fprintf(stderr, "master: %s\n", error.c_str());
                continue;
            }
            if (kernel_timestamps_ && !c->enable_kernel_timestamps() && !warned_timestamps_) {
                std::fprintf(stderr, "master: no kernel receive timestamps here; reading the clock after each read\n");
                warned_timestamps_ = true;
            }
            conns_[peer] = std::move(c);
            role_->on_accept(peer, address, host_now());
        }
    }

    // Out of file descriptors: stop watching the listener (it would stay
    // readable and spin the loop) until a connection closes. Said once.
    void pause_listener(const std::string& why) {
        std::string error;
        if (!loop_.modify(listener_.get(), 0, base_, error)) return;
        paused_ = true;
        std::fprintf(stderr, "master: %s: not accepting until a connection closes\n", why.c_str());
        role_->note_paused(why, host_now());
    }
    void resume_listener() {
        std::string error;
        if (loop_.modify(listener_.get(), EPOLLIN, base_, error)) paused_ = false;
    }

    EventLoop& loop_;
    uint64_t base_;
    bool kernel_timestamps_;
    MasterRole* role_ = nullptr;
    Fd listener_;
    std::unordered_map<uint64_t, std::unique_ptr<LineConn>> conns_;  // by peer id
    uint64_t next_peer_ = FIRST_PEER_KEY;
    bool warned_timestamps_ = false;
    bool paused_ = false;
};

// One turn of a master's life in the loop, after the loop's events: the
// round moves on. Ends (true) when the master is finished.
inline bool master_turn(MasterRole& role) {
    if (g_stop_signal) role.stop("signal", host_now());
    return role.finished(host_now());
}

}  // namespace berkeley
