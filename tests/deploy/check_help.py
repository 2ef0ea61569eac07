#!/usr/bin/python3
"""Checks that `--help` of every binary (and of each kvcache-bench subcommand) prints its usage
and nothing misleading: it exits 0 with the text on stdout; every flag it lists is accepted
with its listed default; every flag its usage lines mention is one it lists; its spelling
notes name its own flags; and flags a binary does not use are neither listed nor accepted.

Usage: check_help.py BIN_DIR   (run by ctest as binaries_help_test)
Prints one line per failed check and "N passed, N failed"; exits 1 if any check failed.
"""

import re
import subprocess
import sys
from pathlib import Path

from checks import check, finish  # tests/deploy/checks.py

BIN = Path(sys.argv[1])


def run(args):
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


# (the command, flags it must not list or accept)
COMMANDS = [
    (["kvcache-server"], ["tls-ca", "tls-server-name"]),
    (["kvcache-admin"], ["tls-client-ca", "ram-bytes"]),
    (["kvcache-worker"], []),
    (["kvcache-bench", "trace"], ["fill-bytes"]),
    (["kvcache-bench", "throughput"], ["trace"]),
]

for command, unused in COMMANDS:
    name = " ".join(command)
    argv = [str(BIN / command[0]), *command[1:]]
    r = run([*argv, "--help"])
    check(r.returncode == 0, f"{name} --help exits 0 ({r.returncode}: {r.stderr.strip()})")
    check(r.stderr == "", f"{name} --help writes nothing to stderr ({r.stderr.strip()})")
    text = r.stdout
    usage, _, flags_part = text.partition("\nFlags:\n")
    check("usage: " + name in usage, f"{name} --help starts with its usage")
    listed = dict(re.findall(r"^  --([a-z0-9-]+)=(.*)$", flags_part, re.M))
    check(len(listed) >= 3, f"{name} --help lists its flags")
    # All listed flags at their listed defaults at once (then one by one to name a failure):
    # with --help last, the exit is 0 only if every earlier flag parsed.
    given = [f"--{f}={'' if d == chr(34) * 2 else d}" for f, d in listed.items()]
    if run([*argv, *given, "--help"]).returncode != 0:
        for arg in given:
            a = run([*argv, arg, "--help"])
            check(a.returncode == 0, f"{name} accepts {arg} as listed ({a.stderr.strip()})")
    else:
        check(True, f"{name} accepts every flag it lists at its listed default")
    for flag in set(re.findall(r"--([a-z][a-z0-9-]*)", usage)):
        check(flag in listed or flag in ("help", "version", "flags"),
              f"{name}: its usage mentions --{flag}, which --help does not list")
    notes = flags_part[flags_part.find("Flags are also accepted"):]
    for flag in re.findall(r"--(?:no)?([a-z0-9_-]+)", notes):
        dashed = flag.replace("_", "-")
        check(dashed in listed or dashed.removeprefix("no") in listed or dashed == "name",
              f"{name}: the spelling notes name --{flag}, not one of its flags")
    for flag in unused:
        check(flag not in listed, f"{name} --help does not list --{flag}")
        u = run([*argv, f"--{flag}=x"])
        check(u.returncode == 2 and f"--{flag}" in u.stderr,
              f"{name} refuses --{flag} as unknown (exit {u.returncode}: {u.stderr.strip()})")
    v = run([*argv, "--version"])
    check(v.returncode == 0 and re.fullmatch(rf"{re.escape(name)} \S+\n", v.stdout) is not None,
          f"{name} --version prints its name and version ({v.stdout!r})")

# The dispatcher: its --help lists every subcommand and each one's usage.
r = run([str(BIN / "kvcache-bench"), "--help"])
check(r.returncode == 0, "kvcache-bench --help exits 0")
for sub in ("trace", "throughput"):
    check(f"\nusage: kvcache-bench {sub}" in r.stdout, f"kvcache-bench --help shows {sub}'s usage")
r = run([str(BIN / "kvcache-bench")])
check(r.returncode == 2 and r.stdout == "" and "usage: kvcache-bench" in r.stderr,
      "kvcache-bench without a command prints its usage on stderr and exits 2")

finish()
