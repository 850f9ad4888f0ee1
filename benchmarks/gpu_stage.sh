# Sourced by the GPU scripts (gpu_kodak.sh, gpu_audio_long.sh): `stage NAME CAP COMMAND...` runs COMMAND with at
# most CAP seconds and never past $END (epoch seconds), appending its output and return code to $LOG, so that a
# script cut by the device's deadline still brings back every stage that finished.
stage() {
  local name=$1 cap=$2; shift 2
  local t=$(( END - $(date +%s) )); (( t > cap )) && t=$cap
  if (( t < 15 )); then echo "== $name: skipped (deadline)" >>"$LOG"; return 0; fi
  echo "== $name (limit $t s): $*" >>"$LOG"
  local t0=$(date +%s)
  timeout "$t" "$@" >>"$LOG" 2>&1; local rc=$?
  echo "== $name: rc $rc after $(( $(date +%s) - t0 )) s" >>"$LOG"
  return $rc
}
