#!/usr/bin/env python3
"""Run `FERRY -q --output json --config CONFIG deploy` and say where its time goes.

    bench/steps.py FERRY CONFIG table TITLE    a line per step: start and duration
    bench/steps.py FERRY CONFIG line           the steps' durations on one line

Each step's start is when its `step` event arrives; the last line gives what the deploy asked of the
host (the `result` event's `remote`: each operation costs a round trip or more).
"""
import json
import subprocess
import sys
import time

ferry, config, form = sys.argv[1:4]
t0 = time.monotonic()
p = subprocess.Popen([ferry, "-q", "--output", "json", "--config", config, "deploy"],
                     stdout=subprocess.PIPE, text=True)
marks, remote = [], {}
for e in map(json.loads, p.stdout):
    if e.get("type") == "step":
        marks.append((time.monotonic() - t0, e["step"]))
    if e.get("type") == "result":
        remote = e.get("remote", {})
p.wait()
end = time.monotonic() - t0
spans = [(name, t, (marks[i + 1][0] if i + 1 < len(marks) else end) - t) for i, (t, name) in enumerate(marks)]
if form == "table":
    print(sys.argv[4])
    for name, t, d in spans:
        print(f"  {name:<20} {t:6.2f}s {d:6.2f}s")
    print(f"  {'(exit)':<20} {end:6.2f}s")
else:
    print("  ferry's steps: " + ", ".join(f"{name} {d:.2f}s" for name, _, d in spans)
          + f"; before the first step {marks[0][0]:.2f}s")
print(f"  remote operations: {remote.get('commands')} commands, {remote.get('sftp_sessions')} SFTP session(s), "
      f"{remote.get('sftp_requests')} SFTP requests besides data writes")
