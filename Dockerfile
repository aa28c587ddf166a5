# The pipeline's image (see BUILD.md): every Kubeflow Pipelines / Vertex AI component runs
# in it, and so does every Beam worker of a distributed runner (Dataflow, Flink, Spark).
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

# Beam's SDK worker boot, from the SDK image of the locked apache-beam and this Python:
# as a Beam worker the image starts with it (Dataflow's --sdk_container_image, Flink's and
# Spark's --environment_config). Kubeflow components set their own command, which
# replaces the entrypoint.
COPY --from=apache/beam_python3.11_sdk:2.77.0 /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]

COPY . .
