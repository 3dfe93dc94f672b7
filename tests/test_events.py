"""TensorBoard event files written without TensorFlow, read back with TensorBoard's own reader and protos."""
import numpy as np
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.proto import event_pb2

from dlgrok import events, metrics


def row(model, step, acc, cohort="all", diverged=False):
  value = float("nan") if diverged else acc
  return metrics.row(step, dict.fromkeys(metrics.VALUES, value), {"block_0/ffn/fc1": value / 2}, model=model,
                     cohort=cohort, group=cohort)


def test_an_event_is_the_proto_tensorboard_parses():
  e = event_pb2.Event.FromString(events.event(7, 12.5, {"accuracy/test": 0.25, "loss/train": 1.5}))
  assert (e.step, e.wall_time) == (7, 12.5)
  assert [(v.tag, v.simple_value) for v in e.summary.value] == [("accuracy/test", 0.25), ("loss/train", 1.5)]
  e = event_pb2.Event.FromString(events.event(300, 1.0, start=True))
  assert e.step == 300 and e.session_log.status == event_pb2.SessionLog.START
  assert event_pb2.Event.FromString(events.event(0, 1.0, version="brain.Event:2")).file_version == "brain.Event:2"
  assert events.crc32c(b"123456789") == 0xE3069283  # CRC-32C's check value


def test_curves_per_model_and_cohort_means_without_diverged_models_and_resumed(tmp_path):
  w = events.Writer(str(tmp_path))
  for step, accs in ((0, (0.1, 0.3, 0.5)), (10, (0.2, 0.4, 0.6)), (20, (0.9, 0.9, 0.9))):
    w.write([row(i, step, a, diverged=(step == 20 and i == 2)) for i, a in enumerate(accs)])
  w.close()
  w = events.Writer(str(tmp_path), step=10)  # a run resumed from step 10 evaluates 10 and 20 again
  for step, accs in ((10, (0.25, 0.45, 0.65)), (20, (0.8, 0.7, 0.6))):
    w.write([row(i, step, a, diverged=(i == 2)) for i, a in enumerate(accs)])
  w.close()

  def curve(run, tag="accuracy/test"):
    acc = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard" / "all" / run))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]

  assert curve("model_0") == [(0, np.float32(0.1)), (10, np.float32(0.25)), (20, np.float32(0.8))]
  assert curve("model_2") == [(0, np.float32(0.5))]  # diverged from step 10 on after the resume: no values
  assert curve("model_1", "stable_rank/block_0/ffn/fc1") == [(0, np.float32(0.15)), (10, np.float32(0.225)),
                                                             (20, np.float32(0.35))]
  means = curve("mean")
  assert [s for s, _ in means] == [0, 10, 20]
  assert np.allclose([v for _, v in means], [0.3, 0.35, 0.75], atol=1e-7)
  assert curve("mean", "diverged") == [(0, 0.0), (10, 1.0), (20, 1.0)]
