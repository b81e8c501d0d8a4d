#!/usr/bin/env python3
"""Summarise a V8 .cpuprofile (from `node --cpu-prof`): self time by function
and by file, and inclusive time of the functions of sysctr's own code.

  bench/cpuprofile-top.py PROFILE.cpuprofile [-n 25]
"""
import argparse
import json
import os
from collections import defaultdict


def short(url):
    if not url:
        return '(native)'
    url = url.replace('file://', '')
    for mark in ('/node_modules/', '/dist/'):
        if mark in url:
            return mark.strip('/') + '/' + url.split(mark, 1)[1]
    return url if not url.startswith('node:') else url


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('profile')
    ap.add_argument('-n', type=int, default=25)
    a = ap.parse_args()
    with open(a.profile) as f:
        prof = json.load(f)
    nodes = {n['id']: n for n in prof['nodes']}
    parent = {}
    for n in prof['nodes']:
        for c in n.get('children', []):
            parent[c] = n['id']
    # self time per node from samples x timeDeltas (microseconds)
    self_us = defaultdict(float)
    for sid, dt in zip(prof['samples'], prof['timeDeltas']):
        self_us[sid] += max(dt, 0)
    total = sum(self_us.values()) or 1
    by_fn, by_file, incl = defaultdict(float), defaultdict(float), defaultdict(float)
    for nid, us in self_us.items():
        cf = nodes[nid]['callFrame']
        fn = cf['functionName'] or '(anonymous)'
        key = f"{fn} {short(cf['url'])}:{cf['lineNumber'] + 1}" if cf['url'] else fn
        by_fn[key] += us
        by_file[short(cf['url']) if cf['url'] else fn] += us
        # inclusive time for frames of our own code (dist/), each frame once per sample stack
        seen = set()
        cur = nid
        while cur is not None:
            c = nodes[cur]['callFrame']
            if '/dist/' in c['url']:
                k = f"{c['functionName'] or '(anonymous)'} {short(c['url'])}:{c['lineNumber'] + 1}"
                if k not in seen:
                    incl[k] += us
                    seen.add(k)
            cur = parent.get(cur)
    print(f'profile {os.path.basename(a.profile)}: {total / 1e6:.2f} s sampled')

    def table(title, d):
        print(f'\n{title}')
        for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:a.n]:
            print(f'  {v / 1e3:9.0f} ms {100 * v / total:5.1f}%  {k}')
    table('self time by function:', by_fn)
    table('self time by file:', by_file)
    table('inclusive time, sysctr code (dist/):', incl)


if __name__ == '__main__':
    main()
