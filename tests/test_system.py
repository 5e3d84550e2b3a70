# amaranth: UnusedElaboratable=no
"""The whole system (esb_hw/hw/system.py) through the host driver, on its Verilog in cocotb (esb_hw/sim/system.py):
layer programs bit-exact against the golden model with random back-pressure and idle cycles on every AXI channel, a
1 GiB AxiRam, no burst across 4 KiB, the interrupt rising at the end of a run and cleared by the driver; an
injected SLVERR, a bad descriptor and a timeout each end with their named error, and the next run on the same
simulated system works. Also the Verilog wrapper's ports and interface attributes."""

import dataclasses
import re

import numpy as np
import pytest

from esb_hw.compiler.lowering import reference
from esb_hw.compiler.program import compile_program, read_output, to_bundle
from esb_hw.data import shipped_config
from esb_hw.hw.system import SYSTEM_NAME, System, system_verilog, wrapper_ports, wrapper_verilog
from esb_hw.layouts import DESCRIPTOR_BEATS, MEMORY_BEAT_BYTES, descriptor_image
from esb_hw.sim.layer_core import SMALL_ENGINE_CONFIG, random_layer
from esb_hw.sim.pytest_helpers import require_simulator

SMALL = SMALL_ENGINE_CONFIG


def programs(config):
    """(name, program, expected output) for a tiled conv with pooling, a linear layer and a 3-layer chain."""
    rng = np.random.default_rng(21)
    cases = {
        "conv3x3s2_pool_tiled": ([random_layer(config, rng, "conv2d", 6, 5, 3, 2, 1, True)], (5, 9, 8)),
        "linear": ([random_layer(config, rng, "linear", 7, 9)], (5, 9)),
        "three_layers": ([random_layer(config, rng, "conv2d", 6, 3, 3, 1, 1, False),
                          random_layer(config, rng, "conv2d", 8, 6, 3, 2, 1, True),
                          random_layer(config, rng, "conv2d", 5, 8, 1, 1, 0, False)], (3, 10, 9)),
    }
    result = []
    for name, (layers, shape) in cases.items():
        x = rng.integers(0, config.activation_format.code_count, shape)
        expected = x
        for layer in layers:
            expected = reference(config, layer, expected)
        result.append((name, compile_program(config, layers, shape, x), expected))
    return result


def bad_descriptor_bundle(program):
    """The program's bundle with descriptor 1's kernel width set to 9 (unsupported)."""
    bundle = to_bundle(program, "bad_kernel")
    descriptor = dict(program.tiles[1].descriptor)
    descriptor["geometry"] = dict(descriptor["geometry"], kernel_w=9)
    image = bytearray(bundle.image)
    at = program.program_address + DESCRIPTOR_BEATS * MEMORY_BEAT_BYTES
    image[at:at + DESCRIPTOR_BEATS * MEMORY_BEAT_BYTES] = descriptor_image(descriptor)
    return dataclasses.replace(bundle, image=bytes(image))


def check_runs(config, simulator, pause, seed, *, errors: bool):
    from esb_hw.sim.system import run_system_rtl

    require_simulator(simulator)
    cases = programs(config)
    bundles = [to_bundle(program, name) for name, program, _ in cases]
    runs = [{"bundle": index} for index in range(len(cases))]
    runs.append({"bundle": 0, "interrupt": False})  # polling, and a second run of the same program
    if errors:
        conv, chain = cases[0][1], cases[2][1]
        weights, _ = conv.regions["weights_0"]
        assert len(chain.tiles) >= 3  # one tile per layer at least: descriptor 1 exists in every config
        bundles.append(bad_descriptor_bundle(chain))
        runs += [{"bundle": 0, "poison": [weights + 32, 16]},  # SLVERR on a weight beat
                 {"bundle": len(bundles) - 1},  # a bad descriptor
                 {"bundle": 2, "timeout": 2e-6},  # 200 cycles: too short
                 {"bundle": 1}]  # the next run waits for the timed-out one, then works
    result = run_system_rtl(config, bundles, runs, simulator=simulator, pause=pause, seed=seed,
                            run_name=f"{config.name}_{simulator}_{'errors' if errors else 'runs'}")
    outcomes = result.runs
    for index, (name, program, expected) in enumerate(cases):
        run = outcomes[index]
        assert run["outcome"] == "ok", (name, run["message"])
        assert np.array_equal(read_output(program, result.output(index)), expected), name
        assert run["tiles_done"] == len(program.tiles) and run["error"] == 0
        assert len(run["layer_cycles"]) == len(program.layers) and all(run["layer_cycles"])
        # The interrupt rose one cycle after the run ended and was low after the driver cleared ISR.
        assert run["by_interrupt"] and len(run["ends"]) == 1 and run["interrupts"] == [run["ends"][0] + 1], run
        assert run["interrupt_after"] == 0
    polled = outcomes[len(cases)]
    assert polled["outcome"] == "ok" and not polled["by_interrupt"] and polled["interrupts"] == []
    assert np.array_equal(read_output(cases[0][1], result.output(len(cases))), cases[0][2])
    for channel in ("ar", "aw"):
        assert result.bursts[channel]["bursts"] > 0 and result.bursts[channel]["crossing"] == []
        assert result.bursts[channel]["longest"] <= 256 and result.bursts[channel]["unaligned"] == 0
    if errors:
        slverr, bad, timeout, after = outcomes[len(cases) + 1:]
        assert slverr["outcome"] == "RunFailed" and "error 7 (read:" in slverr["message"], slverr
        assert slverr["failed_descriptor"] == 0 and slverr["beats_written"] == 0
        assert bad["outcome"] == "RunFailed" and "unsupported_kernel" in bad["message"], bad
        assert "at descriptor 1" in bad["message"] and bad["tiles_done"] == 1
        assert timeout["outcome"] == "DriverTimeout" and "no result after 2e-06 s" in timeout["message"], timeout
        assert timeout["aborted"] and "aborted; the accelerator is idle" in timeout["message"]
        assert after["outcome"] == "ok", after["message"]
        # The driver aborted the timed-out run and cleared its interrupt: this run ended by its own.
        assert len(after["ends"]) == 1 and after["interrupts"] == [after["ends"][0] + 1], after
        assert after["by_interrupt"] and after["interrupt_after"] == 0
        assert np.array_equal(read_output(cases[1][1], result.output(len(outcomes) - 1)), cases[1][2])
    return result


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_an_abort_through_the_driver(simulator):
    """The memory stops answering mid-burst (R, then W): the driver's timeout aborts the run, the abort waits for
    the transfers the memory owes and ends the run with ``aborted`` once it answers again; nothing outside the
    run's image is written (canaries), and the next program is bit-exact. A memory that stays silent past the
    abort's own timeout is reported as such."""
    from esb_hw.sim.system import run_system_rtl

    require_simulator(simulator)
    cases = programs(SMALL)
    (conv, conv_program, conv_expected), (linear, linear_program, linear_expected) = cases[0], cases[1]
    bundles = [to_bundle(conv_program, conv), to_bundle(linear_program, linear)]
    stall = {"timeout": 12e-6, "abort_timeout": 2e-4}
    runs = [{"bundle": 0, **stall, "stall": {"channel": "r", "after": 40, "cycles": 3000}},
            {"bundle": 0},
            {"bundle": 0, **stall, "stall": {"channel": "w", "after": 1, "cycles": 3000}},
            {"bundle": 1},
            {"bundle": 0, "timeout": 12e-6, "abort_timeout": 5e-6, "stall": {"channel": "b", "after": 0,
                                                                              "cycles": 4000}},
            {"bundle": 1}]
    result = run_system_rtl(SMALL, bundles, runs, simulator=simulator, pause=0.2, seed=5,
                            run_name=f"abort_{simulator}")
    read_stall, good, write_stall, after_write, silent, last = result.runs
    for stalled in (read_stall, write_stall):
        assert stalled["outcome"] == "DriverTimeout" and stalled["aborted"], stalled
        assert "aborted; the accelerator is idle" in stalled["message"]
        # The abort ended it (not the end of the stall): error 9, and not every tile stored.
        assert stalled["error_after_abort"] == 9 and stalled["tiles_after_abort"] < len(conv_program.tiles), stalled
    assert silent["outcome"] == "DriverTimeout" and not silent["aborted"], silent
    assert "the abort did not end it within 5e-06 s" in silent["message"]
    assert all(run["canaries_intact"] for run in result.runs)
    for index, (program, expected) in ((1, (conv_program, conv_expected)), (3, (linear_program, linear_expected)),
                                       (5, (linear_program, linear_expected))):
        assert result.runs[index]["outcome"] == "ok", result.runs[index]
        assert np.array_equal(read_output(program, result.output(index)), expected)


def test_the_watchdog_names_a_hang():
    """A memory that stops answering, with nobody to excuse it, fails the simulation within the watchdog's cycles
    and names the bus state: no waiting for the driver's timeout."""
    from esb_hw.sim.runner import TestsFailed
    from esb_hw.sim.system import run_system_rtl

    require_simulator("icarus")
    name, program, _ = programs(SMALL)[0]
    hang = {"channel": "r", "after": 20, "cycles": 10**9, "excused": False}
    with pytest.raises(TestsFailed, match=r"run 0: the engine is busy and no beat has moved on m_axi for 2,000 "
                                          r"cycles .* r 0/1"):
        run_system_rtl(SMALL, [to_bundle(program, name)], [{"bundle": 0, "stall": hang}], simulator="icarus",
                       run_name="watchdog", watchdog_cycles=2000)


def test_programs_and_errors_through_the_driver_on_verilator():
    check_runs(SMALL, "verilator", pause=0.3, seed=1, errors=True)


def test_programs_through_the_driver_on_icarus():
    check_runs(SMALL, "icarus", pause=0.3, seed=2, errors=False)


@pytest.mark.slow  # the default 8x8 config: a longer build
def test_default_config_through_the_driver_on_verilator():
    check_runs(shipped_config("default"), "verilator", pause=0.2, seed=3, errors=True)


@pytest.mark.slow  # the default 8x8 config
def test_the_padding_only_band_reproductions_run_exactly_on_the_default_config():
    """The two 1x1 convolutions with padding 1 on which the compiler used to fail (a band of padding rows only):
    compiled, run through the driver on the system's RTL, bit-exact against the golden model."""
    from esb_hw.sim.system import run_system_rtl

    config = shipped_config("default")
    cases = []
    for shape, out_channels, stride in (((16, 15, 16), 24, 2), ((17, 7, 16), 10, 1)):
        rng = np.random.default_rng(0)
        layer = random_layer(config, rng, "conv2d", out_channels, shape[0], 1, stride, 1, False)
        x = rng.integers(0, config.activation_format.code_count, shape)
        cases.append((compile_program(config, [layer], shape, x), reference(config, layer, x)))
    bundles = [to_bundle(program, f"padding_band_{index}") for index, (program, _) in enumerate(cases)]
    result = run_system_rtl(config, bundles, [{"bundle": 0}, {"bundle": 1}], run_name="padding_bands")
    for index, (program, expected) in enumerate(cases):
        assert result.runs[index]["outcome"] == "ok", result.runs[index]["message"]
        assert np.array_equal(read_output(program, result.output(index)), expected)
        assert result.runs[index]["outside"] == []


def test_wrapper_declares_every_port_with_its_interface():
    system = System(SMALL)
    whole = system_verilog(system)
    text = wrapper_verilog(system)
    assert whole.endswith(text)
    core_ports = set(re.search(rf"module {SYSTEM_NAME}_core\(([^;]*)\);", whole).group(1).replace("\n", "").split(", "))
    ports = wrapper_ports(system)
    assert {core for *_, core in ports} == core_ports  # every core port is connected
    names = [name for name, *_ in ports]
    assert names[:2] == ["ap_clk", "ap_rst_n"] and {"interrupt", "leds", "s_axi_awaddr", "m_axi_rlast"} <= set(names)
    assert text.startswith("//") and f"module {SYSTEM_NAME} (" in text and f"{SYSTEM_NAME}_core core (" in text
    for name, direction, width, _core in ports:
        declared = re.search(rf"^  {direction} wire (\[{width - 1}:0\] )?{name},?$", text, re.M)
        assert declared and (width == 1) == (declared.group(1) is None), name
        if name.startswith(("s_axi_", "m_axi_")):
            signal = name[6:].upper()
            assert f'X_INTERFACE_INFO = "xilinx.com:interface:aximm:1.0 {name[:5]} {signal}" *)\n' in text, name
    assert ".rst(~ap_rst_n)" in text and ".clk(ap_clk)" in text
    assert text.count("X_INTERFACE_PARAMETER = \"PROTOCOL AXI4LITE") == 1
    assert text.count("X_INTERFACE_PARAMETER = \"PROTOCOL AXI4,") == 1
    assert 'xilinx.com:signal:interrupt:1.0 interrupt INTERRUPT' in text and "POLARITY ACTIVE_LOW" in text


def test_the_system_needs_a_square_array():
    with pytest.raises(ValueError, match="square"):
        System(dataclasses.replace(SMALL, cols=8))


def test_the_burst_monitor_flags_a_crossing_and_a_misaligned_burst():
    from esb_hw.sim.testbenches.cocotb_system import Monitor

    monitor = Monitor(None, watchdog_cycles=100_000)
    monitor.bursts = {"ar": [(0x1000, 256), (0x1F00, 17)], "aw": [(0x2008, 1)]}
    summary = monitor.summary()
    assert summary["ar"]["crossing"] == [(0x1F00, 17)] and summary["ar"]["longest"] == 256
    assert summary["aw"]["unaligned"] == 1 and summary["aw"]["crossing"] == []
