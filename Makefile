# Build, test, demo and benchmark the Berkeley clock synchronization.
#   make demo      build, run ./master 3 and analyze.py 3, report, plot demo.svg
#   make textbook  the textbook's example: master 3:00, slaves 3:25 and 2:50, explained
#   make demo-failover  a master and 5 slaves; the master killed after round 3; a successor takes over
#   make demo-net  the master and 3 slaves on two hosts (network namespaces, root) through a router adding 500 us
#   make demo-partition  a master and 4 slaves, each on a host of its own (root); two halves cut, healed
#   make partitions  tests/test_partitions.py alone: every partition shape against the failover checks (root)
#   make compile   ./master and ./slave in the repo root (also: make)
#   make test      every test; installs doctest-dev first if it is missing
#   make bench     the benchmarks: figures printed and written to bench/results.md
#   make sim       the simulator: the real roles on a virtual network, 1,000 seeds of faults (SIM_SEEDS=1000)
#   make fuzz      libFuzzer over the wire format and over the roles' state machines (FUZZ_SECONDS=60 each)
#   make clean     remove what the build made
CXX      ?= g++
CXXFLAGS ?= -std=c++20 -O2 -g -Wall -Wextra -Werror -Wshadow -Wconversion -Wno-sign-conversion
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
HEADERS  := clock.hpp filter.hpp simclock.hpp units.hpp protocol.hpp os.hpp net.hpp eventlog.hpp cli.hpp sha256.hpp auth.hpp failover.hpp role.hpp door.hpp explain.hpp master_role.hpp slave_role.hpp node.hpp
PYTHON   ?= python3
SHELL    := /bin/bash

.PHONY: all compile test clean deps fuzz fuzz-deps demo demo-failover demo-net demo-partition partitions bench textbook sim

all: compile
compile: master slave

master: master.cpp $(HEADERS)
	$(CXX) $(CXXFLAGS) -o $@ master.cpp

slave: slave.cpp $(HEADERS)
	$(CXX) $(CXXFLAGS) -o $@ slave.cpp

# For the demos' recipes: wait until the master logging to $(1) says which
# port it listens on (sets $$port), or stop with an error naming target $(2).
WAIT_FOR_PORT = port=; \
	  for i in $$(seq 200); do \
	    port=$$(sed -n 's/.*"event":"start".*"port":\([0-9]*\).*/\1/p' $(1) 2>/dev/null); \
	    [ -n "$$port" ] && break; sleep 0.05; done; \
	  [ -n "$$port" ] || { echo "$(2): the master did not start"; exit 1; }

# The README's first command: a master on a free port, analyze.py starting
# three slaves against it, the master's console prefixed [master], then the
# report; logs stay in build/demo, the picture in demo.svg.
DEMO_DIR := build/demo
demo: compile
	@rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	@./master 3 --port 0 --rounds 5 --interval 0.5 --log $(DEMO_DIR)/master.log \
	    > >(sed -u 's/^/[master]  /') 2>&1 & master=$$!; \
	  trap 'kill $$master 2>/dev/null' EXIT; $(call WAIT_FOR_PORT,$(DEMO_DIR)/master.log,demo); \
	  $(PYTHON) analyze.py 3 --port $$port --master-log $(DEMO_DIR)/master.log --logs $(DEMO_DIR) \
	    --plot demo.svg --json $(DEMO_DIR)/report.json; rc=$$?; \
	  wait $$master; trap - EXIT; echo "picture: demo.svg  logs: $(DEMO_DIR)/"; exit $$rc

# Failover: the same as demo with 5 slaves and 8 rounds, but the master is
# killed with SIGKILL once round 3 is done. Its first successor takes over
# with its own clock and runs rounds 4..8; analyze.py's report shows the takeover.
# The master is disowned, so that bash does not end the demo with its own
# "Killed" line for it: the kill is the demo's, and announced.
FAILOVER_DIR := build/demo-failover
demo-failover: compile
	@rm -rf $(FAILOVER_DIR) && mkdir -p $(FAILOVER_DIR)
	@./master 5 --port 0 --rounds 8 --interval 0.5 --log $(FAILOVER_DIR)/master.log \
	    > >(sed -u 's/^/[master]  /') 2>&1 & master=$$!; disown $$master; \
	  trap 'kill $$master 2>/dev/null' EXIT; $(call WAIT_FOR_PORT,$(FAILOVER_DIR)/master.log,demo-failover); \
	  ( for i in $$(seq 600); do grep -q '"event":"round_done"[^}]*"round":3,' $(FAILOVER_DIR)/master.log && break; \
	      sleep 0.05; done; echo "[demo]    killing the master (SIGKILL) after round 3"; kill -9 $$master ) & \
	  $(PYTHON) analyze.py 5 --port $$port --master-log $(FAILOVER_DIR)/master.log --logs $(FAILOVER_DIR) \
	    --plot failover.svg --json $(FAILOVER_DIR)/report.json; rc=$$?; \
	  wait; trap - EXIT; echo "picture: failover.svg  logs: $(FAILOVER_DIR)/"; exit $$rc

# Across hosts: the master in one network namespace, analyze.py and its 3
# slaves in another, a router namespace between them where build/linkemu
# delays every frame 500 us +/-100 us each way (bench/netlab.py; needs root).
# Prints analyze.py's report and the delays linkemu really applied; the
# namespaces are removed at the end, also on failure or Ctrl-C.
NET_DIR := build/demo-net
demo-net: compile build/linkemu
	@rm -rf $(NET_DIR) && $(PYTHON) bench/netlab.py demo $(NET_DIR)

# One host per process (bench/cluster.py; root): a master host and 4 slave
# hosts behind an L3 router; the group cut in two halves for 12 intervals,
# healed, and then each process's story from its log: which master (address,
# epoch) it followed when.
PARTITION_DIR := build/demo-partition
demo-partition: compile
	@rm -rf $(PARTITION_DIR) && $(PYTHON) bench/cluster.py demo $(PARTITION_DIR)

# Every partition shape, and a paused master, against the checks a failover
# that merges groups must pass (tests/test_partitions.py, part of make test;
# about 8 s each).
partitions: compile
	cd tests && $(PYTHON) test_partitions.py -v

# The textbook's example (master 3:00, slaves 3:25 and 2:50, no drift): one
# round, one probe each, the master's console explaining every step, then
# analyze.py's report of the run from its logs. The slaves' ids are their
# times, so the corrections read "3:25 -> -0:20:00".
TEXTBOOK_DIR := build/textbook
textbook: compile
	@rm -rf $(TEXTBOOK_DIR) && mkdir -p $(TEXTBOOK_DIR)
	@./master 2 --port 0 --rounds 1 --probes 1 --time 3:00 --drift 0 --explain \
	    --log $(TEXTBOOK_DIR)/master.log > $(TEXTBOOK_DIR)/master.out 2>&1 & master=$$!; \
	  trap 'kill $$master 2>/dev/null' EXIT; $(call WAIT_FOR_PORT,$(TEXTBOOK_DIR)/master.log,textbook); \
	  for t in 3:25 2:50; do \
	    ./slave --port $$port --id $$t --time $$t --drift 0 --quiet --log $(TEXTBOOK_DIR)/$$t.log & \
	    for i in $$(seq 200); do grep -q '"slave":"'$$t'"' $(TEXTBOOK_DIR)/master.log && break; sleep 0.05; done; \
	  done; \
	  wait $$master; rc=$$?; trap - EXIT; wait; cat $(TEXTBOOK_DIR)/master.out; [ $$rc -eq 0 ] || exit $$rc; \
	  echo; $(PYTHON) analyze.py --from-logs $(TEXTBOOK_DIR) --plot textbook.svg; \
	  echo "picture: textbook.svg  logs: $(TEXTBOOK_DIR)/"

# doctest is a header; Debian ships it as doctest-dev.
DOCTEST_H := /usr/include/doctest/doctest.h
deps:
	@test -f $(DOCTEST_H) || { echo "installing doctest-dev (needs root)"; \
	  (apt-get install -y -q doctest-dev || (apt-get update -q && apt-get install -y -q doctest-dev)) >/dev/null; }
	@test -f $(DOCTEST_H) || { echo "doctest.h is missing: apt-get install doctest-dev"; exit 1; }
	@# iproute2, for the test across network namespaces (bench/netlab.py)
	@command -v ip >/dev/null || { echo "installing iproute2 (needs root)"; \
	  (apt-get install -y -q iproute2 || (apt-get update -q && apt-get install -y -q iproute2)) >/dev/null 2>&1 || \
	  echo "iproute2 could not be installed: the test across namespaces will be skipped"; }
	@# tmux, for the test of analyze.py --panes (which falls back without it)
	@command -v tmux >/dev/null || { echo "installing tmux (needs root)"; \
	  (apt-get install -y -q tmux || (apt-get update -q && apt-get install -y -q tmux)) >/dev/null 2>&1 || \
	  echo "tmux could not be installed: the --panes test will be skipped"; }

# One object per test file, so a change rebuilds only what it touches (make -j2).
UNIT_SRC := tests/doctest_main.cpp $(wildcard tests/test_*.cpp)
UNIT_OBJ := $(patsubst tests/%.cpp,build/unit/%.o,$(UNIT_SRC))
build/unit/%.o: tests/%.cpp $(HEADERS) sim/world.hpp | deps
	@mkdir -p build/unit
	$(CXX) $(CXXFLAGS) -O1 $(SAN) -I. -c -o $@ $<
tests/unit: $(UNIT_OBJ)
	$(CXX) $(CXXFLAGS) -O1 $(SAN) -o $@ $(UNIT_OBJ)

# The same programs under AddressSanitizer and UndefinedBehaviorSanitizer:
# the integration tests run once more against these.
ASAN_DIR := build/asan
$(ASAN_DIR)/%: %.cpp $(HEADERS)
	@mkdir -p $(ASAN_DIR)
	$(CXX) $(CXXFLAGS) -O1 $(SAN) -o $@ $<

test: deps compile tests/unit $(ASAN_DIR)/master $(ASAN_DIR)/slave build/linkemu
	$(PYTHON) tests/run_tests.py

bench: compile build/linkemu
	$(PYTHON) bench/run.py $(BENCH_ARGS)

# The deterministic simulator (sim/sim.cpp): the real roles on a virtual
# network and clocks, SIM_SEEDS seeds of random faults; a failing seed
# prints the command that replays it. Assertions stay on in this build.
SIM_SEEDS ?= 1000
build/sim: sim/sim.cpp sim/world.hpp $(HEADERS)
	@mkdir -p build
	$(CXX) $(CXXFLAGS) -I. -o $@ sim/sim.cpp

sim: build/sim
	build/sim --seeds $(SIM_SEEDS)

# The link emulator bench/netlab.py runs in its router namespace (root only).
build/linkemu: bench/linkemu.cpp os.hpp
	@mkdir -p build
	$(CXX) $(CXXFLAGS) -o $@ bench/linkemu.cpp

# libFuzzer needs clang's runtime, Debian's libclang-rt-14-dev.
FUZZ_SECONDS ?= 60
FUZZ_RT := $(firstword $(wildcard /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a))
fuzz-deps:
	@test -n "$(FUZZ_RT)" || { echo "installing libclang-rt-14-dev (needs root)"; \
	  (apt-get install -y -q libclang-rt-14-dev || (apt-get update -q && apt-get install -y -q libclang-rt-14-dev)) >/dev/null; }

FUZZ_FLAGS := -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I.
build/fuzz_protocol: fuzz/fuzz_protocol.cpp fuzz/property.hpp $(HEADERS) | fuzz-deps
	@mkdir -p build
	clang++ $(FUZZ_FLAGS) -o $@ $<

build/fuzz_roles: fuzz/fuzz_roles.cpp fuzz/property.hpp $(HEADERS) | fuzz-deps
	@mkdir -p build
	clang++ $(FUZZ_FLAGS) -o $@ $<

# Each target for FUZZ_SECONDS: the wire format, then the roles' state machines.
fuzz: build/fuzz_protocol build/fuzz_roles
	@for target in protocol roles; do \
	  mkdir -p build/fuzz-corpus-$$target; \
	  seeds=$$( [ $$target = protocol ] && echo fuzz/corpus ); \
	  echo "== fuzz_$$target"; \
	  build/fuzz_$$target -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=build/ \
	    build/fuzz-corpus-$$target $$seeds 2>&1 | grep -E "^(stat::number_of_executed_units|stat::average_exec|Done|==|SUMMARY|property)" ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	  echo "fuzz_$$target: no finding in $(FUZZ_SECONDS) s"; \
	done

clean:
	rm -rf master slave tests/unit build tests/__pycache__ __pycache__ berkeley/__pycache__ bench/__pycache__
