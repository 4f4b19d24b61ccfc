"""The shared state store: Redis (or Redis Cluster), one Lua script per decision.

Every key a request touches starts with ``<prefix>:{<team>}:`` so the team is the hash tag and a
script's keys share one slot (Redis Cluster refuses cross-slot scripts). Each reserve is one
round trip that checks and holds all of a request's counters; each settle or release is one round
trip when the same instance made the reservation (it remembers what it holds), two otherwise.
On a single server, the calls of many concurrent requests made in one event-loop turn share one
pipeline (``_Batcher``): each is still its own atomic script, and its own reply.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from wardgate.state.protocol import (
    GRACE_S,
    INDEX_RETENTION_S,
    Charge,
    CounterState,
    Limit,
    ReserveResult,
    StateUnavailable,
    Unit,
    actual_by_counter,
    check_team,
    merge_charges,
    rate_state,
    retry_after,
    to_us,
    window_state,
)
from wardgate.state.windows import Window, window_span

__all__ = ["RedisStateStore"]

# Redis cannot serve (as opposed to a bug in a script, which stays a ResponseError).
_UNAVAILABLE = (
    redis_errors.ConnectionError,  # refused, reset, auth failed, still loading, pool exhausted
    redis_errors.TimeoutError,
    redis_errors.InvalidResponse,  # something other than Redis answered on that port
    redis_errors.ReadOnlyError,  # a replica during failover
    redis_errors.ClusterDownError,  # includes MasterDownError
    redis_errors.TryAgainError,
    redis_errors.OutOfMemoryError,  # maxmemory reached: writes refused
    OSError,
    asyncio.TimeoutError,
)
_SEP = "\x1f"  # between fields of a stored entry; scopes are config names and ids, never control chars
_ARG = "\x1e"  # between fields of one counter's script argument (split in prelude.lua)
_SWEEP_EVERY_S = 60.0
# A counter is (re)written to its team's index at most this often per process: the index keeps counters
# for 35 days (INDEX_RETENTION_S), so a minute's staleness in "last used" changes nothing it is read
# for, and most reserves skip four index commands (two ZADDs, the trim and the TTL).
_INDEX_EVERY_S = 60.0


def _script(name: str) -> str:
    folder = files("wardgate.state")
    return folder.joinpath("prelude.lua").read_text("utf-8") + "\n" + folder.joinpath(f"{name}.lua").read_text("utf-8")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class _Entry:
    limit: Limit
    label: str  # the calendar window the reservation was made in ("" for rate limits)
    amount: int

    def encode(self) -> str:
        return _SEP.join((self.label, str(self.amount), _encode_caps(self.limit)))


def _encode_caps(limit: Limit) -> str:
    return _SEP.join((repr(limit.limit), "" if limit.burst is None else repr(limit.burst)))


def _decode_limit(counter_id: str, cap: str, burst: str) -> Limit:
    scope, window, unit = counter_id.rsplit(":", 2)
    return Limit(scope, Window(window), Unit(unit), float(cap), float(burst) if burst else None)


def _decode_entry(counter_id: str, value: str) -> _Entry:
    label, amount, cap, burst = value.split(_SEP)
    return _Entry(_decode_limit(counter_id, cap, burst), label, int(amount))


@dataclass(frozen=True, slots=True)
class _StaticSpec:
    """The parts of a counter's script argument that depend only on its limit."""

    kind: str  # w: calendar window, g: rate (GCRA)
    cap: str
    step: str  # emission µs per stored unit (rate)
    member: str  # the limit as the team's index records it


@lru_cache(maxsize=4096)
def _static_spec(limit: Limit) -> _StaticSpec:
    member = _SEP.join((limit.counter_id, _encode_caps(limit)))
    if limit.window.is_rate:
        return _StaticSpec("g", str(limit.stored_bucket), repr(limit.emission), member)
    return _StaticSpec("w", str(limit.stored_cap), "0", member)


class RedisStateStore:
    """A `StateStore` shared by every process and replica that points at the same Redis."""

    def __init__(self, client: Redis, *, prefix: str = "wg", owns_client: bool = False) -> None:
        """Uses ``client`` (a ``redis.asyncio.Redis`` or ``RedisCluster``); ``close()`` closes it only if owned."""
        self._redis = client
        self._prefix = prefix
        self._owns_client = owns_client
        # register_script: EVALSHA, falling back to loading the script when Redis does not know it.
        self._reserve = client.register_script(_script("reserve"))
        self._settle = client.register_script(_script("settle"))
        self._hit = client.register_script(_script("hit"))
        self._read = client.register_script(_script("read"))
        self._held: dict[tuple[str, str], tuple[tuple[_Entry, ...], float]] = {}
        self._indexed: dict[tuple[str, str], float] = {}  # (team, index member) -> when to write it again
        self._next_sweep = 0.0
        # Redis Cluster routes a pipeline's commands by slot itself: batch on a single server only.
        self._batcher = _Batcher(client) if isinstance(client, Redis) else None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "wg",
        connect_timeout_s: float = 0.5,
        socket_timeout_s: float = 3.0,
        max_connections: int = 64,
        pool_timeout_s: float = 3.0,
    ) -> RedisStateStore:
        """A store with its own client; ``close()`` closes it."""
        # A blocking pool: past max_connections a call waits for a free connection (the default pool
        # raises "Too many connections" at 100 concurrent calls) and fails after pool_timeout_s.
        # No retries: a retried reserve whose first attempt ran would be refused as a duplicate, and
        # the gateway, not this layer, decides how to serve while Redis is away.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=pool_timeout_s,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=socket_timeout_s,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        return cls(Redis.from_pool(pool), prefix=prefix, owns_client=True)  # from_pool: aclose() closes the pool

    async def reserve(
        self, team: str, reservation_id: str, charges: Sequence[Charge], ttl_s: float, now: float | None = None
    ) -> ReserveResult:
        check_team(team)
        if not ttl_s > 0:
            raise ValueError("ttl_s must be > 0")
        now = time.time() if now is None else now
        now_us = to_us(now)
        merged = merge_charges(charges)
        keys = [self._key(team, f"r:{reservation_id}"), self._key(team, "idx")]
        args: list[Any] = [
            now_us,
            to_us(now + ttl_s),
            reservation_id,
            math.ceil((ttl_s + GRACE_S) * 1000),
            to_us(now - INDEX_RETENTION_S),
            math.ceil(INDEX_RETENTION_S * 1000),
            len(merged),
        ]
        entries = []
        indexed = self._indexed
        to_index = []
        for limit, amount in merged:
            static = _static_spec(limit)
            due = indexed.get((team, static.member))
            member = static.member if due is None or now >= due or now < due - _INDEX_EVERY_S else ""
            if member:
                to_index.append(member)
            if limit.window.is_rate:
                entry = _Entry(limit, "", amount)
                keys.append(self._key(team, f"g:{limit.counter_id}"))
                ttl_ms = 0
            else:
                span = window_span(limit.window, now)
                entry = _Entry(limit, span.label, amount)
                keys += self._calendar_keys(team, limit.counter_id, span.label)
                ttl_ms = 0 if span.resets_at is None else math.ceil((span.resets_at - now + ttl_s + GRACE_S) * 1000)
            fields = (static.kind, str(amount), static.cap, str(ttl_ms), static.step, limit.counter_id, entry.encode())
            args.append(_ARG.join((*fields, member)))
            entries.append(entry)
        reply = [int(v) for v in await self._run(self._reserve, keys, args)]
        if reply[0] == -1:  # refused before the index was touched
            raise ValueError(f"reservation {reservation_id!r} already exists")
        for member in to_index:  # written: not again for a while (a failed call leaves them due)
            indexed[(team, member)] = now + _INDEX_EVERY_S
        states = tuple(
            rate_state(limit, reply[2 + 2 * i], now_us)
            if limit.window.is_rate
            else window_state(limit, reply[2 + 2 * i], reply[3 + 2 * i], now)
            for i, (limit, _) in enumerate(merged)
        )
        if reply[0]:
            limit, amount = merged[reply[0] - 1]
            return ReserveResult(False, states[reply[0] - 1], states, retry_after(limit, amount, now, reply[1]))
        self._remember(team, reservation_id, tuple(entries), now + ttl_s + GRACE_S, now)
        return ReserveResult(True, None, states)

    async def settle(
        self,
        team: str,
        reservation_id: str,
        actual: Iterable[Charge] | Mapping[Limit, float],
        now: float | None = None,
    ) -> bool:
        return await self._finish(team, reservation_id, actual_by_counter(actual), now, charge=True)

    async def release(self, team: str, reservation_id: str, now: float | None = None) -> bool:
        return await self._finish(team, reservation_id, {}, now, charge=False)

    async def hit(self, team: str, key: str, window_s: float, now: float | None = None) -> int:
        return (await self.hit_many(team, [key], window_s, now))[0]

    async def hit_many(self, team: str, keys: list[str], window_s: float, now: float | None = None) -> list[int]:
        check_team(team)
        now_us = to_us(time.time() if now is None else now)
        window_us = to_us(window_s)
        args = [now_us, now_us - window_us, f"{now_us}:{uuid.uuid4().hex}", math.ceil(window_s * 1000) + 1000]
        counts = await self._run(self._hit, [self._key(team, f"e:{key}") for key in keys], args)
        return [int(c) for c in counts]

    async def snapshot(self, team: str, now: float | None = None) -> list[CounterState]:
        check_team(team)
        now = time.time() if now is None else now
        try:
            members = await self._redis.zrangebyscore(self._key(team, "idx"), to_us(now - INDEX_RETENTION_S), "+inf")
        except _UNAVAILABLE as exc:
            raise StateUnavailable(f"redis unreachable: {exc}") from exc
        latest: dict[str, Limit] = {}
        for member in members:  # ascending by last use: a later cap for the same counter wins
            counter_id, cap, burst = _text(member).split(_SEP)
            latest[counter_id] = _decode_limit(counter_id, cap, burst)
        limits = [latest[cid] for cid in sorted(latest)]
        keys: list[str] = []
        for limit in limits:
            if limit.window.is_rate:
                keys.append(self._key(team, f"g:{limit.counter_id}"))
            else:
                keys += self._calendar_keys(team, limit.counter_id, window_span(limit.window, now).label)
        kinds = ["g" if limit.window.is_rate else "w" for limit in limits]
        reply = [int(v) for v in await self._run(self._read, keys, [to_us(now), len(limits), *kinds])] if limits else []
        return [
            rate_state(limit, reply[2 * i], to_us(now))
            if limit.window.is_rate
            else window_state(limit, reply[2 * i], reply[2 * i + 1], now)
            for i, limit in enumerate(limits)
        ]

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (*_UNAVAILABLE, redis_errors.RedisError):
            return False

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.drain()
        if self._owns_client:
            await self._redis.aclose()

    async def _finish(
        self, team: str, rid: str, actual: dict[str, tuple[Limit, int]], now: float | None, *, charge: bool
    ) -> bool:
        check_team(team)
        now = time.time() if now is None else now
        record_key = self._key(team, f"r:{rid}")
        held = self._held.pop((team, rid), None)
        if held is not None:
            entries = held[0]
        else:  # reserved by another replica (or this one forgot): the record says what it holds
            try:
                record = {_text(k): _text(v) for k, v in (await self._redis.hgetall(record_key)).items()}
            except _UNAVAILABLE as exc:
                raise StateUnavailable(f"redis unreachable: {exc}") from exc
            if record.get("_") == "done":
                return False
            entries = tuple(_decode_entry(cid, value) for cid, value in record.items() if cid != "_")
        keys: list[str] = [record_key, self._key(team, "idx")]
        counters: list[Any] = []
        for entry in entries:
            found = actual.pop(entry.limit.counter_id, None)
            spent = (found[1] if found else entry.amount) if charge else 0
            if entry.limit.window.is_rate:
                # Admission took the estimate from the bucket: settle corrects it to the actual use;
                # release keeps it (a failed upstream call still counted against the rate).
                keys.append(self._key(team, f"g:{entry.limit.counter_id}"))
                correction = spent - entry.amount if charge else 0
                counters.append(_ARG.join(("g", "0", str(correction), "0", _static_spec(entry.limit).step, "")))
            else:
                keys += self._calendar_keys(team, entry.limit.counter_id, entry.label)
                ttl_ms = 0 if entry.limit.window is Window.TOTAL else math.ceil(GRACE_S * 1000)
                counters.append(_ARG.join(("w", str(spent), "0", str(ttl_ms), "0", "")))
        for limit, amount in actual.values():
            # Not in the reservation (or its record is gone): count it in the current window. Rate
            # buckets are left alone: without the reservation we cannot know what admission took.
            if limit.window.is_rate or not amount:
                continue
            span = window_span(limit.window, now)
            keys += self._calendar_keys(team, limit.counter_id, span.label)
            ttl_ms = 0 if span.resets_at is None else math.ceil((span.resets_at - now + GRACE_S) * 1000)
            counters.append(_ARG.join(("w", str(amount), "0", str(ttl_ms), "0", _static_spec(limit).member)))
        args = [to_us(now), rid, math.ceil(GRACE_S * 1000), len(counters), *counters]
        return bool(int(await self._run(self._settle, keys, args)))

    def _key(self, team: str, rest: str) -> str:
        return f"{self._prefix}:{{{team}}}:{rest}"

    def _calendar_keys(self, team: str, counter_id: str, label: str) -> list[str]:
        return [self._key(team, f"c:{counter_id}:{label}"), self._key(team, f"h:{counter_id}:{label}")]

    def _remember(self, team: str, rid: str, entries: tuple[_Entry, ...], forget_at: float, now: float) -> None:
        self._held[(team, rid)] = (entries, forget_at)
        if now >= self._next_sweep:  # reservations never settled here (another replica did) go too
            self._next_sweep = now + _SWEEP_EVERY_S
            self._held = {k: v for k, v in self._held.items() if v[1] > now}
            self._indexed = {k: due for k, due in self._indexed.items() if due > now}

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            if self._batcher is None:
                return await script(keys=keys, args=args)
            return await self._batcher.run(script, keys, args)
        except _UNAVAILABLE as exc:
            raise StateUnavailable(f"redis unreachable: {exc}") from exc


class _Batcher:
    """Script calls made in one turn of the event loop go to Redis as one pipeline: one connection
    checkout, one write, one read of all replies. redis-py's own cost per call (pool, retry and
    timeout wrappers: ~100 µs of CPU here) is then paid once per turn, not once per call; a lone
    call goes alone. No MULTI: each script is atomic on its own, and batching changes no result.

    The pipeline runs in a task of its own, so a request cancelled while waiting (its client left)
    cancels only its own wait, never the batch of the others.
    """

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._pending: list[tuple[Any, list[str], list[Any], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0
        self.batches = 0

    async def run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)  # after every callback already due in this turn
        self._pending.append((script, keys, args, future))
        return await future

    async def drain(self) -> None:
        """Wait for the batches already sent (their callers still get their replies)."""
        while self._tasks or self._pending:
            await asyncio.gather(*self._tasks, asyncio.sleep(0), return_exceptions=True)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[Any, list[str], list[Any], asyncio.Future[Any]]]) -> None:
        batch = [call for call in batch if not call[3].done()]  # a caller cancelled before the send: skip it
        if not batch:
            return
        try:
            replies = await self._replies(batch)
        except asyncio.CancelledError:  # the store is closing: nobody is left to answer the callers
            for *_call, future in batch:
                future.cancel()
            raise
        for (_script, _keys, _args, future), reply in zip(batch, replies):
            if future.done():  # its request was cancelled meanwhile
                continue
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _replies(self, batch: list[tuple[Any, list[str], list[Any], asyncio.Future[Any]]]) -> list[Any]:
        """Each call's reply, or the exception it met."""
        self.calls += len(batch)
        self.batches += 1
        if len(batch) == 1:
            script, keys, args, _future = batch[0]
            replies: list[Any] = [await _settled(script(keys=keys, args=args))]
        else:
            pipe = self._client.pipeline(transaction=False)
            for script, keys, args, _future in batch:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            try:
                replies = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # noqa: BLE001 - the connection failed: every call of the batch did
                replies = [exc] * len(batch)
            for i, (script, keys, args, _future) in enumerate(batch):
                if isinstance(replies[i], redis_errors.NoScriptError):  # Redis restarted or flushed: load, rerun
                    replies[i] = await _settled(script(keys=keys, args=args))
        return replies


async def _settled(call: Any) -> Any:
    """The reply of an awaitable, or the exception it raised."""
    try:
        return await call
    except Exception as exc:  # noqa: BLE001 - handed to the caller's future, which raises it
        return exc
