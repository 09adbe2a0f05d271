# Build, test, demo and benchmark the Berkeley clock synchronization.
#   make compile   ./master and ./slave in the repo root (also: make)
#   make test      every test; installs doctest-dev first if it is missing
#   make clean     remove what the build made
CXX      ?= g++
CXXFLAGS ?= -std=c++20 -O2 -g -Wall -Wextra -Werror -Wshadow -Wconversion -Wno-sign-conversion
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
HEADERS  := clock.hpp protocol.hpp net.hpp eventlog.hpp
PYTHON   ?= python3

.PHONY: all compile test unit-test clean deps

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

test: deps compile tests/unit
	$(PYTHON) tests/run_tests.py

clean:
	rm -f master slave tests/unit
	rm -rf tests/__pycache__
