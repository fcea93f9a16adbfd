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
# The dependency layer is cached until pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir recommender && touch recommender/__init__.py \
    && pip install -e . \
    && rm -rf recommender recommender.egg-info
COPY alembic.ini ./
COPY migrations ./migrations
COPY recommender ./recommender
# Editable on purpose: `recommender db upgrade` finds migrations/ beside the package.
RUN pip install --no-deps -e . \
    && useradd --system --uid 1000 --home-dir /app recommender \
    && mkdir -p /data/models && chown -R recommender /data

USER recommender
ENV RECOMMENDER_MODEL_DIR=/data/models
EXPOSE 8000
CMD ["recommender", "serve", "--host", "0.0.0.0", "--port", "8000"]
