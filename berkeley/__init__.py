"""What analyze.py, the tests (tests/harness.py) and the benchmarks (bench/)
share, so that each judges a run by the same code, one role per file:

    units.py      nanoseconds, and durations as the C++ console prints them
    logs.py       the JSON-lines logs, read whole or while they are written
    clock.py      the clock model: each clock's true offset, replayed from its log
    analysis.py   a run's figures (spreads, corrections, estimation errors,
                  takeovers) and its verdict
    plot.py       the offsets over time as a standalone SVG
    processes.py  child processes, each stopped by its own PID; a master on a
                  free port and the port it took

The user's tool is analyze.py beside this directory (launching the slaves,
the text report, the command line). Standard library only."""
