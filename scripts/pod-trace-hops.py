#!/usr/bin/env python3
"""Per-pod hop timeline of an in-place release, from a `SROLL_BENCH_POD_TRACE` file.

Usage: SROLL_BENCH_POD_TRACE=t.trace sroll bench --only 7
       python3 scripts/pod-trace-hops.py t.trace [BUDGET]

Reads the last measurement in the file (the in-place one in scenario 7) and prints, per hop of
one pod's in-place update, the latency over all pods:

  out     the operator took the pod out of traffic (gate InPlaceUpdateReady=False)
  patch   the operator's image patch landed (the revision label changed)
  kill    the kubelet killed the container (no container ready)
  cready  the kubelet reports the new container ready
  mark    the operator marked the gate True
  ready   the kubelet wrote Ready=True

then each wave of BUDGET pods (default 100) in the order they went out, and the slot hand-over
latency ready(k) -> out(k + BUDGET): how long a freed unit of budget stays unused.
"""
import collections
import statistics as st
import sys

STEPS = ["out", "patch", "kill", "cready", "mark", "ready"]


def hops_of(lines):
    events = collections.defaultdict(list)
    for line in lines:
        f = line.split()
        if len(f) < 8:
            continue
        events[f[1]].append((float(f[0]), dict(x.split("=", 1) for x in f[3:])))
    hops = {}
    for name, es in events.items():
        h = {}
        prev = {"gate": "True"}
        for t, kv in es:
            if "out" not in h and kv["gate"] == "False" and prev["gate"] != "False":
                h["out"], h["rev0"] = t, kv["rev"]
            if "out" in h and "patch" not in h and kv["rev"] != h["rev0"]:
                h["patch"] = t
            if "patch" in h and "kill" not in h and kv["containers_ready"].startswith("0/"):
                h["kill"] = t
            if "kill" in h and "cready" not in h and not kv["containers_ready"].startswith("0/"):
                h["cready"] = t
            if "cready" in h and "mark" not in h and kv["gate"] == "True":
                h["mark"] = t
            if "mark" in h and "ready" not in h and kv["ready"] == "True":
                h["ready"] = t
            prev = kv
        if "ready" in h:
            hops[name] = h
    return hops


def summary(xs):
    xs = sorted(xs)
    return (
        f"mean={st.mean(xs) * 1000:7.1f} p50={xs[len(xs) // 2] * 1000:7.1f} "
        f"p90={xs[int(len(xs) * 0.9)] * 1000:7.1f} max={xs[-1] * 1000:7.1f} ms"
    )


def main():
    path = sys.argv[1]
    budget = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    lines = open(path).read().split("# probe started\n")[-1].splitlines()
    hops = hops_of(lines)
    if not hops:
        sys.exit("no pod with a full in-place timeline in the last measurement")
    print(f"{len(hops)} pods with a full timeline")
    for a, b in zip(STEPS, STEPS[1:]):
        print(f"{a:>6} -> {b:<6} {summary(h[b] - h[a] for h in hops.values())}")
    pods = sorted(hops.values(), key=lambda h: h["out"])
    t0 = pods[0]["out"]
    print("wave (first-last, s after the first pod out): " + " | ".join(STEPS))
    for w in range(0, len(pods), budget):
        group = pods[w : w + budget]
        spans = (
            f"{min(h[s] for h in group) - t0:6.2f}-{max(h[s] for h in group) - t0:6.2f}"
            for s in STEPS
        )
        print(f"{w // budget:>4}: " + " | ".join(spans))
    outs = sorted(h["out"] for h in pods)
    readys = sorted(h["ready"] for h in pods)
    if len(outs) > budget:
        print(f"ready(k) -> out(k+{budget}): {summary(outs[k + budget] - readys[k] for k in range(len(outs) - budget))}")
    print(f"out -> ready per pod: {summary(h['ready'] - h['out'] for h in pods)}")
    print(f"span, first out -> last ready: {readys[-1] - t0:.2f} s")


if __name__ == "__main__":
    main()
