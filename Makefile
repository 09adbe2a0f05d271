# Build, test, demo and benchmark the Berkeley clock synchronization.
#   make compile   ./master and ./slave in the repo root (also: make)
#   make test      every test; installs doctest-dev first if it is missing
#   make fuzz      libFuzzer over framing, parsing and arithmetic (FUZZ_SECONDS=60)
#   make clean     remove what the build made
CXX      ?= g++
CXXFLAGS ?= -std=c++20 -O2 -g -Wall -Wextra -Werror -Wshadow -Wconversion -Wno-sign-conversion
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
HEADERS  := clock.hpp protocol.hpp net.hpp eventlog.hpp
PYTHON   ?= python3
SHELL    := /bin/bash

.PHONY: all compile test clean deps fuzz fuzz-deps

all: compile
compile: master slave

master: master.cpp $(HEADERS)
	$(CXX) $(CXXFLAGS) -o $@ master.cpp

slave: slave.cpp $(HEADERS)
	$(CXX) $(CXXFLAGS) -o $@ slave.cpp

# doctest is a header; Debian ships it as doctest-dev.
DOCTEST_H := /usr/include/doctest/doctest.h
deps:
	@test -f $(DOCTEST_H) || { echo "installing doctest-dev (needs root)"; \
	  (apt-get install -y -q doctest-dev || (apt-get update -q && apt-get install -y -q doctest-dev)) >/dev/null; }
	@test -f $(DOCTEST_H) || { echo "doctest.h is missing: apt-get install doctest-dev"; exit 1; }

UNIT_SRC := tests/doctest_main.cpp $(wildcard tests/test_*.cpp)
tests/unit: $(UNIT_SRC) $(HEADERS) | deps
	$(CXX) $(CXXFLAGS) -O1 $(SAN) -I. -o $@ $(UNIT_SRC)

# The same programs under AddressSanitizer and UndefinedBehaviorSanitizer:
# the integration tests run once more against these.
ASAN_DIR := build/asan
$(ASAN_DIR)/%: %.cpp $(HEADERS)
	@mkdir -p $(ASAN_DIR)
	$(CXX) $(CXXFLAGS) -O1 $(SAN) -o $@ $<

test: deps compile tests/unit $(ASAN_DIR)/master $(ASAN_DIR)/slave
	$(PYTHON) tests/run_tests.py

# libFuzzer needs clang's runtime, Debian's libclang-rt-14-dev.
FUZZ_SECONDS ?= 60
FUZZ_RT := $(firstword $(wildcard /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a))
fuzz-deps:
	@test -n "$(FUZZ_RT)" || { echo "installing libclang-rt-14-dev (needs root)"; \
	  (apt-get install -y -q libclang-rt-14-dev || (apt-get update -q && apt-get install -y -q libclang-rt-14-dev)) >/dev/null; }

build/fuzz_protocol: fuzz/fuzz_protocol.cpp clock.hpp protocol.hpp | fuzz-deps
	@mkdir -p build
	clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I. -o $@ $<

fuzz: build/fuzz_protocol
	@mkdir -p build/fuzz-corpus
	build/fuzz_protocol -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=build/ \
	  build/fuzz-corpus fuzz/corpus 2>&1 | grep -E "^(stat::number_of_executed_units|stat::average_exec|Done|==|SUMMARY|property)" ; \
	  test $${PIPESTATUS[0]} -eq 0 && echo "fuzz: no finding in $(FUZZ_SECONDS) s"

clean:
	rm -rf master slave tests/unit build tests/__pycache__
