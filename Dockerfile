# Image for running the pipeline's components on Kubeflow Pipelines (see BUILD.md).
#   docker build -t REGISTRY/dsmoe-pipeline:TAG . && docker push REGISTRY/dsmoe-pipeline:TAG
FROM python:3.11-slim

# tf.keras must be Keras 2 (tf_keras) in every process: TFRS refuses Keras 3.
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONPATH=/pipeline \
    PYTHONUNBUFFERED=1

# The repository lives here; pipeline/kubeflow_v2_runner.py compiles paths against it.
WORKDIR /pipeline

# The full pinned lock, without pip's resolver (it cannot satisfy tfx 1.21 on 3.11).
COPY requirements.lock .
RUN pip install --no-cache-dir --no-deps -r requirements.lock

COPY . .
