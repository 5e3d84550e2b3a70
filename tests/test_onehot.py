# amaranth: UnusedElaboratable=no
"""The one-hot state machine (esb_hw/hw/onehot.py) against Amaranth's own FSM on random machines."""

import random

import pytest
from amaranth import Cat, Module, Signal
from amaranth.sim import Simulator

from esb_hw.errors import ParameterError
from esb_hw.hw import onehot as onehot_module
from esb_hw.hw.onehot import OneHotFSM


def random_machine(seed: int, states: int = 7):
    """Per state, a list of (input bit or None, target) gotos applied in order (None: always), so that several
    can be taken in one cycle and the last one taken must win; some states take none and stay."""
    rng = random.Random(seed)
    machine = []
    for state in range(states):
        gotos = [(rng.choice([None, 0, 1, 2, 3]), rng.randrange(states)) for _ in range(rng.randrange(4))]
        gotos.insert(rng.randrange(len(gotos) + 1), (rng.randrange(4), (state + 1) % states))  # no trap state
        if state % 3 == 0:  # some states stay until their one conditional goto is taken
            gotos = [(rng.randrange(4), (state + 1) % states)]
        machine.append(gotos)
    return machine


def build(machine, one_hot: bool):
    m = Module()
    inputs = Signal(4)
    index = Signal(range(len(machine)))
    names = [f"s{number}" for number in range(len(machine))]
    if one_hot:
        fsm = OneHotFSM(m, names, name="t")
        for name, gotos in zip(names, machine, strict=True):
            with fsm.state_of(name):
                m.d.comb += index.eq(names.index(name))
                for bit, target in gotos:
                    if bit is None:
                        fsm.goto(names[target])
                    else:
                        with m.If(inputs[bit]):
                            fsm.goto(names[target])
        fsm.close()
        onehot = fsm.state
    else:
        onehot = None
        with m.FSM(name="t"):
            for name, gotos in zip(names, machine, strict=True):
                with m.State(name):
                    m.d.comb += index.eq(names.index(name))
                    for bit, target in gotos:
                        if bit is None:
                            m.next = names[target]
                        else:
                            with m.If(inputs[bit]):
                                m.next = names[target]
    return m, inputs, index, onehot


def trace(machine, one_hot: bool, seed: int, cycles: int = 300):
    m, inputs, index, onehot = build(machine, one_hot)
    seen = []

    async def bench(ctx):
        rng = random.Random(seed)
        for _ in range(cycles):
            ctx.set(inputs, rng.getrandbits(4))
            await ctx.tick()
            seen.append(ctx.get(index))
            if onehot is not None:
                assert bin(ctx.get(onehot)).count("1") == 1

    simulator = Simulator(m)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return seen


@pytest.mark.parametrize("seed", range(6))
def test_it_walks_like_amaranths_fsm(seed):
    machine = random_machine(seed)
    expected = trace(machine, one_hot=False, seed=seed)
    assert len(set(expected)) > 1  # the machine moves
    assert trace(machine, one_hot=True, seed=seed) == expected


def test_a_machine_without_the_stay_term_is_caught(monkeypatch):
    """Plant a bug (a state with no goto taken leaves instead of staying): the comparison fails."""
    machine = random_machine(2)
    expected = trace(machine, one_hot=False, seed=2)

    def broken(self):
        self._closed = True
        following = []
        for position in self.index.values():
            entering = [self.state[self.index[source]] & move[position] for source, move in self._moves.items()]
            following.append(Cat(*entering).any())  # the bug: no stay term
        self._m.d.sync += self.state.eq(Cat(*following))

    monkeypatch.setattr(onehot_module.OneHotFSM, "close", broken)
    with pytest.raises(AssertionError):  # the state stops being one-hot, or walks elsewhere
        assert trace(machine, one_hot=True, seed=2, cycles=60) == expected[:60]


def test_misuse_is_refused():
    m = Module()
    with pytest.raises(ParameterError, match="states must be unique names"):
        OneHotFSM(m, ["a", "a"], name="x")
    fsm = OneHotFSM(m, ["a", "b"], name="x")
    with pytest.raises(ParameterError, match="x: no state 'c'; states: a, b"):
        fsm.ongoing("c")
    with pytest.raises(ParameterError, match=r"x: goto\('b'\) outside a state"):
        fsm.goto("b")
    with pytest.raises(ParameterError, match="state 'b' inside state 'a'"):
        with fsm.state_of("a"):
            with fsm.state_of("b"):
                pass
    fsm.close()
    with pytest.raises(ParameterError, match="x: the state machine is closed"):
        fsm.close()
