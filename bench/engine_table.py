#!/usr/bin/env python3
"""engine_table.py: the table of bench/run_engine_bench.sh from its results.jsonl: loco against
llama.cpp measured in the same run (best of the repetitions for each engine), generation against
the memory-bandwidth limit, thread scaling and resident memory against the goal.
Usage: engine_table.py results.jsonl THREADS"""
import json
import os
import platform
import sys


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def best(rows, **k):
    """The row of each engine with the highest pp_tps and the one with the highest tg_tps."""
    sel = [r for r in rows if all(r.get(a) == b for a, b in k.items())]
    if not sel:
        return None
    return {
        "pp": max(r["pp_tps"] for r in sel),
        "tg": max(r["tg_tps"] for r in sel),
        "rss": max(r.get("peak_rss_bytes", 0) for r in sel),
        "row": sel[0],
    }


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def ratio(a, b):
    return f"{a / b:6.2f}x" if a and b else "     -"


def main():
    rows = load(sys.argv[1])
    threads = int(sys.argv[2])
    bw = {r["threads"]: r["read_gbs"] for r in rows
          if r.get("engine") == "membw" and "section" not in r}

    def bw_at(section, label):
        """The best bandwidth measured right before this section's runs of this model (the
        run's opening figure when there is none)."""
        at = [r["read_gbs"] for r in rows if r.get("engine") == "membw"
              and r.get("section") == section and r.get("label") == label
              and r.get("threads") == threads]
        return max(at) if at else bw.get(threads, 0)

    kp = next((r["kernel_path"] for r in rows if r.get("engine") == "loco"), "?")
    print(f"CPU: {cpu_name()}, {os.cpu_count()} CPUs; loco kernels: {kp}")
    print("memory bandwidth (read): " + ", ".join(f"{t} threads {g:.1f} GB/s" for t, g in sorted(bw.items())))
    print("ratios are loco / llama.cpp in this run, each the best of its repetitions; > 1: loco is faster\n")

    labels = sorted({r["label"] for r in rows if r.get("section") == "short"})
    if labels:
        print(f"short context ({threads} threads): prompt {rows_of(rows, 'short', 'pp')} tokens, "
              f"generation {rows_of(rows, 'short', 'tg')} tokens")
        print(f"{'model':8} {'loco pp':>9} {'llama pp':>9} {'pp x':>7} {'loco tg':>9} {'llama tg':>9} "
              f"{'tg x':>7} {'limit':>7} {'tg/limit':>8} {'ttft s':>7} {'rss/(file+kv)':>14}")
        for lab in labels:
            lo = best(rows, section="short", label=lab, engine="loco")
            ll = best(rows, section="short", label=lab, engine="llama.cpp")
            if not lo:
                continue
            r = lo["row"]
            limit = bw_at("short", lab) * 1e9 / r["file_bytes"] if r.get("file_bytes") else 0
            mem = lo["rss"] / (r["file_bytes"] + r["kv_bytes"])
            print(f"{lab:8} {lo['pp']:9.2f} {ll['pp'] if ll else 0:9.2f} {ratio(lo['pp'], ll and ll['pp']):>7} "
                  f"{lo['tg']:9.2f} {ll['tg'] if ll else 0:9.2f} {ratio(lo['tg'], ll and ll['tg']):>7} "
                  f"{limit:7.2f} {lo['tg'] / limit if limit else 0:8.0%} {r['ttft_s']:7.2f} {mem:13.3f}x")
        print()

    drows = [r for r in rows if r.get("section") == "depth"]
    if drows:
        print(f"at depth ({threads} threads): prompt of {drows[0]['pp']} tokens after depth tokens, "
              f"then {drows[0]['tg']} generated; llama.cpp's best of its flash-attention settings")
        print(f"{'model':8} {'depth':>6} {'loco pp':>9} {'llama pp':>9} {'pp x':>7} {'loco tg':>9} "
              f"{'llama tg':>9} {'tg x':>7} {'pp vs short':>11}")
        for lab in sorted({r["label"] for r in drows}):
            for d in sorted({r["depth"] for r in drows if r["label"] == lab}):
                lo = best(rows, section="depth", label=lab, engine="loco", depth=d)
                ll = best(rows, section="depth", label=lab, engine="llama.cpp", depth=d)
                # short context from the same context and sitting (depth 0 of this run) when
                # measured, else the short section: the machine's speed drifts between sections
                sh = (best(rows, section="depth", label=lab, engine="loco", depth=0)
                      or best(rows, section="short", label=lab, engine="loco"))
                if not lo or d == 0:
                    continue
                print(f"{lab:8} {d:6d} {lo['pp']:9.2f} {ll['pp'] if ll else 0:9.2f} "
                      f"{ratio(lo['pp'], ll and ll['pp']):>7} {lo['tg']:9.2f} {ll['tg'] if ll else 0:9.2f} "
                      f"{ratio(lo['tg'], ll and ll['tg']):>7} {ratio(lo['pp'], sh and sh['pp']):>11}")
        print()

    grows = [r for r in rows if r.get("section") == "gen"]
    if grows:
        print(f"generation of every type ({threads} threads; Qwen3-4B width, 6 layers; limit = "
              f"bandwidth / file bytes)")
        print(f"{'type':6} {'file GB':>8} {'loco tg':>9} {'llama tg':>9} {'tg x':>7} {'limit':>7} "
              f"{'loco/limit':>10} {'llama/limit':>11}")
        for lab in [t for t in "f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k".split()
                    if t in {r["label"] for r in grows}]:
            lo = best(rows, section="gen", label=lab, engine="loco")
            ll = best(rows, section="gen", label=lab, engine="llama.cpp")
            if not lo:
                continue
            fb = lo["row"]["file_bytes"]
            limit = bw_at("gen", lab) * 1e9 / fb
            print(f"{lab:6} {fb / 1e9:8.2f} {lo['tg']:9.2f} {ll['tg'] if ll else 0:9.2f} "
                  f"{ratio(lo['tg'], ll and ll['tg']):>7} {limit:7.2f} {lo['tg'] / limit:10.0%} "
                  f"{(ll['tg'] if ll else 0) / limit:11.0%}")
        print()

    srows = [r for r in rows if r.get("section") == "scale"]
    if srows:
        print("thread scaling (prompt 128, generation 32)")
        print(f"{'model':8} {'threads':>7} {'loco pp':>9} {'llama pp':>9} {'loco tg':>9} {'llama tg':>9} "
              f"{'pp vs 1':>8} {'tg vs 1':>8}")
        for lab in sorted({r["label"] for r in srows}):
            base = best(rows, section="scale", label=lab, engine="loco", threads=1)
            for th in sorted({r["threads"] for r in srows if r["label"] == lab}):
                lo = best(rows, section="scale", label=lab, engine="loco", threads=th)
                ll = best(rows, section="scale", label=lab, engine="llama.cpp", threads=th)
                print(f"{lab:8} {th:7d} {lo['pp']:9.2f} {ll['pp'] if ll else 0:9.2f} {lo['tg']:9.2f} "
                      f"{ll['tg'] if ll else 0:9.2f} {ratio(lo['pp'], base and base['pp']):>8} "
                      f"{ratio(lo['tg'], base and base['tg']):>8}")


def rows_of(rows, section, key):
    for r in rows:
        if r.get("section") == section and r.get("engine") == "loco":
            return r[key]
    return "?"


if __name__ == "__main__":
    main()
