// linkemu.cpp - a link emulator for the benchmarks' router namespace: a
// transparent layer-2 relay between two interfaces that holds each frame for
// a per-direction delay (+/- uniform jitter), drops a share of them, and
// measures the delay it really applied from kernel RX and TX stamps.
// Left out: bandwidth limits, reordering, duplication, corruption (a kernel
// with netem would do those; this one has none, hence this program).
//
//   linkemu --a IFACE --b IFACE [--a-to-b DELAY_US[:JITTER_US[:LOSS_PERCENT]]]
//           [--b-to-a SPEC] [--seed N] [--stats FILE]
//
// Prints "linkemu: ready" once both sockets listen; on SIGTERM or SIGINT it
// writes the stats (JSON, documented above write_stats) and exits 0.
#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <linux/errqueue.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/net_tstamp.h>
#include <net/if.h>
#include <optional>
#include <random>
#include <string>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <utility>
#include <vector>

#include "../os.hpp"  // Fd, realtime_ns, sys_error

namespace {

using berkeley::Fd;
using berkeley::monotonic_ns;
using berkeley::realtime_ns;
using berkeley::sys_error;

constexpr size_t MAX_FRAME_BYTES = 128 * 1024;          // a GSO frame is at most 64 KiB + headers
constexpr size_t VNET_HDR_BYTES = 10;                    // struct virtio_net_hdr (its header is not C++-clean)
constexpr size_t MAX_QUEUE_FRAMES = 100'000;            // per direction; beyond, frames are dropped
constexpr size_t MAX_QUEUE_BYTES = 256u << 20;          // per direction, so 64 KiB GSO frames cannot eat the VM
constexpr size_t MAX_SAMPLES = 100'000;                 // achieved delays kept per direction (the last ones)
constexpr int RCVBUF_BYTES = 8 << 20;                   // a burst waits in the kernel while we are asleep
constexpr int BATCH_FRAMES = 64;                        // reads per socket per turn: neither side starves the other
constexpr int64_t SPIN_BEFORE_DUE_NS = 2'000'000;       // epoll's wake-up is too coarse for the last 2 ms
constexpr int64_t SPIN_AFTER_ARRIVAL_NS = 20'000'000;   // the rest of a burst is read as it comes
constexpr int64_t TX_STAMP_WAIT_NS = 100'000'000;       // a TX stamp not back by then never comes
constexpr int64_t LATE_NS = 50'000;                     // achieved beyond scheduled by this: "late"
constexpr int64_t SANE_STAMP_NS = 10'000'000'000;       // an RX stamp further than this from now is not REALTIME

uint64_t random_seed() {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = static_cast<uint64_t>(realtime_ns());
    return seed;
}

// ---------------------------------------------------------------------------
// The command line.

struct LinkSpec {
    int64_t delay_ns = 0;
    int64_t jitter_ns = 0;
    double loss_percent = 0;
};

std::optional<int64_t> parse_us(const std::string& s) {
    if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoll(s) * 1000;
}

// "DELAY_US[:JITTER_US[:LOSS_PERCENT]]", e.g. "500", "500:200", "500:200:1.5".
std::optional<LinkSpec> parse_spec(const std::string& text) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t colon; (colon = text.find(':', start)) != std::string::npos; start = colon + 1)
        parts.push_back(text.substr(start, colon - start));
    parts.push_back(text.substr(start));
    if (parts.size() > 3) return std::nullopt;
    LinkSpec spec;
    const auto delay = parse_us(parts[0]);
    if (!delay) return std::nullopt;
    spec.delay_ns = *delay;
    if (parts.size() > 1) {
        const auto jitter = parse_us(parts[1]);
        if (!jitter) return std::nullopt;
        spec.jitter_ns = *jitter;
    }
    if (parts.size() > 2) {
        const std::string& loss = parts[2];
        char* end = nullptr;
        errno = 0;
        spec.loss_percent = std::strtod(loss.c_str(), &end);
        if (loss.empty() || *end != '\0' || errno != 0 || !(spec.loss_percent >= 0 && spec.loss_percent <= 100))
            return std::nullopt;
    }
    return spec;
}

struct Options {
    std::string iface[2];
    LinkSpec spec[2];  // [0] a to b, [1] b to a
    std::optional<uint64_t> seed;
    std::string stats_path;
};

// Options, or a one-line reason in `error`.
std::optional<Options> parse_args(int argc, char** argv, std::string& error) {
    Options o;
    for (int i = 1; i < argc; i += 2) {
        const std::string name = argv[i];
        if (i + 1 >= argc) {
            error = name + " needs a value";
            return std::nullopt;
        }
        const std::string value = argv[i + 1];
        if (name == "--a" || name == "--b") {
            if (value.empty() || value.size() >= IFNAMSIZ) {
                error = "bad interface name for " + name;
                return std::nullopt;
            }
            o.iface[name == "--b"] = value;
        } else if (name == "--a-to-b" || name == "--b-to-a") {
            const auto spec = parse_spec(value);
            if (!spec) {
                error = "bad " + name + " '" + value + "': DELAY_US[:JITTER_US[:LOSS_PERCENT]]";
                return std::nullopt;
            }
            o.spec[name == "--b-to-a"] = *spec;
        } else if (name == "--seed") {
            if (value.empty() || value.size() > 19 || value.find_first_not_of("0123456789") != std::string::npos) {
                error = "bad --seed '" + value + "'";
                return std::nullopt;
            }
            o.seed = std::stoull(value);
        } else if (name == "--stats") {
            o.stats_path = value;
        } else {
            error = "unknown option '" + name + "'";
            return std::nullopt;
        }
    }
    if (o.iface[0].empty() || o.iface[1].empty()) {
        error = "--a and --b are required";
        return std::nullopt;
    }
    if (o.iface[0] == o.iface[1]) {
        error = "--a and --b must differ";
        return std::nullopt;
    }
    return o;
}

// ---------------------------------------------------------------------------
// One interface: an AF_PACKET socket that sees every frame arriving on it
// and sends frames out of it unchanged.
//
// PACKET_VNET_HDR: a veth frame may be a 64 KiB TCP super-frame (GSO) or
// carry a checksum still to be filled in (CHECKSUM_PARTIAL). A plain packet
// socket would refuse the first and deliver the second with a wrong checksum;
// with the virtio header in front of each frame both cross intact, with no
// change to the hosts' offload settings.
class Port {
public:
    [[nodiscard]] bool open(const std::string& iface, std::string& error) {
        name_ = iface;
        const unsigned index = if_nametoindex(iface.c_str());
        if (index == 0) {
            error = sys_error("if_nametoindex") + " (" + iface + ")";
            return false;
        }
        // Protocol 0 until bound: no frame from another interface can slip in before bind().
        fd_ = Fd(socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd_.valid()) {
            error = sys_error("socket(AF_PACKET)");
            return false;
        }
        const int one = 1;
        if (!set(SOL_PACKET, PACKET_VNET_HDR, one, "PACKET_VNET_HDR", error)) return false;
        // Frames we (or the router's own stack) send would come back as PACKET_OUTGOING.
        // Best effort: receive() skips them anyway.
        setsockopt(fd_.get(), SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
        // Beyond net.core.rmem_max only as root (SO_RCVBUFFORCE); else as much as allowed.
        if (setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUFFORCE, &RCVBUF_BYTES, sizeof RCVBUF_BYTES) != 0)
            setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &RCVBUF_BYTES, sizeof RCVBUF_BYTES);
        sockaddr_ll sll{};
        sll.sll_family = AF_PACKET;
        sll.sll_protocol = htons(ETH_P_ALL);
        sll.sll_ifindex = static_cast<int>(index);
        if (bind(fd_.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
            error = sys_error("bind") + " (" + iface + ")";
            return false;
        }
        // Promiscuous, so frames for the far side's MAC reach us on any device.
        packet_mreq mr{};
        mr.mr_ifindex = static_cast<int>(index);
        mr.mr_type = PACKET_MR_PROMISC;
        if (setsockopt(fd_.get(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) != 0) {
            error = sys_error("PACKET_ADD_MEMBERSHIP") + " (" + iface + ")";
            return false;
        }
        // Kernel stamps on CLOCK_REALTIME: when a frame reached this socket's
        // device, and when one we sent left through the other end's.
        int flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_TX_SOFTWARE |
                    SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY;
        tx_stamps_ = setsockopt(fd_.get(), SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) == 0;
        if (!tx_stamps_) {
            flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
            if (!set(SOL_SOCKET, SO_TIMESTAMPING, flags, "SO_TIMESTAMPING", error)) return false;
        }
        return true;
    }

    struct Frame {
        size_t bytes = 0;    // in buf(), virtio header included
        int64_t rx_real_ns = 0;
        bool kernel_stamp = false;
    };

    // One frame that arrived on this interface, or nullopt when none is
    // left. Frames this host sent out of it are skipped (nothing loops);
    // `truncated` counts frames larger than the buffer.
    std::optional<Frame> receive(uint64_t& truncated) {
        while (true) {
            sockaddr_ll from{};
            iovec iov{buf_.data(), buf_.size()};
            alignas(cmsghdr) char control[256];
            msghdr msg{};
            msg.msg_name = &from;
            msg.msg_namelen = sizeof from;
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control;
            msg.msg_controllen = sizeof control;
            const ssize_t n = recvmsg(fd_.get(), &msg, MSG_DONTWAIT | MSG_TRUNC);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return std::nullopt;  // EAGAIN, or an error the next read will see again
            const int64_t read_real_ns = realtime_ns();
            if (from.sll_pkttype == PACKET_OUTGOING) continue;
            if (static_cast<size_t>(n) > buf_.size() || (msg.msg_flags & MSG_TRUNC)) {
                ++truncated;
                continue;
            }
            Frame f{static_cast<size_t>(n), read_real_ns, false};
            // A stamp far from REALTIME would be some other clock's (a sender's
            // monotonic delivery time, should the kernel pass one on): then
            // only our read time is known.
            const int64_t stamp = stamp_of(msg);
            if (stamp != 0 && std::llabs(stamp - read_real_ns) < SANE_STAMP_NS) {
                f.rx_real_ns = stamp;
                f.kernel_stamp = true;
            }
            return f;
        }
    }

    const uint8_t* buf() const { return buf_.data(); }

    // Send one frame (virtio header first). 0 or the errno of the failure.
    int send(const std::vector<uint8_t>& frame) {
        while (true) {
            if (::send(fd_.get(), frame.data(), frame.size(), MSG_DONTWAIT) >= 0) return 0;
            if (errno != EINTR) return errno;
        }
    }

    // One TX stamp from the error queue: the stamped frame's id (the count of
    // frames this socket sent before it, see OPT_ID) and when it left.
    struct TxStamp {
        uint32_t id;
        int64_t real_ns;
    };
    std::optional<TxStamp> tx_stamp() {
        while (true) {
            alignas(cmsghdr) char control[512];
            msghdr msg{};
            msg.msg_control = control;
            msg.msg_controllen = sizeof control;
            const ssize_t n = recvmsg(fd_.get(), &msg, MSG_ERRQUEUE | MSG_DONTWAIT);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return std::nullopt;
            std::optional<uint32_t> id;
            for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
                if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_TX_TIMESTAMP) continue;
                sock_extended_err ee;
                std::memcpy(&ee, CMSG_DATA(c), sizeof ee);
                if (ee.ee_errno == ENOMSG && ee.ee_origin == SO_EE_ORIGIN_TIMESTAMPING) id = ee.ee_data;
            }
            const int64_t stamp = stamp_of(msg);
            if (id && stamp != 0) return TxStamp{*id, stamp};
        }
    }

    // Frames the kernel dropped because our receive buffer was full (since the last call).
    uint64_t kernel_drops() {
        tpacket_stats st{};
        socklen_t len = sizeof st;
        if (getsockopt(fd_.get(), SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) return 0;
        return st.tp_drops;
    }

    int fd() const { return fd_.get(); }
    bool tx_stamps() const { return tx_stamps_; }

private:
    bool set(int level, int option, int value, const char* what, std::string& error) {
        if (setsockopt(fd_.get(), level, option, &value, sizeof value) == 0) return true;
        error = sys_error(what) + " (" + name_ + ")";
        return false;
    }

    // The software stamp (CLOCK_REALTIME) of an SCM_TIMESTAMPING message, 0 if none.
    static int64_t stamp_of(msghdr& msg) {
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPING) continue;
            scm_timestamping ts;
            std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
            return static_cast<int64_t>(ts.ts[0].tv_sec) * 1'000'000'000 + ts.ts[0].tv_nsec;
        }
        return 0;
    }

    std::string name_;
    Fd fd_;
    bool tx_stamps_ = false;
    std::vector<uint8_t> buf_ = std::vector<uint8_t>(MAX_FRAME_BYTES);
};

// ---------------------------------------------------------------------------
// One direction of the link: the frames held, the frames sent whose TX stamp
// is still to come, and what was measured.
//
//   arrival (kernel RX stamp) --- delay drawn, never before the previous frame's due --- due --- TX stamp
//   achieved = TX stamp - RX stamp; late when achieved > scheduled (due - arrival) + 50 us

struct Held {
    std::vector<uint8_t> bytes;
    int64_t rx_real_ns;
    int64_t due_mono_ns;      // departures are scheduled on CLOCK_MONOTONIC, which nothing steps
    int64_t scheduled_ns;     // due - arrival, after the FIFO rule
};

struct InFlight {
    uint32_t id;              // our number for it; the kernel's OPT_ID is this + the port's id_offset_
    int64_t rx_real_ns;
    int64_t scheduled_ns;
    int64_t before_real_ns;   // just before send(): a stamp earlier than this is not this frame's
    int64_t after_real_ns;    // just after send(): the fallback when no stamp comes
    int64_t sent_mono_ns;
};

struct Direction {
    LinkSpec spec;
    std::deque<Held> queue;
    size_t queued_bytes = 0;
    int64_t last_due_mono_ns = 0;
    std::deque<InFlight> in_flight;
    // Counters for the stats.
    uint64_t frames = 0, sent = 0, dropped = 0, lost = 0, queue_full = 0, send_errors = 0, truncated = 0;
    uint64_t late = 0, non_ip = 0, rx_user_stamps = 0, tx_user_stamps = 0, kernel_drops = 0;
    std::vector<double> samples_us;  // a ring of the last MAX_SAMPLES achieved delays
    size_t next_sample = 0;

    void record(int64_t achieved_ns, int64_t scheduled_ns, bool kernel_tx) {
        if (!kernel_tx) ++tx_user_stamps;
        if (achieved_ns - scheduled_ns > LATE_NS) ++late;
        const double us = static_cast<double>(achieved_ns) / 1000.0;
        if (samples_us.size() < MAX_SAMPLES) {
            samples_us.push_back(us);
        } else {
            samples_us[next_sample] = us;
            next_sample = (next_sample + 1) % MAX_SAMPLES;
        }
    }
    std::vector<double> samples_in_order() const {
        std::vector<double> out(samples_us.begin() + static_cast<ptrdiff_t>(next_sample), samples_us.end());
        out.insert(out.end(), samples_us.begin(), samples_us.begin() + static_cast<ptrdiff_t>(next_sample));
        return out;
    }
};

bool is_ip(const uint8_t* frame, size_t bytes) {
    const size_t at = VNET_HDR_BYTES + 12;  // the EtherType, after both MACs
    if (bytes < at + 2) return false;
    const unsigned type = static_cast<unsigned>(frame[at] << 8 | frame[at + 1]);
    return type == ETH_P_IP || type == ETH_P_IPV6;
}

// ---------------------------------------------------------------------------
// The relay: one thread, one epoll fd. It sleeps in epoll while nothing is
// near, and spins (epoll with a zero timeout) when a departure is due within
// SPIN_BEFORE_DUE_NS or a frame came within SPIN_AFTER_ARRIVAL_NS: the VM's
// timers and wake-ups are hundreds of microseconds coarse, the link is not.
// SIGINT and SIGTERM come as a readable signalfd in the same epoll set: a
// zero-timeout epoll_pwait2 never delivers a signal its mask unblocks (only a
// sleeping one does), so a flag set by a handler would wait out a busy link.

class Relay {
public:
    Relay(const Options& o, uint64_t seed) : rng_(seed) {
        dir_[0].spec = o.spec[0];
        dir_[1].spec = o.spec[1];
    }

    // `stop`: the signals that end run(), already blocked by the caller.
    [[nodiscard]] bool open(const Options& o, const sigset_t& stop, std::string& error) {
        for (int i = 0; i < 2; ++i)
            if (!port_[i].open(o.iface[i], error)) return false;
        signals_ = Fd(signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC));
        if (!signals_.valid()) {
            error = sys_error("signalfd");
            return false;
        }
        epfd_ = Fd(epoll_create1(EPOLL_CLOEXEC));
        if (!epfd_.valid()) {
            error = sys_error("epoll_create1");
            return false;
        }
        const int fds[3] = {port_[0].fd(), port_[1].fd(), signals_.get()};
        for (uint32_t token = 0; token < 3; ++token) {
            epoll_event ev{};
            ev.events = EPOLLIN;  // EPOLLERR (a TX stamp is waiting) comes unasked
            ev.data.u32 = token;  // 0 and 1 the ports, SIGNAL_TOKEN the signalfd
            if (epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fds[token], &ev) != 0) {
                error = sys_error("epoll_ctl");
                return false;
            }
        }
        for (int i = 0; i < 2; ++i) port_[i].kernel_drops();  // start counting from now
        return true;
    }

    // Until SIGINT or SIGTERM. False with `error` when epoll itself fails.
    [[nodiscard]] bool run(std::string& error) {
        while (true) {
            const int64_t timeout_ns = next_timeout_ns(monotonic_ns());
            timespec ts{timeout_ns / 1'000'000'000, timeout_ns % 1'000'000'000};
            epoll_event events[3];
            const int n = epoll_pwait2(epfd_.get(), events, 3, timeout_ns < 0 ? nullptr : &ts, nullptr);
            if (n < 0 && errno != EINTR) {
                error = sys_error("epoll_pwait2");
                return false;
            }
            for (int i = 0; i < n; ++i) {
                const uint32_t token = events[i].data.u32;
                if (token == SIGNAL_TOKEN) return true;  // the signal stays pending, and blocked
                if (events[i].events & EPOLLIN) on_readable(static_cast<int>(token));
                if (events[i].events & EPOLLERR) on_tx_stamps(static_cast<int>(token));
            }
            depart(monotonic_ns());
        }
    }

    // Stamps still on their way, then the leftovers at their send() time.
    void finish() {
        for (int p = 0; p < 2; ++p) {
            on_tx_stamps(p);
            Direction& d = dir_[1 - p];
            while (!d.in_flight.empty()) settle_by_user_clock(d);
            dir_[p].kernel_drops += port_[p].kernel_drops();
        }
    }

    // "kernel" in the stats: the sockets took the option and, once frames
    // were sent, the kernel really stamped them (veth calls skb_tx_timestamp).
    bool tx_kernel_stamps() const {
        const bool any_sent = dir_[0].sent + dir_[1].sent > 0;
        return port_[0].tx_stamps() && port_[1].tx_stamps() && (!any_sent || tx_stamps_seen_ > 0);
    }
    const Direction& direction(int i) const { return dir_[i]; }
    uint64_t tx_resyncs() const { return tx_resyncs_; }

private:
    // 0 to spin, -1 to sleep until a frame comes, else how long to sleep.
    int64_t next_timeout_ns(int64_t now) const {
        if (now - last_arrival_mono_ns_ < SPIN_AFTER_ARRIVAL_NS) return 0;
        int64_t timeout = -1;
        for (const Direction& d : dir_) {
            if (!d.queue.empty()) {
                const int64_t wake = std::max<int64_t>(0, d.queue.front().due_mono_ns - now - SPIN_BEFORE_DUE_NS);
                timeout = timeout < 0 ? wake : std::min(timeout, wake);
            }
            if (!d.in_flight.empty()) {  // wake to give up on a stamp that never came
                const int64_t wake = std::max<int64_t>(0, d.in_flight.front().sent_mono_ns + TX_STAMP_WAIT_NS - now);
                timeout = timeout < 0 ? wake : std::min(timeout, wake);
            }
        }
        return timeout;
    }

    // Frames arriving on port p go the other way: p 0 (a) feeds direction 0 (a to b).
    void on_readable(int p) {
        Direction& d = dir_[p];
        Port& port = port_[p];
        const int64_t mono_now = monotonic_ns();
        // RX stamps are REALTIME; this offset turns them into monotonic due times.
        const int64_t real_minus_mono = realtime_ns() - mono_now;
        const uint64_t truncated_before = d.truncated;
        for (int i = 0; i < BATCH_FRAMES; ++i) {
            const auto f = port.receive(d.truncated);
            if (!f) break;
            last_arrival_mono_ns_ = mono_now;
            ++d.frames;
            if (!f->kernel_stamp) ++d.rx_user_stamps;
            if (!is_ip(port.buf(), f->bytes)) ++d.non_ip;
            hold(d, port.buf(), *f, real_minus_mono);
        }
        d.frames += d.truncated - truncated_before;  // they arrived, and the link lost them
        d.dropped += d.truncated - truncated_before;
    }

    void hold(Direction& d, const uint8_t* bytes, const Port::Frame& f, int64_t real_minus_mono) {
        // Both draws for every frame: the sequence for a seed does not depend on which were lost.
        const bool lose = std::uniform_real_distribution<double>(0.0, 100.0)(rng_) < d.spec.loss_percent;
        int64_t delay_ns = d.spec.delay_ns;
        if (d.spec.jitter_ns > 0)
            delay_ns += std::uniform_int_distribution<int64_t>(-d.spec.jitter_ns, d.spec.jitter_ns)(rng_);
        delay_ns = std::max<int64_t>(0, delay_ns);
        if (lose) {
            ++d.lost;
            ++d.dropped;
            return;
        }
        if (d.queue.size() >= MAX_QUEUE_FRAMES || d.queued_bytes + f.bytes > MAX_QUEUE_BYTES) {
            ++d.queue_full;
            ++d.dropped;
            return;
        }
        // A link does not reorder: never due before the frame ahead of it.
        const int64_t due = std::max(f.rx_real_ns - real_minus_mono + delay_ns, d.last_due_mono_ns);
        d.last_due_mono_ns = due;
        const int64_t scheduled = due - (f.rx_real_ns - real_minus_mono);
        d.queue.push_back(Held{std::vector<uint8_t>(bytes, bytes + f.bytes), f.rx_real_ns, due, scheduled});
        d.queued_bytes += f.bytes;
    }

    // Send every frame whose time has come, in order, out of the far port.
    void depart(int64_t now) {
        for (int i = 0; i < 2; ++i) {
            Direction& d = dir_[i];
            Port& out = port_[1 - i];
            while (!d.queue.empty() && d.queue.front().due_mono_ns <= now) {
                Held h = std::move(d.queue.front());
                d.queue.pop_front();
                d.queued_bytes -= h.bytes.size();
                const int64_t before = realtime_ns();
                const int err = out.send(h.bytes);
                const int64_t after = realtime_ns();
                if (err != 0) {  // ENOBUFS and the like: the link lost it
                    ++d.send_errors;
                    ++d.dropped;
                    continue;
                }
                ++d.sent;
                if (!out.tx_stamps()) {
                    d.record(after - h.rx_real_ns, h.scheduled_ns, false);
                    continue;
                }
                d.in_flight.push_back(InFlight{next_id_[1 - i]++, h.rx_real_ns, h.scheduled_ns, before, after,
                                               monotonic_ns()});
            }
            // Stamps that never came: count those frames by our own clock.
            while (!d.in_flight.empty() && now - d.in_flight.front().sent_mono_ns > TX_STAMP_WAIT_NS)
                settle_by_user_clock(d);
        }
    }

    // TX stamps of frames sent out of port p (direction 1 - p). The kernel
    // numbers the frames a socket sends (OPT_ID), and we number them too;
    // the two counts differ by id_offset_, which changes only when a failed
    // send did (or did not) use up a number. A stamp taken before its frame's
    // send() began shows such a slip: the frame is then the last one whose
    // send() began before the stamp (veth stamps inside send()), and the
    // offset is set again from it. Frames passed over keep the user clock.
    void on_tx_stamps(int p) {
        Direction& d = dir_[1 - p];
        while (const auto stamp = port_[p].tx_stamp()) {
            ++tx_stamps_seen_;
            size_t at = 0;
            while (at < d.in_flight.size() && d.in_flight[at].id + id_offset_[p] != stamp->id) ++at;
            if (at == d.in_flight.size() || d.in_flight[at].before_real_ns > stamp->real_ns) {
                at = d.in_flight.size();
                while (at > 0 && d.in_flight[at - 1].before_real_ns > stamp->real_ns) --at;
                if (at-- == 0) continue;  // no frame of ours was on its way then
                id_offset_[p] = stamp->id - d.in_flight[at].id;
                ++tx_resyncs_;
            }
            while (at-- > 0) settle_by_user_clock(d);
            const InFlight f = d.in_flight.front();
            d.in_flight.pop_front();
            d.record(stamp->real_ns - f.rx_real_ns, f.scheduled_ns, true);
        }
    }

    void settle_by_user_clock(Direction& d) {
        const InFlight f = d.in_flight.front();
        d.in_flight.pop_front();
        d.record(f.after_real_ns - f.rx_real_ns, f.scheduled_ns, false);
    }

    std::mt19937_64 rng_;
    Port port_[2];
    Direction dir_[2];
    uint32_t next_id_[2] = {0, 0};    // per port: our number for the next frame sent out of it
    uint32_t id_offset_[2] = {0, 0};  // per port: the kernel's OPT_ID minus our number
    uint64_t tx_stamps_seen_ = 0;
    uint64_t tx_resyncs_ = 0;
    int64_t last_arrival_mono_ns_ = INT64_MIN / 2;
    static constexpr uint32_t SIGNAL_TOKEN = 2;
    Fd signals_;
    Fd epfd_;
};

// ---------------------------------------------------------------------------
// The stats file, one JSON object:
//   {"tx_stamp": "kernel"|"user", "tx_resyncs": N (see on_tx_stamps), "seed": N,
//    "directions": {"a_to_b": D, "b_to_a": D}}
// D: nominal_delay_us, jitter_us, loss_percent (as asked); frames (arrived),
// sent, dropped (= lost + queue_full + send_errors + truncated), late
// (achieved > scheduled + 50 us, the schedule including the FIFO hold),
// non_ip (ARP and the like, relayed and counted like the rest), rx_user_stamps
// and tx_user_stamps (frames timed by our clock, not the kernel's),
// kernel_drops (the receive buffer overflowed); then the achieved delay in
// microseconds over the kept samples: min, p10, median, p90, max, mean (null
// with no samples), and samples_us, the last 100000 in order.

double percentile(const std::vector<double>& sorted, double p) {
    const double at = p * static_cast<double>(sorted.size() - 1);
    const size_t lo = static_cast<size_t>(at);
    const size_t hi = std::min(lo + 1, sorted.size() - 1);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - static_cast<double>(lo));
}

void write_direction(FILE* f, const Direction& d) {
    std::fprintf(f, "{\"nominal_delay_us\": %lld, \"jitter_us\": %lld, \"loss_percent\": %g, ",
                 static_cast<long long>(d.spec.delay_ns / 1000), static_cast<long long>(d.spec.jitter_ns / 1000),
                 d.spec.loss_percent);
    const unsigned long long counts[] = {d.frames,     d.sent,        d.dropped,  d.lost,         d.queue_full,
                                         d.send_errors, d.truncated,   d.late,     d.non_ip,       d.rx_user_stamps,
                                         d.tx_user_stamps, d.kernel_drops};
    const char* names[] = {"frames", "sent",   "dropped",        "lost",           "queue_full",  "send_errors",
                           "truncated", "late", "non_ip", "rx_user_stamps", "tx_user_stamps", "kernel_drops"};
    for (size_t i = 0; i < std::size(counts); ++i) std::fprintf(f, "\"%s\": %llu, ", names[i], counts[i]);
    const std::vector<double> samples = d.samples_in_order();
    std::vector<double> sorted = samples;
    std::sort(sorted.begin(), sorted.end());
    if (sorted.empty()) {
        std::fprintf(f, "\"min\": null, \"p10\": null, \"median\": null, \"p90\": null, \"max\": null, "
                        "\"mean\": null, ");
    } else {
        double sum = 0;
        for (double s : sorted) sum += s;
        std::fprintf(f, "\"min\": %.3f, \"p10\": %.3f, \"median\": %.3f, \"p90\": %.3f, \"max\": %.3f, \"mean\": %.3f, ",
                     sorted.front(), percentile(sorted, 0.1), percentile(sorted, 0.5), percentile(sorted, 0.9),
                     sorted.back(), sum / static_cast<double>(sorted.size()));
    }
    std::fputs("\"samples_us\": [", f);
    for (size_t i = 0; i < samples.size(); ++i) std::fprintf(f, "%s%.3f", i ? ", " : "", samples[i]);
    std::fputs("]}", f);
}

[[nodiscard]] bool write_stats(const std::string& path, const Relay& relay, uint64_t seed, std::string& error) {
    const std::string tmp = path + ".tmp";  // renamed into place: a reader never sees half a file
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) {
        error = sys_error("fopen") + " (" + tmp + ")";
        return false;
    }
    std::fprintf(f, "{\"tx_stamp\": \"%s\", \"tx_resyncs\": %llu, \"seed\": %llu, \"directions\": {\"a_to_b\": ",
                 relay.tx_kernel_stamps() ? "kernel" : "user", static_cast<unsigned long long>(relay.tx_resyncs()),
                 static_cast<unsigned long long>(seed));
    write_direction(f, relay.direction(0));
    std::fputs(", \"b_to_a\": ", f);
    write_direction(f, relay.direction(1));
    std::fputs("}}\n", f);
    const bool ok = std::ferror(f) == 0;
    if (std::fclose(f) != 0 || !ok) {
        error = sys_error("write") + " (" + tmp + ")";
        return false;
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        error = sys_error("rename") + " (" + path + ")";
        return false;
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    std::string error;
    auto options = parse_args(argc, argv, error);
    if (!options) {
        std::fprintf(stderr, "linkemu: %s (usage: linkemu --a IFACE --b IFACE [--a-to-b DELAY_US[:JITTER_US"
                             "[:LOSS_PERCENT]]] [--b-to-a SPEC] [--seed N] [--stats FILE])\n",
                     error.c_str());
        return 2;
    }
    // Blocked for good: they are read from a signalfd (see Relay), and one
    // that arrives before the loop runs waits for it, pending.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, nullptr);

    const uint64_t seed = options->seed.value_or(random_seed());  // named in the stats, so a run can be redone
    Relay relay(*options, seed);
    if (!relay.open(*options, stop, error)) {
        std::fprintf(stderr, "linkemu: %s\n", error.c_str());
        return 1;
    }
    std::printf("linkemu: ready\n");
    std::fflush(stdout);
    const bool ran = relay.run(error);
    relay.finish();
    if (!ran) std::fprintf(stderr, "linkemu: %s\n", error.c_str());
    if (!options->stats_path.empty() && !write_stats(options->stats_path, relay, seed, error)) {
        std::fprintf(stderr, "linkemu: %s\n", error.c_str());
        return 1;
    }
    return ran ? 0 : 1;
}
