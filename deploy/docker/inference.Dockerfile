# syntax=docker/dockerfile:1
# Inference: serves the champion, its challengers and the no-change baseline with NumPy only
# (no TensorFlow: that is the trainer's image); carries the bundled model artifacts, which
# seed the registry and serve when CRYPTOCAST_INFERENCE_REGISTRY=folder.
# Build from the repository root: docker build -f deploy/docker/inference.Dockerfile .
ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
# Layer 1, dependencies only: rebuilt when the lock changes, not when the code does.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY services/ingestor/pyproject.toml services/ingestor/
COPY services/inference/pyproject.toml services/inference/
COPY services/verifier/pyproject.toml services/verifier/
COPY services/gateway/pyproject.toml services/gateway/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package cryptocast-inference
# Layer 2, the project: only the code this service runs.
COPY libs/common libs/common
COPY services/inference services/inference
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package cryptocast-inference

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 cryptocast \
    && useradd --system --uid 10001 --gid cryptocast --no-create-home cryptocast
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CRYPTOCAST_HEALTH_PORT=8081
USER 10001:10001
EXPOSE 8081
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/healthz', timeout=4)"]
# exec form: the service is PID 1 and gets SIGTERM directly, for a graceful stop
CMD ["cryptocast-inference"]
