#!/usr/bin/env bash
# The measured series: 3 rounds; each round runs every variant x mode once, 20 s, 16 clients
# (interleaved, so the machine's background load hits all variants alike).
# all.sh <db> <prefix> > results.txt ; then python3 summ.py results.txt
here=$(cd "$(dirname "$0")" && pwd)
for r in 1 2 3; do for m in prepared simple; do for v in a b c d co; do
  t=$("$here/run.sh" "$1" "$2" $v $m 20 16 | awk '/^tps/ {print $3}')
  echo "$r $m $v $t"
done; done; done
