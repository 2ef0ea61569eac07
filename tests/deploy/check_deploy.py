#!/usr/bin/python3
"""Checks deploy/ offline against the real binaries: the manifests parse, and their names,
ports and flags agree with each other and with what kvcache-server and kvcache-worker accept.

Usage: check_deploy.py SOURCE_DIR BIN_DIR   (run by ctest as deploy_manifests_test)
Prints one line per check and "N passed, N failed"; exits 1 if any check failed.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from checks import check, finish  # tests/deploy/checks.py

SRC = Path(sys.argv[1])
BIN = Path(sys.argv[2])


def size_bytes(text):
    """'12GiB' or '14Gi' (Kubernetes) -> bytes."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]i?)?B?", text)
    assert m, f"not a size: {text}"
    scale = {None: 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    return float(m.group(1)) * scale[(m.group(2) or "")[:1] or None]


def duration_s(text):
    m = re.fullmatch(r"(\d+)(ms|s|m)", text)
    assert m, f"not a duration: {text}"
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


def flags_of(args):
    """{'ram-bytes': '12GiB', ...} from ['--ram-bytes=12GiB', ...]."""
    out = {}
    for a in args:
        if a.startswith("--"):
            name, _, value = a[2:].partition("=")
            out[name] = value
    return out


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def accepted(binary, args):
    """Whether `binary` parses `args` (names, types): with --help last it exits 0 only after
    every earlier flag parsed; an unknown or badly typed flag exits 2 first."""
    run = subprocess.run([str(BIN / binary), *args, "--help"], capture_output=True, text=True)
    if run.returncode != 0:
        print(run.stderr.strip())
    return run.returncode == 0


def dockerfile_entrypoint(path):
    """The exec-form ENTRYPOINT (and CMD) of a Dockerfile, continuation lines joined."""
    text = path.read_text().replace("\\\n", " ")
    def exec_form(key):
        m = re.search(rf"^{key}\s+(\[.*\])\s*$", text, re.M)
        return yaml.safe_load(m.group(1)) if m else []
    exposed = [int(p) for line in re.findall(r"^EXPOSE\s+(.*)$", text, re.M)
               for p in line.split()]
    return exec_form("ENTRYPOINT"), exec_form("CMD"), exposed


# --- Containers: their flags exist, the ports they listen on are exposed. --------------------
server_entry, _, server_exposed = dockerfile_entrypoint(SRC / "deploy/container/Dockerfile")
check(server_entry[0].endswith("/kvcache-server"), "Dockerfile runs kvcache-server")
check(accepted("kvcache-server", server_entry[1:]), f"kvcache-server accepts {server_entry[1:]}")
server_entry_flags = flags_of(server_entry[1:])
for flag in ("listen", "data-listen", "metrics-listen"):
    if flag in server_entry_flags:
        check(port_of(server_entry_flags[flag]) in server_exposed,
              f"Dockerfile EXPOSEs --{flag}'s port")

worker_entry, worker_cmd, worker_exposed = dockerfile_entrypoint(
    SRC / "deploy/container/Dockerfile.worker")
check(worker_entry == ["/usr/local/bin/kvcache-worker"], "Dockerfile.worker runs kvcache-worker")
check(accepted("kvcache-worker", worker_cmd), f"kvcache-worker accepts {worker_cmd}")
check(port_of(flags_of(worker_cmd)["listen"]) in worker_exposed,
      "Dockerfile.worker EXPOSEs --listen's port")

# --- Kubernetes: everything parses, and agrees. ----------------------------------------------
docs = []
for path in sorted((SRC / "deploy/kubernetes").glob("*.yaml")):
    docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
kinds = {}
for d in docs:
    kinds.setdefault(d["kind"], []).append(d)
for kind in ("Namespace", "Service", "StatefulSet", "Deployment", "PodDisruptionBudget"):
    check(kind in kinds, f"deploy/kubernetes has a {kind}")

namespace = kinds["Namespace"][0]["metadata"]["name"]
for d in docs:
    if d["kind"] != "Namespace":
        check(d["metadata"].get("namespace") == namespace,
              f"{d['kind']} {d['metadata']['name']} is in namespace {namespace}")

services = {s["metadata"]["name"]: s for s in kinds["Service"]}
cache_set = kinds["StatefulSet"][0]
cache_svc = services[cache_set["spec"]["serviceName"]]
check(cache_svc["spec"].get("clusterIP") == "None", "the cache nodes' Service is headless")


def pod_labels(workload):
    return workload["spec"]["template"]["metadata"]["labels"]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def check_pods(workload, binary, entry_flags, leading_args=()):
    """A workload's container: flags, ports, probes, grace, Service and PDB agree."""
    name = workload["metadata"]["name"]
    spec = workload["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    args = container.get("args", [])
    check(accepted(binary, args), f"{name}: {binary} accepts {args}")
    flags = {**entry_flags, **flags_of(args)}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(ports.get("grpc") == port_of(flags["listen"]), f"{name}: grpc port is --listen's")
    if flags.get("data-listen", "off") not in ("off", "auto"):
        check(ports.get("data") == port_of(flags["data-listen"]),
              f"{name}: data port is --data-listen's")
    if "metrics-listen" in flags:
        check(ports.get("metrics") == port_of(flags["metrics-listen"]),
              f"{name}: metrics port is --metrics-listen's")
    for probe in ("readinessProbe", "livenessProbe"):
        # Kubernetes' own gRPC probe speaks plaintext only: over TLS the probe runs
        # kvcache-admin health against the grpc port on loopback, with the flags it needs.
        command = container[probe].get("exec", {}).get("command", [])
        if command:
            probe_flags = flags_of(command[1:-1])
            check(command[0].endswith("kvcache-admin") and command[-1] == "health",
                  f"{name}: {probe} runs kvcache-admin health")
            check(accepted("kvcache-admin", command[1:-1]),
                  f"{name}: kvcache-admin accepts {command[1:-1]}")
            check(probe_flags.get("server") == f"127.0.0.1:{ports['grpc']}",
                  f"{name}: {probe} checks the grpc port")
            check(("tls-cert" in flags) == ("tls-ca" in probe_flags),
                  f"{name}: {probe} speaks TLS exactly when the server does")
        else:
            check(container[probe].get("grpc", {}).get("port") == ports["grpc"],
                  f"{name}: {probe} is a gRPC health check on the grpc port")
    grace = duration_s(flags.get("shutdown-grace", "10s"))
    check(spec["terminationGracePeriodSeconds"] > grace,
          f"{name}: terminationGracePeriodSeconds > --shutdown-grace")
    check(selects(workload["spec"]["selector"]["matchLabels"], pod_labels(workload)),
          f"{name}: its selector matches its pods")
    svc = [s for s in services.values() if selects(s["spec"]["selector"], pod_labels(workload))]
    check(len(svc) == 1, f"{name}: one Service selects its pods")
    for s in svc:
        svc_ports = {p["name"]: p["port"] for p in s["spec"]["ports"]}
        check(svc_ports == {k: v for k, v in ports.items()},
              f"{name}: Service {s['metadata']['name']} exposes the same named ports")
    pdbs = [p for p in kinds["PodDisruptionBudget"]
            if selects(p["spec"]["selector"]["matchLabels"], pod_labels(workload))]
    check(len(pdbs) == 1, f"{name}: one PodDisruptionBudget covers its pods")
    return flags, container


# The cache nodes: the image's entrypoint flags plus the StatefulSet's args.
server_flags, server_container = check_pods(cache_set, "kvcache-server", server_entry_flags)
resources = server_container["resources"]
ram = size_bytes(server_flags["ram-bytes"])
check(size_bytes(resources["requests"]["memory"]) >= ram + (1 << 30),
      "cache node: memory request >= --ram-bytes + 1 GiB (index, memtables, buffers)")
check(size_bytes(resources["limits"]["memory"]) >= size_bytes(resources["requests"]["memory"]),
      "cache node: memory limit >= request")
(claim,) = cache_set["spec"]["volumeClaimTemplates"]
check(size_bytes(claim["spec"]["resources"]["requests"]["storage"])
      >= size_bytes(server_flags["disk-bytes"]), "cache node: volume >= --disk-bytes")
mounts = {m["name"]: m["mountPath"] for m in server_container["volumeMounts"]}
# Shipped with TLS and tokens, each file from a mounted Secret.
for flag in ("tls-cert", "tls-key", "auth-tokens"):
    check(flag in server_flags, f"cache node: --{flag} is given")
for flag in ("allow-plaintext", "allow-anonymous"):
    check(flag not in server_flags, f"cache node: no --{flag}")
secret_volumes = {v["name"] for v in cache_set["spec"]["template"]["spec"].get("volumes", [])
                  if "secret" in v}
for flag in ("tls-cert", "tls-key", "auth-tokens"):
    path = server_flags.get(flag, "")
    check(any(path.startswith(mounts[v] + "/") for v in secret_volumes if v in mounts),
          f"cache node: --{flag} is in a mounted Secret")
check(mounts.get(claim["metadata"]["name"]) == server_flags["disk-path"],
      "cache node: the volume is mounted at --disk-path")

# The workers: serve, pointed at the headless Service by DNS, on its gRPC port.
workers = kinds["Deployment"][0]
worker_args = workers["spec"]["template"]["spec"]["containers"][0]["args"]
check(worker_args[0] == "serve", "workers run kvcache-worker serve")
worker_flags, _ = check_pods(workers, "kvcache-worker", {})
cache_ports = {p["name"]: p["port"] for p in cache_svc["spec"]["ports"]}
want = (f"dns:///{cache_svc['metadata']['name']}.{namespace}.svc.cluster.local:"
        f"{cache_ports['grpc']}")
check(worker_flags.get("cache") == want, f"workers' --cache is {want}")
check(1 <= int(worker_flags.get("replicas", "1")) <= cache_set["spec"]["replicas"],
      "workers' --replicas <= cache nodes")
# Their own callers need tokens, from a mounted Secret.
check("auth-tokens" in worker_flags and "allow-anonymous" not in worker_flags,
      "workers: --auth-tokens, no --allow-anonymous")
worker_pod = workers["spec"]["template"]["spec"]
worker_mounts = {m["name"]: m["mountPath"] for m in worker_pod["containers"][0]["volumeMounts"]}
check(any(worker_flags.get("auth-tokens", "").startswith(worker_mounts[v["name"]] + "/")
          for v in worker_pod.get("volumes", []) if "secret" in v and v["name"] in worker_mounts),
      "workers: --auth-tokens is in a mounted Secret")

# --- systemd units: flags exist, stop timeout covers the drain. ------------------------------
for unit, binary in (("kvcache-server.service", "kvcache-server"),
                     ("kvcache-worker.service", "kvcache-worker")):
    text = (SRC / "deploy/systemd" / unit).read_text().replace("\\\n", " ")
    exec_start = shlex.split(re.search(r"^ExecStart=(.*)$", text, re.M).group(1))
    check(exec_start[0].endswith("/" + binary), f"{unit} runs {binary}")
    check(accepted(binary, exec_start[1:]), f"{unit}: {binary} accepts {exec_start[1:]}")
    stop = int(re.search(r"^TimeoutStopSec=(\d+)", text, re.M).group(1))
    grace = duration_s(flags_of(exec_start[1:]).get("shutdown-grace", "10s"))
    check(stop > grace, f"{unit}: TimeoutStopSec > --shutdown-grace")

finish()
