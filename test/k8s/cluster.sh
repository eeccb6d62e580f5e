#!/usr/bin/env bash
# cluster.sh - the single-node Kubernetes nimbus's kube tests run on, built only from the Go module
# proxy and Debian bookworm packages (containerd, runc, containernetworking-plugins, iptables,
# conntrack, openssl, curl). Everything listens on 127.0.0.1 but the apiserver, which pods reach
# at the node's address; state lives under $NIMBUS_K8S_DIR
# (default: nimbus-k8s in the temp dir), which the tests read (kubetest.Dir).
#
#   cluster.sh build          # go-build etcd + kube-* binaries into $NIMBUS_K8S_DIR/bin (~10-15 min cold, 2 cores)
#   cluster.sh up             # etcd, apiserver, controller-manager, scheduler, containerd, kubelet, kube-proxy
#   cluster.sh down [--purge]
#   cluster.sh image REF BINARY   # wrap a static binary FROM scratch and import it (imagePullPolicy: Never)
#   cluster.sh runtime-base   # a Debian bookworm root filesystem with python3 (debootstrap, ~1 min) as
#                             # $NIMBUS_K8S_DIR/runtime-base.tar.gz: the base of the runtime image's Debian variant
#
# Afterwards: export KUBECONFIG=$NIMBUS_K8S_DIR/kubeconfig. Root only; one cluster per machine (it
# adds the cni0 bridge and iptables rules, and takes ports 2379-2381, 6443, 10248-10259).
set -euo pipefail

K8S_DIR=${NIMBUS_K8S_DIR:-${TMPDIR:-/tmp}/nimbus-k8s}
K8S_VERSION=${K8S_VERSION:-1.37.2}          # k8s.io/kubernetes tag; staging modules are v0.<minor>.<patch>
ETCD_VERSION=${ETCD_VERSION:-3.7.3}         # k8s 1.37 is tested against etcd 3.7.0
COMPONENTS=${COMPONENTS:-"kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl"}
POD_CIDR=10.244.0.0/24
SVC_CIDR=10.96.0.0/16
BIN=$K8S_DIR/bin RUN=$K8S_DIR/run LOG=$K8S_DIR/logs PKI=$K8S_DIR/pki
CTR_SOCK=$K8S_DIR/containerd/containerd.sock
export KUBECONFIG=$K8S_DIR/kubeconfig

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- build
build() {
  command -v go >/dev/null || die "go not found"
  mkdir -p "$BIN" "$K8S_DIR/src/k8s" "$K8S_DIR/src/etcd"
  local minor=${K8S_VERSION#*.} v=v$K8S_VERSION
  # 1) kube-* : k8s.io/kubernetes's go.mod replaces k8s.io/* with ./staging/... (not in the module zip),
  #    so the main module must replace every staging module with its published v0.X.Y twin.
  ( cd "$K8S_DIR/src/k8s"
    GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p' | xargs cat > kubernetes.mod
    grep -q '=> ./staging/' kubernetes.mod || die "could not read k8s.io/kubernetes@$v go.mod"
    { printf 'module local/k8sbuild\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$v"
      awk '$2=="=>" && $3 ~ /^\.\/staging\// {print $1}' kubernetes.mod | grep -v -e sample-cli-plugin -e sample-controller |
        while read -r m; do printf '\t%s => %s v0.%s\n' "$m" "$m" "$minor"; done
      printf ')\n'; } > go.mod
    for c in $COMPONENTS; do GOFLAGS=-mod=mod go get -tool "k8s.io/kubernetes/cmd/$c@$v"; done
    local vp=k8s.io/component-base/version cp=k8s.io/client-go/pkg/version
    local ld="-s -w -X $vp.gitVersion=$v -X $vp.gitMajor=1 -X $vp.gitMinor=${minor%%.*} -X $vp.gitTreeState=clean"
    ld+=" -X $vp.buildDate=1970-01-01T00:00:00Z -X $cp.gitVersion=$v -X $cp.gitMajor=1 -X $cp.gitMinor=${minor%%.*}"
    local pkgs=(); for c in $COMPONENTS; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    log "building ${pkgs[*]}"
    time go build -trimpath -ldflags="$ld" -o "$BIN/" "${pkgs[@]}" )
  # 2) etcd: go.etcd.io/etcd/server/v3 is a main package; its go.mod has ../ replaces, so `go install
  #    pkg@version` refuses it - a wrapper module ignores them and uses the published api/client modules.
  ( cd "$K8S_DIR/src/etcd"
    printf 'module local/etcdbuild\n\ngo 1.26.0\n' > go.mod
    GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
    log "building etcd v$ETCD_VERSION"
    time GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$BIN/etcd" go.etcd.io/etcd/server/v3 )
  ls -la "$BIN"
}

# ---------------------------------------------------------------- helpers
start() {  # start NAME CMD... : detached, pid in $RUN/NAME.pid, output in $LOG/NAME.log
  local n=$1; shift
  if [ -f "$RUN/$n.pid" ] && kill -0 "$(cat "$RUN/$n.pid")" 2>/dev/null; then log "$n already running"; return; fi
  setsid "$@" >"$LOG/$n.log" 2>&1 < /dev/null &
  echo $! > "$RUN/$n.pid"
}
stop() {  # stop NAME : TERM, wait up to 20s, then KILL - only the pid we recorded
  local n=$1 p
  [ -f "$RUN/$n.pid" ] || return 0
  p=$(cat "$RUN/$n.pid")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p" 2>/dev/null || true; for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$p" 2>/dev/null; then kill -9 "$p" 2>/dev/null || true; fi
  fi
  rm -f "$RUN/$n.pid"
}
wait_for() {  # wait_for WHAT SECONDS CMD...
  local what=$1 t=$2; shift 2
  for _ in $(seq 1 $((t * 5))); do "$@" >/dev/null 2>&1 && { log "$what ok"; return 0; }; sleep 0.2; done
  die "$what not ready after ${t}s (see $LOG)"
}
kc() { "$BIN/kubectl" "$@"; }
# node_ip is the address of the interface of the default route: where pods reach the node.
node_ip() { ip -4 route get 192.0.2.1 | sed -n 's/.* src \([0-9.]*\).*/\1/p'; }

pki() {
  [ -f "$PKI/token" ] && return
  mkdir -p "$PKI"; ( cd "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -keyout ca.key -out ca.crt -subj /CN=k8s-local-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' > ext.cnf
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile ext.cnf -out apiserver.crt 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > token
  head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > token-limited
  # admin: in system:masters. limited: no rights but those a test binds to it (RBAC).
  { echo "$(cat token),admin,admin,system:masters"; echo "$(cat token-limited),limited,limited"; } > tokens.csv )
  kubeconfig "$KUBECONFIG" admin "$(cat "$PKI/token")"
  kubeconfig "$K8S_DIR/kubeconfig-limited" limited "$(cat "$PKI/token-limited")"
}
kubeconfig() {  # kubeconfig FILE USER TOKEN
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:6443", certificate-authority: "$PKI/ca.crt"}}]
users: [{name: $2, user: {token: "$3"}}]
contexts: [{name: local, context: {cluster: local, user: $2}}]
current-context: local
EOF
}

# ---------------------------------------------------------------- control plane
up_cp() {
  mkdir -p "$RUN" "$LOG"; pki
  start etcd "$BIN/etcd" --name local --data-dir "$K8S_DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster local=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 --unsafe-no-fsync
  wait_for etcd 30 curl -sf http://127.0.0.1:2379/health
  # Pods reach the apiserver (in-cluster config: the 'kubernetes' Service, 10.96.0.1) at the
  # node's address, which it advertises; everything else reaches it at 127.0.0.1.
  start kube-apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --advertise-address="$(node_ip)" --secure-port=6443 \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" --client-ca-file="$PKI/ca.crt" \
    --token-auth-file="$PKI/tokens.csv" --authorization-mode=Node,RBAC \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range=$SVC_CIDR --allow-privileged=true
  wait_for kube-apiserver 90 kc get --raw /readyz
  [ "${CP_ONLY:-}" = 1 ] && return
  start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$KUBECONFIG" --bind-address=127.0.0.1 \
    --leader-elect=false --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt"
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$KUBECONFIG" --bind-address=127.0.0.1 --leader-elect=false
  wait_for kube-controller-manager 60 curl -skf https://127.0.0.1:10257/healthz
  wait_for kube-scheduler 60 curl -skf https://127.0.0.1:10259/healthz
  wait_for "default serviceaccount" 60 kc get serviceaccount default
}

# ---------------------------------------------------------------- node
# Pods reach each other across the bridge: Docker sets the FORWARD policy to DROP, and the
# bridge plugin adds no accept rule (the CNI firewall plugin would, at a cost of iptables calls on
# every pod's start: a second of cold start on a host with Docker's and kube-proxy's rules).
forward_rules() {  # forward_rules -I|-D
  for dir in -s -d; do
    if [ "$1" = -I ]; then iptables -C FORWARD "$dir" "$POD_CIDR" -j ACCEPT 2>/dev/null || iptables -I FORWARD "$dir" "$POD_CIDR" -j ACCEPT
    else while iptables -D FORWARD "$dir" "$POD_CIDR" -j ACCEPT 2>/dev/null; do :; done; fi
  done
}

up_node() {
  mkdir -p "$K8S_DIR/containerd" "$K8S_DIR/cni/net.d" "$K8S_DIR/kubelet"
  forward_rules -I
  cat > "$K8S_DIR/containerd/config.toml" <<EOF
version = 2
root = "$K8S_DIR/containerd/root"
state = "$K8S_DIR/containerd/state"
[grpc]
  address = "$CTR_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:v1"   # built locally, see images(); there is no registry
  restrict_oom_score_adj = true          # no CAP_SYS_RESOURCE in the VM: sandbox oom_score_adj -998 fails otherwise
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$K8S_DIR/cni/net.d"
EOF
  cat > "$K8S_DIR/cni/net.d/10-bridge.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "k8s-local", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$K8S_DIR/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}]}
EOF
  cat > "$K8S_DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
containerRuntimeEndpoint: unix://$CTR_SOCK
cgroupDriver: cgroupfs        # containerd 1.6 lacks the RuntimeConfig RPC; kubelet 1.37 still falls back to this
failCgroupV1: false           # kubelet >= 1.35 refuses cgroup v1 hosts unless this is false
failSwapOn: false
podLogsDir: $K8S_DIR/kubelet/pod-logs
volumePluginDir: $K8S_DIR/kubelet/volume-plugins
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
imageGCHighThresholdPercent: 100   # never garbage-collect the preloaded images
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%, imagefs.inodesFree: 1%}
EOF
  start containerd containerd --config "$K8S_DIR/containerd/config.toml"
  wait_for containerd 30 ctr -a "$CTR_SOCK" version
  images
  # node name 'localhost': the apiserver reaches the kubelet (logs/exec) via the Hostname address -> 127.0.0.1:10250
  start kubelet "$BIN/kubelet" --kubeconfig="$KUBECONFIG" --config="$K8S_DIR/kubelet/config.yaml" \
    --root-dir="$K8S_DIR/kubelet/root" --cert-dir="$K8S_DIR/kubelet/pki" --hostname-override=localhost
  start kube-proxy "$BIN/kube-proxy" --kubeconfig="$KUBECONFIG" --hostname-override=localhost --proxy-mode=iptables \
    --cluster-cidr=10.244.0.0/16 --nodeport-addresses=127.0.0.0/8 --conntrack-max-per-core=0 \
    --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256
  wait_for "node Ready" 120 kc wait --for=condition=Ready node/localhost --timeout=2s
}

# ---------------------------------------------------------------- images (no registry anywhere)
oci_archive() {  # oci_archive REF BINARY OUT.tar : single-layer FROM-scratch OCI image, ENTRYPOINT /<binary name>
  local ref=$1 bin=$2 out=$3 w b ld ls cd cs md ms
  w=$(mktemp -d); b=$(basename "$bin"); mkdir -p "$w/root" "$w/oci/blobs/sha256"; install -m 0755 "$bin" "$w/root/$b"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$w/root" -cf "$w/layer.tar" "$b"
  put() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$w/oci/blobs/sha256/$d"; echo "$d $(stat -c %s "$1")"; }
  read -r ld ls < <(put "$w/layer.tar")
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/%s"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$b" "$ld" > "$w/config.json"
  read -r cd cs < <(put "$w/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' "$cd" "$cs" "$ld" "$ls" > "$w/manifest.json"
  read -r md ms < <(put "$w/manifest.json")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' "$md" "$ms" "$ref" "${ref##*:}" > "$w/oci/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$w/oci/oci-layout"
  tar -C "$w/oci" -cf "$out" oci-layout index.json blobs; rm -rf "$w"
}
image() { local out; out=$(mktemp --suffix=.tar); oci_archive "$1" "$2" "$out"; ctr -a "$CTR_SOCK" -n k8s.io images import "$out" >/dev/null; rm -f "$out"; log "imported $1"; }
images() {
  local s=$K8S_DIR/src/images; mkdir -p "$s"
  if [ ! -x "$s/bin/pause" ] || [ ! -x "$s/bin/hello" ]; then
    printf 'module local/images\n\ngo 1.26.0\n' > "$s/go.mod"; mkdir -p "$s/pause" "$s/hello" "$s/bin"
    cat > "$s/pause/main.go" <<'EOF'
package main // pod sandbox process: sleep, reap zombies, exit on SIGINT/SIGTERM

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range ch {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
EOF
    cat > "$s/hello/main.go" <<'EOF'
package main // test workload: HTTP on $PORT (default 8080), answers "hello from <hostname>"

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	h, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "hello from %s\n", h) })
	p := os.Getenv("PORT")
	if p == "" {
		p = "8080"
	}
	if err := http.ListenAndServe(":"+p, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
EOF
    (cd "$s" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/ ./pause ./hello)
  fi
  image localhost/pause:v1 "$s/bin/pause"; image localhost/hello:v1 "$s/bin/hello"
}

# ---------------------------------------------------------------- teardown
down() {
  if [ -f "$RUN/kubelet.pid" ] && kc get --raw /readyz >/dev/null 2>&1; then
    # let the kubelet stop the pods itself (CNI DEL, unmounts) before it goes away
    kc delete deployments,replicasets,statefulsets,daemonsets,jobs,pods --all --all-namespaces --wait=false >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do [ -z "$(kc get pods -A -o name 2>/dev/null)" ] && break; sleep 1; done
    sleep 2
  fi
  stop kube-proxy; stop kubelet
  if [ -f "$RUN/containerd.pid" ]; then   # leftovers: kill tasks of OUR containerd by container id
    for id in $(ctr -a "$CTR_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do ctr -a "$CTR_SOCK" -n k8s.io tasks kill -s SIGKILL "$id" 2>/dev/null || true; done
    sleep 1
    for id in $(ctr -a "$CTR_SOCK" -n k8s.io containers ls -q 2>/dev/null); do ctr -a "$CTR_SOCK" -n k8s.io tasks delete "$id" >/dev/null 2>&1 || true; ctr -a "$CTR_SOCK" -n k8s.io containers rm "$id" 2>/dev/null || true; done
  fi
  stop containerd; stop kube-scheduler; stop kube-controller-manager; stop kube-apiserver; stop etcd
  [ -x "$BIN/kube-proxy" ] && "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true   # kube-proxy's KUBE-* chains
  set +e   # best-effort cleanup from here on
  for ipt in iptables ip6tables; do   # the kubelet's own chains
    $ipt -D INPUT -j KUBE-FIREWALL; $ipt -D OUTPUT -j KUBE-FIREWALL; $ipt -F KUBE-FIREWALL; $ipt -X KUBE-FIREWALL
    for t in mangle nat filter; do $ipt -t $t -X KUBE-KUBELET-CANARY; done
    $ipt -t mangle -X KUBE-IPTABLES-HINT
  done 2>/dev/null
  ip link del cni0 2>/dev/null
  forward_rules -D
  findmnt -rn -o TARGET | grep "^$K8S_DIR/" | sort -r | while read -r m; do umount -l "$m"; done
  for d in /sys/fs/cgroup/*/kubepods; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
  if [ "${1:-}" = --purge ]; then
    rm -rf "$K8S_DIR/etcd" "$K8S_DIR/containerd" "$K8S_DIR/kubelet" "$K8S_DIR/cni" "$PKI" "$RUN" "$LOG" "$KUBECONFIG" "$K8S_DIR/kubeconfig-limited"
  fi
  log "down"
}

# ---------------------------------------------------------------- runtime base
# The root filesystem the runtime image's Debian variant is built on (go run ./deploy/images -image runtime
# -base): minbase bookworm with python3, without what a container never reads.
runtime_base() {
  command -v debootstrap >/dev/null || die "debootstrap is not installed: apt-get install debootstrap"
  local root=$K8S_DIR/runtime-base
  rm -rf "$root"; mkdir -p "$root"
  debootstrap --variant=minbase --include=python3 bookworm "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$K8S_DIR/runtime-base.log" 2>&1 \
    || { tail -20 "$K8S_DIR/runtime-base.log" >&2; die "debootstrap failed (log: $K8S_DIR/runtime-base.log)"; }
  tar -C "$root" --numeric-owner --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* \
    --exclude=./var/cache/apt/archives/*.deb --exclude=./var/lib/apt/lists/* \
    --exclude=./usr/share/doc --exclude=./usr/share/man --exclude=./usr/share/locale \
    -czf "$K8S_DIR/runtime-base.tar.gz.part" .
  mv "$K8S_DIR/runtime-base.tar.gz.part" "$K8S_DIR/runtime-base.tar.gz"
  rm -rf "$root"
  log "runtime base: $K8S_DIR/runtime-base.tar.gz"
}

case "${1:-}" in
  build) build ;;
  runtime-base) mkdir -p "$K8S_DIR"; runtime_base ;;
  up-cp) up_cp ;;
  up) up_cp; up_node ;;
  down) shift; down "$@" ;;
  image) image "$2" "$3" ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
