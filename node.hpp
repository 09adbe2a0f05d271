// node.hpp - the I/O shell around the roles: the one place where sockets,
// epoll and the host clocks meet the roles' events. A node is one process
// with one event loop hosting roles: a master (MasterHost: a listener and
// its connections around master_role.hpp), slaves (SlaveHost: one
// connection each around slave_role.hpp), or a slave that becomes a master
// in place when it takes over. Each role's timers and connections are
// tokens in the loop from a base of its own, so roles never mix them up.
#pragma once

#include <algorithm>
#include <array>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "master_role.hpp"
#include "slave_role.hpp"
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
    // The master role is over: its sockets go (the listener too), and its timers.
    void close_all() {
        if (listener_.valid()) loop_.remove(listener_.get());
        listener_.reset();
        for (auto& [peer, fd] : dialing_) loop_.remove(fd.get());
        dialing_.clear();
        conns_.clear();
        for (uint64_t key = 1; key < next_peer_; ++key) loop_.disarm(base_ + key);
    }
    bool owns(uint64_t token) const { return token >= base_; }

    void on_file(uint64_t token, uint32_t events) {
        if (token == base_) return on_listener_ready();
        const uint64_t peer = token - base_;
        if (dialing_.count(peer)) return on_dial_done(peer);
        auto it = conns_.find(peer);
        if (it == conns_.end()) return;
        LineConn& conn = *it->second;  // a peer being dropped reads no more: its on_line says so
        if ((events & EPOLLOUT) && !conn.flush()) return role_->on_closed(peer, conn.error(), false, host_now());
        if ((events & EPOLLOUT) || role_->phase() == Phase::Closing) role_->on_flushed(peer, host_now());
        if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
        if (!conn.reading()) {  // the role wants no more of it (stop_reading): only its end is news
            if (events & (EPOLLERR | EPOLLHUP)) role_->on_closed(peer, "", false, host_now());
            return;
        }
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
    void stop_reading(uint64_t peer) override {
        LineConn* c = conn(peer);
        if (c && !c->stop_reading()) std::fprintf(stderr, "master: %s\n", c->error().c_str());  // read on: the role ignores it
    }
    std::optional<uint64_t> dial(const std::string& address, std::string& error) override {
        std::string host;
        uint16_t port = 0;
        if (!split_address(address, host, port)) return error = "bad address " + address, std::nullopt;
        Fd fd = connect_tcp(host, port, error);
        const uint64_t peer = next_peer_++;
        if (!fd.valid() || !loop_.add(fd.get(), EPOLLOUT, base_ + peer, error)) return std::nullopt;
        dialing_[peer] = std::move(fd);
        return peer;
    }
    void close(uint64_t peer) override {
        if (auto d = dialing_.find(peer); d != dialing_.end()) {
            loop_.remove(d->second.get());
            dialing_.erase(d);
        }
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

    // A connection we dialed is up, or failed.
    void on_dial_done(uint64_t peer) {
        Fd fd = std::move(dialing_[peer]);
        dialing_.erase(peer);
        loop_.remove(fd.get());
        const int err = connect_error(fd.get());
        if (err != 0) return role_->on_closed(peer, std::string("connect: ") + std::strerror(err), false, host_now());
        auto c = std::make_unique<LineConn>(loop_, std::move(fd), base_ + peer);
        std::string error;
        if (!c->start(error)) return role_->on_closed(peer, error, false, host_now());
        conns_[peer] = std::move(c);
        role_->on_dialed(peer, host_now());
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
    std::unordered_map<uint64_t, Fd> dialing_;                       // ours, being connected: by peer id
    uint64_t next_peer_ = FIRST_PEER_KEY;
    bool warned_timestamps_ = false;
    bool paused_ = false;
};

// ---------------------------------------------------------------------------
// How long a slave takes from reading its clock for a reply to sending it
// (parsing the request, building and tagging the line), so that its T3 can
// name the moment the line leaves: the fastest of the last BUILD_SAMPLES
// replies of every slave in this process, once there are MIN_BUILD_SAMPLES.
// The fastest, because an estimate too long would shorten the probe's
// measured delay and make a biased probe look best.
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

// A slave's one connection (and its attempt to connect), its timer, and the
// listener it would serve on as a master: all token `token` in the loop but
// the listener, which nobody watches until a takeover (connections wait in
// its backlog).
class SlaveHost final : public SlaveIo {
public:
    // `serve_port`: -1 a free port, 0 none, else that port. `take_over`
    // starts the master role on the listener, handed over with the plan.
    using TakeOver = std::function<bool(const Plan&, Fd listener, std::string& error)>;
    SlaveHost(EventLoop& loop, uint64_t token, bool kernel_timestamps, int serve_port, BuildTime& build, TakeOver take)
        : loop_(loop), token_(token), kernel_timestamps_(kernel_timestamps), serve_port_(serve_port), build_(build),
          take_over_(std::move(take)) {}

    void attach(SlaveRole& role, Console console) {
        role_ = &role;
        console_ = console;
    }

    // A master that yielded and follows the one that outranks it: its
    // listener, where slaves and masters still come, is watched (token
    // listener_token()) and sends each newcomer on (FOLLOW).
    static constexpr uint64_t LISTENER_BIT = 1ULL << 39;
    void send_newcomers_on() { redirects_ = true; }
    uint64_t listener_token() const { return token_ | LISTENER_BIT; }
    void on_listener() {
        for (int accepted = 0; accepted < 64; ++accepted) {
            std::string address, error;
            Fd fd = accept_tcp(listener_.get(), address, error);
            if (!fd.valid()) return;
            if (!role_->following()) continue;  // nobody to send it to now: closed
            const std::string line = format_message(Follow{role_->master()});
            (void)!::send(fd.get(), line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        }
    }

    // A connection the role closed from inside its own read is freed once
    // that read has returned, here: also when the role took over meanwhile
    // (this host then hears nothing more, and the peer must see it close).
    void on_file(uint32_t events) {
        handle(events);
        retired_.reset();
    }
    void on_timer() {
        role_->on_timer(host_now());
        retired_.reset();
    }

    // SlaveIo
    bool connect(const std::string& address, std::string& error) override {
        std::string host;
        uint16_t port = 0;
        if (!split_address(address, host, port)) {
            error = "connect: bad address " + address;
            return false;
        }
        connecting_ = connect_tcp(host, port, error);
        if (connecting_.valid() && loop_.add(connecting_.get(), EPOLLOUT, token_, error)) return true;
        connecting_.reset();
        return false;
    }
    bool send(std::string_view line, std::string& error) override {
        if (conn_ && conn_->send(line)) return true;
        error = conn_ ? conn_->error() : "not connected";
        return false;
    }
    bool send_reply(std::string_view line, std::string& error) override {
        build_.add(realtime_ns() - stamp_real_ns_);
        return send(line, error);
    }
    // Over: unwatched now, freed when the event being handled is done (we may be inside its own read).
    void close() override {
        if (connecting_.valid()) loop_.remove(connecting_.get());
        connecting_.reset();
        if (conn_) conn_->stop_watching();
        if (conn_) retired_ = std::move(conn_);
    }
    void arm(int64_t due_mono_ns) override { loop_.arm(token_, due_mono_ns); }
    void disarm() override { loop_.disarm(token_); }
    int64_t reply_leaves_real_ns(const Now&) override {
        stamp_real_ns_ = realtime_ns();
        return stamp_real_ns_ + build_.predict_ns();
    }
    bool take_over(const Plan& plan, std::string& error) override {
        close();
        disarm();
        if (redirects_ && listener_.valid()) loop_.remove(listener_.get());  // the master's to watch now
        redirects_ = false;
        if (!listener_.valid()) {
            error = "no listener to serve on";
            return false;
        }
        return take_over_(plan, std::move(listener_), error);
    }

private:
    void handle(uint32_t events) {
        if (connecting_.valid()) {
            if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
            loop_.remove(connecting_.get());
            const int err = connect_error(connecting_.get());
            if (err != 0) return role_->on_connect_failed(std::string("connect: ") + std::strerror(err), host_now());
            return on_connected();
        }
        if (!conn_) return;
        if ((events & EPOLLOUT) && !conn_->flush()) return role_->on_closed(conn_->error(), host_now());
        auto status = conn_->read_lines([this](const std::string& line, int64_t recv_real_ns) {
            return role_->on_line(line, recv_real_ns, host_now());
        });
        if (!conn_) return;  // the role ended the connection
        if (status == LineConn::Status::Closed) role_->on_closed("the master closed the connection", host_now());
        else if (status == LineConn::Status::Failed) role_->on_closed(conn_->error(), host_now());
    }

    void on_connected() {
        std::string error;
        if (!listener_.valid()) open_listener(connecting_.get());
        conn_ = std::make_unique<LineConn>(loop_, std::move(connecting_), token_);
        if (!conn_->start(error)) return role_->on_closed(error, host_now());
        if (kernel_timestamps_ && !conn_->enable_kernel_timestamps() && !warned_timestamps_) {
            console_.say("%s: no kernel receive timestamps here; reading the clock after each read\n", role_->id().c_str());
            warned_timestamps_ = true;
        }
        Nonce nonce{};
        const bool random = random_bytes(nonce);
        role_->on_connected(serving_, listener_.valid() ? local_port(listener_.get()) : uint16_t(0),
                            random ? std::optional<Nonce>(nonce) : std::nullopt, host_now());
    }

    // Listen where we would serve as master, on the address we reach the master from.
    void open_listener(int connected_fd) {
        if (serve_port_ == 0) return;
        const std::string local = local_address(connected_fd);
        std::string host, error;
        uint16_t unused = 0;
        if (!split_address(local, host, unused)) return;
        listener_ = listen_tcp(host, serve_port_ > 0 ? static_cast<uint16_t>(serve_port_) : 0, error);
        if (!listener_.valid()) {
            console_.say("%s: cannot serve as a successor: %s\n", role_->id().c_str(), error.c_str());
            serve_port_ = 0;
            return;
        }
        serving_ = local.substr(0, local.rfind(':')) + ":" + std::to_string(local_port(listener_.get()));
        if (redirects_ && !loop_.add(listener_.get(), EPOLLIN, listener_token(), error)) redirects_ = false;
    }

    EventLoop& loop_;
    uint64_t token_;
    bool kernel_timestamps_;
    int serve_port_;
    BuildTime& build_;  // shared by the slaves of this process
    TakeOver take_over_;
    SlaveRole* role_ = nullptr;
    Console console_;
    Fd connecting_;                      // while the TCP handshake is under way
    std::unique_ptr<LineConn> conn_;     // once connected
    std::unique_ptr<LineConn> retired_;  // closed from inside its own read: freed after it
    Fd listener_;                        // listening, unwatched, for the day we take over
    std::string serving_;                // its "host:port", as the master sees it
    int64_t stamp_real_ns_ = 0;          // when the last reply's T3 was read
    bool redirects_ = false;             // send_newcomers_on()
    bool warned_timestamps_ = false;
};

// One turn of a master's life in the loop, after the loop's events: the
// round moves on. Ends (true) when the master is finished.
inline bool master_turn(MasterRole& role) {
    if (g_stop_signal) role.stop("signal", host_now());
    return role.finished(host_now());
}

}  // namespace berkeley
