# Redis engine: parser fuzzing and the standalone benchmark (redis-benchmark direct / agent / nutcracker).
# The fuzz unit test (a few thousand cases) already runs in `make test`; these are the long runs.
.PHONY: fuzz-redis bench-redis

fuzz-redis: build  ## a million inputs through the RESP parsers and the login boundary (FUZZ_INPUTS)
	node dist/bench/fuzz-redis.js $(or $(FUZZ_INPUTS),1000000)

bench-redis: build  ## redis-benchmark direct / agent / nutcracker
	bash bench/redis.sh
