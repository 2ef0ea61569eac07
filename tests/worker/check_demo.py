#!/usr/bin/python3
"""scripts/demo.sh as CI can run it: on the tiny random model (DEMO_MODEL; no torch, no
training) and the built binaries (SKIP_SETUP), against its real server. Checks that it exits 0,
that the cold answer's prompt is all computed and the warm one's full blocks all come from the
cache, and that each answer it prints is exactly the text of the same prompt's answer without
any cache (the demo's JSON text decoded back), the same cold and warm.

Usage: check_demo.py SOURCE_DIR BUILD_DIR
"""

import json
import os
import re
import subprocess
import sys
import tempfile


def main():
    source, build = sys.argv[1], os.path.abspath(sys.argv[2])
    worker = os.path.join(build, "bin", "kvcache-worker")
    with tempfile.TemporaryDirectory() as tmp:
        # Seed 1 answers with control bytes, invalid UTF-8 and multi-byte characters: the
        # JSON escapes on the way out and back are all exercised.
        model = os.path.join(tmp, "tiny")
        subprocess.run([worker, "make-model", "--out=" + model, "--preset=tiny", "--seed=1"],
                       check=True, stdout=subprocess.DEVNULL)
        env = dict(os.environ, SKIP_SETUP="1", BUILD_DIR=build, DEMO_MODEL=model)
        demo = subprocess.run([os.path.join(source, "scripts", "demo.sh")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=120)
        out = demo.stdout
        print(out)
        assert demo.returncode == 0, f"demo.sh exited {demo.returncode}"

        runs = re.findall(r"== (cold|warm) request: prompt +(\d+) tokens, +(\d+) from the cache, "
                          r"time to first token +([\d.]+) ms\n   answer: \"(.*)\"\n", out)
        assert [r[0] for r in runs] == ["cold", "warm"], runs
        (_, cold_prompt, cold_cached, _, cold_text), (_, warm_prompt, warm_cached, _, warm_text) = runs
        assert cold_prompt == warm_prompt == "2000", runs
        assert cold_cached == "0", runs
        assert warm_cached == str(2000 // 16 * 16), runs  # Every full block of 16.
        assert "== the same answer both times" in out
        assert "== cache stats" in out

        # The prompt the demo names: 2,000 bytes of GPL-3 ending mid-sentence.
        license = "/usr/share/common-licenses/GPL-3"
        with open(license, "rb") as f:
            data = f.read()
        cut = b"and the Corresponding "
        end = data.index(cut + b"Source of the work is not available") + len(cut)
        prompt = os.path.join(tmp, "prompt.txt")
        with open(prompt, "wb") as f:
            f.write(data[end - 2000:end])
        plain = subprocess.run([worker, "generate", "--model=" + model, "--prompt-file=" + prompt,
                                "--max-new-tokens=65", "--json"],
                               check=True, stdout=subprocess.PIPE, text=True).stdout
        want = json.loads(plain)["text"]
        for name, shown in (("cold", cold_text), ("warm", warm_text)):
            got = json.loads('"' + shown + '"')
            assert got == want, f"{name} answer {got!r}, without a cache {want!r}"
    print("demo.sh: cold and warm answers equal the uncached answer's text")


if __name__ == "__main__":
    main()
