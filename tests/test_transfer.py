# amaranth: UnusedElaboratable=no
"""Loader and Storer (esb_hw/hw/core/transfer.py) against the memory model: random transfers of several runs,
starting and ending inside beats, words narrower and wider than a beat, in either bank, with random latency and
stalls; the buffers receive exactly the memory's words, and a store changes exactly its runs' bytes."""

import random

import pytest
from amaranth import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from esb_hw.errors import ParameterError
from esb_hw.hw.core.transfer import Loader, Storer
from esb_hw.layouts import (
    memory_read_layout,
    memory_request_layout,
    memory_word_bytes,
    memory_write_layout,
    pack_memory_words,
    transfer_layout,
    unpack_memory_words,
)
from esb_hw.sim.memory import MemoryModel

DEPTH = 64


class Harness(wiring.Component):
    """A loader filling buffers of ``word_bits``, and a storer emptying buffer 0, on one memory interface."""

    def __init__(self, word_bits):
        self.word_bits = word_bits
        super().__init__({
            "start_load": In(1), "start_store": In(1), "bank": In(1),
            "transfers": In(data.ArrayLayout(transfer_layout(), len(word_bits))), "store": In(transfer_layout()),
            "load_done": Out(1), "store_done": Out(1), "load_error": Out(1), "store_error": Out(1),
            "read_request": Out(stream.Signature(memory_request_layout())),
            "read_data": In(stream.Signature(memory_read_layout())),
            "write_request": Out(stream.Signature(memory_request_layout())),
            "write_data": Out(stream.Signature(memory_write_layout())),
            "write_response": In(stream.Signature(data.StructLayout({"error": 1}))),
        })
        self.buffers = [Memory(shape=bits, depth=2 * DEPTH, init=[]) for bits in word_bits]

    def elaborate(self, platform):
        m = Module()
        m.submodules.loader = loader = Loader(self.word_bits, [DEPTH] * len(self.word_bits))
        m.submodules.storer = storer = Storer(self.word_bits[0], DEPTH)
        for index, buffer in enumerate(self.buffers):
            m.submodules[f"buffer_{index}"] = buffer
            port, write = buffer.write_port(), getattr(loader, f"write_{index}")
            m.d.comb += [port.addr.eq(write.address), port.data.eq(write.data), port.en.eq(write.enable)]
        read = self.buffers[0].read_port()
        m.d.comb += [read.addr.eq(storer.read_address), read.en.eq(storer.read_enable), storer.read_data.eq(read.data)]
        m.d.comb += [loader.start.eq(self.start_load), loader.transfers.eq(self.transfers),
                     loader.banks.eq(self.bank.replicate(len(self.word_bits))),
                     storer.start.eq(self.start_store), storer.bank.eq(self.bank), storer.transfer.eq(self.store),
                     self.load_done.eq(loader.done), self.store_done.eq(storer.done),
                     self.load_error.eq(loader.error), self.store_error.eq(storer.error)]
        wiring.connect(m, loader.request, wiring.flipped(self.read_request))
        wiring.connect(m, wiring.flipped(self.read_data), loader.data)
        wiring.connect(m, storer.request, wiring.flipped(self.write_request))
        wiring.connect(m, storer.data, wiring.flipped(self.write_data))
        wiring.connect(m, wiring.flipped(self.write_response), storer.response)
        return m


def random_transfer(rng, bits, base):
    size = memory_word_bytes(bits)
    segments = rng.randint(1, 3)
    words = rng.randint(1, DEPTH // segments)
    return {"address": base + rng.randrange(0, 4096 // size) * size, "segments": segments, "words": words,
            "stride": (words + rng.randint(0, 5)) * size}


def run(word_bits, seed, *, bad_beats=()):
    rng = random.Random(seed)
    dut = Harness(word_bits)
    memory = MemoryModel(1 << 15, rng=random.Random(seed), latency=(5, 40), stall=0.3, bad_beats=set(bad_beats))
    memory.write_bytes(0, bytes(rng.getrandbits(8) for _ in range(1 << 15)))
    transfers = [random_transfer(rng, bits, 4096 * index) for index, bits in enumerate(word_bits)]
    store = random_transfer(rng, word_bits[0], 24576)
    store["words"] = min(store["words"], DEPTH // store["segments"])
    bank = rng.randint(0, 1)
    before = bytes(memory.memory)
    result = {}

    async def serve(ctx):
        await memory.serve(ctx, dut)

    async def testbench(ctx):
        ctx.set(dut.transfers, transfers)
        ctx.set(dut.store, store)
        ctx.set(dut.bank, bank)
        ctx.set(dut.start_load, 1)
        await ctx.tick()
        ctx.set(dut.start_load, 0)
        *_, result["load_error"] = await ctx.tick().sample(dut.load_error).until(dut.load_done)
        result["buffers"] = [[ctx.get(buffer.data[bank * DEPTH + index]) for index in range(DEPTH)]
                             for buffer in dut.buffers]
        ctx.set(dut.start_store, 1)
        await ctx.tick()
        ctx.set(dut.start_store, 0)
        *_, result["store_error"] = await ctx.tick().sample(dut.store_error).until(dut.store_done)

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(serve, background=True)
    simulator.add_testbench(testbench)
    simulator.run()
    return result, transfers, store, before, memory


def expected_words(memory_bytes, transfer, bits):
    size = memory_word_bytes(bits)
    words = []
    for segment in range(transfer["segments"]):
        start = transfer["address"] + segment * transfer["stride"]
        words += unpack_memory_words(bits, memory_bytes[start: start + transfer["words"] * size], transfer["words"])
    return words


@pytest.mark.parametrize("word_bits", [[32, 46, 256], [8, 128, 64], [100, 16, 512]],
                         ids=["4B-8B-32B", "1B-16B-8B", "16B-2B-64B"])
@pytest.mark.parametrize("seed", range(4))
def test_loads_and_stores_move_exactly_their_runs(word_bits, seed):
    result, transfers, store, before, memory = run(word_bits, seed)
    assert result["load_error"] == 0 and result["store_error"] == 0
    for bits, transfer, buffer in zip(word_bits, transfers, result["buffers"], strict=True):
        words = expected_words(before, transfer, bits)
        assert buffer[: len(words)] == words
    expected = bytearray(before)
    stored = result["buffers"][0][: store["segments"] * store["words"]]
    for segment in range(store["segments"]):
        blob = pack_memory_words(word_bits[0], stored[segment * store["words"]: (segment + 1) * store["words"]])
        start = store["address"] + segment * store["stride"]
        expected[start: start + len(blob)] = blob
    assert bytes(memory.memory) == bytes(expected)


def test_a_misplaced_word_is_caught():
    """The byte comparison above fails when one word lands one place off."""
    result, transfers, _, before, _ = run([32, 46, 256], 0)
    words = expected_words(before, transfers[0], 32)
    shifted = [0, *result["buffers"][0][: len(words) - 1]]
    assert shifted != words


def test_error_beats_set_the_error_bits():
    result, *_ = run([32, 46, 256], 1, bad_beats=set(range(2048)))
    assert result["load_error"] == 1 and result["store_error"] == 1


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Loader([32], [8]), "depths\\[0\\] must be an int in 16..524288, got 8"),
    (lambda: Loader([0], [16]), "word_bits\\[0\\] must be an int in 1..1024, got 0"),
    (lambda: Storer(32, 100.0), "depth must be an int in 16..524288, got float 100.0"),
    (lambda: Loader([1024], [1 << 19]), "buffer 0: a bank of 524288 words of 128 bytes needs 4194305 beats"),
])
def test_parameters_are_checked(build, message):
    with pytest.raises(ParameterError, match=message):
        build()


@pytest.mark.parametrize("words", [1, 2])
def test_a_stopped_store_sends_the_beats_of_its_requests_only(words):
    """A stop while a request is held back: the store ends once the requests taken have their beats and responses,
    sends no beat without a request (a memory that takes W as soon as it has any request would otherwise take a
    beat of the next run), and the next store starts clean (its strobes are its own)."""
    dut = Storer(32, 16)

    async def store(ctx, address, segments, hold_request=None, stop_cycle=None):
        ctx.set(dut.transfer.address, address)
        ctx.set(dut.transfer.stride, 16)
        ctx.set(dut.transfer.words, words)
        ctx.set(dut.transfer.segments, segments)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        accepted, pending, owed, strobes = 0, 0, 0, []
        for cycle in range(300):
            request_ready = 0 if hold_request is not None and accepted == hold_request and cycle < 30 else 1
            ctx.set(dut.stop, int(stop_cycle is not None and cycle >= stop_cycle))
            ctx.set(dut.request.ready, request_ready)
            ctx.set(dut.data.ready, int(pending > 0))  # W as soon as some request waits for data
            ctx.set(dut.response.valid, int(owed > 0))
            enable, read_address = ctx.get(dut.read_enable), ctx.get(dut.read_address)
            request_valid, data_valid = ctx.get(dut.request.valid), ctx.get(dut.data.valid)
            response_ready, strobe, done = ctx.get(dut.response.ready), ctx.get(dut.data.payload.strobe), ctx.get(
                dut.done)
            data_ready, owed_before = ctx.get(dut.data.ready), owed
            await ctx.tick()
            if enable:
                ctx.set(dut.read_data, 0x1000 + read_address)
            if request_valid and request_ready:
                accepted, pending = accepted + 1, pending + 1  # one beat per run here
            if data_valid and data_ready:
                pending, owed = pending - 1, owed + 1
                strobes.append(strobe)
            if response_ready and owed_before:
                owed -= 1
            if done:
                break
        else:
            raise AssertionError(f"the store did not end; busy {ctx.get(dut.busy)}, {accepted} requests taken, "
                                 f"{len(strobes)} beats sent")
        ctx.set(dut.stop, 0)
        await ctx.tick()
        return accepted, strobes, ctx.get(dut.busy)

    results = {}

    async def testbench(ctx):
        ctx.set(dut.bank, 0)
        results["stopped"] = await store(ctx, 0x100, 4, hold_request=1, stop_cycle=25)
        results["next"] = await store(ctx, 0x208, 1)

    simulator = Simulator(dut)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    accepted, strobes, busy = results["stopped"]
    assert accepted == 2 and len(strobes) == accepted and not busy  # the held request and the one before
    lanes = (1 << 4 * words) - 1
    assert results["next"] == (1, [lanes << 8], 0)  # word 2 of its beat (address 0x208), nothing stale
