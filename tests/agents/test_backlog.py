"""Which partitions still have telemetry waiting: marks, under-reported high watermarks, expiry."""

from __future__ import annotations

from rollwatch.agents.backlog import Backlog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_partition_read_to_its_high_watermark_has_nothing_waiting() -> None:
    backlog = Backlog(hold_s=5, clock=Clock())
    backlog.saw(0, last_offset=99, highwater=100)
    backlog.saw(1, last_offset=99, highwater=None)
    assert not backlog.waiting(0) and not backlog.waiting(1)


def test_records_past_the_batch_or_a_full_batch_mark_the_partition_until_read_to_the_end() -> None:
    backlog = Backlog(hold_s=5, clock=Clock())
    backlog.saw(0, last_offset=99, highwater=500)
    backlog.saw(1, last_offset=99, highwater=100, full=True)  # a broker that under-reports its end
    assert backlog.waiting(0) and backlog.waiting(1)
    assert not backlog.waiting(2)
    backlog.saw(0, last_offset=499, highwater=500)
    assert not backlog.waiting(0) and backlog.waiting(1)


def test_a_mark_expires_when_no_batch_comes_so_the_clock_judges_again() -> None:
    clock = Clock()
    backlog = Backlog(hold_s=5, clock=clock)
    backlog.saw(3, last_offset=10, highwater=1_000)
    clock.now += 4.9
    assert backlog.waiting(3)
    clock.now += 0.2
    assert not backlog.waiting(3)


def test_a_new_assignment_forgets_marks() -> None:
    backlog = Backlog(clock=Clock())
    for partition in range(3):
        backlog.saw(partition, last_offset=0, highwater=9)
    backlog.forget({1})
    assert [backlog.waiting(p) for p in range(3)] == [True, False, True]
    backlog.forget()
    assert not any(backlog.waiting(p) for p in range(3))
