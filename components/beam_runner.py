"""The local Beam runner for several worker processes: Beam's FnApiRunner that hands the
pipeline options to its SDK workers.

    beam_pipeline_args: [--runner=components.beam_runner.LocalRunner,
                         --direct_running_mode=multi_processing, --direct_num_workers=2]

With --direct_running_mode=multi_processing the FnApiRunner starts its workers as
subprocesses (`python -m apache_beam.runners.worker.sdk_worker_main`). Named on its own
(--runner=FnApiRunner) it starts them without the pipeline options, so the workers never
import --beam_plugin=tfx (pipeline/pipeline.py adds it: without `import tfx` first, a
worker cannot unpickle StatisticsGen's TFDV code; see BUILD.md). Beam's DirectRunner hands
the options over but first tries to download the Prism runner binary, and nothing may
download at run time. This runner does what DirectRunner does after that attempt.
"""

from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners import runner
from apache_beam.runners.portability import portable_runner
from apache_beam.runners.portability.fn_api_runner import fn_runner


class LocalRunner(runner.PipelineRunner):

  def run_pipeline(self, pipeline, options):
    provision_info = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(
            pipeline_options=portable_runner.JobServiceHandle.encode_pipeline_options(
                options.get_all_options())))
    return fn_runner.FnApiRunner(provision_info=provision_info).run_pipeline(pipeline,
                                                                            options)
