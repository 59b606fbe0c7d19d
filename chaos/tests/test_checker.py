"""The checker must catch each kind of violation: small hand-made histories, one clean and
one broken per invariant."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kavka_chaos import checker  # noqa: E402


def ev(t, type_, f, process="p", **kw):
    return {"t": t, "type": type_, "f": f, "process": process, **kw}


def produced(t, value, partition, offset, seq, process="producer-0.0"):
    return ev(t, "ok", "produce", process, value=value, partition=partition, offset=offset,
              seq=seq)


def drained(value, partition, offset):
    return ev(100, "ok", "drain", "drain", value=value, partition=partition, offset=offset)


def polled(t, consumer, value, partition, offset):
    return ev(t, "ok", "poll", consumer, value=value, partition=partition, offset=offset)


CLEAN = [
    produced(1, "a", 0, 0, 0), produced(2, "b", 0, 1, 1), produced(3, "c", 1, 0, 2),
    ev(3.5, "ok", "assign", "c1", partitions=[0, 1]),
    polled(4, "c1", "a", 0, 0), polled(5, "c1", "b", 0, 1), polled(6, "c1", "c", 1, 0),
    ev(7, "ok", "committed", "observer", offsets={"0": 1}),
    ev(8, "ok", "committed", "observer", offsets={"0": 2, "1": 1}),
    ev(9, "ok", "metadata", "observer@n1", partition=0, leader=1, epoch=0, isr=[1, 2, 3], error=0),
    ev(10, "ok", "metadata", "observer@n1", partition=0, leader=2, epoch=1, isr=[2, 3], error=0),
    drained("a", 0, 0), drained("b", 0, 1), drained("c", 1, 0),
]
LOG_END = {0: 2, 1: 1}


def test_a_clean_history_breaks_nothing():
    results = [checker.lost_writes(CLEAN), checker.inconsistent_offsets(CLEAN),
               checker.duplicates(CLEAN), checker.nonmonotonic(CLEAN),
               checker.committed_offsets(CLEAN, LOG_END), checker.leader_epochs(CLEAN)]
    assert [r.count for r in results] == [0] * 6, [r.examples for r in results]


def test_lost_write_at_its_offset_and_without_offset():
    h = CLEAN + [produced(11, "d", 1, 1, 3), produced(12, "e", 1, None, 4)]
    r = checker.lost_writes(h)
    assert r.count == 2, r.examples
    # An implicit ack (no offset) is satisfied by the value anywhere in the drain.
    assert checker.lost_writes(CLEAN + [produced(12, "e", 1, None, 4), drained("e", 1, 1)]).count == 0


def test_overwritten_offset_is_lost_and_inconsistent():
    h = [x for x in CLEAN if not (x["f"] == "drain" and x["offset"] == 1)] + [drained("z", 0, 1)]
    assert checker.lost_writes(h).count == 1
    assert checker.inconsistent_offsets(h).count == 1


def test_duplicate_record():
    assert checker.duplicates(CLEAN + [drained("a", 1, 1)]).count == 1


def test_consumer_going_back_or_skipping_and_producer_acks_out_of_order():
    back = CLEAN + [polled(11, "c1", "a", 0, 0)]
    assert checker.nonmonotonic(back).count == 1
    h = [x for x in CLEAN if not (x["f"] == "poll" and x["offset"] == 1 and x["partition"] == 0)]
    h += [drained("x", 0, 2), polled(12, "c1", "x", 0, 2)]
    assert checker.nonmonotonic(h).count == 1  # read 0, then 2 while 1 exists
    # A new assignment may start anywhere.
    reassigned = CLEAN + [ev(11, "ok", "assign", "c1", partitions=[0]),
                          polled(12, "c1", "a", 0, 0)]
    assert checker.nonmonotonic(reassigned).count == 0
    acks = CLEAN + [produced(13, "y", 1, 5, 10), produced(14, "w", 1, 4, 11)]
    assert checker.nonmonotonic(acks).count == 1


def test_committed_offset_backwards_or_above_high_watermark():
    back = CLEAN + [ev(11, "ok", "committed", "observer", offsets={"0": 1})]
    assert checker.committed_offsets(back, LOG_END).count == 1
    above = CLEAN + [ev(11, "ok", "committed", "observer", offsets={"1": 7})]
    assert checker.committed_offsets(above, LOG_END).count == 1


def test_epoch_going_back_and_two_leaders_in_one_epoch():
    back = CLEAN + [ev(11, "ok", "metadata", "observer@n1", partition=0, leader=1, epoch=0,
                       isr=[1], error=0)]
    assert checker.leader_epochs(back).count == 1
    split = CLEAN + [ev(11, "ok", "metadata", "observer@n3", partition=0, leader=3, epoch=1,
                        isr=[3], error=0)]
    assert checker.leader_epochs(split).count == 1


def test_liveness_gap_exit_panic_and_probe():
    h = [ev(0, "info", "fault-start", "nemesis"), produced(1, "a", 0, 0, 0),
         produced(30, "b", 0, 1, 1)]
    r = checker.liveness(h, 31.0, 20.0, [], {}, True, 1.0)
    assert r.count == 1 and "29.0s" in r.examples[0]
    assert checker.liveness(h, 31.0, 40.0, [], {}, True, 1.0).count == 0
    r = checker.liveness(h, 31.0, 40.0, ["n2 (code 101)"], {"n1": 1}, False, None)
    assert r.count == 4, r.examples
