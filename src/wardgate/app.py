"""create_app(config) -> web.Application: routes, typed AppKeys, cleanup contexts, the stage list.

The only module that wires things together.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
from aiohttp import web

from wardgate.admin import handle_budgets, handle_trace, handle_traces
from wardgate.config.schema import Config, PolicyConfig
from wardgate.errors import error_body
from wardgate.feedback import handle_feedback, sweep_signals
from wardgate.http1 import Http1Clients
from wardgate.keys import CLOCK, GENERATION, METRICS, RECORDER, WRITER
from wardgate.metrics import Metrics
from wardgate.pipeline import Pipeline
from wardgate.proxy import API_ROUTES, handle_api, handle_models, handle_unknown
from wardgate.recorder import Recorder
from wardgate.reload import RELOADER, setup_reload
from wardgate.runtime import Generation, Services
from wardgate.sinks import SinkWriter, build_sink
from wardgate.stages import default_stages, front_stages
from wardgate.state import MemoryStateStore, RedisStateStore, StateStore
from wardgate.upstream import Upstreams

__all__ = ["build_pipeline", "create_app", "make_generation"]

_CLIENTS: web.AppKey[Http1Clients] = web.AppKey("upstream_clients")
_CONFIG: web.AppKey[Config] = web.AppKey("initial_config")
_GENERATION_NUMBER: web.AppKey[int] = web.AppKey("initial_generation")
_SERVICES: web.AppKey[Services] = web.AppKey("services")


def build_pipeline(config: Config, services: Services) -> Pipeline:
    by_policy: dict[str | None, list] = {name: default_stages(p, config, services) for name, p in config.policies.items()}
    by_policy[None] = default_stages(PolicyConfig(), config, services)
    return Pipeline(front_stages(config), by_policy)


def make_generation(number: int, config: Config, clients: Http1Clients, services: Services) -> Generation:
    """Everything built from one config; a reload builds a new one on the same upstream pools and store."""
    return Generation(number, config, build_pipeline(config, services), Upstreams(config, clients), services)


def _state_store(config: Config) -> StateStore:
    if config.state.backend == "redis":
        state = config.state
        return RedisStateStore.from_url(state.redis_url, prefix=state.key_prefix, connect_timeout_s=state.timeout_s,
                                        socket_timeout_s=state.timeout_s,
                                        pool_timeout_s=state.timeout_s, max_connections=state.max_connections)
    return MemoryStateStore()


async def _state(app: web.Application) -> AsyncIterator[None]:
    """The budget/rate/loop store: one per process, closed last-but-one (after in-flight requests settle)."""
    config = app[_CONFIG]
    app[_SERVICES] = Services(_state_store(config), MemoryStateStore())
    yield
    await app[_SERVICES].store.close()


async def _upstream_clients(app: web.Application) -> AsyncIterator[None]:
    """The upstream connection pools, one per origin, for the process lifetime: a reload keeps them.

    Not aiohttp's ClientSession: wardgate.http1 says why. No cookie jar either way: a Set-Cookie from
    an upstream must never ride along on another team's request."""
    clients = app[_CLIENTS] = Http1Clients()
    app[GENERATION] = make_generation(app[_GENERATION_NUMBER], app[_CONFIG], clients, app[_SERVICES])
    yield
    await clients.close()


async def _sink_writer(app: web.Application) -> AsyncIterator[None]:
    writer = app[WRITER]
    await writer.start()
    yield
    await writer.close(timeout_s=app[_CONFIG].server.shutdown_grace_s or 10.0)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, dumps=lambda v: orjson.dumps(v).decode())


async def _readyz(request: web.Request) -> web.Response:
    gen = request.app[GENERATION]
    store_ok = await gen.services.store.ping()
    state = {"backend": gen.config.state.backend, "reachable": store_ok, "on_error": gen.config.state.on_error}
    ready = store_ok or gen.config.state.on_error == "open"
    body = {"status": "ready" if ready else "not_ready", "generation": gen.number, "state": state,
            "config": request.app[RELOADER].status(request.app)}
    return web.Response(body=orjson.dumps(body), status=200 if ready else 503, content_type="application/json")


async def _metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    for sink, counts in request.app[WRITER].stats().items():
        for state, value in counts.items():
            metrics.sink_records.labels(sink, state).set(value)
    return web.Response(body=metrics.render(), headers={"content-type": "text/plain; version=0.0.4; charset=utf-8"})


async def _not_found(request: web.Request) -> web.Response:
    """Any path no route takes (the last route): OpenAI's envelope, never aiohttp's HTML or text.

    A route rather than a middleware: a middleware wraps every request, this runs only for strays.
    A path another route serves with other methods is a 405 naming them, as aiohttp's own would be."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            allowed |= (await resource.resolve(request))[1]
    path = request.path
    if allowed:
        status, code, message = 405, "method_not_allowed", f"{request.method} is not allowed on {path}"
        headers = {"allow": ", ".join(sorted(allowed))}
    else:
        status, code, message, headers = 404, "not_found", f"Unknown route: {request.method} {path}", {}
    return web.Response(status=status, body=error_body(status, code, message), content_type="application/json",
                        headers=headers)


def create_app(config: Config, *, generation: int = 1, config_path: str | None = None,
               clock: Callable[[], float] = time.time) -> web.Application:
    """``config_path`` is where reloads read from (SIGHUP, POST /admin/reload, file watching);
    ``clock`` stamps each request's arrival (tests move it across budget windows)."""
    # The body limit is enforced by the handler (413 with a trace record), so aiohttp's own is lifted above it.
    app = web.Application(client_max_size=config.server.max_body_bytes + 1)
    app[_CONFIG] = config
    app[CLOCK] = clock
    app[_GENERATION_NUMBER] = generation
    metrics = Metrics()
    writer = SinkWriter([build_sink(s.model_dump()) for s in config.sinks], spill_dir=Path(config.spill_dir))
    app[METRICS] = metrics
    app[WRITER] = writer
    app[RECORDER] = Recorder(writer, metrics)
    app.cleanup_ctx.append(_sink_writer)
    app.cleanup_ctx.append(_state)
    app.cleanup_ctx.append(_upstream_clients)
    app.cleanup_ctx.append(sweep_signals)
    for route in API_ROUTES:
        app.router.add_post(route, handle_api)
    app.router.add_get("/v1/models", handle_models)
    app.router.add_post("/v1/feedback", handle_feedback)
    app.router.add_route("*", "/v1/{tail:.*}", handle_unknown)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/admin/traces", handle_traces)
    app.router.add_get("/admin/traces/{request_id}", handle_trace)
    app.router.add_get("/admin/budgets", handle_budgets)
    app.router.add_route("*", "/{tail:.*}", _not_found)  # last: what no other route takes
    setup_reload(app, config_path, lambda n, cfg: make_generation(n, cfg, app[_CLIENTS], app[_SERVICES]),
                 watch_s=config.server.watch_config_s)
    return app
