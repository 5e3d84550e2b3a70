"""A state machine with one flip-flop per state (one-hot), for control that must be fast.

Amaranth's ``m.FSM`` encodes states in binary. yosys does not recode it (it leaves a register with an initial value
alone, and Amaranth gives every register one), so each transition decodes several state bits first; in the
descriptor checker (about 50 states) that decode was the engine's slowest path. Here each state is its own
flip-flop: a state's logic reads one bit, and a state's next value is an OR of the transitions into it.

Use it like ``m.FSM``, in one ``elaborate``::

    fsm = OneHotFSM(m, ["idle", "run", "done"], name="control")
    with fsm.state("idle"):
        with m.If(start):
            fsm.goto("run")
    ...
    fsm.close()  # after the last state: builds the next-state logic

Within a state the last :meth:`~OneHotFSM.goto` taken wins, as with ``m.next``; a state with none taken stays. The
first state is the initial (and reset) state.
"""

from __future__ import annotations

from contextlib import contextmanager

from amaranth import Cat, Module, Signal

from ..errors import ParameterError

__all__ = ["OneHotFSM"]


class OneHotFSM:
    """One-hot state machine builder (see the module docstring).

    Parameters
    ----------
    m : Module
        The module the logic goes into.
    states : list of str
        Every state's name, the initial one first; names are unique.
    name : str
        The prefix of the state register (``<name>_state``, one bit per state in ``states``' order).

    Attributes
    ----------
    state : Signal(len(states))
        The state register (exactly one bit set).
    """

    def __init__(self, m: Module, states, *, name: str):
        states = list(states)
        if not states or len(set(states)) != len(states) or not all(isinstance(item, str) for item in states):
            raise ParameterError(f"states must be unique names, at least one, got {states!r}")
        self._m, self.name = m, name
        self.index = {state: position for position, state in enumerate(states)}
        self.state = Signal(len(states), init=1, name=f"{name}_state")
        self._moves: dict[str, Signal] = {}  # per state with transitions: the one-hot target it goes to, or 0
        self._current: str | None = None
        self._closed = False

    def ongoing(self, state: str):
        """1 while in ``state``."""
        return self.state[self._position(state)]

    @contextmanager
    def state_of(self, state: str):
        """The logic of ``state`` (a ``with`` block, active while in it)."""
        if self._closed:
            raise ParameterError(f"{self.name}: the state machine is closed")
        if self._current is not None:
            raise ParameterError(f"{self.name}: state {state!r} inside state {self._current!r}")
        position = self._position(state)
        self._current = state
        try:
            with self._m.If(self.state[position]):
                yield
        finally:
            self._current = None

    def goto(self, state: str) -> None:
        """Go to ``state`` at the next clock edge (inside a :meth:`state_of` block)."""
        if self._current is None:
            raise ParameterError(f"{self.name}: goto({state!r}) outside a state")
        target = self._position(state)
        move = self._moves.get(self._current)
        if move is None:
            move = self._moves[self._current] = Signal(len(self.index), name=f"{self.name}_{self._current}_to")
        self._m.d.comb += move.eq(1 << target)

    def close(self) -> None:
        """Build the next-state logic (once, after every state)."""
        if self._closed:
            raise ParameterError(f"{self.name}: the state machine is closed")
        self._closed = True
        following = []
        for state, position in self.index.items():
            entering = [self.state[self.index[source]] & move[position] for source, move in self._moves.items()]
            move = self._moves.get(state)
            staying = self.state[position] & (move == 0) if move is not None else self.state[position]
            following.append(Cat(staying, *entering).any())
        self._m.d.sync += self.state.eq(Cat(*following))

    def _position(self, state: str) -> int:
        if state not in self.index:
            raise ParameterError(f"{self.name}: no state {state!r}; states: {', '.join(self.index)}")
        return self.index[state]
