import statistics, collections
d=collections.defaultdict(list)
for line in open(__import__('sys').argv[1] if len(__import__('sys').argv) > 1 else 'results.txt'):
    r,m,v,t=line.split(); d[(m,v)].append(float(t))
names={'a':'(a) no RLS, own table','b':'(b) forced RLS, plain setting','c':'(c) the wall','d':'(d) per-statement HMAC','co':'(co) switch every txn: enter + query'}
print('| variant | mode | runs (tps) | median tps | spread (max-min)/median | vs (a) | vs (b) |')
print('|---|---|---|---|---|---|---|')
for v in ['a','b','c','d','co']:
    for m in ['prepared','simple']:
        xs=d[(m,v)]
        if not xs: continue
        med=statistics.median(xs); a=statistics.median(d[(m,'a')]); b=statistics.median(d[(m,'b')])
        print(f"| {names[v]} | {m} | {', '.join(f'{x:,.0f}' for x in xs)} | **{med:,.0f}** | {100*(max(xs)-min(xs))/med:.0f}% | {100*(med/a-1):+.1f}% | {100*(med/b-1):+.1f}% |")
# CPU µs per transaction on 2 cores, 16 clients: ~2e6/tps
print()
for m in ['prepared','simple']:
    med={v:statistics.median(d[(m,v)]) for v in ['a','b','c','d','co'] if d[(m,v)]}
    us={v:2e6/t for v,t in med.items()}
    print(f"{m}: machine-µs per transaction (2 cores / tps): " + ', '.join(f"{v} {u:.1f}" for v,u in us.items())
          + f"; wall check (c-b) {us['c']-us['b']:+.1f} µs, (c-a) {us['c']-us['a']:+.1f} µs; per-statement HMAC (d-b) {us['d']-us['b']:+.1f} µs; switch (co-c) {us.get('co',0)-us['c']:+.1f} µs")
