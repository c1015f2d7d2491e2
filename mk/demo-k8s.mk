# `make demo-k8s`: the whole flow on a local control plane (scripts/demo-k8s.ts): CRDs, controller,
# an agent Deployment run as a process, PostgreSQL, and `kubectl db` as alice and mallory.
.PHONY: demo-k8s

demo-k8s: build k8s-bin  ## the whole flow on a local kube-apiserver: CRDs, controller, agent, kubectl db
	node dist/scripts/demo-k8s.js
