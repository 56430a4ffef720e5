"""fcam.timing: the median after warm-up, and the checks on its arguments."""

from __future__ import annotations

import pytest
import torch

from fcam.timing import benchmark_parser, device_name, parse_benchmark_args, time_run


def test_timing_uses_the_median_after_warmup():
    calls = []
    ticks = iter([0.0, 1.0, 10.0, 13.0, 20.0, 22.0])  # durations 1, 3, 2 -> median 2
    seconds = time_run(
        lambda: calls.append(1), torch.device("cpu"), repeats=3, warmup=2, clock=lambda: next(ticks)
    )
    assert seconds == 2.0
    assert len(calls) == 5


@pytest.mark.parametrize(("repeats", "warmup"), [(0, 1), (1, -1)])
def test_bad_counts_are_refused(repeats, warmup):
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        time_run(lambda: None, torch.device("cpu"), repeats=repeats, warmup=warmup)


def test_cpu_device_has_a_name():
    assert device_name(torch.device("cpu"))


def test_shared_benchmark_options_are_checked(capsys):
    parser = benchmark_parser("demo")
    threads = torch.get_num_threads()
    try:
        args, device = parse_benchmark_args(parser, ["--threads", "1", "--repeats", "2"])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert (device.type, args.repeats, args.warmup, args.json) == ("cpu", 2, 1, None)
    with pytest.raises(SystemExit):
        parse_benchmark_args(parser, ["--repeats", "0"])
    assert "--repeats must be >= 1" in capsys.readouterr().err
