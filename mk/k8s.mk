# A real Kubernetes control plane for tests (test/k8s). Binaries are built from source once and
# cached in $(DRAWBRIDGE_CACHE) or ~/.cache/drawbridge, so warm runs cost nothing.
.PHONY: k8s-bin k8s-up

k8s-bin:
	bash test/k8s/build.sh

# Integration tests start control planes from these binaries.
test-integration: k8s-bin

k8s-up: build k8s-bin
	node dist/test/k8s/controlplane-cli.js
