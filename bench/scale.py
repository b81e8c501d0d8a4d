#!/usr/bin/env python3
"""sysctr scale benchmark (issue 18; called by `bench/run --scale`, see docs/benchmarks.md).

Fills one `--root` tree on tmpfs with N containers, each installed from its
own image, all small variations of one base (the benchmark image `small`:
its layer plus one tiny layer of its own), for N = 1, 10, 50, 200 (one tree,
grown step by step), and at each N times, as a user runs them:

  install    a probe container from a new image (and the median of the
             last fill installs, which install into a host of about N)
  update     `containers update` of the probe to another new image
  list       `containers list`, `images list`
  prune      `images prune` with nothing to prune
  fsck       `fsck` of the whole store
  uninstall  the probe

Then fsck against `sha256sum` over the same objects, on a store holding
`medium` (about 11k file objects), alternating.

Prints a markdown report: per-N medians, each divided by the N=1 figure,
beside the issue's targets. Environment: SYSCTR, BENCH_TMP (images/oci holds
`small` and `medium`, built by make-images.sh), SCALE_N ("1 10 50 200"),
SCALE_REPS (3), SCALE_FS (/dev/shm), OUT.
"""
import gzip
import hashlib
import io
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSCTR = shlex.split(os.environ.get('SYSCTR') or os.path.join(REPO, 'bin', 'sysctr'))
BENCH_TMP = os.environ.get('BENCH_TMP', '/tmp/bench')
SRC_LAYOUT = os.path.join(BENCH_TMP, 'images', 'oci')
NS = [int(x) for x in os.environ.get('SCALE_N', '1 10 50 200').split()]
REPS = int(os.environ.get('SCALE_REPS', '3'))
FS = os.environ.get('SCALE_FS', '/dev/shm')
OUT = os.environ.get('OUT', '')


def log(msg):
    print(f'[scale {time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)


# ------------------------------------------------------------------ images
class Layout:
    """An OCI layout holding `small`'s blobs and any number of variations of it."""

    def __init__(self, path):
        self.path = path
        self.blobs = os.path.join(path, 'blobs', 'sha256')
        os.makedirs(self.blobs, exist_ok=True)
        with open(os.path.join(path, 'oci-layout'), 'w') as f:
            json.dump({'imageLayoutVersion': '1.0.0'}, f)
        self.tags = {}
        base = self._src_manifest('small')
        self.base_manifest = base
        for d in [base['config']] + base['layers']:
            shutil.copyfile(os.path.join(SRC_LAYOUT, 'blobs', 'sha256', d['digest'][7:]), os.path.join(self.blobs, d['digest'][7:]))
        with open(os.path.join(self.blobs, base['config']['digest'][7:])) as f:
            self.base_config = json.load(f)
        self.write_index()

    @staticmethod
    def _src_manifest(tag):
        with open(os.path.join(SRC_LAYOUT, 'index.json')) as f:
            idx = json.load(f)
        for m in idx['manifests']:
            if m.get('annotations', {}).get('org.opencontainers.image.ref.name') == tag:
                with open(os.path.join(SRC_LAYOUT, 'blobs', 'sha256', m['digest'][7:])) as f:
                    return json.load(f)
        raise SystemExit(f'scale: no image {tag} in {SRC_LAYOUT} (run make-images.sh)')

    def put(self, data):
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.blobs, d), 'wb') as f:
            f.write(data)
        return f'sha256:{d}', len(data)

    def variation(self, i):
        """A manifest (digest, size) for base + one layer holding etc/variant = i."""
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode='w', format=tarfile.PAX_FORMAT) as t:
            for name, body in [('etc/', None), ('etc/variant', f'{i}\n'.encode())]:
                ti = tarfile.TarInfo(name.rstrip('/'))
                ti.mtime = 0
                if body is None:
                    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                else:
                    ti.size, ti.mode = len(body), 0o644
                t.addfile(ti, io.BytesIO(body) if body else None)
        tar_bytes = raw.getvalue()
        diff_id = 'sha256:' + hashlib.sha256(tar_bytes).hexdigest()
        gz = gzip.compress(tar_bytes, mtime=0)
        ld, ls = self.put(gz)
        cfg = json.loads(json.dumps(self.base_config))
        cfg['rootfs']['diff_ids'] = list(cfg['rootfs']['diff_ids']) + [diff_id]
        cfg.setdefault('config', {}).setdefault('Labels', {})['bench.variant'] = str(i)
        cd, cs = self.put(json.dumps(cfg, sort_keys=True).encode())
        man = {
            'schemaVersion': 2,
            'mediaType': 'application/vnd.oci.image.manifest.v1+json',
            'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': cd, 'size': cs},
            'layers': list(self.base_manifest['layers']) + [{'mediaType': 'application/vnd.oci.image.layer.v1.tar+gzip', 'digest': ld, 'size': ls}],
        }
        return self.put(json.dumps(man, sort_keys=True).encode())

    def tag(self, name, manifest):
        self.tags[name] = manifest
        self.write_index()

    def write_index(self):
        idx = {'schemaVersion': 2, 'manifests': [
            {'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': d, 'size': s,
             'annotations': {'org.opencontainers.image.ref.name': t}} for t, (d, s) in sorted(self.tags.items())]}
        tmp = os.path.join(self.path, 'index.json.tmp')
        with open(tmp, 'w') as f:
            json.dump(idx, f)
        os.rename(tmp, os.path.join(self.path, 'index.json'))


# ------------------------------------------------------------------ running sysctr
CPU = {}  # wall-time sample -> the command's CPU seconds (user + sys, children included)


def run(args, env=None):
    """Wall seconds of one sysctr run; its CPU seconds are kept in CPU (less sensitive to a busy host)."""
    e = dict(os.environ)
    e.update(env or {})
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(SYSCTR + args, env=e, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f'failed ({p.returncode}): sysctr {shlex.join(args)}\n{p.stderr[-2000:]}')
    CPU[dt] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return dt


def cpu_of(samples):
    """Median CPU seconds of the runs whose wall times are `samples`."""
    return statistics.median(CPU.get(x, 0.0) for x in samples)


def takes_root(cmd):
    p = subprocess.run(SYSCTR + cmd + ['--help'], capture_output=True, text=True)
    return '--root' in p.stdout


def fmt(s):
    return f'{s * 1000:.0f} ms' if s < 10 else f'{s:.2f} s'


def main():
    work = tempfile.mkdtemp(prefix='sysctr-scale-', dir=FS)
    try:
        report = scale(work)
        report += fsck_vs_sha256sum(work)
    finally:
        subprocess.run(['rm', '-rf', '--one-file-system', work])
    print(report)
    if OUT:
        with open(OUT, 'a') as f:
            f.write(report + '\n')


def scale(work):
    layout = Layout(os.path.join(work, 'layout'))
    root = os.path.join(work, 'root')
    os.makedirs(root)
    state = {'SYSCTR_STATE_DIR': os.path.join(root, 'var', 'lib', 'sysctr')}
    # Read commands take --root once the CLI has it there; else the same tree through SYSCTR_STATE_DIR.
    read_cmds = {'containers list': ['containers', 'list'], 'images list': ['images', 'list'], 'images prune': ['images', 'prune'], 'fsck': ['fsck']}
    read_args = {k: (v + ['--root', root], {}) if takes_root(v) else (v, state) for k, v in read_cmds.items()}
    started = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())
    load0 = os.getloadavg()[0]
    rows = {}
    n = 0
    fill_times = []
    variant = 0
    for target in NS:
        log(f'filling to {target} containers')
        while n < target:
            n += 1
            variant += 1
            layout.tag(f'v{variant}', layout.variation(variant))
            fill_times.append(run(['install', '--system', '--root', root, '--name', f'c{n}', f'oci:{layout.path}:v{variant}']))
        r = {'fill install (median of last 5)': fill_times[-5:]}
        variant += 1
        layout.tag('probe', layout.variation(variant))
        r['install'] = [run(['install', '--system', '--root', root, '--name', 'probe', f'oci:{layout.path}:probe'])]
        variant += 1
        layout.tag('probe', layout.variation(variant))
        r['update'] = [run(['containers', 'update', '--root', root, 'probe'])]
        for k, (args, env) in read_args.items():
            r[k] = [run(args, env) for _ in range(REPS)]
        r['uninstall'] = [run(['uninstall', '--root', root, 'probe'])]
        rows[target] = {k: (statistics.median(v), cpu_of(v)) for k, v in r.items()}
        log(f'N={target}: ' + ', '.join(f'{k} {fmt(w)} (cpu {fmt(c)})' for k, (w, c) in rows[target].items()))
    ended = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())

    cols = list(next(iter(rows.values())).keys())
    base = rows[NS[0]]
    out = [f'sysctr scale benchmark, {started} .. {ended}, {os.cpu_count()} CPUs, load average at start {load0:.2f}, at end {os.getloadavg()[0]:.2f}.',
           f'One `--root` tree on {FS}, grown to N containers, each from its own image (`small` + one tiny layer); '
           f'reads: median of {REPS}; install/update/uninstall: one run of a probe container at that N. '
           f'Read commands ran with {"--root" if not read_args["containers list"][1] else "SYSCTR_STATE_DIR=ROOT/var/lib/sysctr (no --root on them in this build)"}.',
           '',
           '| N containers + images | ' + ' | '.join(cols) + ' |',
           '|---:|' + '---:|' * len(cols)]
    for nn, r in rows.items():
        out.append(f'| {nn} | ' + ' | '.join(f'{fmt(r[c][0])} (cpu {fmt(r[c][1])})' for c in cols) + ' |')
    last = NS[-1]
    ratio = lambda c, i: rows[last][c][i] / base[c][i] if base[c][i] > 0 else float('nan')
    out.append(f'| {last} / {NS[0]}, wall (cpu) | ' + ' | '.join(f'{ratio(c, 0):.2f}x ({ratio(c, 1):.2f}x)' for c in cols) + ' |')
    targets = {'fill install (median of last 5)': 1.1, 'install': 1.1, 'containers list': 1.5, 'images list': 1.5}
    verdict = lambda c: ('ok' if ratio(c, 0) <= targets[c] else '**MISS**') + (' (cpu ok)' if ratio(c, 1) <= targets[c] else ' (cpu MISS)')
    out.append('| target (wall; cpu) | ' + ' | '.join(f'<= {targets[c]}x: {verdict(c)}' if c in targets else '-' for c in cols) + ' |')
    out.append('')
    out.append('Fill installs (each into a host with one more container): ' + ', '.join(
        f'#{i + 1} {fmt(t)}' for i, t in enumerate(fill_times) if i + 1 in {1, 2, 10, 50, 100, 150, 200} or i + 1 == len(fill_times)) + '.')
    out.append('')
    return '\n'.join(out)


def fsck_vs_sha256sum(work):
    """fsck of a store holding medium vs sha256sum over the same object files, alternating."""
    state = os.path.join(work, 'medium-state')
    src = f'oci:{SRC_LAYOUT}:medium'
    log('pulling medium for fsck vs sha256sum')
    run(['images', 'pull', src], {'SYSCTR_STATE_DIR': state})
    objects = os.path.join(state, 'store', 'objects')
    files = []
    for dp, _dn, fn in os.walk(objects):
        files += [os.path.join(dp, f) for f in fn]
    listfile = os.path.join(work, 'objects.list')
    with open(listfile, 'w') as f:
        f.write('\0'.join(files) + '\0')
    fs, ss, sc = [], [], []
    for _ in range(max(REPS, 3)):
        fs.append(run(['fsck'], {'SYSCTR_STATE_DIR': state}))
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(f'xargs -0 sha256sum <{shlex.quote(listfile)} >/dev/null', shell=True, check=True)
        ss.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        sc.append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
    t0 = time.perf_counter()
    subprocess.run(['node', '-e', '0'], check=True)
    node0 = time.perf_counter() - t0
    f, s = statistics.median(fs), statistics.median(ss)
    fc = cpu_of(fs)
    per = lambda t: t / len(files) * 100000
    return '\n'.join([
        f'fsck against sha256sum over the same {len(files)} objects (store holding medium; medians of {len(fs)}, alternating):',
        '',
        '| measure | sysctr fsck | sha256sum (xargs -0) | fsck/sha256sum | target |',
        '|---|---:|---:|---:|---|',
        f'| wall time | {fmt(f)} | {fmt(s)} | {f / s:.2f}x | <= 2x: {"ok" if f / s <= 2 else "**MISS**"} |',
        f'| per 100k objects | {fmt(per(f))} | {fmt(per(s))} | | |',
        f'| CPU (user + sys) | {fmt(fc)} | {fmt(statistics.median(sc))} | {fc / statistics.median(sc):.2f}x | |',
        f'| wall time less `node -e 0` ({fmt(node0)}) | {fmt(f - node0)} | {fmt(s)} | {(f - node0) / s:.2f}x | |',
        '',
    ])


if __name__ == '__main__':
    main()
