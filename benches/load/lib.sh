# benches/load/lib.sh: shared by the load scripts (sourced, not run). A lab namespace with tapir's
# tap, stock iperf3 as the kernel's side, medians, and cleanup on every exit path.
# Callers set: here (repo root), tapir (binary), secs, runs; then call lab_up NAME.

pids=()
labs=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for l in "${labs[@]}"; do bash "$here/deploy/lab" down "$l" >/dev/null 2>&1 || true; done
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
