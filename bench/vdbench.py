#!/usr/bin/env python3
"""vdbench — fio through vdiskd's FUSE file beside its peers, in one run.

Peers on the same data: the image file itself (the limit),
qemu-storage-daemon's FUSE export (host O_DIRECT and host page cache),
and for NBD volumes nbdfuse over the same nbdkit server. Systems are
interleaved within every repetition; the report gives medians, spread,
ratios to the peers and daemon CPU time per I/O. Timing is reported,
never asserted.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

WORKLOADS = [
    ("4k randread QD1", dict(rw="randread", bs="4k", iodepth=1)),
    ("4k randread QD32", dict(rw="randread", bs="4k", iodepth=32)),
    ("4k randwrite QD32", dict(rw="randwrite", bs="4k", iodepth=32)),
    ("4k randwrite QD1 fsync", dict(rw="randwrite", bs="4k", iodepth=1, fsync=1)),
    ("1M seq read QD8", dict(rw="read", bs="1M", iodepth=8)),
    ("1M seq write QD8", dict(rw="write", bs="1M", iodepth=8)),
    ("4k randread QD32 x4 jobs", dict(rw="randread", bs="4k", iodepth=32, numjobs=4)),
]
NBD_WORKLOADS = [WORKLOADS[1], WORKLOADS[2]]


def log(msg):
    print(f"[vdbench] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def wait_for(pred, what, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


class Vdiskd:
    """A vdiskd daemon on a private data dir and mount."""

    def __init__(self, binary, work, name, import_dir, extra=()):
        self.dir = os.path.join(work, name)
        self.data = os.path.join(self.dir, "data")
        self.mnt = os.path.join(self.dir, "mnt")
        os.makedirs(self.data, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logf = open(os.path.join(self.dir, "daemon.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "--data-dir", self.data, "--mount", self.mnt,
             "--listen", f"127.0.0.1:{self.port}", "--import-dir", import_dir,
             "--nbd-socket-dir", work, *extra], stdout=self.logf, stderr=subprocess.STDOUT)
        wait_for(self._healthy, "vdiskd /health")

    def _healthy(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"vdiskd exited, see {self.logf.name}")
        try:
            return self.api("GET", "/health")[0] == 200
        except OSError:
            return False

    def api(self, method, path, body=None, timeout=120):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                txt = r.read()
                return r.status, json.loads(txt) if txt else None
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def create(self, spec):
        st, body = self.api("POST", "/volumes", spec)
        if st != 201:
            raise RuntimeError(f"create {spec} -> {st} {body}")
        return body

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        subprocess.run(["umount", "-l", self.mnt], stderr=subprocess.DEVNULL)
        self.logf.close()


class Qsd:
    """qemu-storage-daemon exporting a qcow2 image over FUSE."""

    def __init__(self, work, name, image, direct):
        self.file = os.path.join(work, name + ".fuse")
        open(self.file, "w").close()
        d = "on" if direct else "off"
        self.proc = subprocess.Popen(
            ["qemu-storage-daemon",
             "--blockdev", f"driver=file,node-name=f,filename={image},"
             f"cache.direct={d},aio={'native' if direct else 'threads'}",
             "--blockdev", "driver=qcow2,node-name=q,file=f",
             "--export", f"type=fuse,id=e,node-name=q,mountpoint={self.file},"
             "writable=on,allow-other=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._mounted, "qsd fuse export")
        self.pid = self.proc.pid

    def _mounted(self):
        if self.proc.poll() is not None:
            raise RuntimeError("qemu-storage-daemon exited")
        with open("/proc/mounts") as f:
            return any(l.split()[1] == self.file for l in f)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(["umount", "-l", self.file], stderr=subprocess.DEVNULL)


def fio(path, params, runtime, size, outfile, ramp):
    cmd = ["fio", "--name=job", f"--filename={path}", "--ioengine=io_uring",
           "--direct=1", "--time_based", f"--runtime={runtime}",
           f"--ramp_time={ramp}", f"--size={size}", "--group_reporting",
           "--randrepeat=0", "--norandommap", "--output-format=json",
           f"--output={outfile}"]
    for k, v in params.items():
        cmd.append(f"--{k}={v}")
    run(cmd, stdout=subprocess.DEVNULL)
    with open(outfile) as f:
        j = json.load(f)
    job = j["jobs"][0]
    rd, wr = job["read"], job["write"]
    ios = rd["total_ios"] + wr["total_ios"]
    return {
        "iops": rd["iops"] + wr["iops"],
        "mibs": (rd["bw_bytes"] + wr["bw_bytes"]) / 2**20,
        "lat_us": ((rd["clat_ns"]["mean"] if rd["total_ios"] else
                    wr["clat_ns"]["mean"]) / 1000.0),
        "ios": ios,
    }


def measure(system, params, args, outfile):
    path, pid = system
    c0 = cpu_seconds(pid)
    r = fio(path, params, args.runtime, args.fio_size, outfile, args.ramp)
    c1 = cpu_seconds(pid)
    total_ios = r["ios"] if r["ios"] else 1
    r["cpu_us_per_io"] = ((c1 - c0) * 1e6 / total_ios
                          if c0 is not None and c1 is not None else None)
    return r


def summarise(results, workloads, systems, subject, fh):
    """results[(workload, system)] = [run dicts]; one markdown table."""
    names = [s for s in systems]
    peers = [s for s in names if s != subject]
    print("| workload | " + " | ".join(names) + " | " +
          " | ".join(f"{subject} / {p}" for p in peers) +
          f" | {subject} CPU µs/IO | peers' CPU µs/IO |", file=fh)
    print("|---" * (1 + len(names) + len(peers) + 2) + "|", file=fh)
    for wname, params in workloads:
        metric = "mibs" if params["bs"] == "1M" else "iops"
        unit = " MiB/s" if metric == "mibs" else ""
        med = {}
        cells = []
        for s in names:
            vals = [r[metric] for r in results.get((wname, s), [])]
            if not vals:
                cells.append("—")
                continue
            med[s] = statistics.median(vals)
            spread = f" ({min(vals):.0f}–{max(vals):.0f})" if len(vals) > 1 else ""
            lat = statistics.median(r["lat_us"] for r in results[(wname, s)])
            cells.append(f"{med[s]:.0f}{unit}{spread}, {lat:.0f} µs")
        ratios = [f"{med[subject] / med[p]:.2f}×" if subject in med and
                  med.get(p) else "—" for p in peers]

        def cpu(s):
            v = [r["cpu_us_per_io"] for r in results.get((wname, s), [])
                 if r["cpu_us_per_io"] is not None]
            return f"{statistics.median(v):.1f}" if v else "—"
        peer_cpu = ", ".join(f"{p}: {cpu(p)}" for p in peers if cpu(p) != "—")
        print(f"| {wname} | " + " | ".join(cells) + " | " + " | ".join(ratios) +
              f" | {cpu(subject)} | {peer_cpu or '—'} |", file=fh)
    print(file=fh)


def make_images(args, work):
    raw = os.path.join(work, "base.raw")
    log(f"writing a {args.size} image with random data")
    run(["fio", "--name=fill", f"--filename={raw}", "--rw=write", "--bs=1M",
         f"--size={args.size}", "--ioengine=psync", "--refill_buffers",
         "--output-format=terse"], stdout=subprocess.DEVNULL)
    qcow = os.path.join(work, "base.qcow2")
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow])
    return raw, qcow


def copy(src, dst):
    """Copy an image and drop the copy from the page cache, so that every
    system starts from the disk alike (a fresh sequential copy sits in
    large folios that slow buffered 4k writes)."""
    run(["cp", "--sparse=always", src, dst])
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return dst


def main_bench(args):
    """Two vdiskd daemons on the same images: --cache direct (reported
    against qsd cache.direct=on and the raw file) and --cache host
    (reported against qsd cache.direct=off)."""
    work = tempfile.mkdtemp(prefix="vdbench.", dir=args.workdir)
    os.makedirs(args.out, exist_ok=True)
    stack = []
    results = {}
    try:
        raw, qcow = make_images(args, work)
        imports = os.path.join(work, "imports")
        os.makedirs(imports)
        copy(raw, os.path.join(imports, "img.raw"))
        copy(qcow, os.path.join(imports, "img.qcow2"))

        vds = {}
        for mode in args.modes:
            # The rows of the daemon's own data path keep it: passthrough
            # has its own daemon and table.
            vd = Vdiskd(args.vdiskd, work, f"vdiskd-{mode}", imports,
                        ["--cache", mode, "--passthrough", "off", *args.vdiskd_args])
            stack.append(vd)
            vds[mode] = vd
        vd = vds[args.modes[0]]
        if args.fuse_uring:
            uring_on(stack)
            vds["direct uring"] = Vdiskd(args.vdiskd, work, "vdiskd-uring", imports,
                                         ["--cache", "direct", "--fuse-uring",
                                          *args.vdiskd_args])
            stack.append(vds["direct uring"])
        systems = {"file (raw)": (copy(raw, os.path.join(work, "limit.raw")), None)}
        for mode, d in vds.items():
            v = d.create({"name": "bench-raw", "import": {"path": os.path.join(imports, "img.raw")}})
            systems[f"vdiskd raw {mode}"] = (v["path"], d.proc.pid)
        if args.passthrough:
            d = Vdiskd(args.vdiskd, work, "vdiskd-passthrough", imports,
                       ["--cache", "direct", "--passthrough", "auto", *args.vdiskd_args])
            stack.append(d)
            v = d.create({"name": "bench-raw", "import": {"path": os.path.join(imports, "img.raw")}})
            systems["vdiskd raw passthrough"] = (v["path"], d.proc.pid)
        for mode, d in vds.items():
            v = d.create({"name": "bench-qcow2", "import": {"path": os.path.join(imports, "img.qcow2")}})
            log(f"vdiskd --cache {mode} imported the qcow2 image as format {v['format']}")
            systems[f"vdiskd {v['format']} {mode}"] = (v["path"], d.proc.pid)
        for direct in (True, False):
            if args.modes == ["direct"] and not direct or args.modes == ["host"] and direct:
                continue
            name = f"qsd qcow2 {'O_DIRECT' if direct else 'cache'}"
            q = Qsd(work, name.replace(" ", "-"),
                    copy(qcow, os.path.join(work, name.replace(" ", "-") + ".qcow2")),
                    direct)
            stack.append(q)
            systems[name] = (q.file, q.pid)

        if args.systems:
            keep = args.systems + ["file (raw)"]
            for sname in [n for n in systems if n not in keep]:
                del systems[sname]
        for rep in range(args.reps if args.main else 0):
            for wname, params in args.workloads:
                for sname, system in systems.items():
                    tag = f"{wname}-{sname}-{rep}".replace(" ", "_").replace("/", "")
                    r = measure(system, params, args,
                                os.path.join(args.out, tag + ".json"))
                    results.setdefault((wname, sname), []).append(r)
                    log(f"rep {rep + 1} {wname:26s} {sname:22s} "
                        f"{r['iops']:9.0f} IOPS {r['mibs']:8.1f} MiB/s "
                        f"{r['cpu_us_per_io'] or 0:6.1f} µs CPU/IO")
        tables = [("vdiskd qcow2 direct uring", "host O_DIRECT, FUSE over io_uring",
                   ["file (raw)", "vdiskd qcow2 direct", "vdiskd raw direct uring",
                    "vdiskd raw direct"]),
                  ("vdiskd qcow2 direct", "host O_DIRECT",
                   ["file (raw)", "vdiskd raw direct", "qsd qcow2 O_DIRECT"]),
                  ("vdiskd qcow2 host", "host page cache",
                   ["file (raw)", "vdiskd raw host", "qsd qcow2 cache"]),
                  ("vdiskd raw passthrough", "raw volume, kernel passthrough",
                   ["file (raw)", "vdiskd raw direct"])]
        with open(os.path.join(args.out, "summary.md"), "w") as fh:
            for out in (fh, sys.stdout):
                for subject, what, peers in tables if args.main else ():
                    if subject not in systems:
                        continue
                    print(f"## Data path, {what} ({args.size} fully written image, "
                          f"{args.reps} interleaved repetitions, {args.runtime}s each; "
                          "medians, spread in brackets, mean completion latency)\n",
                          file=out)
                    names = [subject] + [p for p in peers if p in systems]
                    summarise(results, args.workloads, names, subject, out)
        if args.extras:
            alloc_bench(args, work, {m: vds[m] for m in args.modes}, stack)
            scale_bench(args, vd)
        if args.nbd:
            nbd_bench(args, work, vd, stack)
    finally:
        for s in reversed(stack):
            try:
                s.stop()
            except Exception as e:  # keep cleaning up
                log(f"cleanup: {e}")
        shutil.rmtree(work, ignore_errors=True)


def alloc_bench(args, work, vds, stack):
    """4k random writes into fresh qcow2 images: every first write to a
    cluster allocates. Each vdiskd mode against the qsd of the same mode."""
    params = dict(rw="randwrite", bs="4k", iodepth=32)
    rows = []
    for mode, vd in vds.items():
        st, body = vd.api("POST", "/volumes", {"name": "fresh", "size": args.size,
                                               "format": "qcow2"})
        if st != 201:
            log(f"skipping allocating-write row: vdiskd has no qcow2 ({body})")
            return
        direct = mode == "direct"
        qname = f"qsd qcow2 {'O_DIRECT' if direct else 'cache'}"
        img = os.path.join(work, f"fresh-{mode}.qcow2")
        run(["qemu-img", "create", "-q", "-f", "qcow2", img, str(args.size_bytes)])
        q = Qsd(work, f"qsd-fresh-{mode}", img, direct)
        stack.append(q)
        for name, path, image, pid in ((f"vdiskd qcow2 {mode}", body["path"], body["image"], vd.proc.pid),
                                       (qname, q.file, img, q.pid)):
            r = measure((path, pid), params, args,
                        os.path.join(args.out, f"alloc-{name.replace(' ', '_')}.json"))
            used = os.stat(image).st_blocks * 512
            written = r["ios"] * 4096
            rows.append((name, r["iops"], r["cpu_us_per_io"], used / written if written else 0))
        q.stop()
        stack.remove(q)
        vd.api("DELETE", "/volumes/fresh")
    with open(os.path.join(args.out, "summary.md"), "a") as fh:
        for out in (fh, sys.stdout):
            print("## Allocating 4k random writes, QD32, fresh qcow2\n", file=out)
            print("| system | IOPS | CPU µs/IO | host bytes per byte written |\n"
                  "|---|---|---|---|", file=out)
            for n, iops, cpu, ratio in rows:
                cpu_s = f"{cpu:.1f}" if cpu is not None else "—"
                print(f"| {n} | {iops:.0f} | {cpu_s} | {ratio:.2f} |", file=out)
            print(file=out)
            for i in range(0, len(rows) - 1, 2):
                if rows[i + 1][1]:
                    print(f"- {rows[i][0]} / {rows[i + 1][0]}: "
                          f"{rows[i][1] / rows[i + 1][1]:.2f}×", file=out)
            print(file=out)


def scale_bench(args, vd):
    n_vols, n_fio, n_create = args.scale_volumes, args.scale_fio, args.creates
    lat = []
    for i in range(n_create):
        t0 = time.perf_counter()
        vd.create({"name": f"c{i}", "size": 1 << 20})
        lat.append((time.perf_counter() - t0) * 1000)
    dlat = []
    for i in range(n_create):
        t0 = time.perf_counter()
        st, _ = vd.api("DELETE", f"/volumes/c{i}")
        dlat.append((time.perf_counter() - t0) * 1000)
        if st != 204:
            raise RuntimeError(f"delete c{i} -> {st}")
    paths = [vd.create({"name": f"s{i}", "size": args.fio_size_bytes, "format": "raw"})["path"]
             for i in range(n_vols)]
    cmd = ["fio", "--ioengine=io_uring", "--direct=1", "--time_based",
           f"--runtime={args.runtime}", f"--size={args.fio_size_bytes}", "--rw=randwrite",
           "--bs=4k", "--iodepth=32", "--group_reporting", "--output-format=json"]
    for p in paths[:n_fio]:
        cmd += [f"--name={os.path.basename(p)}", f"--filename={p}"]
    j = json.loads(run(cmd, stdout=subprocess.PIPE).stdout)
    agg = j["jobs"][0]["write"]["iops"]
    for i in range(n_vols):
        vd.api("DELETE", f"/volumes/s{i}")

    def pct(v, p):
        v = sorted(v)
        return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
    with open(os.path.join(args.out, "summary.md"), "a") as fh:
        for out in (fh, sys.stdout):
            print("## Scale\n", file=out)
            print(f"- {n_vols} volumes in one mount, fio 4k randwrite QD32 on {n_fio} "
                  f"at once: {agg:.0f} IOPS aggregate", file=out)
            print(f"- create of {n_create} volumes: p50 {pct(lat, 50):.1f} ms, "
                  f"p99 {pct(lat, 99):.1f} ms; delete: p50 {pct(dlat, 50):.1f} ms, "
                  f"p99 {pct(dlat, 99):.1f} ms\n", file=out)


def nbd_bench(args, work, vd, stack):
    """vdiskd's NBD volume vs nbdfuse over one nbdkit memory server."""
    sock = os.path.join(work, "nbd.sock")
    srv = subprocess.Popen(["nbdkit", "-f", "-U", sock, "memory", str(args.size_bytes)])

    class Proc:
        def __init__(self, p):
            self.p = p

        def stop(self):
            # nbdkit waits on SIGTERM until its clients hang up.
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
    stack.append(Proc(srv))
    wait_for(lambda: os.path.exists(sock), "nbdkit socket")
    st, body = vd.api("POST", "/volumes", {"name": "nbdvol", "backend": {
        "type": "nbd", "uri": f"nbd+unix:///?socket={sock}"}})
    if st != 201:
        log(f"skipping NBD rows: {st} {body}")
        return

    class NbdVolume:
        def stop(self):
            # Hang up on nbdkit before it is asked to stop (nbdkit waits for
            # its clients on SIGTERM); bounded, and nbdkit is killed after
            # 10 s in any case.
            vd.api("DELETE", "/volumes/nbdvol?force=true", timeout=30)
    stack.append(NbdVolume())
    nf_dir = os.path.join(work, "nbdfuse")
    os.makedirs(nf_dir)
    nf = subprocess.Popen(["nbdfuse", nf_dir, "--unix", sock],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    class NbdFuse(Proc):
        def stop(self):
            subprocess.run(["fusermount3", "-u", nf_dir], stderr=subprocess.DEVNULL)
            super().stop()
    stack.append(NbdFuse(nf))
    wait_for(lambda: os.path.exists(os.path.join(nf_dir, "nbd")), "nbdfuse mount")
    systems = {"vdiskd nbd": (body["path"], vd.proc.pid),
               "nbdfuse": (os.path.join(nf_dir, "nbd"), nf.pid)}
    results = {}
    for rep in range(args.reps):
        for wname, params in NBD_WORKLOADS:
            for sname, system in systems.items():
                r = measure(system, params, args, os.path.join(
                    args.out, f"nbd-{wname}-{sname}-{rep}.json".replace(" ", "_")))
                results.setdefault((wname, sname), []).append(r)
    with open(os.path.join(args.out, "summary.md"), "a") as fh:
        for out in (fh, sys.stdout):
            print("## NBD volume vs nbdfuse, same nbdkit memory server\n", file=out)
            summarise(results, NBD_WORKLOADS, list(systems), "vdiskd nbd", out)


class UringParam:
    """The fuse module's enable_uring, switched on for the run and put
    back as it was: the kernel offers FUSE over io_uring only while it is
    on, and only to daemons that ask for it (--fuse-uring)."""

    PATH = "/sys/module/fuse/parameters/enable_uring"

    def __init__(self):
        with open(self.PATH) as f:
            self.old = f.read().strip()
        with open(self.PATH, "w") as f:
            f.write("Y")

    def stop(self):
        with open(self.PATH, "w") as f:
            f.write(self.old)


def uring_on(stack):
    if not os.path.exists(UringParam.PATH):
        raise RuntimeError("--fuse-uring: this kernel has no FUSE over io_uring")
    stack.append(UringParam())


def parse_size(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * units[s[-1].upper()] if s[-1].upper() in units else int(s)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vdiskd", required=True, help="vdiskd binary")
    p.add_argument("--smoke", action="store_true", help="seconds-long run to keep the script working")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--runtime", type=int, default=10, help="seconds per fio run")
    p.add_argument("--size", default="2G", help="image size")
    p.add_argument("--out", default=None, help="results folder")
    p.add_argument("--workdir", default="/var/tmp", help="where images are made (not tmpfs)")
    p.add_argument("--no-nbd", dest="nbd", action="store_false")
    p.add_argument("--no-extras", dest="extras", action="store_false",
                   help="skip the allocating-write and scale rows")
    p.add_argument("--no-main", dest="main", action="store_false",
                   help="skip the data-path tables")
    p.add_argument("--vdiskd-args", nargs="*", default=[],
                   help="extra flags for both vdiskd daemons")
    p.add_argument("--modes", default="direct,host",
                   help="vdiskd --cache modes to run (direct, host or both)")
    p.add_argument("--fuse-uring", action="store_true",
                   help="add a vdiskd --cache direct --fuse-uring daemon (turns the "
                   "fuse module's enable_uring on for the run)")
    p.add_argument("--no-passthrough", dest="passthrough", action="store_false",
                   help="skip the raw volume served by kernel passthrough")
    p.add_argument("--systems", default=None,
                   help="comma-separated systems to run (the raw file always "
                   "runs), e.g. 'vdiskd raw passthrough,vdiskd raw direct'")
    p.add_argument("--workloads", default=None,
                   help="comma-separated indexes into the workload list")
    args = p.parse_args()
    args.modes = [m for m in args.modes.split(",") if m]
    args.systems = [n for n in args.systems.split(",") if n] if args.systems else None
    if not args.modes or any(m not in ("direct", "host") for m in args.modes):
        p.error("--modes takes direct, host or direct,host")
    args.workloads = WORKLOADS
    if args.smoke:
        args.reps, args.runtime, args.size = 1, 1, "64M"
        # One read, one write, one flush-bound and one large-block row keep
        # every code path of the script exercised in CI time.
        args.workloads = [WORKLOADS[i] for i in (0, 2, 3, 5)]
    if p.parse_args().workloads:
        args.workloads = [WORKLOADS[int(i)] for i in
                          p.parse_args().workloads.split(",")]
    args.ramp = 0 if args.smoke else 1
    args.size_bytes = parse_size(args.size)
    args.fio_size = args.size
    args.fio_size_bytes = args.size_bytes if args.smoke else 256 << 20
    args.scale_volumes, args.scale_fio, args.creates = (8, 2, 20) if args.smoke else (64, 8, 1000)
    if args.out is None:
        args.out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                time.strftime("%Y%m%d-%H%M%S"))
    main_bench(args)
    log(f"raw results in {args.out}")


if __name__ == "__main__":
    # SIGTERM unwinds like Ctrl-C, so daemons, mounts and images go away.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
