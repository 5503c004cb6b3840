"""What the server side of a run says, read once for the summary, the terminal and the
report: the per-interval timing decomposition (``sla.server_intervals``), the energy of the
measured window (``sla.energy``) and burst delivery (``sla.delivery``).

Usage::

    side = server_side(reading)
    side.lines()        # the terminal's and the report's sentences
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sla.delivery import BURST_WARN_SHARE, BurstDelivery, burst_delivery, delivery_note
from sla.energy import Energy, energy_in_window, no_energy_reason
from sla.reading import Reading
from sla.server_intervals import Decomposition, decompose

__all__ = ["ServerSide", "reading_energy", "server_side"]


@dataclass(frozen=True, slots=True)
class ServerSide:
    decomposition: Decomposition
    energy: Energy | None
    burst: BurstDelivery
    scraped: bool  # any server sample at all
    no_energy: str  # why there is no energy figure (``sla.energy.no_energy_reason``)

    @property
    def energy_text(self) -> str:
        return self.no_energy if self.energy is None else self.energy.describe()

    @property
    def burst_is_large(self) -> bool:
        share = self.burst.share
        return share is not None and share > BURST_WARN_SHARE

    def lines(self, *, terminal: bool = False) -> list[str]:
        """Server timing families, energy, and (in the terminal only when large) delivery."""
        out = []
        if self.scraped:
            out.append(f"server timing: {self.decomposition.describe()}")
            out.append(self.energy_text)
        note = delivery_note(self.burst)
        if note is not None and (self.burst_is_large or not terminal):
            out.append(note)
        return out


def reading_energy(reading: Reading) -> Energy | None:
    """The energy of a run's measured window, over the output tokens and the successful
    requests that ended in it (every endpoint: the GPU served them all); None without a
    source."""
    done = reading.completed
    ok = done[done["ok"].to_numpy(dtype=bool)] if len(done) else done
    tokens = int(np.nansum(ok["output_tokens"].to_numpy(dtype=np.float64))) if len(ok) else 0
    return energy_in_window(
        reading.run.server_metrics, reading.measured_from, reading.ended_at, tokens, len(ok)
    )


def server_side(reading: Reading) -> ServerSide:
    samples = reading.run.server_metrics
    stream = bool((reading.meta.get("load_profile") or {}).get("stream", True))
    return ServerSide(
        decomposition=decompose(samples, reading.rows),
        energy=reading_energy(reading),
        burst=burst_delivery(reading.measured_ok, stream=stream),
        scraped=samples is not None and not samples.empty,
        no_energy=no_energy_reason(samples),
    )
