#!/usr/bin/env python3
"""sysctr benchmark driver (called by bench/run; see docs/benchmarks.md).

Runs sysctr and its peers on the same images from the local registry, in
rounds: within a round sysctr and the peers alternate, on the same
filesystem, so machine noise hits both. Prints a markdown report: medians
of the rounds, ratios sysctr/peer, and the targets of issue 18 (issue 8's before).

Configuration (environment, set by bench/run):
  SYSCTR       command to run sysctr (default: <repo>/bin/sysctr)
  REG          registry host:port (default 127.0.0.1:5000)
  N            rounds per comparison (default 3)
  N_LARGE      rounds for the large image (default max(1, N-1))
  CLI_N        runs of each CLI start command (default 10)
  IMAGES       images for pull/checkout rounds (default "small medium large")
  FS           base dirs of the working dirs, one per filesystem
               (default "/dev/shm /var/tmp": tmpfs and disk)
  SKIP         space-separated sections to skip: pull update cli
  OUT          also write the report there; raw samples go to OUT.json
Nothing here is a test: no assertion fails the run; a missed target is
reported as MISS.
"""
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import hashlib
from collections import defaultdict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSCTR = shlex.split(os.environ.get('SYSCTR') or os.path.join(REPO, 'bin', 'sysctr'))
REG = os.environ.get('REG', '127.0.0.1:5000')
N = int(os.environ.get('N', '3'))
N_LARGE = int(os.environ.get('N_LARGE') or max(1, N - 1))
CLI_N = int(os.environ.get('CLI_N', '10'))
IMAGES = os.environ.get('IMAGES', 'small medium large').split()
FS = os.environ.get('FS', '/dev/shm /var/tmp').split()
SKIP = set(os.environ.get('SKIP', '').split())
OUT = os.environ.get('OUT', '')
TIME = '/usr/bin/time'

# samples[(section, image, fs, what)] = [seconds...]; mem[...] = [KiB...]
samples = defaultdict(list)
mem = defaultdict(list)
info = {}


def log(msg):
    print(f'[bench {time.strftime("%H:%M:%S")}] {msg}', file=sys.stderr, flush=True)


def fs_label(base):
    try:
        out = subprocess.run(['findmnt', '-n', '-o', 'FSTYPE', '-T', base], capture_output=True, text=True, check=True).stdout.split('\n')[0].strip()
    except subprocess.CalledProcessError:
        out = '?'
    return f'{out} ({base})'


def timed(cmd, env=None, cwd=None, key=None, sync=True):
    """Run cmd under /usr/bin/time; return (seconds, peak RSS KiB, stdout).

    `sync` flushes dirty pages before the clock starts (not timed), so one
    command's writeback is not billed to the next one."""
    if sync:
        os.sync()
    fd, tf = tempfile.mkstemp(prefix='bench-time.')
    os.close(fd)
    full = [TIME, '-f', '%M', '-o', tf] + list(cmd)
    e = dict(os.environ)
    if env:
        e.update(env)
    t0 = time.perf_counter()
    p = subprocess.run(full, env=e, cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    try:
        with open(tf) as f:
            lines = [l for l in f.read().split('\n') if l.strip()]
        rss = int(lines[-1]) if lines and lines[-1].strip().isdigit() else 0
    finally:
        os.unlink(tf)
    if p.returncode != 0:
        raise RuntimeError(f'command failed ({p.returncode}): {shlex.join(cmd)}\n{p.stderr[-2000:]}')
    if key is not None:
        samples[key].append(dt)
        mem[key].append(rss)
    return dt, rss, p.stdout


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def rm(path):
    if os.path.lexists(path):
        subprocess.run(['rm', '-rf', '--one-file-system', path], check=True)


def du_bytes(path):
    """Apparent bytes of a tree, each inode once (du -sb)."""
    if not os.path.exists(path):
        return 0
    return int(sh(['du', '-sb', path]).split()[0])


def count_files(path, suffix=''):
    n = 0
    for _root, _dirs, files in os.walk(path):
        n += sum(1 for f in files if f.endswith(suffix))
    return n


def oci_layers(layout, tag):
    """Layer descriptors of tag in an OCI layout written by skopeo."""
    with open(os.path.join(layout, 'index.json')) as f:
        idx = json.load(f)
    for m in idx['manifests']:
        if m.get('annotations', {}).get('org.opencontainers.image.ref.name') == tag:
            algo, hexd = m['digest'].split(':')
            with open(os.path.join(layout, 'blobs', algo, hexd)) as f:
                return json.load(f)['layers']
    raise RuntimeError(f'{tag} not in {layout}')


def blob_path(layout, digest):
    algo, hexd = digest.split(':')
    return os.path.join(layout, 'blobs', algo, hexd)


def skopeo_copy(img, layout, tag, key=None):
    return timed(['skopeo', '--insecure-policy', 'copy', '--quiet', '--src-tls-verify=false',
                  f'docker://{REG}/{img}:latest', f'oci:{layout}:{tag}'], key=key)


def sysctr(args, state, key=None):
    return timed(SYSCTR + args, env={'SYSCTR_STATE_DIR': state}, key=key)


# ------------------------------------------------------------------ pull / checkout rounds
def pull_round(img, base, r):
    w = os.path.join(base, f'{img}.{r}')
    rm(w)
    os.makedirs(w)
    fs = base
    ref = f'{REG}/{img}:latest'
    state, co = os.path.join(w, 'state'), os.path.join(w, 'co')
    lay, bundle = os.path.join(w, 'oci'), os.path.join(w, 'bundle')
    try:
        # 1. sysctr: pull into a fresh store, then check out (two CLI runs, as a user would)
        _, _, out = sysctr(['images', 'pull', '--tls-verify=false', '--json', ref], state, key=('pull', img, fs, 'sysctr'))
        info.setdefault(('pull-json', img), json.loads(out))
        sysctr(['images', 'checkout', '--json', ref, co], state, key=('checkout1', img, fs, 'sysctr'))
        # 2. peer: skopeo copy into a fresh OCI layout, then umoci unpack
        skopeo_copy(img, lay, img, key=('pull', img, fs, 'skopeo'))
        timed(['umoci', 'unpack', '--image', f'{lay}:{img}', bundle], key=('unpack', img, fs, 'umoci'))
        # 3. floors over the same blobs: gunzip + sha256 (what a verifying pull must at least do),
        #    and plain tar -xzf of the layers in order (an unpack without digests or store)
        blobs = [blob_path(lay, l['digest']) for l in oci_layers(lay, img)]
        timed(['bash', '-c', 'for b; do gzip -dc "$b" | sha256sum >/dev/null; done', '_'] + blobs,
              key=('floor-gunzip-sha', img, fs, 'floor'))
        tx = os.path.join(w, 'tarx')
        os.makedirs(tx)
        timed(['bash', '-c', 'd=$1; shift; for b; do tar -xzf "$b" -C "$d" || exit 1; done', '_', tx] + blobs,
              key=('floor-tar', img, fs, 'floor'))
        rm(tx)
        # 4. checkout only, alternating: sysctr checkout, ostree checkout -H (after a commit of
        #    the same tree into a bare repo), cp -al of sysctr's checkout (the floor)
        repo = os.path.join(w, 'ostree')
        sh(['ostree', f'--repo={repo}', 'init', '--mode=bare'])
        timed(['ostree', f'--repo={repo}', 'commit', '--branch=b', '--no-xattrs', f'--tree=dir={bundle}/rootfs'],
              key=('ostree-commit', img, fs, 'ostree'))
        sysctr(['images', 'checkout', '--json', ref, os.path.join(w, 'co2')], state, key=('checkout', img, fs, 'sysctr'))
        timed(['ostree', f'--repo={repo}', 'checkout', '-H', 'b', os.path.join(w, 'ost-co')],
              key=('checkout', img, fs, 'ostree'))
        timed(['cp', '-al', co, os.path.join(w, 'cp-al')], key=('checkout', img, fs, 'cp-al'))
    finally:
        rm(w)


# ------------------------------------------------------------------ update medium -> medium-v2
def tree_keys(root):
    """{(sha256, mode, uid, gid)} of the regular files under root (distinct contents+meta)."""
    keys = set()
    for d, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            st = os.lstat(p)
            if not (st.st_mode & 0o170000 == 0o100000):
                continue
            h = hashlib.sha256()
            with open(p, 'rb') as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b''):
                    h.update(chunk)
            keys.add((h.hexdigest(), st.st_mode, st.st_uid, st.st_gid))
    return keys


def update_round(base, r, first):
    fs = base
    w = os.path.join(base, f'update.{r}')
    rm(w)
    os.makedirs(w)
    state, store = os.path.join(w, 'state'), os.path.join(w, 'state', 'store')
    lay = os.path.join(w, 'oci')
    try:
        # sysctr: medium is in the store; pull medium-v2, check it out
        sysctr(['images', 'pull', '--tls-verify=false', '--json', f'{REG}/medium:latest'], state)
        b_store, b_obj = du_bytes(store), count_files(os.path.join(store, 'objects'))
        b_files = count_files(os.path.join(store, 'objects'), '.file')
        _, _, out = sysctr(['images', 'pull', '--tls-verify=false', '--json', f'{REG}/medium-v2:latest'], state,
                           key=('update-pull', 'medium-v2', fs, 'sysctr'))
        j = json.loads(out)
        a_store, a_obj = du_bytes(store), count_files(os.path.join(store, 'objects'))
        a_files = count_files(os.path.join(store, 'objects'), '.file')
        sysctr(['images', 'checkout', '--json', f'{REG}/medium-v2:latest', os.path.join(w, 'co')], state,
               key=('update-checkout', 'medium-v2', fs, 'sysctr'))
        samples[('update-fetched', fs, 'sysctr')].append(j['bytesFetched'])
        samples[('update-reported-added', fs, 'sysctr')].append((j['objectsAdded'], j['bytesAdded']))
        samples[('update-store-added', fs, 'sysctr')].append((a_store - b_store, a_obj - b_obj, a_files - b_files))
        # peer: medium in an OCI layout + unpacked; skopeo medium-v2 into the same layout, unpack it
        skopeo_copy('medium', lay, 'medium')
        timed(['umoci', 'unpack', '--image', f'{lay}:medium', os.path.join(w, 'b1')])
        b_lay = du_bytes(lay)
        skopeo_copy('medium-v2', lay, 'medium-v2', key=('update-pull', 'medium-v2', fs, 'skopeo'))
        a_lay = du_bytes(lay)
        timed(['umoci', 'unpack', '--image', f'{lay}:medium-v2', os.path.join(w, 'b2')],
              key=('update-unpack', 'medium-v2', fs, 'umoci'))
        samples[('update-fetched', fs, 'skopeo')].append(a_lay - b_lay)
        samples[('update-store-added', fs, 'skopeo')].append((a_lay - b_lay + du_bytes(os.path.join(w, 'b2')), 0, 0))
        if first:
            old, new = oci_layers(lay, 'medium'), oci_layers(lay, 'medium-v2')
            old_d = {l['digest'] for l in old}
            info['update-expected-fetch'] = sum(l['size'] for l in new if l['digest'] not in old_d)
            info['update-expected-layers'] = sum(1 for l in new if l['digest'] not in old_d)
            k1, k2 = tree_keys(os.path.join(w, 'b1', 'rootfs')), tree_keys(os.path.join(w, 'b2', 'rootfs'))
            info['update-new-file-objects'] = len(k2 - k1)
            info['v2-file-objects'] = len(k2)
    finally:
        rm(w)


# ------------------------------------------------------------------ CLI start
def cli_rounds():
    st = tempfile.mkdtemp(prefix='sysctr-bench-cli.', dir='/dev/shm')
    has_list = subprocess.run(SYSCTR + ['images', 'list', '--help'], capture_output=True,
                              env=dict(os.environ, SYSCTR_STATE_DIR=st)).returncode == 0
    info['has-images-list'] = has_list
    try:
        for _ in range(CLI_N):
            timed(SYSCTR + ['--version'], key=('cli', '--version', '', 'sysctr'), sync=False)
            timed(['node', '-e', '0'], key=('cli', 'node -e 0', '', 'node'), sync=False)
            if has_list:
                timed(SYSCTR + ['images', 'list'], env={'SYSCTR_STATE_DIR': st}, key=('cli', 'images list', '', 'sysctr'), sync=False)
    finally:
        rm(st)


# ------------------------------------------------------------------ report
def med(key):
    v = samples.get(key)
    return statistics.median(v) if v else None


def sumed(*keys):
    """Median over rounds of the per-round sum of several steps."""
    lists = [samples.get(k) for k in keys]
    if not all(lists):
        return None
    n = min(len(l) for l in lists)
    return statistics.median(sum(l[i] for l in lists) for i in range(n))


def s(v):
    if v is None:
        return 'n/a'
    return f'{v * 1000:.0f} ms' if v < 1 else f'{v:.2f} s'


def ratio(a, b):
    return f'{a / b:.2f}x' if a is not None and b else 'n/a'


def mb(b):
    return f'{b / 1e6:.1f} MB'


def verdict(ok):
    return 'n/a' if ok is None else ('ok' if ok else '**MISS**')


def report():
    L = []
    p = L.append
    load0 = info.get('load-start', '?')
    p(f'sysctr benchmark, {info["started"]} .. {time.strftime("%Y-%m-%d %H:%M:%S %Z")}, host {os.uname().nodename}, '
      f'{os.cpu_count()} CPUs, load average at start {load0}, at end {open("/proc/loadavg").read().split()[0]}.')
    p(f'sysctr: `{shlex.join(SYSCTR)}` ({info.get("sysctr-version", "?")}, git {info.get("git", "?")}); '
      f'{info.get("peer-versions", "")}.')
    p(f'Medians of N={N} rounds (large: {N_LARGE}); CLI start: {CLI_N} runs. Each timed command starts after a `sync`; '
      'sysctr and peers alternate within a round on the same filesystem. MB = 10^6 bytes.')
    p('')
    p('| step | image | fs | sysctr | peer | sysctr/peer | floor (sysctr/floor) | target |')
    p('|---|---|---|---:|---:|---:|---:|---|')
    for img in IMAGES:
        for fs in FS:
            if med(('pull', img, fs, 'sysctr')) is None:
                continue
            lab = FSL[fs]
            sp, kp = med(('pull', img, fs, 'sysctr')), med(('pull', img, fs, 'skopeo'))
            fl = med(('floor-gunzip-sha', img, fs, 'floor'))
            p(f'| pull only | {img} | {lab} | {s(sp)} | skopeo copy {s(kp)} | {ratio(sp, kp)} | '
              f'gunzip+sha256 {s(fl)} ({ratio(sp, fl)}) | - |')
            spc = sumed(('pull', img, fs, 'sysctr'), ('checkout1', img, fs, 'sysctr'))
            kpu = sumed(('pull', img, fs, 'skopeo'), ('unpack', img, fs, 'umoci'))
            ft = med(('floor-tar', img, fs, 'floor'))
            tgt = ''
            if img in ('medium', 'large') and spc and kpu:
                tgt = f'<= 0.6x: {verdict(spc / kpu <= 0.6)}' + (f'; <= 2x tar: {verdict(spc / ft <= 2)}' if ft else '')
            p(f'| pull + checkout | {img} | {lab} | {s(spc)} | skopeo + umoci unpack {s(kpu)} '
              f'(umoci {s(med(("unpack", img, fs, "umoci")))}) | {ratio(spc, kpu)} | tar -xzf {s(ft)} ({ratio(spc, ft)}) | {tgt or "-"} |')
            sc, oc, cp = med(('checkout', img, fs, 'sysctr')), med(('checkout', img, fs, 'ostree')), med(('checkout', img, fs, 'cp-al'))
            p(f'| checkout only | {img} | {lab} | {s(sc)} | ostree checkout -H {s(oc)} | {ratio(sc, oc)} | '
              f'cp -al {s(cp)} ({ratio(sc, cp)}) | <= 1.5x cp -al: {verdict(sc / cp <= 1.5 if sc and cp else None)}; '
              f'ostree no faster: {verdict(oc >= sc if sc and oc else None)} |')
            p(f'| (import tree) | {img} | {lab} | (in pull) | ostree commit {s(med(("ostree-commit", img, fs, "ostree")))} | - | - | - |')
    if 'update' not in SKIP:
        exp = info.get('update-expected-fetch')
        for fs in FS:
            lab = FSL[fs]
            sp = med(('update-pull', 'medium-v2', fs, 'sysctr'))
            spc = sumed(('update-pull', 'medium-v2', fs, 'sysctr'), ('update-checkout', 'medium-v2', fs, 'sysctr'))
            kp = sumed(('update-pull', 'medium-v2', fs, 'skopeo'), ('update-unpack', 'medium-v2', fs, 'umoci'))
            p(f'| update pull + checkout | medium -> medium-v2 | {lab} | {s(spc)} (pull {s(sp)}) | skopeo + umoci unpack {s(kp)} '
              f'(skopeo {s(med(("update-pull", "medium-v2", fs, "skopeo")))}) | {ratio(spc, kp)} | - | see below |')
    if 'cli' not in SKIP:
        nv = med(('cli', 'node -e 0', '', 'node'))
        sv = med(('cli', '--version', '', 'sysctr'))
        p(f'| CLI start | `sysctr --version` | - | {s(sv)} | node -e 0 {s(nv)} | {ratio(sv, nv)} | - | <= 1.5x node: {verdict(sv / nv <= 1.5 if sv and nv else None)} |')
        if info.get('has-images-list'):
            sl = med(('cli', 'images list', '', 'sysctr'))
            p(f'| CLI start | `sysctr images list` (empty store) | - | {s(sl)} | node -e 0 {s(nv)} | {ratio(sl, nv)} | - | <= 1.5x node: {verdict(sl / nv <= 1.5 if sl and nv else None)} |')
        else:
            p('| CLI start | `sysctr images list` / `containers list` | - | not implemented yet | | | | |')
    p('| install --system | - | - | not measured: no systemd on this host | | | | |')
    p('')
    if 'update' not in SKIP:
        p('Update medium -> medium-v2 (medians; store = `du -sb` of the store / OCI layout before and after):')
        p('')
        p('| fs | tool | fetched | expected (changed layers) | added on disk | objects added (all / file) | reported by sysctr | target |')
        p('|---|---|---:|---:|---:|---:|---:|---|')
        exp = info.get('update-expected-fetch')
        newf = info.get('update-new-file-objects')
        for fs in FS:
            lab = FSL[fs]
            f = samples.get(('update-fetched', fs, 'sysctr'))
            if not f:
                continue
            fetched = statistics.median(f)
            added = samples[('update-store-added', fs, 'sysctr')]
            rep = samples[('update-reported-added', fs, 'sysctr')]
            d_bytes = statistics.median(a[0] for a in added)
            d_obj = statistics.median(a[1] for a in added)
            d_files = statistics.median(a[2] for a in added)
            r_obj = statistics.median(x[0] for x in rep)
            r_bytes = statistics.median(x[1] for x in rep)
            ok = exp is not None and fetched == exp and newf is not None and d_files <= newf
            p(f'| {lab} | sysctr | {mb(fetched)} | {mb(exp) if exp else "?"} ({info.get("update-expected-layers", "?")} layer) | '
              f'{mb(d_bytes)} | {d_obj:.0f} / {d_files:.0f} (new distinct files in v2: {newf}) | '
              f'{r_obj:.0f} file objects, {mb(r_bytes)} | only changed layer + its new files: {verdict(ok)} |')
            kf = statistics.median(samples[('update-fetched', fs, 'skopeo')])
            ka = statistics.median(a[0] for a in samples[('update-store-added', fs, 'skopeo')])
            p(f'| {lab} | skopeo + umoci | {mb(kf)} | | {mb(ka)} (blobs + a full new bundle) | - | - | - |')
        p('')
    p('Peak memory (max RSS, `/usr/bin/time -f %M`, max over rounds and filesystems):')
    p('')
    p('| image | sysctr pull | sysctr checkout | skopeo copy | umoci unpack | target |')
    p('|---|---:|---:|---:|---:|---|')

    def pk(sec, img, who):
        v = [x for fs in FS for x in mem.get((sec, img, fs, who), [])]
        return max(v) / 1024 if v else None
    for img in IMAGES:
        sp = pk('pull', img, 'sysctr')
        if sp is None:
            continue
        tgt = f'<= 100 MiB: {verdict(sp <= 100)}' if img in ('medium', 'large') else '-'
        vals = [sp, pk('checkout', img, 'sysctr'), pk('pull', img, 'skopeo'), pk('unpack', img, 'umoci')]
        p(f'| {img} | ' + ' | '.join('n/a' if v is None else f'{v:.0f} MiB' for v in vals) + f' | {tgt} |')
    if 'cli' not in SKIP:
        v = mem.get(('cli', '--version', '', 'sysctr'))
        n = mem.get(('cli', 'node -e 0', '', 'node'))
        if v and n:
            p(f'| (`sysctr --version`) | {max(v) / 1024:.0f} MiB | | | | node -e 0: {max(n) / 1024:.0f} MiB |')
    for e in info.get('errors', []):
        p(f'\nFAILED round: {e}')
    return '\n'.join(L) + '\n'


def guarded(fn, *args, **kw):
    """Run one round; a failure is logged and reported, the other rounds still run."""
    try:
        fn(*args, **kw)
    except Exception as e:  # noqa: BLE001 - a benchmark reports, it does not stop
        msg = f'{fn.__name__}{args}: {e}'
        log('FAILED ' + msg)
        info.setdefault('errors', []).append(msg.split('\n')[0])


def main():
    global FSL
    info['started'] = time.strftime('%Y-%m-%d %H:%M:%S %Z')
    info['load-start'] = open('/proc/loadavg').read().split()[0]
    info['sysctr-version'] = sh(SYSCTR + ['--version']).strip()
    try:
        info['git'] = sh(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD']).strip() + (
            '+dirty' if sh(['git', '-C', REPO, 'status', '--porcelain', '--untracked-files=no', '--', 'src']).strip() else '')
    except Exception:
        info['git'] = '?'
    info['peer-versions'] = ', '.join([
        sh(['skopeo', '--version']).strip(), sh(['umoci', '--version']).strip(),
        'ostree ' + sh(['ostree', '--version']).split('Version:')[1].split()[0].strip("'"),
        'node ' + sh(['node', '--version']).strip()])
    bases = {}
    FSL = {}
    for fs in FS:
        os.makedirs(fs, exist_ok=True)
        b = tempfile.mkdtemp(prefix='sysctr-bench.', dir=fs)
        bases[fs] = b
        FSL[b] = fs_label(fs)
    # keys use the per-run base dir; map back to the configured FS for the report
    try:
        if 'cli' not in SKIP:
            log('CLI start')
            cli_rounds()
        if 'pull' not in SKIP:
            for img in IMAGES:
                n = N_LARGE if img == 'large' else N
                for r in range(n):
                    for fs in FS:
                        log(f'pull/checkout {img} round {r + 1}/{n} on {FSL[bases[fs]]}')
                        guarded(pull_round, img, bases[fs], r)
        if 'update' not in SKIP:
            for r in range(N):
                for fs in FS:
                    log(f'update medium -> medium-v2 round {r + 1}/{N} on {FSL[bases[fs]]}')
                    guarded(update_round, bases[fs], r, first=(r == 0 and fs == FS[0]))
    finally:
        for b in bases.values():
            rm(b)
    # report keyed by base dir: swap FS for the base dirs used as keys
    FS[:] = [bases[fs] for fs in FS]
    text = report()
    print(text)
    if OUT:
        with open(OUT, 'w') as f:
            f.write(text)
        with open(OUT + '.json', 'w') as f:
            json.dump({'info': {str(k): v for k, v in info.items()},
                       'samples': {' | '.join(map(str, k)): v for k, v in samples.items()},
                       'maxrss_kib': {' | '.join(map(str, k)): v for k, v in mem.items()}}, f, indent=1)
        log(f'wrote {OUT} and {OUT}.json')


if __name__ == '__main__':
    main()
