# What ships to a cluster: the Helm chart, the container image, and the kind end-to-end run.
CHART := charts/drawbridge
IMAGE ?= drawbridge:dev
K8S_BIN = $(shell bash test/k8s/build.sh --bin-dir)

.PHONY: helm-lint image e2e-kind

helm-lint: k8s-bin  ## helm lint the chart, strict
	$(K8S_BIN)/helm lint $(CHART) --strict

image:  ## docker build the drawbridge image (IMAGE=drawbridge:dev)
	docker build -t $(IMAGE) .

# Needs Docker, kind, kubectl, helm, psql, redis-cli and openssl on PATH; the CI machine has no Docker
# engine and runs the same scenario on its own real node instead (make e2e).
e2e-kind:  ## the e2e scenario on kind with the image (needs Docker, kind, kubectl, helm)
	IMAGE=$(IMAGE) bash test/e2e-kind/run.sh
