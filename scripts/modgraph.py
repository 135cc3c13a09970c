#!/usr/bin/env python3
"""Module graph of one crate: import circles between files, and edges between rooms.

usage: modgraph.py CRATE_SRC_DIR [--rooms]

A file's module path comes from its place under src/. References are read from `use`
items (braces expanded) and inline `crate::`/`super::`/`self::` paths outside the
`#[cfg(test)]` module; each is resolved to the deepest module file it names. A parent's
`pub use` of its own descendants is its facade, not a dependency. Prints every strongly
connected component with more than one file (an import circle), and with --rooms the
edges between top-level modules (rooms)."""
import os, re, sys
from collections import defaultdict

src = sys.argv[1].rstrip('/')
show_rooms = '--rooms' in sys.argv

mods = {}  # module path tuple -> file
for root, _, files in os.walk(src):
    for f in files:
        if not f.endswith('.rs'):
            continue
        p = os.path.join(root, f)
        rel = os.path.relpath(p, src)[:-3].split(os.sep)
        if rel[-1] in ('mod',):
            rel = rel[:-1]
        if rel in (['lib'], ['main']):
            rel = []
        if rel and rel[0] == 'bin':
            continue
        mods[tuple(rel)] = p

def strip_comments(t):
    t = re.sub(r'/\*.*?\*/', '', t, flags=re.S)
    return re.sub(r'//[^\n]*', '', t)

def expand(prefix, body):
    """Expand a use tree like a::{b, c::{d, e}} into paths."""
    out = []
    body = body.strip()
    m = re.match(r'^(.*?)\{(.*)\}$', body, flags=re.S)
    if not m:
        out.append((prefix + '::' + body) if prefix else body)
        return out
    head, inner = m.group(1).rstrip(':').strip(), m.group(2)
    base = (prefix + '::' + head) if prefix and head else (head or prefix)
    depth, cur, parts = 0, '', []
    for ch in inner:
        if ch == '{': depth += 1
        if ch == '}': depth -= 1
        if ch == ',' and depth == 0:
            parts.append(cur); cur = ''
        else:
            cur += ch
    parts.append(cur)
    for part in parts:
        part = part.strip()
        if part:
            out += expand(base, part)
    return out

def resolve(cur, path):
    segs = [s.strip() for s in re.split(r'::', path) if s.strip()]
    segs = [re.sub(r'\s+as\s+\w+$', '', s) for s in segs]
    if not segs: return None
    if segs[0] == 'crate':
        base, rest = [], segs[1:]
    elif segs[0] in ('super', 'self'):
        base = list(cur)
        rest = segs
        while rest and rest[0] in ('super', 'self'):
            if rest[0] == 'super':
                base = base[:-1]
            rest = rest[1:]
    elif tuple(list(cur) + [segs[0]]) in mods:
        base, rest = list(cur), segs
    else:
        return None
    best = None
    for i in range(len(rest) + 1):
        cand = tuple(base + rest[:i])
        if cand in mods:
            best = cand
    return best

edges = defaultdict(set)
for mod, f in mods.items():
    text = strip_comments(open(f, encoding='utf-8').read())
    # drop #[cfg(test)] mod tests { ... } blocks crudely: stop at a top-level `mod tests`
    cut = re.search(r'#\[cfg\(test\)\](\s*#\[[^\]]*\])*\s*mod\s+\w+\s*\{', text)
    if cut:
        text = text[:cut.start()]
    refs = []
    for m in re.finditer(r'(\bpub(?:\([^)]*\))?\s+)?\buse\s+([^;]+);', text):
        for r in expand('', m.group(2)):
            if m.group(1):
                # a re-export of a descendant is the module's facade, not a dependency
                tgt = resolve(mod, r)
                if tgt is not None and len(tgt) > len(mod) and tgt[:len(mod)] == mod:
                    continue
            refs.append(r)
    text = re.sub(r'(\bpub(?:\([^)]*\))?\s+)?\buse\s+[^;]+;', '', text)
    refs += re.findall(r'\b((?:crate|super|self)(?:::\w+)+)', text)
    for r in refs:
        tgt = resolve(mod, r)
        # a reference to an ancestor module (its mod.rs) counts too
        if tgt is not None and tgt != mod:
            edges[mod].add(tgt)

# Tarjan SCC
index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]
def strong(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        sccs.append(comp)
sys.setrecursionlimit(10000)
for v in list(mods):
    if v not in index:
        strong(v)
name = lambda m: '::'.join(m) or 'crate'
circles = [c for c in sccs if len(c) > 1]
for c in circles:
    print('CIRCLE (%d files): %s' % (len(c), ', '.join(sorted(name(m) for m in c))))
if not circles:
    print('no import circle among %d files' % len(mods))
if show_rooms:
    rooms = defaultdict(set)
    for a, ts in edges.items():
        for b in ts:
            ra, rb = (a[:1] or ('crate',)), (b[:1] or ('crate',))
            if ra != rb:
                rooms[name(ra)].add(name(rb))
    for r in sorted(rooms):
        print('%s -> %s' % (r, ', '.join(sorted(rooms[r]))))
