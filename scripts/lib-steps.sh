# scripts/lib-steps.sh, sourced by scripts/test: run every step even when one fails, then sum up.
#   step NAME CMD [ARG...]  runs CMD, its output shown as it comes (cargo's "test result:" lines
#                           too) and kept; a failure is noted and the next step runs
#   steps_summary           prints what failed (with the failing tests' own lines) and returns
#                           non-zero when anything did, zero when every step passed
# Not `set -e`: a failing step must not end the run.

steps_failed=()
steps_why=()
steps_run=0
steps_dir=$(mktemp -d)
trap 'rm -rf "$steps_dir"' EXIT

step() {
  local name=$1 rc
  shift
  steps_run=$((steps_run + 1))
  local log="$steps_dir/$steps_run.log"
  echo "==> $name"
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  if ((rc != 0)); then
    steps_failed+=("$name (exit $rc)")
    steps_why+=("$log.why")
    # The lines that say what failed (the first 20): libtest's failed tests, cargo's errors and
    # its list of failed targets, the scripts' own messages.
    grep -E '^test .* \.\.\. FAILED$|^error|^    `-p |^(setup|test|fuzz): ' "$log" |
      head -n 20 | sed 's/^/      /' >"$log.why" || true
  fi
  return 0
}

steps_summary() {
  echo
  if ((${#steps_failed[@]} == 0)); then
    echo "summary: all $steps_run steps passed"
    return 0
  fi
  echo "summary: ${#steps_failed[@]} of $steps_run steps failed:"
  local i
  for i in "${!steps_failed[@]}"; do
    echo "  - ${steps_failed[i]}"
    cat "${steps_why[i]}"
  done
  return 1
}
