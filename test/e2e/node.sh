#!/usr/bin/env bash
# A real single-node Kubernetes, run by test/e2e/run.sh inside namespaces of its own:
#   unshare --net --mount --pid ... bash test/e2e/node.sh DIR -- COMMAND...
# Its own network namespace keeps every address, bridge, route and iptables rule (kube-proxy's too)
# away from the machine and from other runs, and no traffic can leave the machine; its own mount
# namespace lets the kubelet have the shared mount propagation it needs without touching the host; and
# as PID 1 of its own PID namespace this script takes every daemon, shim and container with it when it
# exits, however it exits. run.sh removes DIR and the cgroups afterwards.
#
# Components: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd (+ runc, CNI
# bridge), kubelet (cgroupfs), kube-proxy (iptables) and CoreDNS on the node's address. Pods get
# addresses from POD_CIDR on the bridge; the node (and the host processes the tests start, e.g. the
# databases) is NODE_IP on that bridge. Then COMMAND runs with KUBECONFIG set; its status is ours.
set -euo pipefail

DIR=$1
shift
[[ $1 == -- ]] && shift
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(bash "$ROOT/test/k8s/build.sh" --bin-dir)
IMAGES=${DRAWBRIDGE_CACHE:-$HOME/.cache/drawbridge}/e2e
# The cgroup every pod lives under (run.sh made it, and removes it).
CGROUP_ROOT=${E2E_CGROUP_ROOT:?}

NODE=drawbridge-e2e
BRIDGE=dbe2e0
POD_CIDR=10.244.0.0/24
NODE_IP=10.244.0.1
SERVICE_CIDR=10.96.0.0/24
API_SERVICE_IP=10.96.0.1
CLUSTER_DOMAIN=cluster.local
PAUSE=localhost/drawbridge-e2e/pause:catatonit

mkdir -p "$DIR"/{pki,logs,etc}
log() { echo "node: $*" >&2; }
declare -A PIDS=()

# daemon NAME CMD...: starts CMD in the background, logging to logs/NAME.log.
daemon() {
  local name=$1
  shift
  "$@" >"$DIR/logs/$name.log" 2>&1 &
  PIDS[$name]=$!
}

# wait_for NAME SECONDS CMD...: polls CMD until it succeeds; fails with NAME's log tail if NAME died.
wait_for() {
  local name=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "${PIDS[$name]}" 2>/dev/null || ((SECONDS > deadline)); then
      log "$name did not come up; last lines of its log:"
      tail -30 "$DIR/logs/$name.log" >&2
      return 1
    fi
    sleep 0.5
  done
}

# --- network and mounts (both private to this run) -----------------------------------------------
ip link set lo up
ip link add "$BRIDGE" type bridge
ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
ip link set "$BRIDGE" up
# Service addresses are only rewritten by kube-proxy's rules; a route makes them reachable from here.
ip route add "$SERVICE_CIDR" dev "$BRIDGE"
sysctl -qw net.ipv4.ip_forward=1
# Service traffic between two pods on the bridge must pass kube-proxy's iptables rules.
sysctl -qw net.bridge.bridge-nf-call-iptables=1
# Pods' volumes mounted by the kubelet must propagate into the containers (and back).
mount --make-rshared /
# Fixed host paths the kubelet, containerd and CNI use: private copies, so nothing lands on the host.
for d in /var/lib/kubelet /var/log/pods /var/log/containers /var/run/netns /var/lib/cni /run/containerd; do
  mkdir -p "$d" "$DIR/host$d"
  mount --bind "$DIR/host$d" "$d"
done
: >"$DIR/etc/resolv.conf"

# --- PKI (one CA; CN = user, O = group, the Kubernetes convention) ---------------------------------
P=$DIR/pki
openssl ecparam -name prime256v1 -genkey -noout -out "$P/ca.key" 2>/dev/null
openssl req -x509 -new -key "$P/ca.key" -subj /CN=drawbridge-e2e-ca -days 2 -out "$P/ca.crt" 2>/dev/null
# cert NAME SUBJECT [SANS]: an EC key and a certificate signed by the CA, for client and server use.
cert() {
  local name=$1 subject=$2 sans=${3:-}
  openssl ecparam -name prime256v1 -genkey -noout -out "$P/$name.key" 2>/dev/null
  openssl req -new -key "$P/$name.key" -subj "$subject" -out "$P/$name.csr" 2>/dev/null
  {
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=clientAuth,serverAuth"
    [[ -n $sans ]] && echo "subjectAltName=$sans"
  } >"$P/$name.ext"
  openssl x509 -req -in "$P/$name.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
    -extfile "$P/$name.ext" -out "$P/$name.crt" 2>/dev/null
}
# kubeconfig NAME: a kubeconfig authenticating with NAME's certificate.
kubeconfig() {
  local b64='base64 -w0'
  cat >"$DIR/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: "https://$NODE_IP:6443", certificate-authority-data: $($b64 <"$P/ca.crt")}
users:
- name: $1
  user: {client-certificate-data: $($b64 <"$P/$1.crt"), client-key-data: $($b64 <"$P/$1.key")}
contexts:
- name: $1
  context: {cluster: e2e, user: $1}
current-context: $1
EOF
}
cert apiserver /CN=kube-apiserver \
  "IP:$API_SERVICE_IP,IP:$NODE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
cert admin "/O=system:masters/CN=kubernetes-admin"
cert controller-manager "/O=system:masters/CN=system:kube-controller-manager"
cert scheduler /CN=system:kube-scheduler
cert kubelet "/O=system:nodes/CN=system:node:$NODE" "IP:$NODE_IP,DNS:$NODE"
cert kube-proxy /CN=system:kube-proxy
cert apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client"
for n in admin controller-manager scheduler kubelet kube-proxy; do kubeconfig "$n"; done
openssl ecparam -name prime256v1 -genkey -noout -out "$P/sa.key" 2>/dev/null
openssl ec -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
export KUBECONFIG=$DIR/admin.kubeconfig
kubectl() { "$BIN/kubectl" "$@"; }

# --- control plane -------------------------------------------------------------------------------
daemon etcd "$BIN/etcd" --data-dir="$DIR/etcd" --listen-client-urls=http://127.0.0.1:2379 \
  --advertise-client-urls=http://127.0.0.1:2379 --listen-peer-urls=http://127.0.0.1:2380 \
  --unsafe-no-fsync --log-level=warn
daemon kube-apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
  --bind-address=0.0.0.0 --advertise-address="$NODE_IP" --secure-port=6443 \
  --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" \
  --kubelet-client-certificate="$P/apiserver-kubelet.crt" --kubelet-client-key="$P/apiserver-kubelet.key" \
  --kubelet-certificate-authority="$P/ca.crt" --kubelet-preferred-address-types=InternalIP \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=true \
  --profiling=false
wait_for kube-apiserver 120 kubectl get --raw /readyz
daemon kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$DIR/controller-manager.kubeconfig" --leader-elect=false --secure-port=0 \
  --controllers='*' --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --use-service-account-credentials=false --profiling=false
daemon kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$DIR/scheduler.kubeconfig" \
  --leader-elect=false --secure-port=0 --profiling=false

# --- containerd ----------------------------------------------------------------------------------
mkdir -p "$DIR/cni" "$DIR/containerd"
cat >"$DIR/cni/10-e2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "drawbridge-e2e",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
               "routes": [{"dst": "0.0.0.0/0"}]}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
cat >"$DIR/containerd/config.toml" <<EOF
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$DIR/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE"
  # Lowering a process's oom_score_adj is denied on this kind of machine; runc then fails to start.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni"
EOF
daemon containerd containerd --config "$DIR/containerd/config.toml"
ctr() { command ctr --address "$DIR/containerd.sock" --namespace k8s.io "$@"; }
wait_for containerd 60 ctr version
for archive in pause drawbridge; do
  ctr images import "$IMAGES/$archive.tar" >/dev/null
done
# The scenario's `helm upgrade` changes the image tag to roll the agents.
ctr images tag localhost/drawbridge:e2e localhost/drawbridge:e2e-next >/dev/null

# --- kubelet -------------------------------------------------------------------------------------
cat >"$DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$DIR/containerd.sock
# containerd 1.6 cannot tell the kubelet its cgroup driver, and there is no systemd here.
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
address: $NODE_IP
tlsCertFile: $P/kubelet.crt
tlsPrivateKeyFile: $P/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $P/ca.crt}
authorization: {mode: Webhook}
clusterDomain: $CLUSTER_DOMAIN
clusterDNS: [$NODE_IP]
resolvConf: $DIR/etc/resolv.conf
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
failSwapOn: false
# The machine's disk and memory are shared with other work: never evict, never collect our images.
evictionHard: {memory.available: "0%", nodefs.available: "0%", imagefs.available: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
daemon kubelet "$BIN/kubelet" --config="$DIR/kubelet.yaml" --kubeconfig="$DIR/kubelet.kubeconfig" \
  --hostname-override="$NODE" --node-ip="$NODE_IP"
wait_for kubelet 120 kubectl wait --for=condition=Ready "node/$NODE" --timeout=2s

# --- Services: kube-proxy (iptables) and cluster DNS ---------------------------------------------
cat >"$DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $DIR/kube-proxy.kubeconfig}
hostnameOverride: $NODE
clusterCIDR: $POD_CIDR
# nf_conntrack_max is a machine-wide setting: leave it alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
daemon kube-proxy "$BIN/kube-proxy" --config="$DIR/kube-proxy.yaml"
cat >"$DIR/Corefile" <<EOF
.:53 {
  errors
  health 127.0.0.1:8080
  kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
    kubeconfig $DIR/admin.kubeconfig
    pods insecure
  }
  cache 5
}
EOF
daemon coredns "$BIN/coredns" -conf "$DIR/Corefile"
wait_for kube-proxy 60 curl -sf http://127.0.0.1:10256/healthz
wait_for coredns 60 curl -sf http://127.0.0.1:8080/health
# kube-proxy has programmed the apiserver's Service once its ClusterIP answers.
wait_for kube-proxy 60 curl -sk --cacert "$P/ca.crt" "https://$API_SERVICE_IP/readyz"
log "up: node $NODE Ready, pods on $POD_CIDR, node address $NODE_IP, logs in $DIR/logs"

export PATH=$BIN:$PATH E2E_BACKENDS_HOST=$NODE_IP E2E_BACKENDS_CLIENTS=$POD_CIDR E2E_PULL_POLICY=Never
export E2E_IMAGE=localhost/drawbridge:e2e E2E_IMAGE_NEXT=localhost/drawbridge:e2e-next
status=0
"$@" || status=$?
exit "$status"
