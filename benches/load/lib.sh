# benches/load/lib.sh: shared by the load scripts (sourced, not run). A lab namespace with tapir's
# tap, stock iperf3 as the kernel's side, medians, and cleanup on every exit path.
# Callers set: here (repo root), tapir (binary), secs, runs; then call lab_up NAME.

pids=()
labs=()
nss=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for l in "${labs[@]}"; do bash "$here/deploy/lab" down "$l" >/dev/null 2>&1 || true; done
  for n in "${nss[@]}"; do ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

require() {
  ((EUID == 0)) || { echo "${0##*/}: run as root (it builds network namespaces)" >&2; exit 1; }
  for t in iperf3 jq ip ping; do
    command -v $t >/dev/null || { echo "${0##*/}: $t missing: run scripts/setup" >&2; exit 1; }
  done
  [[ -x $tapir ]] || { echo "${0##*/}: build first: cargo build --release" >&2; exit 1; }
}

# lab_up NAME: a lab namespace with tap0, the kernel at 10.7.0.1/24.
lab_up() {
  labs+=("$1")
  bash "$here/deploy/lab" up "$1" --tap tap0 --host-ip 10.7.0.1/24 >/dev/null
}

# veth_pair A B: two namespaces of our own joined by a veth, 10.8.0.1/24 in A and 10.8.0.2/24 in
# B: the kernel-to-kernel baseline.
veth_pair() {
  nss+=("$1" "$2")
  ip netns add "$1"
  ip netns add "$2"
  ip -n "$1" link add veth0 type veth peer name veth1 netns "$2"
  ip -n "$1" addr add 10.8.0.1/24 dev veth0
  ip -n "$2" addr add 10.8.0.2/24 dev veth1
  for n in "$1" "$2"; do ip -n "$n" link set lo up; done
  ip -n "$1" link set veth0 up
  ip -n "$2" link set veth1 up
}

# wait_listen NS: until something listens on 5201 in NS (a kernel iperf3 -s).
wait_listen() {
  for _ in $(seq 100); do
    [[ -n $(ip netns exec "$1" ss -Hltn 'sport = :5201') ]] && return 0
    sleep 0.05
  done
  echo "${0##*/}: no server on 5201 in $1" >&2
  return 1
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "-"; exit} printf "%.2f", (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# tapir_server NS ARGS...: `tapir perf -s` on the lab's tap with extra node options; sets $tp
# and returns once it says it listens (its socket is tapir's, invisible to the kernel's ss).
tapir_server() {
  local ns=$1; shift
  local log
  log=$(mktemp)
  "$tapir" perf --netns "$ns" --tap tap0 --ip 10.7.0.2/24 "$@" -s >"$log" 2>&1 &
  tp=$!
  pids+=("$tp")
  for _ in $(seq 200); do
    if grep -q "Server listening" "$log"; then rm -f "$log"; return 0; fi
    kill -0 "$tp" 2>/dev/null || break
    sleep 0.05
  done
  echo "${0##*/}: tapir perf -s did not start: $(cat "$log")" >&2
  rm -f "$log"
  return 1
}

# mbits NS ARGS...: median receiver Mbit/s of $runs iperf3 runs to tapir from NS.
mbits() {
  local ns=$1; shift
  for _ in $(seq "$runs"); do
    ip netns exec "$ns" timeout $((secs + 30)) iperf3 -c 10.7.0.2 -t "$secs" --json "$@" \
      | jq -r '.end.sum_received.bits_per_second / 1e6' || true
  done | median
}
