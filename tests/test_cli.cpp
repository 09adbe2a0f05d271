// test_cli.cpp - cli.hpp, in its order: the command line (both option forms,
// prefixes, every mistake returned rather than exited), the shared options,
// the secret file, and start-up.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "cli.hpp"

using namespace berkeley;

namespace {

// argv as getopt_long wants it: mutable strings, kept alive by the caller.
struct Argv {
    std::vector<std::string> words;
    std::vector<char*> ptrs;
    explicit Argv(std::vector<std::string> w) : words(std::move(w)) {
        for (auto& s : words) ptrs.push_back(s.data());
        ptrs.push_back(nullptr);
    }
    int argc() const { return static_cast<int>(words.size()); }
    char** argv() { return ptrs.data(); }
};

struct Outcome {
    CliResult result;
    std::vector<std::string> positional;
    CommonOptions common;
    uint16_t port = 8080;
    int64_t interval_ns = 1'000'000'000;
};

Outcome parse(std::vector<std::string> words) {
    Outcome p;
    std::vector<OptionSpec> specs = {
        {"port", "P", "port [8080]", store_integer("port", p.port, 0, 65535)},
        {"interval", "SEC", "interval [1]", store_scaled("interval", p.interval_ns, 9, NS_PER_MS, 86400 * NS_PER_S)},
    };
    for (OptionSpec& s : common_options(p.common)) specs.push_back(std::move(s));
    Argv a(std::move(words));
    p.result = parse_command_line(a.argc(), a.argv(), "prog", "./prog N [options]", specs, p.positional);
    return p;
}

}  // namespace

TEST_CASE("options take '--name value' and '--name=value', anywhere among the arguments") {
    for (const auto& words : {std::vector<std::string>{"prog", "3", "--port", "8081", "--interval", "0.25"},
                              std::vector<std::string>{"prog", "--port=8081", "3", "--interval=0.25"},
                              std::vector<std::string>{"prog", "--interval=.25", "--po", "8081", "3"}}) {
        CAPTURE(words.size());
        const Outcome p = parse(words);
        CHECK(p.result.run);
        CHECK(p.port == 8081);
        CHECK(p.interval_ns == 250 * NS_PER_MS);
        CHECK(p.positional == std::vector<std::string>{"3"});
    }
}

TEST_CASE("a value may start with '-': negative offsets") {
    const Outcome p = parse({"prog", "--offset", "-1500.5", "--drift=-12.25"});
    REQUIRE(p.result.run);
    CHECK(*p.common.offset_ns == -1'500'500'000);
    CHECK(*p.common.rate_ppb == -12'250);
}

TEST_CASE("shared options: every one is parsed, defaults stay when absent") {
    const Outcome none = parse({"prog"});
    CHECK(none.result.run);
    CHECK_FALSE(none.common.offset_ns.has_value());
    CHECK(none.common.discipline.frequency);
    CHECK(none.common.kernel_timestamps);
    CHECK(none.common.discipline.step_threshold_ns == DEFAULT_STEP_THRESHOLD_NS);

    const Outcome all = parse({"prog", "--seed", "42", "--step-threshold", "5", "--slew-rate", "250.5", "--no-frequency",
                              "--timestamps", "user", "--secret-file", "/x/y", "--log", "/tmp/l", "--quiet"});
    REQUIRE(all.result.run);
    CHECK(all.common.seed == 42);
    CHECK(all.common.discipline.step_threshold_ns == 5 * NS_PER_MS);
    CHECK(all.common.discipline.slew_rate_ppb == 250'500);
    CHECK_FALSE(all.common.discipline.frequency);
    CHECK_FALSE(all.common.kernel_timestamps);
    CHECK(all.common.secret_file == "/x/y");
    CHECK_FALSE(all.common.key);  // read and stretched at start-up, not while parsing
    CHECK(all.common.log_path == "/tmp/l");
    CHECK(all.common.quiet);
}

TEST_CASE("mistakes come back as exit 2 with the problem and the usage, never as exit()") {
    struct Row {
        std::vector<std::string> words;
        const char* problem;
    };
    const Row rows[] = {
        {{"prog", "--bogus"}, "unknown option --bogus"},
        {{"prog", "--bogus=3"}, "unknown option --bogus"},
        {{"prog", "-x"}, "unknown option -x"},
        {{"prog", "-xy"}, "unknown option -x"},
        {{"prog", "3", "-5x"}, "unknown option -5"},  // not a number: a cluster of short options
        {{"prog", "--ti", "3:00"}, "ambiguous option --ti: --time, --timestamps?"},
        {{"prog", "--port"}, "--port needs a value"},
        {{"prog", "--po"}, "--port needs a value"},  // the option a prefix stands for
        {{"prog", "--quiet=yes"}, "--quiet takes no value"},
        {{"prog", "--help=me"}, "--help takes no value"},
        {{"prog", "--timestamps", "both"}, "--timestamps both: must be kernel or user"},
    };
    for (const Row& r : rows) {
        CAPTURE(r.problem);
        const Outcome p = parse(r.words);
        CHECK_FALSE(p.result.run);
        CHECK(p.result.code == 2);
        CHECK(p.result.text.find(std::string("error: ") + r.problem + "\n") == 0);
        CHECK(p.result.text.find("usage: ./prog N [options]") != std::string::npos);
    }
}

TEST_CASE("a bad number names the option, the value and the valid range in the option's unit") {
    struct Row {
        std::vector<std::string> words;
        const char* problem;
    };
    const Row rows[] = {
        // out of range
        {{"prog", "--port=70000"}, "--port 70000: must be from 0 to 65535"},
        {{"prog", "--port", "-1"}, "--port -1: must be from 0 to 65535"},
        {{"prog", "--interval", "0"}, "--interval 0: must be from 0.001 to 86400 (seconds)"},
        {{"prog", "--interval=90000"}, "--interval 90000: must be from 0.001 to 86400 (seconds)"},
        {{"prog", "--offset", "-4000000000000"},
         "--offset -4000000000000: must be from -3153600000000 to 3153600000000 (milliseconds)"},
        {{"prog", "--drift", "100000.001"}, "--drift 100000.001: must be from -100000 to 100000 (ppm)"},
        {{"prog", "--seed", "-1"}, "--seed -1: must be from 0 to 9223372036854775807"},
        {{"prog", "--step-threshold", "-0.5"}, "--step-threshold -0.5: must be from 0 to 3153600000000 (milliseconds)"},
        {{"prog", "--slew-rate", "0"}, "--slew-rate 0: must be from 0.001 to 100000 (ppm)"},
        // not a number of the kind asked for
        {{"prog", "--port", "12ab"}, "--port 12ab: must be a whole number from 0 to 65535"},
        {{"prog", "--port", "80.5"}, "--port 80.5: must be a whole number from 0 to 65535"},
        {{"prog", "--port", "99999999999999999999"}, "--port 99999999999999999999: must be a whole number from 0 to 65535"},
        {{"prog", "--interval", "abc"}, "--interval abc: must be a number from 0.001 to 86400 (seconds), at most 9 decimals"},
        {{"prog", "--interval", "0.0000000001"},
         "--interval 0.0000000001: must be a number from 0.001 to 86400 (seconds), at most 9 decimals"},
        {{"prog", "--offset", "1.2.3"},
         "--offset 1.2.3: must be a number from -3153600000000 to 3153600000000 (milliseconds), at most 6 decimals"},
        {{"prog", "--drift", "5%"}, "--drift 5%: must be a number from -100000 to 100000 (ppm), at most 3 decimals"},
        {{"prog", "--time", "25:00"}, "--time 25:00: must be HH:MM[:SS[.fraction]], from 0:00 to 23:59:59.999999999"},
    };
    for (const Row& r : rows) {
        CAPTURE(r.problem);
        const Outcome p = parse(r.words);
        CHECK_FALSE(p.result.run);
        CHECK(p.result.code == 2);
        CHECK(p.result.text.find(std::string("error: ") + r.problem + "\n") == 0);
    }
    // The range's ends are themselves accepted.
    CHECK(parse({"prog", "--port", "65535", "--interval", "0.001"}).result.run);
    CHECK(parse({"prog", "--interval", "86400", "--slew-rate", "0.001", "--drift", "-100000"}).result.run);
}

TEST_CASE("scaled_problem: the range is written back in the unit the decimals stand for") {
    CHECK_FALSE(scaled_problem("x", "1.5", 6, 0, 2 * NS_PER_MS).has_value());
    CHECK(*scaled_problem("x", "3", 6, -NS_PER_MS / 2, 2 * NS_PER_MS) == "--x 3: must be from -0.5 to 2 (milliseconds)");
    CHECK(*scaled_problem("x", "3", 9, 1, NS_PER_S) == "--x 3: must be from 0.000000001 to 1 (seconds)");
    CHECK(*scaled_problem("x", "3", 3, 1, 2'500) == "--x 3: must be from 0.001 to 2.5 (ppm)");
    CHECK(*scaled_problem("x", "3", 0, 1, 2) == "--x 3: must be from 1 to 2");
    CHECK(*scaled_problem("x", "3", 2, 1, 2) == "--x 3: must be from 0.01 to 0.02");  // no unit known for 2 decimals
}

TEST_CASE("a negative number is a positional argument, unless it is an option's value") {
    const Outcome n = parse({"prog", "-5"});  // "./master -5" is told what N must be
    CHECK(n.result.run);
    CHECK(n.positional == std::vector<std::string>{"-5"});
    const Outcome mixed = parse({"prog", "-1", "2", "--offset", "-2", "-.5", "--port=1", "-3.25"});
    REQUIRE(mixed.result.run);
    CHECK(mixed.positional == std::vector<std::string>{"-1", "2", "-.5", "-3.25"});  // in order
    CHECK(*mixed.common.offset_ns == -2 * NS_PER_MS);
    CHECK(mixed.port == 1);
    const Outcome value = parse({"prog", "--lo", "-5", "--secret-file", "-7"});  // a prefix's value too
    REQUIRE(value.result.run);
    CHECK(value.common.log_path == "-5");
    CHECK(value.common.secret_file == "-7");
    CHECK(value.positional.empty());
    const Outcome after = parse({"prog", "--", "-x", "-5"});
    REQUIRE(after.result.run);
    CHECK(after.positional == std::vector<std::string>{"-x", "-5"});
    // The caller's argv is left as it was: only a copy is reordered.
    Argv a({"prog", "-1", "--quiet", "2"});
    std::vector<std::string> positional;
    CommonOptions common;
    const std::vector<OptionSpec> specs = common_options(common);
    CHECK(parse_command_line(a.argc(), a.argv(), "prog", "./prog", specs, positional).run);
    CHECK(std::string(a.argv()[1]) == "-1");
    CHECK(std::string(a.argv()[2]) == "--quiet");
    CHECK(positional == std::vector<std::string>{"-1", "2"});
}

TEST_CASE("--help and --version: text for stdout, exit 0; the usage lists every option") {
    const Outcome help = parse({"prog", "--help"});
    CHECK_FALSE(help.result.run);
    CHECK(help.result.code == 0);
    for (const char* name : {"--port P", "--interval SEC", "--offset MS", "--secret-file FILE", "--quiet", "--help"})
        CHECK(help.result.text.find(name) != std::string::npos);
    CHECK(parse({"prog", "-h"}).result.text == help.result.text);
    const Outcome version = parse({"prog", "--version"});
    CHECK(version.result.code == 0);
    CHECK(version.result.text == std::string("prog (berkeley-sync) ") + PROGRAM_VERSION + "\n");
}

TEST_CASE("starting_clock: given offset and drift win; otherwise the seed decides, reproducibly") {
    CommonOptions o;
    o.offset_ns = 5 * NS_PER_S;
    o.rate_ppb = -3'000;
    const SimClock given = starting_clock(o, 1, 1'000);
    CHECK(read_clock(given, 1'000) == 1'000 + 5 * NS_PER_S);
    CHECK(given.rate_ppb == -3'000);
    CommonOptions random;
    const SimClock a = starting_clock(random, 7, 0), b = starting_clock(random, 7, 0), c = starting_clock(random, 8, 0);
    CHECK(read_clock(a, 0) == read_clock(b, 0));
    CHECK(a.rate_ppb == b.rate_ppb);
    CHECK(read_clock(a, 0) != read_clock(c, 0));
}

TEST_CASE("read_secret_file: the first line is a passphrase of 16 bytes or more, in a private file") {
    char dir[] = "/tmp/berkeley-cli-XXXXXX";
    REQUIRE(mkdtemp(dir));
    std::vector<std::string> written;
    auto write = [&](const char* name, const std::string& text, mode_t mode) {
        const std::string path = std::string(dir) + "/" + name;
        Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600));
        REQUIRE(fd.valid());
        REQUIRE(::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()));
        REQUIRE(chmod(path.c_str(), mode) == 0);
        written.push_back(path);
        return path;
    };
    std::string secret, error;
    // Spaces inside are part of it; blanks at the ends and the line end are not.
    CHECK(read_secret_file(write("good", "  correct horse battery staple \r\nsecond line\n", 0600), secret, error));
    CHECK(secret == "correct horse battery staple");
    CHECK(read_secret_file(write("no-newline", "sixteen bytes!!!", 0600), secret, error));
    CHECK(secret == "sixteen bytes!!!");
    CHECK_FALSE(read_secret_file(write("loose", "correct horse battery staple\n", 0644), secret, error));
    CHECK(error == "--secret-file " + written.back() + ": mode 644: it must not be accessible by group or others (chmod 600 " +
                       written.back() + ")");
    CHECK_FALSE(read_secret_file(write("empty", "\n", 0600), secret, error));
    CHECK(error.rfind("--secret-file " + written.back() + ": the passphrase has 0 bytes; it needs at least 16", 0) == 0);
    CHECK_FALSE(read_secret_file(write("short", "fifteen bytes!!\n", 0600), secret, error));
    CHECK(error.find("has 15 bytes") != std::string::npos);
    CHECK_FALSE(read_secret_file(write("control", "a passphrase with\x01 a control byte\n", 0600), secret, error));
    CHECK(error.find("control character") != std::string::npos);
    CHECK_FALSE(read_secret_file(write("long", std::string(MAX_PASSPHRASE_BYTES + 1, 'k'), 0600), secret, error));
    CHECK(read_secret_file(write("longest", std::string(MAX_PASSPHRASE_BYTES, 'k') + "\n", 0600), secret, error));
    CHECK(secret.size() == MAX_PASSPHRASE_BYTES);
    const std::string missing = std::string(dir) + "/missing";
    CHECK_FALSE(read_secret_file(missing, secret, error));
    CHECK(error == "--secret-file " + missing + ": open: No such file or directory");
    CHECK_FALSE(read_secret_file(dir, secret, error));
    CHECK(error == "--secret-file " + std::string(dir) + ": not a regular file");
    for (const std::string& path : written) unlink(path.c_str());
    rmdir(dir);
}

TEST_CASE("start_up reports a failing step instead of exiting: the secret, then the log") {
    CommonOptions o;
    EventLog log;
    EventLoop loop;
    std::string error;
    o.secret_file = "/nonexistent-dir/secret";
    CHECK(start_up("test", o, log, loop, error) == 0);
    CHECK(error == "--secret-file /nonexistent-dir/secret: open: No such file or directory");
    o.secret_file.clear();
    o.log_path = "/nonexistent-dir/x.log";
    error.clear();
    CHECK(start_up("test", o, log, loop, error) == 0);
    CHECK(error.find("/nonexistent-dir/x.log") != std::string::npos);
    o.log_path.clear();
    error.clear();
    CHECK(start_up("test", o, log, loop, error) > 0);
    CHECK(error.empty());
    CHECK_FALSE(o.key);
}

TEST_CASE("--secret-file with an empty name is a mistake, not \"no secret\"") {
    const Outcome p = parse({"prog", "--secret-file", ""});
    CHECK_FALSE(p.result.run);
    CHECK(p.result.code == 2);
    CHECK(p.result.text.find("--secret-file needs a file name") != std::string::npos);
}

TEST_CASE("start_up stretches a good secret file's passphrase into the group key") {
    char path[] = "/tmp/berkeley-secret-XXXXXX";
    const int fd = mkstemp(path);  // mode 600
    REQUIRE(fd >= 0);
    const std::string text = "correct horse battery staple\n";
    REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    ::close(fd);
    CommonOptions o;
    EventLog log;
    EventLoop loop;
    std::string error;
    o.secret_file = path;
    CHECK(start_up("test", o, log, loop, error) > 0);
    REQUIRE(o.key);
    CHECK(o.key->mac("x") == group_key("correct horse battery staple").mac("x"));
    unlink(path);
}

TEST_CASE("--time: as if the clock read that at the top of the host's hour (UTC); not with --offset") {
    const Outcome p = parse({"prog", "--time", "3:25", "--drift", "0"});
    REQUIRE(p.result.run);
    REQUIRE(p.common.time_of_day_ns.has_value());
    const int64_t day = 86'400 * NS_PER_S, hour = 3'600 * NS_PER_S;
    const int64_t real = 20'000 * day + 17 * hour + 37 * 60 * NS_PER_S + 123;  // 17:37 on some day
    const SimClock c = starting_clock(p.common, 1, real);
    CHECK(read_clock(c, real) == 20'000 * day + 205 * 60 * NS_PER_S + 37 * 60 * NS_PER_S + 123);  // 4:02
    CHECK(c.rate_ppb == 0);
    // Started minutes apart, two clocks stand exactly as far apart as their times say.
    Outcome q = parse({"prog", "--time", "3:00"});
    const int64_t later = real + 10 * 60 * NS_PER_S;
    CHECK((read_clock(c, later) - read_clock(starting_clock(q.common, 1, later), later)) == 25 * 60 * NS_PER_S);
    CHECK(parse({"prog", "--time=2:50:30.5"}).common.time_of_day_ns == (170 * 60 + 30) * NS_PER_S + 500 * NS_PER_MS);
    CHECK(parse({"prog", "--time", "25:00"}).result.code == 2);  // its message: with the bad numbers above
    CHECK(common_problem(parse({"prog", "--time", "3:00", "--offset", "5"}).common).has_value());
    CHECK_FALSE(common_problem(p.common).has_value());
}
