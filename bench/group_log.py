#!/usr/bin/env python3
"""Splits a group's rebalances, as the broker logged them, into the wait for members to rejoin
and the rest (join complete -> group stable: the leader's assignment and SyncGroup).

The wait is paced by the clients (a member learns of a rebalance on its next heartbeat), the
rest is the broker's own work plus one client round trip.

Usage: group_log.py BROKER_LOG GROUP_ID  -> one line of key=value pairs.
"""
import re
import sys
from datetime import datetime

log, group = sys.argv[1], sys.argv[2]
ts_re = re.compile(r"^(\S+Z)\s")
preparing = join_done = None
waits, syncs = [], []
with open(log, errors="replace") as f:
    for line in f:
        if f'group="{group}"' not in line and f"group={group} " not in line:
            continue
        m = ts_re.match(line)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
        if "preparing rebalance" in line:
            preparing, join_done = t, None
        elif "join phase complete" in line and preparing is not None:
            join_done = t
            waits.append((t - preparing) * 1000)
        elif "group stable" in line and join_done is not None:
            syncs.append((t - join_done) * 1000)
            preparing = join_done = None
print(
    f"rebalances={len(syncs)} rejoin_wait_ms=" + ",".join(f"{w:.0f}" for w in waits)
    + f" rejoin_wait_total_ms={sum(waits):.0f}"
    + " sync_ms=" + ",".join(f"{s:.1f}" for s in syncs)
    + f" sync_max_ms={max(syncs, default=0):.1f}"
)
