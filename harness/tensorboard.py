"""A TensorBoard run written inside a user container with TensorBoard's own event writer."""

RUN = "gpulab-test-run"


def write_events(steps=5):
    """Python source that writes ``steps`` scalar points of the tag ``loss`` into ~/runs/RUN."""
    return f"""
import os, time
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
w = EventFileWriter(os.path.join(os.environ["HOME"], "runs", "{RUN}"))
for step in range({int(steps)}):
    value = summary_pb2.Summary.Value(tag="loss", simple_value=1.0 / (step + 1))
    w.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=[value])))
w.close()
"""


WRITE_EVENTS = write_events()
