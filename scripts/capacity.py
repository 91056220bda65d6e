#!/usr/bin/env python3
"""Capacity: how many cameras one machine captions, beside ffmpeg's decode limit.

Makes a typical camera stream (1280x720, 30 fps, H.264 at 2 Mbit/s, no
B-frames; a keyframe every 2 s, a variant every 1 s, and a 1080p one), then
measures in the same run:

  - ffmpeg -threads 1 decoding every frame, every frame converted to BGR, and
    keyframes only (-skip_frame nokey): CPU seconds per camera-second;
  - `lookout run` with N real-time sources of a clip (files, and RTSP through
    the local GStreamer server), one caption per second each, demo model:
    CPU seconds per camera-second of the lookout process over a steady
    window, and whether it keeps up (every source captioned each second);
  - the largest N that keeps up, found by doubling then bisecting;
  - what a second inference worker buys: captions/s of 2 workers over 1 (one
    intra-op thread each, golden frames at batch 8), as the service runs them
    and the plain way, in alternating rounds (BenchmarkWorkerScaling).

Writes a markdown table to OUT/report.md (default .state/capacity) and prints
it. docs/CAPACITY.md holds the figures and the method.

  scripts/capacity.py              # make capacity (about 10-15 minutes)
  scripts/capacity.py --quick      # the CI version (make test): 4 sources,
                                   # checks lookout/ffmpeg against the
                                   # documented ratio (fails at twice it)

Stdlib only; needs bin/lookout (make build), ffmpeg, models/demo,
.state/ort (scripts/ort.sh) and, for the worker-scaling step on CPU, the Go
toolchain.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "bin", "lookout")
MODEL = os.path.join(ROOT, "models", "demo")
DOC = os.path.join(ROOT, "docs", "CAPACITY.md")
TICK = os.sysconf("SC_CLK_TCK")


def die(msg):
    print("capacity: " + msg, file=sys.stderr)
    sys.exit(1)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        die("%s failed (exit %d): %s" % (" ".join(cmd), r.returncode, (r.stderr or r.stdout)[-2000:]))
    return r


def child_cpu():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_clips(out, seconds):
    """Renders a synthetic camera scene once and encodes the variants."""
    clips = os.path.join(out, "clips")
    os.makedirs(clips, exist_ok=True)
    base = os.path.join(clips, "base-%ds.mp4" % seconds)
    if not os.path.exists(base):
        t = time.time()
        run([BIN, "scenes", "video", "--domain", "surveillance", "--seed", "11", "--duration", "%ds" % seconds,
             "--size", "1280x720", "--fps", "30", "--out", base])
        print("capacity: rendered %s in %.0fs" % (base, time.time() - t), file=sys.stderr)
    variants = {
        "720p-k2": ("1280x720", "2M", 60),
        "720p-k1": ("1280x720", "2M", 30),
        "1080p-k2": ("1920x1080", "4M", 60),
    }
    paths = {}
    for name, (size, rate, gop) in variants.items():
        p = os.path.join(clips, "%s-%ds.mp4" % (name, seconds))
        if not os.path.exists(p):
            w, h = size.split("x")
            run(["ffmpeg", "-v", "error", "-y", "-i", base, "-vf", "scale=%s:%s" % (w, h), "-c:v", "libx264",
                 "-preset", "veryfast", "-b:v", rate, "-maxrate", rate, "-bufsize", rate, "-g", str(gop),
                 "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p", p])
        paths[name] = p
    return paths


def ffmpeg_cpu(clip, seconds, extra_in=(), extra_out=()):
    """CPU seconds per camera-second of one single-threaded ffmpeg decode."""
    c0 = child_cpu()
    run(["ffmpeg", "-v", "error", "-threads", "1", *extra_in, "-i", clip, *extra_out, "-f", "null", "-"])
    return (child_cpu() - c0) / seconds


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def metrics(addr):
    body = urllib.request.urlopen("http://%s/metrics" % addr, timeout=5).read().decode()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


PROVIDER = "cpu"


def service(out, name, uris, decode, warmup, window):
    """Runs lookout with one real-time source per URI; returns CPU per
    camera-second over the window and whether every source kept up."""
    work = os.path.join(out, "run-%s" % name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    addr = "127.0.0.1:%d" % free_port()
    lines = ["data_dir: data", "log: {level: warn, format: json}", "http: {listen: \"%s\"}" % addr,
             "model: {dir: %s, provider: %s}" % (MODEL, PROVIDER), "pipeline: {max_wait: 100ms}", "sources:"]
    for i, u in enumerate(uris):
        lines.append("  - {id: cam%d, uri: \"%s\", every: 1s, realtime: true, decode: %s}" % (i, u, decode))
    lines.append("sinks: {jsonl: {path: records.jsonl}}")
    cfg = os.path.join(work, "cfg.yaml")
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    log = open(os.path.join(work, "lookout.log"), "w")
    p = subprocess.Popen([BIN, "run", "--config", cfg], stdout=log, stderr=log)
    try:
        deadline = time.time() + 60
        while True:
            if p.poll() is not None:
                die("lookout exited %d during %s; see %s" % (p.returncode, name, log.name))
            try:
                m = metrics(addr)
                if sum(1 for k in m if k.startswith("lookout_source_frames_sampled_total{")) == len(uris):
                    break
            except OSError:
                pass
            if time.time() > deadline:
                die("%s: not every source gave a frame within 60s; see %s" % (name, log.name))
            time.sleep(0.25)
        time.sleep(warmup)
        m0, c0, t0 = metrics(addr), proc_cpu(p.pid), time.time()
        time.sleep(window)
        m1, c1, t1 = metrics(addr), proc_cpu(p.pid), time.time()
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()
    span = t1 - t0
    # Keeping up: each source had (about) one caption per second of the
    # window; replays block rather than drop, so a slow lookout falls behind.
    worst = min(m1.get('lookout_source_frames_sampled_total{source="cam%d"}' % i, 0) -
                m0.get('lookout_source_frames_sampled_total{source="cam%d"}' % i, 0) for i in range(len(uris)))
    keeps_up = worst >= span - 1.5
    return (c1 - c0) / (len(uris) * span), keeps_up, worst / span


def largest(out, name, uri, decode, start, limit, warmup, window):
    """The largest N that keeps up: doubling from start, then bisecting."""
    ok, bad, tried = 0, None, []
    n = start
    while n <= limit:
        cpu, up, rate = service(out, "%s-n%d" % (name, n), [uri] * n, decode, warmup, window)
        tried.append((n, cpu, up, rate))
        print("capacity: %s N=%d cpu/cam-s=%.4f keeps_up=%s (slowest source %.2f captions/s)" % (name, n, cpu, up, rate),
              file=sys.stderr)
        if not up:
            bad = n
            break
        ok = n
        n *= 2
    if bad is not None:
        lo, hi = ok, bad
        while hi - lo > max(2, lo // 8):
            mid = (lo + hi) // 2
            cpu, up, rate = service(out, "%s-n%d" % (name, mid), [uri] * mid, decode, warmup, window)
            tried.append((mid, cpu, up, rate))
            print("capacity: %s N=%d cpu/cam-s=%.4f keeps_up=%s (slowest source %.2f captions/s)" % (name, mid, cpu, up, rate),
                  file=sys.stderr)
            if up:
                lo = mid
            else:
                hi = mid
        ok = lo
    return ok, tried


def worker_scaling(rounds):
    """BenchmarkWorkerScaling's median speedups of 2 workers over 1: {variant: x}.
    CPU workers only: skipped for a GPU provider and on one core."""
    if (os.cpu_count() or 1) < 2 or PROVIDER != "cpu":
        return {}
    go = shutil.which("go")
    if not go:
        die("go is missing: the worker-scaling benchmark needs the Go toolchain")
    p = subprocess.run([go, "test", "-run", "^$", "-bench", "BenchmarkWorkerScaling", "-benchtime", "%dx" % rounds,
                        "./inference/"], cwd=ROOT, capture_output=True, text=True)
    out = {}
    for line in p.stdout.splitlines():
        m = re.match(r"BenchmarkWorkerScaling/(\w+)\S*\s.*?([\d.]+) speedup", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    if p.returncode != 0 or "service" not in out:
        die("worker-scaling benchmark failed:\n" + (p.stdout + p.stderr)[-2000:])
    return out


def documented_ratios():
    """The quick run's documented lookout/ffmpeg ratios (docs/CAPACITY.md)."""
    try:
        text = open(DOC).read()
    except OSError:
        return {}
    m = re.search(r"<!-- capacity-quick: (.*?) -->", text)
    if not m:
        return {}
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the CI version: 4 sources, 10 s windows, ratio check")
    ap.add_argument("--out", default=os.path.join(ROOT, ".state", "capacity"))
    ap.add_argument("--rtsp-port", type=int, default=int(os.environ.get("CAPACITY_RTSP_PORT", "18654")))
    ap.add_argument("--provider", default="cpu", choices=("cpu", "cuda", "tensorrt"),
                    help="ONNX Runtime execution provider for lookout (decode stays on the CPU)")
    args = ap.parse_args()
    global PROVIDER
    PROVIDER = args.provider
    for need, what in ((BIN, "make build"), (os.path.join(MODEL, "config.json"), "models/demo"),
                       (shutil.which("ffmpeg") or "/nonexistent", "ffmpeg (scripts/deps-apt.sh)")):
        if not os.path.exists(need):
            die("%s is missing: run %s" % (need, what))
    os.environ.setdefault("LOOKOUT_ORT_LIB", os.path.join(ROOT, ".state", "ort", "libonnxruntime.so"))
    os.makedirs(args.out, exist_ok=True)
    seconds = 30 if args.quick else 60
    clips = make_clips(args.out, seconds)
    cores = os.cpu_count()

    rows = []  # (what, cpu per camera-second, note)
    peer = {}
    for name in ("720p-k2", "720p-k1", "1080p-k2"):
        clip = clips[name]
        a = ffmpeg_cpu(clip, seconds)
        b = ffmpeg_cpu(clip, seconds, extra_out=("-pix_fmt", "bgr24"))
        k = ffmpeg_cpu(clip, seconds, extra_in=("-skip_frame", "nokey"))
        peer[name] = (a, b, k)
        rows += [("ffmpeg -threads 1, every frame, %s" % name, a, ""),
                 ("ffmpeg, every frame to BGR, %s" % name, b, ""),
                 ("ffmpeg -skip_frame nokey, %s" % name, k, "")]
        if args.quick and name == "720p-k1":
            break

    if args.quick:
        n, warmup, window = 4, 3, 10
        checks = [("all", "720p-k2", "all", peer["720p-k2"][0]),
                  ("keyframes", "720p-k1", "auto", peer["720p-k1"][2])]
        doc = documented_ratios()
        failed = []
        for key, clip, decode, base in checks:
            cpu, up, rate = service(args.out, "quick-" + key, [clips[clip]] * n, decode, warmup, window)
            ratio = cpu / base
            rows.append(("lookout run, %d real-time sources, decode %s, %s" % (n, decode, clip), cpu,
                         "%.1fx ffmpeg's %s; keeps up: %s" % (ratio, "full decode" if key == "all" else "keyframe decode", up)))
            want = doc.get(key)
            line = "capacity: quick %s: lookout %.4f CPU s per camera-second = %.2fx ffmpeg (documented %s)" % (
                key, cpu, ratio, want if want else "none")
            print(line, file=sys.stderr)
            if want and ratio > 2 * want:
                failed.append("%s: %.2fx ffmpeg, more than twice the documented %.2fx" % (key, ratio, want))
            if not up:
                failed.append("%s: %d sources did not keep up (slowest %.2f captions/s)" % (key, n, rate))
        scale = worker_scaling(8)
        scaling_rows(rows, scale)
        want = doc.get("workers")
        if scale and want:
            print("capacity: quick workers: 2 workers caption %.2fx as fast as 1 (documented %.2f)" % (
                scale["service"], want), file=sys.stderr)
            # A gross regression: less than a third of the documented gain
            # (workers taking turns again gives about 1.0x).
            if scale["service"] - 1 < (want - 1) / 3:
                failed.append("workers: 2 workers %.2fx of 1, documented %.2fx" % (scale["service"], want))
        report(args.out, rows, [], cores)
        if failed:
            die("gross regression: " + "; ".join(failed))
        return

    ladders = []
    plans = [("keyframes-auto 720p-k1", clips["720p-k1"], "auto", 32, 512),
             ("all 720p-k2", clips["720p-k2"], "all", 8, 256),
             ("auto 720p-k2 (falls back to all)", clips["720p-k2"], "auto", 8, 256),
             ("all 1080p-k2", clips["1080p-k2"], "all", 4, 128)]
    for name, clip, decode, start, limit in plans:
        best, tried = largest(args.out, name.split()[0] + "-" + name.split()[1], clip, decode, start, limit, 5, 15)
        at = [t for t in tried if t[0] == best] or [tried[0]]
        rows.append(("lookout run, decode %s, largest N that keeps up = %d" % (name, best), at[0][1],
                     "%.1f cameras per core" % (best / cores)))
        ladders.append((name, best, tried))

    # RTSP: the same stream through the local GStreamer server (its CPU is
    # not counted; the server shares the machine, so N stays small).
    server = os.path.join(ROOT, "scripts", "rtsp-server")
    run([server, "start", "--port", str(args.rtsp_port), "--file", clips["720p-k1"]])
    try:
        url = "rtsp://127.0.0.1:%d/cam" % args.rtsp_port
        for decode in ("auto", "all"):
            cpu, up, rate = service(args.out, "rtsp-" + decode, [url] * 8, decode, 5, 15)
            rows.append(("lookout run, 8 RTSP sources, decode %s, 720p-k1" % decode, cpu, "keeps up: %s" % up))
    finally:
        subprocess.run([server, "stop", "--port", str(args.rtsp_port)], capture_output=True)
    scaling_rows(rows, worker_scaling(20))
    report(args.out, rows, ladders, cores)


def scaling_rows(rows, scale):
    """Adds the worker-scaling figures to the table (no CPU column: a speedup)."""
    for variant, x in sorted(scale.items()):
        how = {"service": "as the service runs them: a session copy per worker, locked threads, a spare P each",
               "plain": "one shared session, GOMAXPROCS = cores, goroutines free to move"}.get(variant, variant)
        rows.append(("2 inference workers vs 1, batch 8, 1 intra-op thread each (%s)" % how, None,
                     "%.2fx the captions/s" % x))


def report(out, rows, ladders, cores):
    lines = ["| what | CPU s per camera-second | cameras per core | note |", "|---|---|---|---|"]
    for what, cpu, note in rows:
        if cpu is None:
            lines.append("| %s | | | %s |" % (what, note))
            continue
        lines.append("| %s | %.4f | %.1f | %s |" % (what, cpu, 1 / cpu if cpu > 0 else float("inf"), note))
    for name, best, tried in ladders:
        lines.append("")
        lines.append("%s: N tried (CPU s per camera-second, keeps up): %s" % (
            name, ", ".join("%d (%.4f, %s)" % (n, c, "yes" if u else "no") for n, c, u, _ in tried)))
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("# capacity, %s, %d cores\n\n" % (time.strftime("%Y-%m-%d %H:%M"), cores) + text)
    print(text)


if __name__ == "__main__":
    main()
