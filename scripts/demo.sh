#!/usr/bin/env bash
# The demo: builds kvcache, starts a cache server, sends one long prompt (2,000 bytes of the
# GPL-3 text every Debian system ships) to an inference worker twice (cold, then warm: its KV
# blocks come from the cache), and shows each answer as text, its time to first token, and
# the cache's stats. The model is a small byte-level Llama that scripts/train_demo_model.py
# trains once on Debian's license texts with Debian's python3-torch (installed here, on first
# use), cached in build/models/demo; where python3-torch cannot be installed, the demo falls
# back to a random-weight model, whose answer is not text. See docs/worker.md, "The demo model".
# Usage: scripts/demo.sh
#   SKIP_SETUP=1    do not run scripts/setup.sh (use an existing build in BUILD_DIR)
#   DEMO_MODEL=DIR  answer with this model folder instead (no torch, no training; CI's test)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
[ -n "${SKIP_SETUP:-}" ] || scripts/setup.sh
BUILD="${BUILD_DIR:-build}"
BIN="$BUILD/bin"

make_work_dir
work="$WORK"
server_pid=""  # Set when the server starts; lib_cleanup stops it.
kill_at_exit server_pid

# The model: the trained one, retrained when scripts/train_demo_model.py changes.
model="${DEMO_MODEL:-}"
if [ -z "$model" ]; then
  model="$BUILD/models/demo"
  stamp="$(sha256sum scripts/train_demo_model.py | cut -d' ' -f1)"
  if [ -f "$model/config.json" ] && [ -f "$model/model.safetensors" ] &&
     [ "$(cat "$model/trained-by.sha256" 2>/dev/null)" = "$stamp" ]; then
    echo "== the demo model: $model (trained before)"
  elif apt_install_missing python3-torch && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    echo "== training the demo model once (about 10 minutes on 2 cores; 13 CPU-minutes) into $model"
    rm -rf "$model"
    /usr/bin/python3 scripts/train_demo_model.py --out="$model"
    echo "$stamp" >"$model/trained-by.sha256"
  else
    model="$BUILD/models/bench"
    echo "== python3-torch cannot be installed here, so the demo falls back to a model with" \
         "random weights: its answer is not text, only the same bytes cold and warm"
    if [ ! -f "$model/config.json" ]; then
      echo "== making the bench model (about 100M parameters, random weights) in $model"
      "$BIN/kvcache-worker" make-model --out="$model" --preset=bench --seed=1
    fi
  fi
fi

echo "== starting kvcache-server (256 MiB RAM over a 1 GiB disk tier in $work/data)"
"$BIN/kvcache-server" --listen=127.0.0.1:0 --ram-bytes=256MiB --disk-path="$work/data" \
  --disk-bytes=1GiB --metrics-listen= --shutdown-grace=1s >"$work/server.log" 2>&1 &
# shellcheck disable=SC2034  # Read at exit, through kill_at_exit.
server_pid=$!
addr="$(listen_addr "$work/server.log")"
cat "$work/server.log"

# A long prompt, as a shared system prompt would be: the 2,000 bytes of the GPL-3 text that
# end mid-sentence in its section 11, "...relying on a patent license,\nand the Corresponding ".
license=/usr/share/common-licenses/GPL-3
cut="and the Corresponding "
end=$(($(grep -bF "${cut}Source of the work is not available" "$license" | cut -d: -f1) + ${#cut}))
head -c "$end" "$license" | tail -c 2000 >"$work/prompt.txt"
echo "== the prompt: the 2,000 bytes of $license up to" \
     "\"...$(tail -c 70 "$work/prompt.txt" | sed -z 's/\n/\\n/g')\""
new_tokens=65
tokens() { sed 's/.*"tokens": *\[\([^]]*\)\].*/\1/' "$1"; }
for run in cold warm; do
  "$BIN/kvcache-worker" generate --model="$model" --cache="$addr" \
    --prompt-file="$work/prompt.txt" --max-new-tokens="$new_tokens" --json >"$work/$run.json"
  printf '== %-4s request: prompt %5s tokens, %5s from the cache, time to first token %8.1f ms\n' \
    "$run" "$(json_field prompt_tokens <"$work/$run.json")" "$(json_field cached_tokens <"$work/$run.json")" \
    "$(json_field ttft_ms <"$work/$run.json")"
  text="$(json_string text <"$work/$run.json")"
  if [ -n "$text" ]; then
    echo "   answer: \"$text\""
  else  # No byte among the ids (the bench model's vocabulary is 32000).
    echo "   answer, token ids without text: $(tokens "$work/$run.json")"
  fi
done
if [ "$(tokens "$work/cold.json")" = "$(tokens "$work/warm.json")" ]; then
  echo "== the same answer both times (all $new_tokens tokens equal), the warm one computed over KV from the cache"
else
  echo "== the answers differ between cold and warm runs" >&2
  exit 1
fi

echo "== cache stats"
"$BIN/kvcache-admin" --server="$addr" stats
