# Redis engine: parser fuzzing and the standalone benchmark (redis-benchmark direct / agent / nutcracker).
# The fuzz unit test (a few thousand cases) already runs in `make test`; these are the long runs.
.PHONY: fuzz-redis bench-redis

fuzz-redis: build  ## a million inputs through the RESP parsers and the login boundary (FUZZ_INPUTS)
	node dist/bench/fuzz-redis.js $(or $(FUZZ_INPUTS),1000000)

bench-redis: build  ## redis-benchmark direct / agent / nutcracker
	bash bench/redis.sh

# redis-py for the RESP3 client tests (test/python), in a cached venv like the AWS emulator's.
.PHONY: python-venv
python-venv:  ## the redis-py venv for the RESP3 client tests
	bash test/support/venv.sh test/python/requirements.txt

test-integration: python-venv
