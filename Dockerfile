# jetx on a GPU node: the project with a CUDA build of TensorFlow, run as a non-root user.
#
# Build:  docker build -t REGISTRY/jetx:0.1.0 .
# The image is both a Prefect Kubernetes worker (the default CMD) and the image of every flow-run
# pod: the worker's job template passes `prefect flow-run execute` as the container's args, which
# replace CMD and run under tini (PID 1 that forwards SIGTERM and reaps the stage child processes).
# CUDA and cuDNN come from the `tensorflow[and-cuda]` wheels; the node supplies only the NVIDIA
# driver (NVIDIA container toolkit / device plugin). Every Python package is installed from
# requirements.lock: pinned, with the sha256 of each file (pip's --require-hashes), compiled from
# pyproject.toml and deploy/image-requirements.in (the command is in that file). The job template
# runs the container with a read-only root file system: scratch space is /tmp (an emptyDir).
# Pinned by tag only: the digest could not be looked up offline; docs/operations.md has the
# command that finds it, to write FROM python:3.11.13-slim-bookworm@sha256:<digest>.
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MPLCONFIGDIR=/tmp/matplotlib

RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/*

# The heavy, rarely changing layer first: every dependency, TensorFlow with its CUDA libraries
# and the Kubernetes worker's integration included, exactly as locked.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-deps --require-hashes -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock

RUN groupadd --system --gid 10001 jetx \
    && useradd --system --uid 10001 --gid jetx --home-dir /opt/jetx --shell /usr/sbin/nologin jetx

WORKDIR /opt/jetx
COPY pyproject.toml README.md ./
COPY jetx ./jetx
COPY tasks ./tasks
COPY flows ./flows
COPY data ./data
# Not editable: the flow entrypoint (flows/progressive.py) and the installed packages are the
# same files. runs/ is where a persistent volume mounts (checkpoints and caches survive a crash).
RUN pip install --no-deps --no-build-isolation . \
    && pip check \
    && mkdir -p /opt/jetx/runs \
    && chown -R jetx:jetx /opt/jetx/runs

ENV PREFECT_HOME=/opt/jetx/runs/.prefect \
    PREFECT_LOCAL_STORAGE_PATH=/opt/jetx/runs/.prefect/storage

USER 10001:10001

ENTRYPOINT ["tini", "--"]
CMD ["prefect", "worker", "start", "--pool", "jetx-k8s", "--type", "kubernetes"]
