# PostgreSQL engine: benchmark and parser fuzzing.
.PHONY: bench-postgres fuzz-postgres

# pgbench agent / node pipe / pgbouncer / direct, alternating (BENCH_ROUNDS=3, BENCH_DURATION=20), connect
# latency, RSS with 1,000 idle sessions; CPU per transaction first, medians with their spread.
bench-postgres: deps  ## pgbench direct / agent / pgbouncer, connect latency, idle RSS
	bash bench/postgres.sh

# A million random and mutated inputs through the PostgreSQL parsers (FUZZ_INPUTS, FUZZ_SEED).
fuzz-postgres: build  ## a million inputs through the PostgreSQL parsers (FUZZ_INPUTS)
	node dist/bench/fuzz-postgres.js $(or $(FUZZ_INPUTS),1000000)
