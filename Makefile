# Entry points; each target calls the script of the same name in scripts/.
.PHONY: setup build test lint bench bench-quick

setup:
	scripts/setup

build:
	scripts/build

test:
	scripts/test

lint:
	scripts/lint

# Rewrites BENCHMARKS.md (~25 min on 2 cores). bench-quick: a few minutes, reduced sizes.
bench:
	scripts/bench

bench-quick:
	scripts/bench --quick
