# The operator: `drawbridge controller`, the in-cluster agent, and their tests on the real control plane.
.PHONY: test-operator bench-operator-scale

# Unit tests, then the end-to-end suite (API server, two controllers, node agent, PostgreSQL, Redis Cluster).
test-operator: build k8s-bin  ## operator unit + integration tests on a real control plane
	vitest run --project unit test/unit/operator
	vitest run --project integration test/integration/operator

# 1,000 Databases on a real API server: time to every agent Deployment and status, controller CPU/RSS.
# N and WORKERS override the defaults (1000, 16).
bench-operator-scale: build k8s-bin  ## 1,000 Databases on a real API server (N, WORKERS)
	bash bench/operator-scale.sh $(or $(N),1000) $(or $(WORKERS),16)
