#!/bin/bash
# Alternating kisim bench twin: A = HEAD without the fault changes (twin/pods, scheduler,
# observe from 1627813^, no FaultInjector hook), B = HEAD. Same machine, same session.
for round in 1 2 3; do
  for v in A B; do
    ( cd /tmp/h3/wt$v && PYTHONPATH=/tmp/h3/wt$v nice -n 5 /work/main/.venv/bin/python -c "import sys; sys.argv=[\"kisim\"]+sys.argv[1:]; from kisim.cli import main; main()" bench twin --json --repeats 3 2>/dev/null | tail -1 > /tmp/h3/speed_${v}_${round}.json )
  done
done
