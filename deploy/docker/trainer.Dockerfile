# syntax=docker/dockerfile:1
# The trainer: retrains the distribution model on a schedule and on POST /train, registers
# each version in the MongoDB model registry and announces it. The only image with
# TensorFlow (the LSTM tools, cryptocast-train and cryptocast-evaluate, run in it too);
# TensorFlow's C++ headers, only needed to compile custom ops, are left out.
# Build from the repository root: docker build -f deploy/docker/trainer.Dockerfile .
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
COPY services/trainer/pyproject.toml services/trainer/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package cryptocast-trainer
# Layer 2, the project: only the code this service runs (inference's package holds the
# model code and the bundled artifacts the trainer seeds the registry with).
COPY libs/common libs/common
COPY services/inference services/inference
COPY services/trainer services/trainer
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package cryptocast-trainer \
    && rm -rf /app/.venv/lib/python3*/site-packages/tensorflow/include

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 cryptocast \
    && useradd --system --uid 10001 --gid cryptocast --no-create-home cryptocast
COPY --from=build /app/.venv /app/.venv
# MPLCONFIGDIR and HOME: matplotlib and Keras write their caches under /tmp (the user has
# no home; in Kubernetes the root filesystem is read-only and /tmp an emptyDir).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    TF_CPP_MIN_LOG_LEVEL=2 \
    CRYPTOCAST_TRAINER_HOST=0.0.0.0 \
    CRYPTOCAST_TRAINER_PORT=8010
USER 10001:10001
EXPOSE 8010
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8010/healthz', timeout=4)"]
# exec form: the service is PID 1 and gets SIGTERM directly, for a graceful stop
CMD ["cryptocast-trainer"]
