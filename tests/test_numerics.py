"""The CPU's numeric code paths pinned to a common baseline (mimstudy.numerics)."""

import platform
import subprocess
import sys

import pytest

from mimstudy import numerics

x86 = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="the pins are for x86-64")


@x86
def test_the_pins_leave_a_users_own_choice_alone():
    assert numerics.pinned_environment({}) == numerics.PINNED
    assert numerics.pinned_environment({"MKL_CBWR": "COMPATIBLE"}) == {
        "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert numerics.pinned_environment({"MIMSTUDY_NUMERICS": "native"}) == {}
    environ = {}
    assert numerics.pin(environ) == numerics.PINNED and environ == numerics.PINNED
    assert numerics.pin(environ) == {}  # once is enough
    with pytest.raises(ValueError, match="MIMSTUDY_NUMERICS='fast': use 'pinned'"):
        numerics.pinned_environment({"MIMSTUDY_NUMERICS": "fast"})


@x86
def test_a_pinned_process_dispatches_to_the_baseline():
    code = "import torch; from mimstudy.numerics import cpu_facts; f = cpu_facts(); print(f['torch_cpu_capability'], f['numerics'], sep='|')"
    env = {k: v for k, v in __import__("os").environ.items() if k not in numerics.PINNED}
    native = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    pinned = subprocess.run([sys.executable, "-c", code], env={**env, **numerics.PINNED}, capture_output=True,
                            text=True, check=True)
    assert pinned.stdout.strip().split("|") == ["AVX2", "x86-64 AVX2"]
    assert native.stdout.strip().split("|")[1] == "native"


def test_the_facts_a_result_records():
    from mimstudy.provenance import provenance_attrs

    attrs = provenance_attrs({}, "t", 0)
    assert {"cpu_model", "torch_cpu_capability", "torch_threads", "numerics", "aten_cpu_capability", "onednn_max_cpu_isa",
            "mkl_cbwr"} <= set(attrs)
    assert attrs["cpu_model"] and all(isinstance(v, (str, int)) for v in attrs.values())


def test_the_matmul_rate_is_positive_and_restores_threads():
    import torch

    threads = torch.get_num_threads()
    assert numerics.matmul_gflops(threads=1, n=128, repeats=2) > 0
    assert torch.get_num_threads() == threads
