# syntax=docker/dockerfile:1
# wardgate: the LLM gateway with guardrails.
#   docker build -t wardgate .
#   docker run -p 8400:8400 -e OPENAI_API_KEY -v "$PWD/policies:/etc/wardgate:ro" wardgate
# Extra arguments go after the image name: `docker run … wardgate --workers 4`.

# Both stages must share one Python build: the venv copied below links to its interpreter.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- builder: build the wheel and install it with its dependencies into /opt/venv ---
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# Pinned build tooling (used without build isolation below) so two builds of one commit agree;
# it is uninstalled again once the wheel is built.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir "pip==24.3.1" "setuptools==75.6.0" "wheel==0.45.1"

# The metadata first, then the code: pyproject declares README.md as the long description.
COPY pyproject.toml README.md ./
COPY src/ ./src/

# Every runtime dependency ships manylinux wheels, so no compiler is needed here; a dependency
# that ever needs one gets build-essential in this stage only, never in the runtime image.
RUN /opt/venv/bin/pip wheel --no-cache-dir --no-build-isolation --no-deps --wheel-dir /dist . \
 && /opt/venv/bin/pip install --no-cache-dir /dist/wardgate-*.whl \
 && /opt/venv/bin/pip uninstall --yes setuptools wheel

# --- runtime: the interpreter, the venv, the example config; no build tools, no root ---
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="wardgate" \
      org.opencontainers.image.description="A reverse-proxy LLM gateway with guardrails" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid/gid: Kubernetes can only prove runAsNonRoot for a numeric USER.
ARG WARDGATE_UID=10001
RUN groupadd --system --gid "${WARDGATE_UID}" wardgate \
 && useradd --system --uid "${WARDGATE_UID}" --gid wardgate --no-create-home \
            --home-dir /var/lib/wardgate --shell /usr/sbin/nologin wardgate \
 && install -d -o wardgate -g wardgate -m 0750 /var/lib/wardgate \
 && install -d -o root -g wardgate -m 0755 /etc/wardgate

COPY --from=builder /opt/venv /opt/venv
# The repo's example policies are the default config; mount a folder over /etc/wardgate to replace it.
COPY --chown=root:wardgate policies/ /etc/wardgate/

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WARDGATE_CONFIG=/etc/wardgate

# Traces (jsonl sinks) and relative paths in the config land on this writable volume.
WORKDIR /var/lib/wardgate
VOLUME ["/var/lib/wardgate"]

USER 10001:10001

EXPOSE 8400

# slim images carry no curl: the stdlib client is enough, and any non-2xx or refusal exits 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8400/healthz', timeout=3).status == 200 else 1)"]

# The exec form keeps wardgate as PID 1 so it receives SIGTERM itself and drains in-flight requests.
STOPSIGNAL SIGTERM
ENTRYPOINT ["wardgate", "serve", "--host", "0.0.0.0", "--port", "8400"]
CMD []
