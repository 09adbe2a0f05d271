// slave.cpp - a Berkeley slave: ./slave joins a master and follows its
// corrections; --count K runs K of them on one loop. This file is its
// command line and main(): the node that hosts the slave roles
// (slave_role.hpp: the textbook's answer-and-apply, following, electing) and,
// should one take over, the master role in place (master_role.hpp), on the
// sockets and event loop of node.hpp.
#include <algorithm>
#include <climits>
#include <memory>
#include <string>
#include <vector>

#include "cli.hpp"
#include "node.hpp"
#include "units.hpp"

namespace {

using namespace berkeley;

constexpr int64_t DEFAULT_CONNECT_TIMEOUT_NS = 30 * NS_PER_S;
constexpr int64_t MAX_COUNT = 100'000;
constexpr uint64_t RESERVED_FDS = 32;            // a master we become: log, epoll, listener, stdio, slack
constexpr uint64_t MASTER_TOKENS = 1ULL << 40;   // a master we become: its tokens in the loop start here

struct Options {
    std::string host = "127.0.0.1";
    uint16_t port = 8080;
    std::string id;
    size_t count = 1;
    int64_t connect_timeout_ns = DEFAULT_CONNECT_TIMEOUT_NS;
    int64_t lie_ns = 0;             // fault injection, for experiments and tests
    int serve_port = -1;            // -1: auto (a free port when alone in its process), 0: none
    bool ignore_corrections = false;
    CommonOptions common;  // clock, discipline, timestamps, secret, log
};

CliResult parse_options(int argc, char** argv, Options& o) {
    o.common.seed = default_seed();
    o.id = "slave-" + std::to_string(getpid());
    std::vector<OptionSpec> specs = {
        {"host", "HOST", "the master's address                     [127.0.0.1]", store_text(o.host)},
        {"port", "P", "the master's port                        [8080]", store_integer("port", o.port, 1, 65535)},
        {"id", "NAME", "name to announce (letters, digits, -_.:) [slave-<pid>]", store_text(o.id)},
        {"count", "K", "run K slaves in this process, ids NAME-1..NAME-K [1]", store_integer("count", o.count, 1, MAX_COUNT)},
        {"connect-timeout", "SEC", "give up when not connected for this long, at least 0.001 [30]",
         store_scaled("connect-timeout", o.connect_timeout_ns, 9, NS_PER_MS, 86400 * NS_PER_S)},
        {"lie", "MS", "a liar, for experiments: every answer MS off its clock, which\n"
         "                         itself follows the master's time, ignoring rate changes [0]",
         store_scaled("lie", o.lie_ns, 6, -MAX_OFFSET_NS / 2, MAX_OFFSET_NS / 2)},
        {"ignore-corrections", nullptr, "a stubborn clock, for experiments: acknowledge corrections, apply none",
         store_flag(o.ignore_corrections, true)},
        {"serve", "PORT", "the port to serve on should this slave take over as master: auto (a free\n"
         "                         one; none with --count above 1), off, or a number [auto]",
         [&o](std::string_view text) -> std::optional<std::string> {
             if (text == "auto") o.serve_port = -1;
             else if (text == "off") o.serve_port = 0;
             else if (auto problem = store_integer("serve", o.serve_port, 1, 65535)(text)) return *problem + ", or auto or off";
             return std::nullopt;
         }},
    };
    for (OptionSpec& spec : common_options(o.common)) specs.push_back(std::move(spec));
    const char* synopsis = "./slave [options]           join a Berkeley master and follow its corrections";
    std::vector<std::string> args;
    CliResult r = parse_command_line(argc, argv, "slave", synopsis, specs, args);
    if (!r.run) return r;
    auto mistake = [&](const std::string& problem) {
        return CliResult{false, 2, "error: " + problem + "\n" + usage_text(synopsis, specs)};
    };
    if (auto problem = common_problem(o.common)) return mistake(*problem);
    if (!args.empty()) return mistake("unexpected argument " + args[0]);
    if (o.serve_port > 0 && o.count > 1)
        return mistake("--serve PORT is for one slave: a slave that takes over becomes the master in its process");
    const std::string longest = o.count > 1 ? o.id + "-" + std::to_string(o.count) : o.id;
    if (const char* why = id_problem(longest)) return mistake("bad --id '" + o.id + "': " + why);
    return r;
}

// One slave of this process: its clock, its role and the shell around it.
struct Member {
    SlaveSettings settings;
    SimClock clock;
    SlaveHost::TakeOver take_over;
    std::unique_ptr<SlaveHost> host;
    std::unique_ptr<SlaveRole> role;
};

// The master this process became, if a slave of it took over: in place, on
// the listener the slave held, with its clock and its log.
struct BecameMaster {
    size_t member = 0;  // which slave of this process took over
    MasterSettings settings;
    std::unique_ptr<MasterHost> host;
    std::unique_ptr<MasterRole> role;
};

}  // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    Options opt;
    const CliResult parsed = parse_options(argc, argv, opt);
    if (!parsed.run) return print_and_exit_code(parsed);
    EventLog log;
    EventLoop loop;
    std::string error;
    const uint64_t fd_limit = start_up("slave", opt.common, log, loop, error);
    if (fd_limit == 0) {
        std::fprintf(stderr, "slave: %s\n", error.c_str());
        return 1;
    }
    const Console console{opt.common.quiet};
    const std::string master =
        (opt.host.find(':') != std::string::npos ? "[" + opt.host + "]" : opt.host) + ":" + std::to_string(opt.port);
    // --count K: K independent slaves on this one loop, each its own
    // connection, clock (seed + i) and id; the token of each is its index.
    BuildTime build;
    BecameMaster became;
    std::vector<Member> slaves(opt.count);
    for (size_t i = 0; i < opt.count; ++i) {
        Member& m = slaves[i];
        SlaveSettings& s = m.settings;
        s.id = opt.count == 1 ? opt.id : opt.id + "-" + std::to_string(i + 1);
        s.master = master;
        s.connect_timeout_ns = opt.connect_timeout_ns;
        s.lie_ns = opt.lie_ns;
        s.ignore_corrections = opt.ignore_corrections;
        s.discipline = opt.common.discipline;
        s.kernel_timestamps = opt.common.kernel_timestamps;
        s.key = opt.common.key;
        s.seed = opt.common.seed + i;
        m.clock = starting_clock(opt.common, s.seed, realtime_ns());
        // Taking over: the plan's group, this slave's clock and id, as many
        // slaves as the open-file limit allows.
        auto take_over = [&, i](const Plan& plan, Fd listener, std::string& why) {
            became.member = i;
            MasterSettings& ms = became.settings;
            continue_plan(ms, plan);
            ms.old_master = slaves[i].role->master();  // looked for, should it come back
            ms.id = slaves[i].settings.id;
            ms.discipline = opt.common.discipline;
            ms.kernel_timestamps = opt.common.kernel_timestamps;
            ms.seed = slaves[i].settings.seed;
            ms.door.probes = ms.probes;
            ms.door.key = opt.common.key;
            const size_t fd_budget = fd_limit > RESERVED_FDS ? static_cast<size_t>(fd_limit - RESERVED_FDS) : 1;
            ms.door.max_slaves = std::min(ms.door.max_slaves, fd_budget);
            auto host = std::make_unique<MasterHost>(loop, MASTER_TOKENS, opt.common.kernel_timestamps);
            if (!host->listen(std::move(listener), why)) return false;
            became.host = std::move(host);
            became.role = std::make_unique<MasterRole>(ms, *became.host, log, console, slaves[i].clock);
            became.host->attach(*became.role);
            became.role->start(became.host->port(), "", host_now());
            return true;
        };
        const int serve = opt.serve_port < 0 && opt.count > 1 ? 0 : opt.serve_port;
        m.take_over = take_over;
        m.host = std::make_unique<SlaveHost>(loop, i, opt.common.kernel_timestamps, serve, build, take_over);
        m.role = std::make_unique<SlaveRole>(s, *m.host, log, console, m.clock);
        m.host->attach(*m.role, console);
    }
    // The master we became yielded to one that outranks it: that slave goes
    // on as a slave of that one, serving on the same port, where it sends
    // newcomers on; it may take over again, another day.
    auto step_down = [&] {
        Member& m = slaves[became.member];
        m.settings.master = became.role->yielded_to();
        m.settings.epoch = became.role->epoch();
        const int port = became.host->port();
        became.host->close_all();
        became.role.reset();
        became.host.reset();
        m.role.reset();
        m.host = std::make_unique<SlaveHost>(loop, became.member, opt.common.kernel_timestamps, port, build, m.take_over);
        m.role = std::make_unique<SlaveRole>(m.settings, *m.host, log, console, m.clock);
        m.host->attach(*m.role, console);
        m.host->send_newcomers_on();
        m.role->start(host_now());
    };
    for (Member& m : slaves) m.role->start(host_now());
    auto running = [&] {
        return std::any_of(slaves.begin(), slaves.end(), [](const Member& m) {
            return m.role->state() != SlaveRole::State::Done && m.role->state() != SlaveRole::State::Master;
        });
    };
    int code = 0;
    while (became.role ? !master_turn(*became.role) || (!became.role->yielded_to().empty() && !g_stop_signal) : running()) {
        if (became.role && became.role->finished(host_now()) && !became.role->yielded_to().empty()) {
            became.role->finish(host_now());
            step_down();
            continue;
        }
        if (g_stop_signal && !became.role) {
            for (Member& m : slaves)
                m.role->stop(g_stop_signal == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)", host_now());
            break;
        }
        const bool ok = loop.run_once(
            [&](uint64_t token, uint32_t events) {
                if (became.host && became.host->owns(token)) return became.host->on_file(token, events);
                if (token < slaves.size()) return slaves[token].host->on_file(events);
                const uint64_t i = token & ~SlaveHost::LISTENER_BIT;
                if (i < slaves.size() && token == slaves[i].host->listener_token()) slaves[i].host->on_listener();
            },
            [&](uint64_t token) {
                if (became.host && became.host->owns(token)) return became.host->on_timer(token);
                if (token < slaves.size()) slaves[token].host->on_timer();
            },
            error);
        if (!ok) {
            std::fprintf(stderr, "slave: %s\n", error.c_str());
            if (became.role && became.role->phase() != Phase::Closing) {
                became.role->stop("event loop failed", host_now());
                continue;
            }
            for (Member& m : slaves) m.role->stop("event loop failed", host_now());
            code = 1;
            break;
        }
        if (became.role) became.role->after_turn(host_now());
    }
    if (became.role) code = became.role->finish(host_now());
    else
        for (const Member& m : slaves) code = std::max(code, m.role->exit_code());
    if (log.lost() > 0) {
        std::fprintf(stderr, "slave: %llu event(s) could not be logged\n", static_cast<unsigned long long>(log.lost()));
        code = std::max(code, 1);
    }
    return code;
}
