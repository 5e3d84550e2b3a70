"""PynqBus (esb_hw/driver/pynq_bus.py) with the driver, against a fake MMIO, allocate and interrupt
(tests/fake_system.py): a program runs and its output equals the golden model, by interrupt and by polling; the
image is flushed before the start and the output invalidated before it is read; an overlay without the system
is a clear error."""

import sys
import types

import numpy as np
import pytest

from esb_hw.compiler.lowering import reference
from esb_hw.compiler.program import compile_program, read_output, to_bundle
from esb_hw.driver import Accelerator, DriverError, DriverTimeout, RunFailed
from esb_hw.driver.pynq_bus import DEFAULT_IP_NAME, PynqBus
from esb_hw.errors import InputError
from esb_hw.sim.layer_core import SMALL_ENGINE_CONFIG, random_layer
from tests.fake_system import FakeArray, FakeSystem, offset

CONFIG = SMALL_ENGINE_CONFIG


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(5)
    layer = random_layer(CONFIG, rng, "conv2d", 6, 5, 3, 1, 1, False)
    x = rng.integers(0, CONFIG.activation_format.code_count, (5, 6, 6))
    program = compile_program(CONFIG, [layer], (5, 6, 6), x)
    return program, to_bundle(program, "conv"), reference(CONFIG, layer, x)


@pytest.mark.parametrize("interrupt", [True, False])
def test_a_program_runs_through_pynq_objects(case, interrupt):
    program, bundle, expected = case
    system = FakeSystem(program, finish_after=0 if interrupt else 2)  # the fake advances when polled
    bus = PynqBus(system, allocate=system.allocate, interrupt=system.interrupt if interrupt else None)
    result = Accelerator(bus, poll_interval=0).run_blocking(bundle, timeout=5)
    assert np.array_equal(read_output(program, result.output), expected)
    result.check(bundle)
    assert result.interrupt is interrupt and result.cycles == 12345
    assert result.layer_cycles == [1000]
    start = system.calls.index(("write", offset("CONTROL"), 1))
    assert "flush" in system.calls[:start] and "invalidate" in system.calls[start:]
    assert ("write", offset("MEMORY_BASE_LO"), 0x3000_0000) in system.calls


def test_a_missing_flush_shows(case):
    """The fake keeps the device memory apart: without the flush the run reads zeros and the check fails."""
    program, bundle, _ = case
    system = FakeSystem(program)
    original = FakeArray.flush
    FakeArray.flush = lambda self: None
    try:
        # The device memory holds zeros, not the descriptors: their CRC fails, the run ends with error corrupted.
        with pytest.raises(RunFailed, match="corrupted"):
            Accelerator(PynqBus(system, allocate=system.allocate), poll_interval=0).run_blocking(bundle)
    finally:
        FakeArray.flush = original
    system = FakeSystem(program)  # with the flush: the same run passes
    Accelerator(PynqBus(system, allocate=system.allocate), poll_interval=0).run_blocking(bundle).check(bundle)


def test_an_interrupt_that_never_comes_is_a_driver_timeout(case):
    program, bundle, _ = case
    system = FakeSystem(program, finish_after=None)
    bus = PynqBus(system, allocate=system.allocate, interrupt=system.interrupt)
    with pytest.raises(DriverTimeout, match="no result after 0.05 s"):
        Accelerator(bus, poll_interval=0).run_blocking(bundle, timeout=0.05)


def test_from_overlay_finds_the_system_or_says_what_it_found(case, monkeypatch, tmp_path):
    program, _, _ = case
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.bit").write_bytes(b"bitstream")
    system = FakeSystem(program)
    ip = types.SimpleNamespace(mmio=system, interrupt=system.interrupt)
    fake = types.ModuleType("pynq")

    class Overlay:
        def __init__(self, path):
            self.path = path
            self.ip_dict = {DEFAULT_IP_NAME: {}, "axi_intc_0": {}}
            setattr(self, DEFAULT_IP_NAME, ip)

    fake.Overlay, fake.allocate = Overlay, system.allocate
    monkeypatch.setitem(sys.modules, "pynq", fake)
    bus = PynqBus.from_overlay("x.bit")
    assert bus.mmio is system and bus.has_interrupt
    assert not PynqBus.from_overlay("x.bit", use_interrupt=False).has_interrupt
    with pytest.raises(DriverError, match="no IP called 'other'.*found: axi_intc_0, esb_system_0"):
        PynqBus.from_overlay("x.bit", "other")
    with pytest.raises(InputError, match="absent.bit: no bitstream"):
        PynqBus.from_overlay("absent.bit")
