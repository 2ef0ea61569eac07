# shellcheck shell=bash
# Shared by kvcache's scripts; source it from the repository root: `source scripts/lib.sh`.
# Needs only bash and what every Debian 12 machine has (dpkg, apt, coreutils, grep, sed,
# awk), so scripts/setup.sh can source it on a fresh machine.
#
#   apt_install_missing PKG...     install the Debian packages not installed yet
#   make_work_dir                  WORK=a new temporary directory, removed at exit
#   kill_at_exit VAR               at exit, stop the process whose pid VAR then holds (if any)
#   listen_addr LOG [SECONDS]      wait for "listening on HOST:PORT" in LOG; print HOST:PORT
#   wait_port HOST:PORT            wait (10 s) until HOST:PORT accepts connections
#   json_field NAME                the first number NAME holds in the JSON on stdin
#   json_string NAME               the first string NAME holds in the JSON on stdin, as JSON
#                                  writes it (quotes, newlines and backslashes escaped), unquoted
#   replace_section FILE NAME CONTENT_FILE
#                                  rewrite a generated section of a Markdown file

# The calling script's name, for messages: "setup" for scripts/setup.sh.
LIB_SCRIPT="$(basename "$0" .sh)"

apt_install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "$LIB_SCRIPT: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Exit clean-up: the processes named by kill_at_exit's variables, then make_work_dir's
# directories. A variable rather than a pid, so a script that stops and restarts a server
# (clearing or updating the variable) never has a stale pid killed.
LIB_EXIT_PID_VARS=()
LIB_EXIT_DIRS=()
lib_cleanup() {
  local var pid dir
  for var in "${LIB_EXIT_PID_VARS[@]}"; do
    pid="${!var:-}"
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  for dir in "${LIB_EXIT_DIRS[@]}"; do rm -rf "$dir"; done
  return 0
}
trap lib_cleanup EXIT

make_work_dir() {
  WORK="$(mktemp -d)"
  LIB_EXIT_DIRS+=("$WORK")
}

kill_at_exit() { LIB_EXIT_PID_VARS+=("$1"); }

listen_addr() {
  local log="$1" tries=$((${2:-10} * 10)) a
  for _ in $(seq "$tries"); do
    a="$(grep -o 'listening on [^ ]*' "$log" 2>/dev/null | head -1 | cut -d' ' -f3)" || true
    [ -n "$a" ] && { echo "$a"; return 0; }
    sleep 0.1
  done
  echo "$LIB_SCRIPT: no 'listening on' line in $log:" >&2
  cat "$log" >&2
  return 1
}

# wait_port HOST:PORT: waits until it accepts connections (up to 10 s).
wait_port() {
  local host="${1%:*}" port="${1##*:}"
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$LIB_SCRIPT: nothing listens on $1" >&2
  return 1
}

json_field() { sed -n "s/.*\"$1\": *\([0-9.]*\).*/\1/p" | head -1; }

json_string() { sed -n "s/.*\"$1\": *\"\(\([^\"\\\\]\|\\\\.\)*\)\".*/\1/p" | head -1; }

# replace_section FILE NAME CONTENT_FILE: replaces what lies between "<!-- NAME:begin -->"
# and "<!-- NAME:end -->" in FILE (appending the markers if missing; creating FILE with a
# "# NAME" title if it does not exist), leaving the rest of the file alone.
replace_section() {
  local file="$1" name="$2" content="$3"
  local begin="<!-- $name:begin -->" end="<!-- $name:end -->"
  [ -f "$file" ] || printf '# %s\n' "$name" >"$file"
  grep -qF "$begin" "$file" || printf '\n%s\n%s\n' "$begin" "$end" >>"$file"
  awk -v b="$begin" -v e="$end" -v c="$content" '
    $0 == b { print; while ((getline line < c) > 0) print line; skip = 1; next }
    $0 == e { skip = 0 }
    !skip { print }' "$file" >"$file.tmp" && mv "$file.tmp" "$file"
}
