# The recommender image: the API (`recommender serve`) and the training worker
# (`recommender worker`) run from it; see docker-compose.yml.
#
# CPU torch by default:
#   docker build -t recommender .
# CUDA torch: point TORCH_INDEX_URL at the PyTorch index for your CUDA version. The CUDA
# wheels bundle the CUDA runtime, so the slim Python base works on a host with the NVIDIA
# driver and the NVIDIA Container Toolkit; BASE_IMAGE may also name a CUDA image that has
# Python >= 3.11 and pip.
#   docker build -t recommender:cuda \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
# The service then trains on the GPU by itself (device="auto").

ARG BASE_IMAGE=python:3.11-slim

# The package as a wheel (the Alembic migrations are package data inside it).
FROM ${BASE_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY recommender ./recommender
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /dist .

FROM ${BASE_IMAGE}

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, from the chosen index: a bare `torch` requirement from PyPI would pull a
# multi-GB CUDA build. The package's own `torch>=2.4` requirement is then already met.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

WORKDIR /app
# Every other dependency at the versions of requirements.lock: the package's dependencies with
# its `postgres` extra (psycopg, the driver of the compose file's database), torch excluded (it
# came from the index above); `uv pip compile`, the command is in the file's header. Cached
# until the lock file changes.
COPY requirements.lock ./
RUN pip install -r requirements.lock
# Then the package itself, from its wheel, without resolving anything again: the lock already
# holds recommender[postgres]'s dependencies: `pip check` (the base ones) and the psycopg
# import (the extra) fail the build if it does not.
COPY --from=wheel /dist /tmp/dist
RUN pip install --no-deps /tmp/dist/recommender-*.whl \
    && pip check \
    && python -c "import psycopg" \
    && rm -rf /tmp/dist \
    && useradd --system --uid 1000 --home-dir /app recommender \
    && mkdir -p /data/models && chown -R recommender /data

USER recommender
ENV RECOMMENDER_MODEL_DIR=/data/models
EXPOSE 8000
CMD ["recommender", "serve", "--host", "0.0.0.0", "--port", "8000"]
