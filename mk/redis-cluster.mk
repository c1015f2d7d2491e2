# Redis Cluster: the agent in front of a real 6-node TLS + ACL cluster.
#   make bench-redis-cluster   redis-benchmark --cluster direct vs. plain redis-benchmark through the agent
#   make redis-cluster-up      a throwaway cluster on loopback for poking around (Ctrl+C removes it)
.PHONY: bench-redis-cluster redis-cluster-up

bench-redis-cluster: build  ## redis-benchmark against a real 6-node TLS + ACL cluster, direct and through the agent
	bash bench/redis-cluster.sh

redis-cluster-up: build  ## a throwaway Redis Cluster on loopback (Ctrl+C removes it)
	node dist/test/support/redis-cluster-cli.js
