"""The host driver (esb_hw/driver/__init__.py): program bundles on disk, the output check, and the errors a user
meets: no esb-hw system at the address, another config's hardware, a run that ends with an error, a timeout
(and the next run waiting for the one that timed out), a buffer the hardware cannot reach. The hardware is the
fake of tests/fake_system.py behind PynqBus; the same driver runs the simulated system in tests/test_system.py."""

import dataclasses

import numpy as np
import pytest

from esb_hw.compiler.program import compile_program, to_bundle
from esb_hw.driver import Accelerator, DriverError, DriverTimeout, ProgramBundle, RunFailed
from esb_hw.driver.pynq_bus import PynqBus
from esb_hw.errors import CheckFailed, InputError
from esb_hw.sim.layer_core import SMALL_ENGINE_CONFIG, random_layer
from tests.fake_system import FakeSystem, offset

CONFIG = SMALL_ENGINE_CONFIG


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(6)
    layer = random_layer(CONFIG, rng, "conv2d", 4, 4, 1, 1, 0, False)
    x = rng.integers(0, CONFIG.activation_format.code_count, (4, 3, 3))
    program = compile_program(CONFIG, [layer], (4, 3, 3), x)
    return program, to_bundle(program, "tiny")


def accelerator(system):
    return Accelerator(PynqBus(system, allocate=system.allocate), poll_interval=0)


def test_bundle_round_trip(case, tmp_path):
    _, bundle = case
    bundle.save(tmp_path / "p.npz")
    assert ProgramBundle.load(tmp_path / "p.npz") == bundle
    assert bundle.expected and len(bundle.expected) == bundle.output_bytes


def test_bad_bundle_files_are_one_line_input_errors(case, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        ProgramBundle.load(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable program bundle"):
        ProgramBundle.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", image=np.zeros(4, np.uint8))
    with pytest.raises(InputError, match="missing array, config_id"):
        ProgramBundle.load(tmp_path / "partial.npz")
    _, bundle = case
    dataclasses.replace(bundle, output_address=len(bundle.image)).save(tmp_path / "outside.npz")
    with pytest.raises(InputError, match="outside the image"):
        ProgramBundle.load(tmp_path / "outside.npz")


def test_bundles_need_base_zero(case):
    program, _ = case
    with pytest.raises(InputError, match="base 0"):
        to_bundle(dataclasses.replace(program, base=4096))


def test_check_catches_one_wrong_byte(case):
    program, bundle = case
    result = accelerator(FakeSystem(program)).run_blocking(bundle, timeout=5)
    result.check(bundle)
    corrupted = bytearray(result.output)
    corrupted[3] ^= 1
    with pytest.raises(CheckFailed, match="1 of .* output bytes differ .*first at byte 3"):
        dataclasses.replace(result, output=bytes(corrupted)).check(bundle)


def test_no_system_at_the_address(case):
    program, bundle = case
    with pytest.raises(DriverError, match="no esb-hw system at this address: MAGIC reads 0xDEADBEEF"):
        accelerator(FakeSystem(program, magic=0xDEADBEEF)).run_blocking(bundle)


def test_hardware_of_another_config(case):
    program, bundle = case
    other = dataclasses.replace(CONFIG, entries=16)
    with pytest.raises(DriverError, match="compiled for config id 0x[0-9A-F]{8} \\(4x4\\); the hardware's is"):
        accelerator(FakeSystem(program, config=other)).run_blocking(bundle)


def test_a_hardware_error_names_itself(case):
    program, bundle = case
    with pytest.raises(RunFailed) as failure:
        accelerator(FakeSystem(program, error=2)).run_blocking(bundle, timeout=5)
    assert failure.value.name == "unsupported_kernel" and failure.value.descriptor == 1
    assert "error 2 (unsupported_kernel: a descriptor's kernel" in str(failure.value)


def test_a_timeout_aborts_the_run_and_the_next_run_works(case):
    program, bundle = case
    system = FakeSystem(program, finish_after=None)
    driver = accelerator(system)
    with pytest.raises(DriverTimeout, match="no result after 0.01 s \\(0 of 1 tiles done\\); aborted; the "
                                            "accelerator is idle") as timeout:
        driver.run_blocking(bundle, timeout=0.01)
    assert timeout.value.aborted and system.aborts == 1 and not system.busy
    system.finish_after = 2
    driver.run_blocking(bundle, timeout=5).check(bundle)
    assert system.starts == 2


def test_an_abort_that_cannot_end_the_run_says_so_and_the_next_run_waits(case):
    program, bundle = case
    system = FakeSystem(program, finish_after=None, abort_stuck=True)
    driver = accelerator(system)
    with pytest.raises(DriverTimeout, match="the abort did not end it within 0.001 s") as timeout:
        driver.run_blocking(bundle, timeout=0.01)
    assert not timeout.value.aborted and system.busy
    with pytest.raises(DriverTimeout, match="before the run: the accelerator is still busy"):
        driver.run_blocking(bundle, timeout=0.01)
    system.polls_left = 3  # the hung run ends after three more status reads, and the next run after two
    system.finish_after = 2
    driver.run_blocking(bundle, timeout=5).check(bundle)
    assert system.starts == 2


def test_the_window_is_the_bundles_image_set_before_the_start(case):
    program, bundle = case
    system = FakeSystem(program)
    accelerator(system).run_blocking(bundle).check(bundle)
    window = system.registers["memory_size_lo"] << 4 | system.registers["memory_size_hi"] << 32
    assert window == bundle.memory_size == len(bundle.image) + -len(bundle.image) % 16
    start = system.calls.index(("write", offset("CONTROL"), 1))
    assert ("write", offset("MEMORY_SIZE_LO"), window) in system.calls[:start]


def test_a_window_smaller_than_the_program_is_refused_by_the_hardware(case):
    """The driver reports an outside_window error with the transfer it names. The fake hardware gives the compiler
    twin's verdict (the RTL's is tested in tests/test_checker.py and tests/test_window.py) on a bundle whose image,
    and so its window, ends 4 KiB short of the program's output."""
    program, bundle = case
    system = FakeSystem(program)
    driver = accelerator(system)
    short = dataclasses.replace(bundle, image=bundle.image[:-4096])
    with pytest.raises(RunFailed) as failure:
        driver.run_blocking(dataclasses.replace(short, output_address=0, output_bytes=16), timeout=5)
    assert failure.value.name == "outside_window"
    assert "; detail 4: the descriptor's output transfer) at descriptor 0" in str(failure.value)


def test_a_bundle_larger_than_the_memory_limit_is_refused_before_anything_is_written(case):
    program, bundle = case
    system = FakeSystem(program)
    driver = Accelerator(PynqBus(system, allocate=system.allocate), poll_interval=0, memory_limit=4096)
    with pytest.raises(InputError, match=f"tiny: its image needs {bundle.memory_size:,} bytes, more than the 4,096 "
                                         "bytes this driver may allocate"):
        driver.run_blocking(bundle)
    assert not [call for call in system.calls if call[0] == "write"]


def test_a_bundle_the_board_cannot_allocate_is_one_input_error(case):
    program, bundle = case
    system = FakeSystem(program)

    def exhausted(shape, dtype):
        raise RuntimeError("Failed to allocate Memory!")

    driver = Accelerator(PynqBus(system, allocate=exhausted), poll_interval=0)
    with pytest.raises(InputError, match="tiny: its image needs .* bytes of contiguous memory, which the board could "
                                         "not allocate \\(Failed to allocate Memory!\\)"):
        driver.run_blocking(bundle)


def test_a_buffer_out_of_reach(case):
    program, bundle = case
    with pytest.raises(DriverError, match="not 4 KiB aligned below 2\\*\\*40"):
        accelerator(FakeSystem(program, address=0x3000_0800)).run_blocking(bundle)
