# `make e2e`: the image from our Dockerfile on a real single-node Kubernetes (test/e2e), installed by
# Helm, through the scenario shared with `make e2e-kind`. Needs root (namespaces, cgroups, iptables).
.PHONY: e2e e2e-deps

# containerd/runc/CNI run the pods, podman builds the image, debootstrap makes its base, catatonit is
# the pause process, iptables and conntrack serve kube-proxy. Installed only when one is missing.
E2E_APT_PACKAGES := containerd runc containernetworking-plugins podman debootstrap iptables conntrack catatonit
e2e-deps:
	@missing=""; \
	for b in containerd runc podman debootstrap iptables conntrack catatonit /usr/lib/cni/bridge; do \
	  command -v $$b >/dev/null 2>&1 || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    $(E2E_APT_PACKAGES) >/dev/null; \
	fi

e2e: build k8s-bin e2e-deps  ## the image from the Dockerfile on a real single-node Kubernetes via Helm (root)
	bash test/e2e/run.sh

# make test ends with the real node (after lint, unit and integration).
test: e2e
