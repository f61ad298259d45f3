#!/usr/bin/env bash
# Installs, starts and stops the real test peers that copy-offload's tests run against, on a Debian 12 machine:
#   vcsim      our own Go main (peers/vcsim) over Debian's govmomi simulator library, started per test by co-testpeers
#   govc       our own small govc (peers/govc) over Debian's govmomi client library (Debian ships no govc), a
#              second real client for the lab's conformance tests
#   sshd       Debian's OpenSSH server, started per test by co-testpeers with its own sshd_config
#   kube       etcd + kube-apiserver + kube-controller-manager 1.20.2 built from Debian's kubernetes source package,
#              started once by `start` and shared by all tests
#   pyvmomi    a Python venv with pyvmomi, for cross-checking our SOAP client against VMware's own bindings
#   vendorclients-<vendor>
#              a Python venv per vendor with the vendor's own client library (netapp-ontap, py-pure-client,
#              PyPowerStore, PyU4V, PyPowerFlex, infinisdk, python-3parclient; `vendorclients-ansible` holds the
#              ansible package whose collections carry the FlashSystem and Vantara REST clients), for checking
#              the lab's array facades against clients nobody here wrote; `vendorclients` installs them all
#
# Usage: scripts/peers.sh install [all|vcsim|govc|sshd|kube|pyvmomi|esxi-tools|vendorclients|vendorclients-<vendor>]...
#        scripts/peers.sh start | stop | status | env
#
# Needs root for apt-get (only when packages are missing) and for the default cache directory.
#
# Builds are cached outside the repository, keyed by version, under
#   COPY_OFFLOAD_PEERS_CACHE (default /var/cache/copy-offload-peers)
# and a missing cache only costs time. Runtime state (etcd data, logs, pid files, kubeconfig) lives in
#   COPY_OFFLOAD_PEERS_DIR (default /tmp/copy-offload-peers).
# co-testpeers derives the same paths from the same defaults, so tests need nothing sourced.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091 # sourced by path relative to the script; plain KEY=value lines
. "$REPO_ROOT/peers/versions.env"

CACHE=${COPY_OFFLOAD_PEERS_CACHE:-/var/cache/copy-offload-peers}
DIR=${COPY_OFFLOAD_PEERS_DIR:-/tmp/copy-offload-peers}
# Ports can be moved (e.g. a second instance next to a running one); the kubeconfig in $DIR follows.
ETCD_PORT=${COPY_OFFLOAD_ETCD_PORT:-$ETCD_PORT}
ETCD_PEER_PORT=${COPY_OFFLOAD_ETCD_PEER_PORT:-$ETCD_PEER_PORT}
KUBE_APISERVER_PORT=${COPY_OFFLOAD_KUBE_APISERVER_PORT:-$KUBE_APISERVER_PORT}
KUBE_CONTROLLER_MANAGER_PORT=${COPY_OFFLOAD_KUBE_CONTROLLER_MANAGER_PORT:-$KUBE_CONTROLLER_MANAGER_PORT}
KUBE_TOKEN_USER=copy-offload-admin

APT_VCSIM=(golang-go golang-github-vmware-govmomi-dev golang-github-google-uuid-dev)
APT_SSHD=(openssh-server openssh-client)
APT_KUBE=(golang-go golang-github-modern-go-reflect2-dev etcd-server rsync jq dpkg-dev make curl openssl ca-certificates)
APT_PYVMOMI=(python3 python3-venv python3-pip)
# The ESXi-side tests run the real wrapper scripts under dash and busybox, verify the VIB with binutils' ar,
# measure the wrapper's peak RSS with /usr/bin/time and syntax-check the Ansible playbook.
APT_ESXI_TOOLS=(busybox time binutils python3 python3-venv)

log() { printf '[peers %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Runs "$@" and logs how long it took: the slow steps (apt, builds, pip) report their duration.
timed() {
    local what=$1 start=$SECONDS
    shift
    log "$what ..."
    "$@"
    log "$what done in $((SECONDS - start)) s"
}

# ---------------------------------------------------------------------------------------------------- apt

package_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Installs the Debian packages that are missing; refreshes the package lists only if the first attempt fails
# (or there are none at all), so a machine with current lists never pays for `apt-get update`.
ensure_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        package_installed "$pkg" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]}. Run this script as root, or: sudo apt-get install -y ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        timed "apt-get update" apt-get update -q
    fi
    if ! timed "apt-get install ${missing[*]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        timed "apt-get update" apt-get update -q
        timed "apt-get install ${missing[*]}" apt-get install -y -q --no-install-recommends "${missing[@]}" ||
            die "could not install ${missing[*]} from the machine's apt sources"
    fi
}

# ---------------------------------------------------------------------------------------------------- vcsim, govc

govmomi_version() {
    dpkg-query -W -f='${Version}' golang-github-vmware-govmomi-dev 2>/dev/null ||
        die "golang-github-vmware-govmomi-dev is not installed: run scripts/peers.sh install vcsim"
}

# The cache key covers the library version and our own Go sources (same rule as co-testpeers' go_peer).
go_peer_dir() {
    local name=$1 sources_sha
    sources_sha=$(cat "$REPO_ROOT"/peers/"$name"/*.go | sha256sum | cut -c1-12)
    echo "$CACHE/$name-$(govmomi_version)-$sources_sha"
}

vcsim_dir() { go_peer_dir vcsim; }
govc_dir() { go_peer_dir govc; }

# Builds peers/<name>/*.go into $CACHE/<name>-<govmomi version>-<sources sha>/<name>.
install_go_peer() {
    local name=$1
    ensure_packages "${APT_VCSIM[@]}"
    local dir
    dir=$(go_peer_dir "$name")
    if [ -x "$dir/$name" ]; then
        log "$name: cached at $dir/$name"
        return 0
    fi
    local build
    mkdir -p "$CACHE"
    build=$(mktemp -d "$CACHE/.$name-build.XXXXXX")
    mkdir -p "$build/gopath/src/copy-offload-$name"
    cp "$REPO_ROOT"/peers/"$name"/*.go "$build/gopath/src/copy-offload-$name/"
    # GOPATH mode against Debian's library tree: no module proxy, no network.
    (cd "$build/gopath/src/copy-offload-$name" &&
        timed "$name: go build" env GO111MODULE=off GOFLAGS= GOPROXY=off \
            GOPATH="$build/gopath:/usr/share/gocode" go build -o "$build/$name" .)
    mkdir -p "$dir"
    mv "$build/$name" "$dir/$name"
    rm -rf "$build"
    log "$name: built $dir/$name"
}

install_vcsim() { install_go_peer vcsim; }
install_govc() { install_go_peer govc; }

# ---------------------------------------------------------------------------------------------------- sshd

install_sshd() {
    ensure_packages "${APT_SSHD[@]}"
    [ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd missing although openssh-server is installed"
    # sshd refuses to start without its privilege-separation directory; no init system creates it here.
    if [ "$(id -u)" -eq 0 ]; then mkdir -p /run/sshd; fi
    log "sshd: $(/usr/sbin/sshd -V 2>&1 | head -1 || true)"
}

# ---------------------------------------------------------------------------------------------------- kube

kube_dir() { echo "$CACHE/kubernetes-$KUBE_VERSION-$KUBE_PATCHSET"; }

# Writes a private apt configuration with deb-src entries mirroring the machine's own deb entries, so the
# source package comes from whatever archive this machine uses, without touching the system's sources.
# Sets APT_SRC_OPTS to the apt-get options selecting it.
write_src_apt_config() {
    local apt=$1
    mkdir -p "$apt/lists/partial" "$apt/parts"
    : >"$apt/src.list"
    if [ -f /etc/apt/sources.list ]; then
        sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' /etc/apt/sources.list >>"$apt/src.list"
    fi
    local f
    for f in /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >>"$apt/src.list"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && sed 's/^Types:.*/Types: deb-src/' "$f" >"$apt/parts/$(basename "$f")"
    done
    if [ ! -s "$apt/src.list" ] && [ -z "$(ls -A "$apt/parts")" ]; then
        die "no apt sources found in /etc/apt: cannot locate Debian's archive for the kubernetes source package"
    fi
    APT_SRC_OPTS=(-o "Dir::Etc::SourceList=$apt/src.list" -o "Dir::Etc::SourceParts=$apt/parts"
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache::pkgcache=$apt/pkgcache.bin"
        -o "Dir::Cache::srcpkgcache=$apt/srcpkgcache.bin")
}

# shellcheck disable=SC2317 # called through timed
# k8s's own make generates the openapi and deepcopy code a plain `go build` lacks.
kube_make() {
    env GOPATH="$1/src/.go" CGO_ENABLED=0 GOFLAGS= GOPROXY=off \
        make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$1/make.log" 2>&1
}

install_kube() {
    ensure_packages "${APT_KUBE[@]}"
    local dir
    dir=$(kube_dir)
    if [ -x "$dir/bin/kube-apiserver" ] && [ -x "$dir/bin/kube-controller-manager" ]; then
        log "kube: cached at $dir/bin"
        return 0
    fi
    mkdir -p "$CACHE"
    local build
    build=$(mktemp -d "$CACHE/.kube-build.XXXXXX")
    chmod 755 "$build" # apt downloads as the _apt user
    write_src_apt_config "$build/apt"
    timed "kube: apt-get update (deb-src, private config)" apt-get "${APT_SRC_OPTS[@]}" update -q
    (cd "$build" && timed "kube: apt-get source kubernetes" apt-get "${APT_SRC_OPTS[@]}" source --download-only kubernetes)
    local dscs=("$build"/kubernetes_*.dsc)
    [ -f "${dscs[0]}" ] || die "apt-get source kubernetes produced no .dsc in $build"
    local dsc=${dscs[0]}
    case "$dsc" in
    *"really$KUBE_VERSION"* | *"_$KUBE_VERSION-"*) ;;
    *) die "the archive's kubernetes source is $(basename "$dsc"), expected upstream $KUBE_VERSION; update peers/versions.env" ;;
    esac
    timed "kube: dpkg-source -x" dpkg-source -x "$dsc" "$build/src" >/dev/null
    # The vendored reflect2 1.0.1 reads Go map internals that changed in Go 1.18: the apiserver segfaults
    # encoding the first custom resource. Debian's 1.0.2 is API-compatible and fixed.
    local reflect2=$build/src/vendor/github.com/modern-go/reflect2
    rm -rf "$reflect2"
    mkdir -p "$reflect2"
    cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$reflect2/"
    mkdir -p "$build/src/.go/src/k8s.io"
    ln -sfn ../../.. "$build/src/.go/src/k8s.io/kubernetes"
    (cd "$build/src/.go/src/k8s.io/kubernetes" &&
        unset GO111MODULE &&
        timed "kube: make kube-apiserver kube-controller-manager (about 5 min on 2 cores, log $build/make.log)" \
            kube_make "$build") ||
        die "kube build failed; see $build/make.log (last lines: $(tail -5 "$build/make.log" | tr '\n' ' '))"
    mkdir -p "$dir/bin.tmp"
    cp "$build/src/_output/bin/kube-apiserver" "$build/src/_output/bin/kube-controller-manager" "$dir/bin.tmp/"
    basename "$dsc" >"$dir/bin.tmp/SOURCE"
    rm -rf "${dir:?}/bin"
    mv "$dir/bin.tmp" "$dir/bin"
    rm -rf "$build"
    log "kube: built $dir/bin ($(cat "$dir/bin/SOURCE"))"
}

# ---------------------------------------------------------------------------------------------------- pyvmomi

pyvmomi_dir() { echo "$CACHE/pyvmomi-$PYVMOMI_VERSION"; }

# Builds a venv at $dir/venv with one pinned pip package, unless a complete one is there already.
# The marker is written last: a venv without it is a half-finished install and is rebuilt.
install_venv() {
    local name=$1 dir=$2 requirement=$3 module=$4
    shift 4
    # Any further arguments are requirements the package needs but does not declare.
    local extra=("$@")
    ensure_packages "${APT_PYVMOMI[@]}"
    if [ -f "$dir/venv/.complete" ] && "$dir/venv/bin/python" -c "import $module" 2>/dev/null; then
        log "$name: cached at $dir/venv"
        return 0
    fi
    rm -rf "$dir/venv"
    mkdir -p "$dir"
    timed "$name: python3 -m venv" python3 -m venv "$dir/venv"
    timed "$name: pip install $requirement ${extra[*]}" \
        "$dir/venv/bin/python" -m pip install -q --disable-pip-version-check "$requirement" "${extra[@]}"
    "$dir/venv/bin/python" -c "import $module" || die "$name installed but 'import $module' fails"
    touch "$dir/venv/.complete"
    log "$name: installed $dir/venv"
}

install_pyvmomi() {
    install_venv pyvmomi "$(pyvmomi_dir)" "pyvmomi==$PYVMOMI_VERSION" pyVmomi
}

# ---------------------------------------------------------------------------------------------------- vendor clients

# The vendors' own client libraries, one pinned venv each: <install target> <pip name> <versions.env key> <module
# the import check loads> [<undeclared dependency>==<version> ...]. co-testpeers
# (crates/testpeers/src/vendor_clients.rs) holds the same table.
VENDOR_CLIENTS=(
    "vendorclients-ontap netapp-ontap NETAPP_ONTAP_VERSION netapp_ontap.resources"
    "vendorclients-pure py-pure-client PY_PURE_CLIENT_VERSION pypureclient.flasharray"
    "vendorclients-powerstore PyPowerStore PYPOWERSTORE_VERSION PyPowerStore.powerstore_conn"
    "vendorclients-powermax PyU4V PYU4V_VERSION PyU4V"
    "vendorclients-powerflex PyPowerFlex PYPOWERFLEX_VERSION PyPowerFlex"
    "vendorclients-infinibox infinisdk INFINISDK_VERSION infinisdk"
    "vendorclients-primera3par python-3parclient PYTHON_3PARCLIENT_VERSION hpe3parclient.client requests==2.32.3 paramiko==3.5.0 eventlet==0.36.1"
    "vendorclients-ansible ansible ANSIBLE_VERSION ansible_collections.ibm.storage_virtualize"
)

vendor_client_row() {
    local target=$1 row
    for row in "${VENDOR_CLIENTS[@]}"; do
        [ "${row%% *}" = "$target" ] && echo "$row" && return 0
    done
    return 1
}

# <cache>/vendorclients-<pip name>-<version>
vendor_client_targets() {
    local row
    for row in "${VENDOR_CLIENTS[@]}"; do printf '%s ' "${row%% *}"; done
}

vendor_client_dir() {
    local _target pip key _module
    read -r _target pip key _module <<<"$(vendor_client_row "$1")"
    echo "$CACHE/vendorclients-$pip-${!key}"
}

install_vendor_client() {
    local target pip key module extra
    read -r target pip key module extra <<<"$(vendor_client_row "$1")"
    # shellcheck disable=SC2086 # the undeclared dependencies are separate pip arguments
    install_venv "$pip" "$(vendor_client_dir "$target")" "$pip==${!key}" "$module" $extra
}

install_vendor_clients() {
    local row
    for row in "${VENDOR_CLIENTS[@]}"; do
        install_vendor_client "${row%% *}"
    done
}

# ---------------------------------------------------------------------------------------------------- esxi tools

install_esxi_tools() {
    ensure_packages "${APT_ESXI_TOOLS[@]}"
    local dir=$CACHE/ansible-core-$ANSIBLE_CORE_VERSION
    if [ ! -f "$dir/venv/.complete" ]; then
        rm -rf "$dir/venv"
        mkdir -p "$dir"
        timed "ansible: python3 -m venv" python3 -m venv "$dir/venv"
        timed "ansible: pip install ansible-core==$ANSIBLE_CORE_VERSION" \
            "$dir/venv/bin/python" -m pip install -q --disable-pip-version-check "ansible-core==$ANSIBLE_CORE_VERSION"
        touch "$dir/venv/.complete"
    fi
    # The tests call ansible-playbook from PATH, as an administrator would.
    local tool
    for tool in ansible-playbook ansible-inventory; do
        ln -sfn "$dir/venv/bin/$tool" "/usr/local/bin/$tool"
    done
    log "esxi tools: busybox, /usr/bin/time, ar, ansible-core $ANSIBLE_CORE_VERSION ready"
}

cmd_install() {
    local targets=("$@")
    [ ${#targets[@]} -eq 0 ] && targets=(all)
    local t
    for t in "${targets[@]}"; do
        case "$t" in
        all)
            install_vcsim
            install_govc
            install_sshd
            install_pyvmomi
            install_vendor_clients
            install_esxi_tools
            install_kube
            ;;
        esxi-tools) install_esxi_tools ;;
        vcsim) install_vcsim ;;
        govc) install_govc ;;
        sshd) install_sshd ;;
        kube) install_kube ;;
        pyvmomi) install_pyvmomi ;;
        vendorclients) install_vendor_clients ;;
        vendorclients-*)
            vendor_client_row "$t" >/dev/null || die "unknown vendor client '$t' (expected one of: $(vendor_client_targets))"
            install_vendor_client "$t"
            ;;
        *) die "unknown install target '$t' (expected all, vcsim, govc, sshd, kube, pyvmomi, esxi-tools, vendorclients or one of: $(vendor_client_targets))" ;;
        esac
    done
}

# ---------------------------------------------------------------------------------------------------- start/stop

pid_alive() {
    local pidfile=$DIR/$1.pid
    [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# Polls "$@" until it succeeds; fails after $2 seconds and shows the tail of the peer's log.
wait_until() {
    local name=$1 timeout=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        pid_alive "$name" || die "$name exited during start-up; last lines of $DIR/$name.log:
$(tail -20 "$DIR/$name.log" 2>/dev/null)"
        [ $SECONDS -lt $deadline ] || die "$name not ready after ${timeout} s; last lines of $DIR/$name.log:
$(tail -20 "$DIR/$name.log" 2>/dev/null)"
        sleep 0.2
    done
}

# Starts "$@" detached in its own session (so it outlives this script), logging to $DIR/<name>.log.
spawn() {
    local name=$1
    shift
    # In a non-interactive shell the background job is not a process-group leader, so setsid does not
    # fork again and $! is the peer's own pid.
    setsid "$@" >>"$DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$DIR/$name.pid"
}

# The probes below are called through wait_until.
# shellcheck disable=SC2317
etcd_healthy() { curl -fsS "http://127.0.0.1:$ETCD_PORT/health"; }
apiserver_ready() {
    curl -fsS --cacert "$DIR/certs/apiserver.crt" -H "Authorization: Bearer $(cat "$DIR/token")" \
        "https://127.0.0.1:$KUBE_APISERVER_PORT/readyz"
}
# shellcheck disable=SC2317
controller_manager_healthy() { curl -fsSk "https://127.0.0.1:$KUBE_CONTROLLER_MANAGER_PORT/healthz"; }

write_kubeconfig() {
    local ca
    ca=$(base64 -w0 <"$DIR/certs/apiserver.crt")
    umask 077
    cat >"$DIR/kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: copy-offload-peers
  cluster:
    server: https://127.0.0.1:$KUBE_APISERVER_PORT
    certificate-authority-data: $ca
users:
- name: $KUBE_TOKEN_USER
  user:
    token: $(cat "$DIR/token")
contexts:
- name: copy-offload-peers
  context:
    cluster: copy-offload-peers
    user: $KUBE_TOKEN_USER
    namespace: default
current-context: copy-offload-peers
EOF
    mv "$DIR/kubeconfig.tmp" "$DIR/kubeconfig"
}

cmd_start() {
    local bin
    bin=$(kube_dir)/bin
    [ -x "$bin/kube-apiserver" ] || die "kube-apiserver not found at $bin: run scripts/peers.sh install kube"
    command -v etcd >/dev/null || die "etcd not found: run scripts/peers.sh install kube"
    mkdir -p "$DIR"
    if pid_alive etcd && pid_alive kube-apiserver && pid_alive kube-controller-manager && apiserver_ready >/dev/null 2>&1; then
        log "already running; kubeconfig: $DIR/kubeconfig"
        return 0
    fi
    cmd_stop >/dev/null 2>&1 || true
    local start=$SECONDS

    if [ ! -f "$DIR/token" ]; then
        (umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$DIR/token")
    fi
    printf '%s,%s,uid-%s,system:masters\n' "$(cat "$DIR/token")" "$KUBE_TOKEN_USER" "$KUBE_TOKEN_USER" >"$DIR/tokens.csv"
    if [ ! -f "$DIR/sa.key" ]; then
        openssl genrsa -out "$DIR/sa.key" 2048 2>/dev/null
        openssl rsa -in "$DIR/sa.key" -pubout -out "$DIR/sa.pub" 2>/dev/null
    fi

    spawn etcd etcd --name copy-offload-peers --data-dir "$DIR/etcd-data" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "copy-offload-peers=http://127.0.0.1:$ETCD_PEER_PORT"
    wait_until etcd 30 etcd_healthy

    spawn kube-apiserver "$bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
        --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$KUBE_APISERVER_PORT" --insecure-port=0 \
        --cert-dir="$DIR/certs" --token-auth-file="$DIR/tokens.csv" --authorization-mode=RBAC \
        --service-account-key-file="$DIR/sa.pub" --service-account-signing-key-file="$DIR/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range=10.96.0.0/16 \
        --feature-gates=AnyVolumeDataSource=true
    # The serving certificate appears a moment after the process starts; readiness needs both.
    wait_until kube-apiserver 90 apiserver_ready
    write_kubeconfig

    # The PV controller binds claims one at a time under the manager's client rate limit (default
    # 20 requests/s, about three bindings a second): raised so the controller fan-out bench and the
    # parallel tests wait for our controller, not for the limit.
    spawn kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$DIR/kubeconfig" \
        --kube-api-qps=100 --kube-api-burst=200 \
        --leader-elect=false --bind-address=127.0.0.1 --secure-port="$KUBE_CONTROLLER_MANAGER_PORT" --port=0 \
        --service-account-private-key-file="$DIR/sa.key" --root-ca-file="$DIR/certs/apiserver.crt" \
        --controllers='*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route,-attachdetach,-ttl'
    wait_until kube-controller-manager 60 controller_manager_healthy

    log "started etcd, kube-apiserver, kube-controller-manager in $((SECONDS - start)) s; kubeconfig: $DIR/kubeconfig"
}

stop_one() {
    local name=$1 pidfile=$DIR/$1.pid
    [ -f "$pidfile" ] || return 0
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 20))
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) ignored SIGTERM for 20 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
}

cmd_stop() {
    stop_one kube-controller-manager
    stop_one kube-apiserver
    stop_one etcd
}

cmd_status() {
    local name state
    printf '%-26s %s\n' vcsim "$( [ -x "$(vcsim_dir 2>/dev/null)/vcsim" ] && echo "installed: $(vcsim_dir)/vcsim" || echo 'not installed (scripts/peers.sh install vcsim)')"
    printf '%-26s %s\n' govc "$( [ -x "$(govc_dir 2>/dev/null)/govc" ] && echo "installed: $(govc_dir)/govc" || echo 'not installed (scripts/peers.sh install govc)')"
    printf '%-26s %s\n' sshd "$( [ -x /usr/sbin/sshd ] && echo 'installed: /usr/sbin/sshd' || echo 'not installed (scripts/peers.sh install sshd)')"
    printf '%-26s %s\n' pyvmomi "$( [ -f "$(pyvmomi_dir)/venv/.complete" ] && echo "installed: $(pyvmomi_dir)/venv/bin/python" || echo 'not installed (scripts/peers.sh install pyvmomi)')"
    local row target
    for row in "${VENDOR_CLIENTS[@]}"; do
        target=${row%% *}
        printf '%-26s %s\n' "$target" "$( [ -f "$(vendor_client_dir "$target")/venv/.complete" ] && echo "installed: $(vendor_client_dir "$target")/venv/bin/python" || echo "not installed (scripts/peers.sh install $target)")"
    done
    printf '%-26s %s\n' kube-binaries "$( [ -x "$(kube_dir)/bin/kube-apiserver" ] && echo "installed: $(kube_dir)/bin" || echo 'not installed (scripts/peers.sh install kube)')"
    local running=0
    for name in etcd kube-apiserver kube-controller-manager; do
        if pid_alive "$name"; then
            state="running (pid $(cat "$DIR/$name.pid"), log $DIR/$name.log)"
            running=$((running + 1))
        else
            state="stopped"
        fi
        printf '%-26s %s\n' "$name" "$state"
    done
    if [ $running -eq 3 ] && apiserver_ready >/dev/null 2>&1; then
        printf '%-26s %s\n' kubeconfig "$DIR/kubeconfig (apiserver ready)"
    fi
}

cmd_env() {
    cat <<EOF
export COPY_OFFLOAD_PEERS_CACHE=$CACHE
export COPY_OFFLOAD_PEERS_DIR=$DIR
export COPY_OFFLOAD_VCSIM=$(vcsim_dir)/vcsim
export COPY_OFFLOAD_GOVC=$(govc_dir)/govc
export COPY_OFFLOAD_PYVMOMI_PYTHON=$(pyvmomi_dir)/venv/bin/python
export COPY_OFFLOAD_PURE_CLIENT_PYTHON=$(pure_client_dir)/venv/bin/python
export COPY_OFFLOAD_PYPOWERSTORE_PYTHON=$(powerstore_client_dir)/venv/bin/python
export COPY_OFFLOAD_KUBE_BIN=$(kube_dir)/bin
export KUBECONFIG=$DIR/kubeconfig
EOF
}

main() {
    local cmd=${1:-}
    [ $# -gt 0 ] && shift
    case "$cmd" in
    install) cmd_install "$@" ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *)
        echo "usage: $0 install [all|vcsim|govc|sshd|kube|pyvmomi|esxi-tools|vendorclients|vendorclients-<vendor>]... | start | stop | status | env" >&2
        exit 2
        ;;
    esac
}

# On one line, so bash has read the whole file before running anything (safe against edits mid-run).
main "$@"; exit
