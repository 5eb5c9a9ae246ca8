"""Leader election on a coordination.k8s.io/v1 Lease: which controller replica may write.

The controller (`autoscaler.controller`) runs an `Elector` in a thread of its own, apart from the
reconcile loop, so that a loop longer than the Lease (a slow Prometheus, many writes) never lets the
Lease lapse, and a loop that runs rarely (`--interval 30`) never leaves a gap for the other replica.
It follows client-go's `leaderelection` (and the `kubernetes` Python client's copy of it):

- every `retry_period_s` it reads the Lease and, when it may, writes itself as holder with the
  resourceVersion it read, so of two replicas that claim at once one write fails with a conflict;
  the leader renews the version it wrote last without reading it first (client-go's fast path),
  and reads only when that write fails;
- another holder's claim is timed from when **this** replica observed the record change, on this
  replica's clock (`lease_duration_s` after that), never from the other replica's `renewTime`, so a
  skewed clock on either side decides nothing;
- the leader leads while its last successful renewal is younger than `renew_deadline_s`; that is
  shorter than the Lease, so it stops writing (`leading()` turns false) before any other replica
  may take over, even when it cannot reach the API server to learn that it lost;
- `release()` (on SIGTERM) hands the Lease back (empty holder, 1 s), so the next replica takes over
  at its next retry instead of a whole Lease later: one write, of the version this replica last wrote
  (client-go's `release`), with no read before it to wait on; where that version moved (a renewal applied
  whose answer was lost), one read, and the Lease is handed back only if this replica still holds it;
- `acquire()` is the same for a one-shot run (`--once`): it waits while the holder's record stands
  still, up to one Lease duration, so a crashed holder's Lease is taken and a live holder's is not.

The Lease also carries notes from one leader to the next (`note`, `noted`: annotations written with a
renewal): what a replica that leads next needs and cannot read anywhere else while a source is down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from autoscaler.kubetime import micro_time
from common.errors import EgsError, InputError, StaleVersionError

log = logging.getLogger("egs.leader")

LEASE_NAME = "egs-controller"


@dataclass(frozen=True)
class LeaderSettings:
    """How the Lease is held (client-go's defaults; `egs controller --lease-duration` etc.)."""

    lease_duration_s: float = 15.0
    """How long another replica waits, from when it saw the last renewal, before it takes over."""
    renew_deadline_s: float = 10.0
    """How long the leader keeps writing without a successful renewal; less than the Lease."""
    retry_period_s: float = 2.0
    """Seconds between two attempts to acquire or renew."""

    def __post_init__(self) -> None:
        if not self.lease_duration_s > self.renew_deadline_s > self.retry_period_s > 0:
            raise InputError(
                "the Lease settings need lease duration > renew deadline > retry period > 0 "
                f"(got {self.lease_duration_s:g} s, {self.renew_deadline_s:g} s, {self.retry_period_s:g} s)",
                source="--lease-duration",
            )


class LeaseStore(Protocol):
    """Where the Lease lives: the Kubernetes adapter's `lease` and `take_lease`. Both raise an
    `EgsError` when the API server cannot be reached or refuses (`StaleVersionError` on a lost race)."""

    def lease(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    def take_lease(
        self,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        read: Mapping[str, Any] | None,
        annotations: Mapping[str, str] | None = None,
    ) -> Mapping[str, Any]:
        """The Lease as written (`annotations` set beside the ones it has)."""
        ...


class Elector:
    """One replica's candidacy for the Lease `namespace`/`LEASE_NAME`."""

    def __init__(
        self,
        store: LeaseStore,
        namespace: str,
        identity: str,
        settings: LeaderSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        write: bool = True,
    ) -> None:
        """`clock` times this replica's own observations and deadlines; `wall` stamps the Lease's
        times for people to read. `write=False` (a dry run) leads without writing the Lease."""
        self.store = store
        self.namespace = namespace
        self.identity = identity
        self.settings = settings or LeaderSettings()
        self.clock = clock
        self.wall = wall
        self.write = write
        self.on_change: Callable[[bool], None] = lambda leading: None
        """Called (in the elector's thread) when this replica starts or stops leading."""
        self._lock = threading.Lock()
        self._observed: Record | None = None
        self._observed_at = 0.0
        self._renewed_at: float | None = None
        self._written: Mapping[str, Any] | None = None
        """The Lease as this replica last wrote it: what `release` hands back."""
        self._was_leading = False
        self._notes: dict[str, str] = {}
        """What this replica, leading, keeps on the Lease (`note`)."""
        self._seen: Mapping[str, Any] = {}
        """The Lease's annotations as this replica last read or wrote them."""

    def note(self, key: str, value: str) -> None:
        """Keep `value` in the Lease's annotation `key` from this replica's next renewal on (a write only
        where it differs): for the replica that leads next, which reads it with the Lease (`noted`)."""
        with self._lock:
            self._notes[key] = value

    def noted(self, key: str) -> str | None:
        """The Lease's annotation `key` as this replica last read or wrote it (another leader's note)."""
        with self._lock:
            value = self._seen.get(key)
        return value if isinstance(value, str) else None

    def leading(self) -> bool:
        """Whether this replica may write now: its last renewal is younger than the renew deadline."""
        with self._lock:
            renewed = self._renewed_at
        return renewed is not None and self.clock() < renewed + self.settings.renew_deadline_s

    def step(self) -> bool:
        """One attempt to acquire or renew (client-go's tryAcquireOrRenew); whether this replica leads. The
        leader first renews the version it wrote last, with no read (client-go's fast path), so that a
        renewal is one request and a SIGTERM's release waits on less; if that fails (another replica wrote
        the Lease since, or no answer), it reads the Lease as any other attempt does."""
        now = self.clock()
        with self._lock:
            written = self._written
        if written is not None and self.leading():
            claimed = self._claim(written.get("spec") or {}, self.identity)
            try:
                taken = self.store.take_lease(self.namespace, LEASE_NAME, claimed, written, self._due())
                return self._renewed(claimed, taken, now)
            except EgsError as e:
                log.info("Lease %s/%s not renewed as last written: %s (reading it)", self.namespace, LEASE_NAME, e)
        try:
            read = self.store.lease(self.namespace, LEASE_NAME)
            spec: Mapping[str, Any] = (read or {}).get("spec") or {}
            self._observe(spec, now)
            self._saw(read)
            holder = spec.get("holderIdentity")
            if holder and holder != self.identity and not self._expired(spec, now):
                with self._lock:
                    self._renewed_at = None
                return self._changed()
            claimed = self._claim(spec, holder)
            due = self._due()
            written = self.store.take_lease(self.namespace, LEASE_NAME, claimed, read, due) if self.write else None
        except EgsError as e:
            log.info("Lease %s/%s not renewed: %s", self.namespace, LEASE_NAME, e)
            return self._changed()
        return self._renewed(claimed, written, now)

    def _renewed(self, claimed: Mapping[str, Any], written: Mapping[str, Any] | None, now: float) -> bool:
        """Record a successful claim or renewal made at `now` (`written`: the Lease as written, None in a dry run)."""
        with self._lock:
            self._observed, self._observed_at, self._renewed_at = _record(claimed), now, now
            self._written = written
        self._saw(written)
        return self._changed()

    def _due(self) -> dict[str, str] | None:
        """The notes the Lease does not carry as they are (None: none)."""
        with self._lock:
            due = {k: v for k, v in self._notes.items() if self._seen.get(k) != v}
        return due or None

    def _saw(self, lease: Mapping[str, Any] | None) -> None:
        if lease is not None:
            with self._lock:
                self._seen = (lease.get("metadata") or {}).get("annotations") or {}

    def acquire(self, stop: threading.Event) -> bool:
        """Try every retry period until this replica leads, the holder shows it is alive (its record
        changes) or the holder's Lease has run out unchanged and could still not be taken: whether it
        leads. A one-shot run (`egs controller --once`) takes a crashed holder's Lease this way, one Lease
        duration after its first look, timed on its own clock as the loop's thread does."""
        if self.step():
            return True
        with self._lock:
            seen = self._observed
        duration = float(seen.leaseDurationSeconds or 0) if seen else 0.0
        give_up = self.clock() + duration + self.settings.retry_period_s
        while self.clock() < give_up and not stop.wait(self.settings.retry_period_s):
            if self.step():
                return True
            with self._lock:
                if self._observed != seen:
                    return False  # renewed: the holder is alive
        return False

    def run(self, stop: threading.Event) -> None:
        """Acquire and renew every retry period until `stop`, then release the Lease."""
        while not stop.wait(self.settings.retry_period_s):
            try:
                self.step()
            except Exception:  # a bug must not end the thread: leadership would lapse for good, unseen
                log.exception("Lease %s/%s: the attempt failed (trying again)", self.namespace, LEASE_NAME)
        self.release()

    def release(self) -> None:
        """Hand the Lease back when this replica holds it, so the next one need not wait it out. One write
        of the version it last wrote: a read first waited on an API server busy with the next replica's
        start. A version written since fails that write; only then is the Lease read, and handed back if
        this replica still holds it."""
        if not self.leading():
            return
        with self._lock:
            self._renewed_at, written = None, self._written
        self._changed()
        if written is None:
            return
        try:
            try:
                self._hand_back(written)
            except StaleVersionError:
                # The version moved since this replica wrote it: a renewal the API server applied but whose
                # answer was lost, the read after it failing too (else the next replica waited out the Lease),
                # or another replica took the Lease meanwhile. One read tells which; another's is left alone.
                read = self.store.lease(self.namespace, LEASE_NAME)
                holder = ((read or {}).get("spec") or {}).get("holderIdentity")
                if read is None or holder != self.identity:
                    log.info("Lease %s/%s not handed back: %s holds it now", self.namespace, LEASE_NAME, holder)
                    return
                self._hand_back(read)
        except EgsError as e:
            log.warning("could not release the Lease %s/%s: %s", self.namespace, LEASE_NAME, e)

    def _hand_back(self, version: Mapping[str, Any]) -> None:
        """Write the Lease `version` (as read or written) free: empty holder, 1 s; with the notes made since the last
        renewal (the last loop's, for the replica that leads next)."""
        stamp = micro_time(self.wall())
        released = {
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": int((version.get("spec") or {}).get("leaseTransitions", 0)),
        }
        self.store.take_lease(self.namespace, LEASE_NAME, released, version, self._due())
        log.info("released the Lease %s/%s", self.namespace, LEASE_NAME)

    def _observe(self, spec: Mapping[str, Any], now: float) -> None:
        record = _record(spec)
        with self._lock:
            if record != self._observed:
                self._observed, self._observed_at = record, now

    def _expired(self, spec: Mapping[str, Any], now: float) -> bool:
        """Whether the holder's claim ran out, timed from when this replica saw it last change."""
        with self._lock:
            observed_at = self._observed_at
        return observed_at + float(spec.get("leaseDurationSeconds") or 0) <= now

    def _claim(self, spec: Mapping[str, Any], holder: Any) -> dict[str, Any]:
        stamp = micro_time(self.wall())
        mine = holder == self.identity
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.settings.lease_duration_s)),
            "acquireTime": spec.get("acquireTime") if mine and spec.get("acquireTime") else stamp,
            "renewTime": stamp,
            "leaseTransitions": int(spec.get("leaseTransitions", 0)) + (0 if mine or not holder else 1),
        }

    def _changed(self) -> bool:
        leading = self.leading()
        if leading != self._was_leading:
            self._was_leading = leading
            held = "holds" if leading else "no longer holds"
            log.info("%s %s the Lease %s/%s", self.identity, held, self.namespace, LEASE_NAME)
            self.on_change(leading)
        return leading


class Record(NamedTuple):
    """One version of the Lease record, its fields as the Lease names them: client-go compares the whole
    record to tell a holder that renews from one that stands still."""

    holderIdentity: Any
    leaseDurationSeconds: Any
    acquireTime: Any
    renewTime: Any
    leaseTransitions: Any


def _record(spec: Mapping[str, Any]) -> Record:
    return Record(*(spec.get(k) for k in Record._fields))
