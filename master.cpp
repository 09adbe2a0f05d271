// master.cpp - the Berkeley time daemon: ./master N waits for N slaves and
// runs rounds. This file is its command line and main(); the round is
// master_role.hpp (the textbook's steps), who gets in door.hpp, the
// arithmetic clock.hpp, and the sockets and the event loop node.hpp.
#include <algorithm>
#include <cinttypes>
#include <string>
#include <vector>

#include "cli.hpp"
#include "node.hpp"
#include "units.hpp"

namespace {

using namespace berkeley;

constexpr uint16_t DEFAULT_PORT = 8080;
constexpr uint64_t DEFAULT_ROUNDS = 5;
constexpr int64_t DEFAULT_INTERVAL_NS = 1 * NS_PER_S;
constexpr uint32_t DEFAULT_PROBES = 4;
constexpr int64_t DEFAULT_TIMEOUT_NS = 500 * NS_PER_MS;
constexpr uint32_t DEFAULT_MAX_MISSED = 3;
constexpr size_t DEFAULT_MAX_SLAVES = 10'000;
constexpr size_t MAX_SLAVES = 100'000;
constexpr int64_t BY_HAND_TIMEOUT_NS = 600 * NS_PER_S;  // --by-hand: time to type an answer
constexpr int64_t BY_HAND_INTERVAL_NS = 60 * NS_PER_S;
constexpr uint64_t RESERVED_FDS = 32;                // log, epoll, listener, stdio, slack
constexpr uint64_t MASTER_TOKENS = 0;                // the master's tokens in the loop start here

struct Options {
    MasterSettings s;
    std::string bind = "127.0.0.1";
    uint16_t port = DEFAULT_PORT;
    CommonOptions common;  // clock, discipline, timestamps, secret, log
};

CliResult parse_options(int argc, char** argv, Options& o) {
    o.common.seed = default_seed();
    o.s.door.max_slaves = DEFAULT_MAX_SLAVES;
    std::vector<OptionSpec> specs = {
        {"port", "P", "TCP port to listen on (0 picks a free one) [8080]", store_integer("port", o.port, 0, 65535)},
        {"bind", "ADDR", "address to listen on                     [127.0.0.1]", store_text(o.bind)},
        {"rounds", "K", "rounds to run, 0 = until SIGINT/SIGTERM  [5]", store_integer("rounds", o.s.rounds, 0, INT64_MAX)},
        {"interval", "SEC", "from one round's start to the next's     [1]",
         store_scaled("interval", o.s.interval_ns, 9, NS_PER_MS, 86400 * NS_PER_S)},
        {"probes", "P", "clock requests per slave per round       [4]", store_integer("probes", o.s.probes, 1, MAX_PROBES)},
        {"timeout-ms", "MS", "how long to wait for one reply           [500]",
         store_scaled("timeout-ms", o.s.timeout_ns, 6, NS_PER_MS, 3600 * NS_PER_S)},
        {"max-skew", "MS", "leave out readings further than MS from the median,\n"
         "                         0 keeps all; auto: 3 robust deviations of the readings [auto]",
         [&o](std::string_view text) -> std::optional<std::string> {
             if (text == "auto") {
                 o.s.max_skew_ns = ADAPTIVE_WINDOW;
                 return std::nullopt;
             }
             if (auto problem = store_scaled("max-skew", o.s.max_skew_ns, 6, 0, MAX_OFFSET_NS)(text))
                 return *problem + ", or auto";
             return std::nullopt;
         }},
        {"max-missed", "K", "drop a slave after K missed rounds in a row [3]",
         store_integer("max-missed", o.s.max_missed, 1, 1'000'000)},
        {"max-slaves", "M", "most slaves at once; one more gets ERROR [10000, or N]",
         store_integer("max-slaves", o.s.door.max_slaves, 1, MAX_SLAVES)},
        {"explain", nullptr, "print each round as the textbook's steps, with the numbers", store_flag(o.s.explain, true)},
        {"by-hand", nullptr, "for typing the protocol with nc: 1 probe, no HELLO deadline, 10 min to\n"
         "                         answer, 60 s rounds, mistakes answered with what was expected",
         store_flag(o.s.door.by_hand, true)},
        {"no-failover", nullptr, "send no PLAN, name no successors: when this master dies, its slaves\n"
         "                         wait for it to come back (as before failover; implied by --by-hand)",
         store_flag(o.s.failover, false)},
    };
    for (OptionSpec& s : common_options(o.common)) specs.push_back(std::move(s));
    const char* synopsis = "./master N [options]        run Berkeley rounds for N slaves";
    std::vector<std::string> args;
    CliResult r = parse_command_line(argc, argv, "master", synopsis, specs, args);
    if (!r.run) return r;
    auto mistake = [&](const std::string& problem) {
        return CliResult{false, 2, "error: " + problem + "\n" + usage_text(synopsis, specs)};
    };
    if (auto problem = common_problem(o.common)) return mistake(*problem);
    if (o.s.door.by_hand && !o.common.secret_file.empty())
        return mistake("--by-hand is for typing the plain protocol; nobody types the tags --secret-file asks for");
    if (args.empty()) return mistake("missing N, the number of slaves to wait for");
    if (args.size() > 1) return mistake("unexpected argument " + args[1]);
    const auto n = parse_decimal(args[0], 0);
    if (!n || *n < 1 || *n > static_cast<int64_t>(MAX_SLAVES))
        return mistake("N must be a number of slaves from 1 to " + std::to_string(MAX_SLAVES));
    o.s.slaves = static_cast<size_t>(*n);
    if (o.s.door.max_slaves == DEFAULT_MAX_SLAVES) o.s.door.max_slaves = std::max(o.s.door.max_slaves, o.s.slaves);  // room for N by default
    if (o.s.slaves > o.s.door.max_slaves) return mistake("N is larger than --max-slaves");
    if (o.s.door.max_slaves != DEFAULT_MAX_SLAVES) o.s.max_slaves_set = o.s.door.max_slaves;  // a successor keeps it
    if (o.s.door.by_hand) o.s.failover = false;  // a person typing plays no successor
    if (o.s.door.by_hand) {  // a person's pace, where the options were left at their defaults
        if (o.s.probes == DEFAULT_PROBES) o.s.probes = 1;
        if (o.s.timeout_ns == DEFAULT_TIMEOUT_NS) o.s.timeout_ns = BY_HAND_TIMEOUT_NS;
        if (o.s.interval_ns == DEFAULT_INTERVAL_NS) o.s.interval_ns = BY_HAND_INTERVAL_NS;
    }
    return r;
}

// The master's settings for the round and the door, from the options and
// what start-up found (the secret, the open-file limit).
MasterSettings settings_of(Options& o) {
    MasterSettings& s = o.s;
    s.discipline = o.common.discipline;
    s.kernel_timestamps = o.common.kernel_timestamps;
    s.seed = o.common.seed;
    s.door.probes = s.probes;
    s.door.key = o.common.key;
    return s;
}

// This master yielded to one that outranks it (failover.hpp): the process
// goes on as a slave of that one, with this clock (in step: it votes at
// once), serving on this port again, where it sends newcomers on.
int follow_as_slave(const Options& opt, const MasterRole& master, MasterHost& host, EventLog& log, EventLoop& loop,
                    const Console& console, SimClock& clock) {
    SlaveSettings s;
    s.id = "master";
    s.master = master.yielded_to();
    s.epoch = master.epoch();
    s.discipline = opt.common.discipline;
    s.kernel_timestamps = opt.common.kernel_timestamps;
    s.key = opt.common.key;
    s.seed = opt.common.seed;
    const int port = host.port();
    host.close_all();  // its listener too: the slave listens on the port again
    BuildTime build;
    SlaveHost slave_host(loop, 0, opt.common.kernel_timestamps, port, build,
                         [](const Plan&, Fd, std::string& why) { return why = "a master that yielded does not take over", false; });
    SlaveRole slave(s, slave_host, log, console, clock);
    slave_host.attach(slave, console);
    slave_host.send_newcomers_on();
    slave.start(host_now());
    std::string error;
    while (!slave.done()) {
        if (g_stop_signal) {
            slave.stop(g_stop_signal == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)", host_now());
            break;
        }
        const bool ok = loop.run_once(
            [&](uint64_t token, uint32_t events) {
                if (token == slave_host.listener_token()) return slave_host.on_listener();
                if (token == 0) slave_host.on_file(events);
            },
            [&](uint64_t token) {
                if (token == 0) slave_host.on_timer();
            },
            error);
        if (!ok) {
            std::fprintf(stderr, "master: %s\n", error.c_str());
            slave.stop("event loop failed", host_now());
            break;
        }
    }
    return slave.exit_code();
}

}  // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    Options opt;
    const CliResult parsed = parse_options(argc, argv, opt);
    if (!parsed.run) return print_and_exit_code(parsed);
    EventLog log;
    EventLoop loop;
    std::string error;
    const uint64_t fd_limit = start_up("master", opt.common, log, loop, error);
    if (fd_limit == 0) {
        std::fprintf(stderr, "master: %s\n", error.c_str());
        return 1;
    }
    // Every slave is a descriptor: no promise beyond what the limit allows.
    size_t& max_slaves = opt.s.door.max_slaves;
    const size_t fd_budget = fd_limit > RESERVED_FDS ? static_cast<size_t>(fd_limit - RESERVED_FDS) : 1;
    if (max_slaves > fd_budget) {
        std::fprintf(stderr, "master: the open-file limit is %llu: --max-slaves lowered to %zu\n",
                     static_cast<unsigned long long>(fd_limit), fd_budget);
        max_slaves = fd_budget;
    }
    if (opt.s.slaves > max_slaves) {
        std::fprintf(stderr, "master: cannot wait for %zu slaves with %zu connections at most\n", opt.s.slaves,
                     max_slaves);
        return 1;
    }
    const MasterSettings settings = settings_of(opt);
    SimClock clock = starting_clock(opt.common, opt.common.seed, realtime_ns());
    auto host = std::make_unique<MasterHost>(loop, MASTER_TOKENS, opt.common.kernel_timestamps);
    if (!host->listen(listen_tcp(opt.bind, opt.port, error), error)) {
        std::fprintf(stderr, "master: cannot listen: %s\n", error.c_str());
        return 1;
    }
    const Console console{opt.common.quiet};
    auto master = std::make_unique<MasterRole>(settings, *host, log, console, clock);
    host->attach(*master);
    master->start(host->port(), opt.bind, host_now());
    while (!master_turn(*master)) {
        const bool ok = loop.run_once([&](uint64_t token, uint32_t events) { host->on_file(token, events); },
                                      [&](uint64_t token) { host->on_timer(token); }, error);
        if (!ok) {
            std::fprintf(stderr, "master: %s\n", error.c_str());
            if (master->phase() == Phase::Closing) break;
            master->stop("event loop failed", host_now());
        }
        master->after_turn(host_now());
    }
    int code = master->finish(host_now());
    if (!master->yielded_to().empty() && !g_stop_signal) code = follow_as_slave(opt, *master, *host, log, loop, console, clock);
    if (log.lost() > 0)
        std::fprintf(stderr, "master: %llu event(s) could not be logged\n", static_cast<unsigned long long>(log.lost()));
    return code;
}
