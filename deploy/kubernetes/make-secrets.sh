#!/usr/bin/env bash
# Makes the Secrets kvcache.yaml and kvcache-workers.yaml mount (docs/deploy.md):
#   kvcache-tls           tls.crt, tls.key (the cache nodes' certificate, for the Service's
#                         names, every pod's DNS name and 127.0.0.1) and ca.crt
#   kvcache-auth          tokens: the callers file of --auth-tokens (token digests only)
#   kvcache-worker-token  token: the workers' bearer token (tenant "default", role writer)
#   kvcache-admin-token   token: an admin's (tenant "ops"), mounted in the cache pods for
#                         kubectl exec ... kvcache-admin --token-file=/etc/kvcache/admin/token
#   kvcache-worker-auth   tokens: the workers' own callers file (their --auth-tokens)
#   kvcache-worker-client-token  token: a caller's token for the workers (a router's)
# Needs openssl and kubectl. A CA of your own:
# set CA_CERT and CA_KEY to its files instead of making one.
# Usage: deploy/kubernetes/make-secrets.sh [NAMESPACE]       (default: kvcache)
set -euo pipefail
ns="${1:-kvcache}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
cd "$dir"
if [ -z "${CA_CERT:-}" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=kvcache CA" -keyout ca.key -out ca.crt 2>/dev/null
  CA_CERT=ca.crt CA_KEY=ca.key
else
  cp "$CA_CERT" ca.crt
fi
svc="kvcache.$ns.svc.cluster.local"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$svc" \
  -keyout tls.key -out tls.csr 2>/dev/null
printf 'subjectAltName=DNS:%s,DNS:*.%s,DNS:localhost,IP:127.0.0.1\n' "$svc" "$svc" > ext
openssl x509 -req -in tls.csr -CA "$CA_CERT" -CAkey "$CA_KEY" -CAcreateserial -days 365 \
  -extfile ext -out tls.crt 2>/dev/null

token() { head -c 32 /dev/urandom | base64 | tr -d '/+=\n' | cut -c1-40; }
digest() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
worker="$(token)" admin="$(token)" client="$(token)"
printf '%s\n' "$worker" > token
{
  echo "# kvcache callers (docs/security.md); kubectl edit the Secret, then kill -HUP 1 in each pod"
  echo "token sha256:$(digest "$worker") tenant=default role=writer"
  echo "token sha256:$(digest "$admin") tenant=ops role=admin"
} > tokens

kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
kubectl -n "$ns" create secret generic kvcache-tls \
  --from-file=tls.crt --from-file=tls.key --from-file=ca.crt
kubectl -n "$ns" create secret generic kvcache-auth --from-file=tokens
kubectl -n "$ns" create secret generic kvcache-worker-token --from-file=token
printf '%s\n' "$admin" > token
kubectl -n "$ns" create secret generic kvcache-admin-token --from-file=token
echo "token sha256:$(digest "$client") tenant=default role=reader" > tokens
kubectl -n "$ns" create secret generic kvcache-worker-auth --from-file=tokens
printf '%s\n' "$client" > token
kubectl -n "$ns" create secret generic kvcache-worker-client-token --from-file=token
echo "make-secrets: Secrets kvcache-tls, kvcache-auth, kvcache-worker-token," \
  "kvcache-admin-token, kvcache-worker-auth and kvcache-worker-client-token made in" \
  "namespace $ns"
