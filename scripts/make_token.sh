#!/usr/bin/env bash
# Makes a bearer token for kvcache-server's --auth-tokens file (docs/security.md).
# Usage: scripts/make_token.sh TENANT ROLE [TOKEN_FILE]
#   Writes a fresh random token to TOKEN_FILE (default: ./TENANT-ROLE.token, mode 600) for
#   the caller's --token-file, and prints the line to add to the server's --auth-tokens file.
#   The line holds the token's SHA-256, not the token: the server's file is no secret.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,6p' "$0" >&2
  exit 2
fi
tenant="$1" role="$2" out="${3:-./$1-$2.token}"
case "$role" in reader|writer|admin) ;; *) echo "make_token: role is reader, writer or admin" >&2; exit 2;; esac
token="$(head -c 32 /dev/urandom | base64 | tr -d '/+=\n' | cut -c1-40)"
(umask 077 && printf '%s\n' "$token" > "$out")
digest="$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)"
echo "token sha256:$digest tenant=$tenant role=$role"
echo "make_token: wrote the token to $out (give it to the caller as --token-file=$out)" >&2
