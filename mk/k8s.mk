# A real Kubernetes control plane for tests (test/k8s). Binaries are built from source once and
# cached in $(DRAWBRIDGE_CACHE) or ~/.cache/drawbridge, so warm runs cost nothing.
.PHONY: k8s-bin k8s-up

k8s-bin:  ## build and cache the Kubernetes test binaries
	bash test/k8s/build.sh

# Integration tests start control planes from these binaries.
test-integration: k8s-bin

k8s-up: build k8s-bin  ## a local control plane for poking around
	node dist/test/k8s/controlplane-cli.js
