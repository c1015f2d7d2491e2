#!/usr/bin/env bash
# The end-to-end scenario, shared by `make e2e` (a real node here, test/e2e/run.sh) and `make e2e-kind`
# (test/e2e-kind/run.sh): what a user does with Drawbridge, on a cluster that runs real pods.
#
# Needs: KUBECONFIG (cluster admin), E2E_IMAGE and E2E_IMAGE_NEXT (the drawbridge image under two tags
# of one repository, present on the nodes), E2E_BACKENDS_HOST (an address of this machine the pods
# reach) and E2E_BACKENDS_CLIENTS (the pods' CIDR as seen there); kubectl, helm, node, psql and
# redis-cli on PATH; dist/ built. Prints `e2e: N passed, M failed` last; exits non-zero on a failure.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
: "${KUBECONFIG:?}" "${E2E_IMAGE:?}" "${E2E_IMAGE_NEXT:?}" "${E2E_BACKENDS_HOST:?}" "${E2E_BACKENDS_CLIENTS:?}"
PULL=${E2E_PULL_POLICY:-IfNotPresent}
NS=drawbridge
APP=shop
WORK=$(mktemp -d)
ADMIN_KUBECONFIG=$KUBECONFIG
# The kubectl db plugin, as users install it: kubectl-db on PATH.
mkdir -p "$WORK/bin"
ln -s "$ROOT/dist/src/cli/kubectl-db.js" "$WORK/bin/kubectl-db"
chmod +x "$ROOT/dist/src/cli/kubectl-db.js"
# Logins (keys and certificates) stay in the run's directory.
export PATH=$WORK/bin:$PATH DRAWBRIDGE_HOME=$WORK/home

passed=0
failed=0
declare -a failures=() steps=()
backends_pid=

cleanup() {
  if [[ -n $backends_pid ]]; then
    exec 6>&-
    # Let them stop their servers and remove their directories.
    while kill -0 "$backends_pid" 2>/dev/null; do sleep 0.2; done
  fi
  rm -rf "$WORK"
  local not_run=$((${#steps[@]} - passed - failed))
  ((not_run > 0)) && echo "e2e: $not_run step(s) not run after the first failure" >&2
  for f in "${failures[@]}"; do echo "e2e: FAILED: $f" >&2; done
  echo "e2e: $passed passed, $((failed + not_run)) failed"
}
trap cleanup EXIT

fail() {
  echo "e2e: $*" >&2
  return 1
}

# eventually SECONDS CMD...: retries CMD every second until it succeeds.
eventually() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# as USER CMD...: runs CMD with USER's kubeconfig (made by user_kubeconfig).
as() {
  local user=$1
  shift
  KUBECONFIG=$WORK/$user.kubeconfig "$@"
}

# user_kubeconfig NAME: a client certificate for NAME from the cluster's own signer (a CSR an admin
# approves), in a kubeconfig of its own: how a cluster admin gives a person an identity.
user_kubeconfig() {
  local name=$1 csr
  openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/$name.key" 2>/dev/null
  openssl req -new -key "$WORK/$name.key" -subj "/CN=$name" -out "$WORK/$name.csr" 2>/dev/null
  csr=e2e-user-$name
  kubectl apply -f - >/dev/null <<EOF || return 1
apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: { name: $csr }
spec:
  request: $(base64 -w0 <"$WORK/$name.csr")
  signerName: kubernetes.io/kube-apiserver-client
  usages: [client auth]
EOF
  kubectl certificate approve "$csr" >/dev/null || return 1
  eventually 60 test -n "$(kubectl get csr "$csr" -o jsonpath='{.status.certificate}')" || return 1
  kubectl get csr "$csr" -o jsonpath='{.status.certificate}' | base64 -d >"$WORK/$name.crt"
  kubectl delete csr "$csr" >/dev/null
  kubectl config view --raw --minify --flatten >"$WORK/$name.kubeconfig"
  local user
  user=$(kubectl --kubeconfig "$WORK/$name.kubeconfig" config view -o jsonpath='{.contexts[0].context.user}')
  kubectl --kubeconfig "$WORK/$name.kubeconfig" config set-credentials "$user" --embed-certs \
    --client-certificate="$WORK/$name.crt" --client-key="$WORK/$name.key" >/dev/null
}

# agent_pods DATABASE: names of the agent pods of a Database in $APP, not terminating.
agent_pods() {
  kubectl -n "$APP" get pods -l "app.kubernetes.io/instance=drawbridge-$1" \
    -o go-template='{{range .items}}{{if not .metadata.deletionTimestamp}}{{.metadata.name}}{{"\n"}}{{end}}{{end}}'
}

# --- steps -----------------------------------------------------------------------------------------
install() {
  helm install drawbridge "$ROOT/charts/drawbridge" --namespace "$NS" --create-namespace \
    --set image.repository="${E2E_IMAGE%:*}" --set image.tag="${E2E_IMAGE##*:}" --set image.pullPolicy="$PULL" \
    --set controller.replicas=2 --set users.users='{alice,mallory}' --set users.portForward=true \
    --wait --timeout 5m || return 1
  [[ $(kubectl -n "$NS" get deploy drawbridge-controller -o jsonpath='{.status.readyReplicas}') == 2 ]] ||
    fail "expected 2 ready controller replicas"
}

databases() {
  # Their stdin is a fifo this script holds open (fd 6): however the script ends, they stop.
  mkfifo "$WORK/backends.in"
  node "$ROOT/dist/test/e2e/backends.js" --host "$E2E_BACKENDS_HOST" --clients "$E2E_BACKENDS_CLIENTS" \
    --out "$WORK/backends.yaml" <"$WORK/backends.in" &
  backends_pid=$!
  exec 6>"$WORK/backends.in"
  eventually 120 test -s "$WORK/backends.yaml" || fail "the databases did not start" || return 1
  kubectl create namespace "$APP" >/dev/null || return 1
  kubectl -n "$APP" apply -f "$WORK/backends.yaml" -f "$ROOT/test/e2e/access.yaml" >/dev/null || return 1
  # Ready includes BackendReachable: the controller reached each database from its pod.
  kubectl -n "$APP" wait database/orders database/sessions --for=condition=Ready --timeout=4m
}

agents_hardened() {
  local pod
  kubectl -n "$APP" rollout status deploy/drawbridge-orders deploy/drawbridge-sessions --timeout=3m || return 1
  for pod in $(agent_pods orders) $(agent_pods sessions); do
    [[ $(kubectl -n "$APP" exec "$pod" -- id -u) == 65532 ]] || fail "$pod does not run as uid 65532" || return 1
    if kubectl -n "$APP" exec "$pod" -- touch /app/written 2>"$WORK/touch.err"; then
      fail "$pod could write to its root filesystem"
      return 1
    fi
    grep -q 'Read-only file system' "$WORK/touch.err" || fail "$pod: $(cat "$WORK/touch.err")" || return 1
    # The image preloads jemalloc (Dockerfile): idle memory stays flat as connections come and go.
    kubectl -n "$APP" exec "$pod" -- grep -q libjemalloc /proc/1/maps ||
      fail "$pod: the agent does not run on jemalloc (the image's LD_PRELOAD)" || return 1
  done
}

people() {
  user_kubeconfig alice && user_kubeconfig mallory
}

alice_postgres() {
  local out
  as alice kubectl db -n "$APP" login orders --db-user app --ttl 30m || return 1
  # Through a port-forward (kubelet streaming): the agent Service is not reachable from outside.
  out=$(as alice kubectl db -n "$APP" connect orders -- -Atc 'select current_user, name from items') || return 1
  [[ $out == 'app|lamp' ]] || fail "expected app|lamp, got: $out"
}

alice_redis() {
  local out
  as alice kubectl db -n "$APP" login sessions --db-user app --ttl 30m || return 1
  out=$(as alice kubectl db -n "$APP" connect sessions -- SET e2e:greeting hello) || return 1
  [[ $out == OK ]] || fail "expected OK from SET, got: $out" || return 1
  out=$(as alice kubectl db -n "$APP" connect sessions -- GET e2e:greeting) || return 1
  [[ $out == hello ]] || fail "expected hello from GET, got: $out" || return 1
  # @dangerous is denied by alice's role, and the denial names it.
  out=$(as alice kubectl db -n "$APP" connect sessions -- FLUSHALL 2>&1)
  [[ $out == *sessions-app* ]] || fail "expected FLUSHALL to be denied by sessions-app, got: $out"
}

workload() {
  local ca
  ca=$(kubectl -n "$NS" get configmap drawbridge-ca -o jsonpath='{.data.ca\.crt}') || return 1
  kubectl -n "$APP" create configmap drawbridge-ca --from-literal=ca.crt="$ca" >/dev/null || return 1
  kubectl -n "$APP" apply -f - >/dev/null <<EOF || return 1
apiVersion: v1
kind: Pod
metadata: { name: reporter }
spec:
  serviceAccountName: reporter
  restartPolicy: Never
  securityContext: { runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532 }
  containers:
    - name: reporter
      image: $E2E_IMAGE
      imagePullPolicy: $PULL
      workingDir: /app
      command: [node, -e]
      args:
        - |
          const fs = require('node:fs');
          const { Client } = require('pg');
          const host = 'drawbridge-orders.$APP.svc';
          const client = new Client({
            host, port: 5432, user: 'app', database: 'orders',
            password: fs.readFileSync('/var/run/secrets/drawbridge/token', 'utf8'),
            ssl: { ca: fs.readFileSync('/etc/drawbridge-ca/ca.crt', 'utf8'), servername: host },
          });
          client.connect()
            .then(() => client.query('select current_user as who, count(*)::int as n from items'))
            .then((r) => { console.log('reporter:', JSON.stringify(r.rows[0])); return client.end(); })
            .catch((e) => { console.error('reporter failed:', e.message); process.exit(1); });
      volumeMounts:
        - { name: token, mountPath: /var/run/secrets/drawbridge, readOnly: true }
        - { name: ca, mountPath: /etc/drawbridge-ca, readOnly: true }
  volumes:
    - name: token
      projected:
        sources: [{ serviceAccountToken: { audience: drawbridge.dev/$APP/orders, expirationSeconds: 3600, path: token } }]
    - name: ca
      configMap: { name: drawbridge-ca }
EOF
  eventually 120 pod_done reporter || fail "the reporter pod did not finish" || return 1
  local logs
  logs=$(kubectl -n "$APP" logs reporter)
  [[ $logs == *'reporter: {"who":"app","n":1}'* ]] || fail "reporter: $logs"
}
pod_done() {
  [[ $(kubectl -n "$APP" get pod "$1" -o jsonpath='{.status.phase}') =~ ^(Succeeded|Failed)$ ]]
}

denied() {
  local out
  if out=$(as mallory kubectl db -n "$APP" login orders --db-user app --timeout 1m 2>&1); then
    fail "mallory was given a certificate: $out"
    return 1
  fi
  [[ $out == *denied* ]] || fail "expected a denial, got: $out"
}

# An agent that cannot start (its serving key is not a key) is reported in its Database's status with
# the agent's own error, which the real kubelet took from the container's termination log; doing what the
# message says (delete the Secret: the controller issues a new one) brings it back.
crash_reported() {
  local secret=drawbridge-sessions-tls msg
  kubectl -n "$APP" patch secret "$secret" -p "{\"data\":{\"tls.key\":\"$(printf 'not a key\n' | base64 -w0)\"}}" \
    >/dev/null || return 1
  kubectl -n "$APP" rollout restart deploy/drawbridge-sessions >/dev/null || return 1
  # The old pod serves on while the roll-out waits for the new one: AgentReady says why that one fails.
  eventually 180 agent_says sessions 'tls.keyFile' ||
    fail "AgentReady never named the key file: $(agent_message sessions)" || return 1
  msg=$(agent_message sessions)
  [[ $msg == *'crash-looping'* || $msg == *exited* ]] || fail "AgentReady: $msg" || return 1
  [[ $msg != *'not a key'* ]] || fail "the bad file's content is in the status: $msg" || return 1
  kubectl -n "$APP" delete secret "$secret" >/dev/null || return 1
  eventually 60 kubectl -n "$APP" get secret "$secret" >/dev/null 2>&1 ||
    fail "the controller did not issue a new $secret" || return 1
  kubectl -n "$APP" rollout restart deploy/drawbridge-sessions >/dev/null || return 1
  kubectl -n "$APP" rollout status deploy/drawbridge-sessions --timeout=3m >/dev/null || return 1
  eventually 60 agent_says sessions '1/1 agent replicas ready' ||
    fail "AgentReady after the fix: $(agent_message sessions)" || return 1
  msg=$(agent_message sessions)
  [[ $msg != *tls.keyFile* ]] || fail "AgentReady still reports the old crash: $msg"
}
agent_message() {
  kubectl -n "$APP" get database "$1" -o jsonpath='{.status.conditions[?(@.type=="AgentReady")].message}'
}
agent_says() { [[ $(agent_message "$1") == *"$2"* ]]; }

upgrade_drains() {
  local old out
  old=$(agent_pods orders)
  [[ -n $old ]] || fail "no agent pod for orders" || return 1
  mkfifo "$WORK/psql.in"
  as alice kubectl db -n "$APP" connect orders -- -At <"$WORK/psql.in" >"$WORK/psql.out" 2>&1 &
  local session=$!
  exec 7>"$WORK/psql.in"
  echo "select 'before';" >&7
  eventually 30 grep -q '^before$' "$WORK/psql.out" || fail "session did not start: $(cat "$WORK/psql.out")" ||
    { exec 7>&-; return 1; }
  helm upgrade drawbridge "$ROOT/charts/drawbridge" --namespace "$NS" --reuse-values \
    --set image.tag="${E2E_IMAGE_NEXT##*:}" --wait --timeout 5m >/dev/null || { exec 7>&-; return 1; }
  # The new controller rolls the agent; the old pod drains: our open session keeps working.
  eventually 180 terminating "$old" || fail "agent pod $old was not replaced" || { exec 7>&-; return 1; }
  echo "select 'during drain';" >&7
  exec 7>&-
  wait "$session" || fail "the session failed while draining: $(cat "$WORK/psql.out")" || return 1
  grep -q '^during drain$' "$WORK/psql.out" || fail "no answer while draining: $(cat "$WORK/psql.out")" ||
    return 1
  kubectl -n "$APP" rollout status deploy/drawbridge-orders --timeout=3m || return 1
  out=$(kubectl -n "$APP" get deploy drawbridge-orders -o jsonpath='{.spec.template.spec.containers[0].image}')
  [[ $out == "$E2E_IMAGE_NEXT" ]] || fail "agent image is $out, expected $E2E_IMAGE_NEXT"
}
terminating() {
  [[ -n $(kubectl -n "$APP" get pod "$1" -o jsonpath='{.metadata.deletionTimestamp}' 2>/dev/null) ]] ||
    ! kubectl -n "$APP" get pod "$1" >/dev/null 2>&1
}

delete_database() {
  kubectl -n "$APP" delete database orders --timeout=2m >/dev/null || return 1
  eventually 120 no_objects "$APP" -l app.kubernetes.io/instance=drawbridge-orders ||
    fail "left behind: $(kubectl -n "$APP" get "$KINDS" -l app.kubernetes.io/instance=drawbridge-orders -o name)"
}
KINDS=deploy,rs,pod,svc,endpointslice,secret,sa,role,rolebinding,pdb,configmap
no_objects() {
  local ns=$1
  shift
  [[ -z $(kubectl -n "$ns" get "$KINDS" "$@" -o name 2>/dev/null) ]]
}

uninstall() {
  kubectl -n "$APP" delete database sessions --timeout=2m >/dev/null || return 1
  # With the last Database gone, the controller drops the agents' TokenReview binding.
  eventually 60 gone clusterrolebinding drawbridge-agent-tokenreview ||
    fail "the TokenReview binding outlived the last Database" || return 1
  helm uninstall drawbridge --namespace "$NS" --wait --timeout 3m >/dev/null || return 1
  # Only what every namespace has: its default ServiceAccount and the cluster's root CA.
  eventually 120 only_defaults || fail "left behind in $NS: $(kubectl -n "$NS" get "$KINDS",lease -o name)" ||
    return 1
  local cluster
  cluster=$(kubectl get clusterrole,clusterrolebinding -o name | grep drawbridge)
  [[ -z $cluster ]] || fail "left behind: $cluster"
}
gone() { ! kubectl get "$@" >/dev/null 2>&1; }
only_defaults() {
  [[ -z $(kubectl -n "$NS" get "$KINDS",lease -o name | grep -v -e '^serviceaccount/default$' \
    -e '^configmap/kube-root-ca.crt$') ]]
}

# --- run: each step needs the ones before it, so the first failure ends the run ----------------------
steps=(install databases agents_hardened people alice_postgres alice_redis workload denied crash_reported upgrade_drains
  delete_database uninstall)
for step in "${steps[@]}"; do
  echo "==> $step" >&2
  start=$SECONDS
  if "$step"; then
    passed=$((passed + 1))
    echo "ok: $step ($((SECONDS - start))s)" >&2
  else
    failed=$((failed + 1))
    failures+=("$step")
    exit 1
  fi
done
