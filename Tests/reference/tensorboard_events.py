#!/usr/bin/env python3
"""Reads TensorBoard event files with the `tensorboard` package (no TensorFlow) and prints JSON.

  tensorboard_events.py read LOGDIR
      What TensorBoard shows for the directory, through EventAccumulator (the loader behind the
      scalar and text dashboards; purges orphaned steps on SessionLog START):
      {"scalars": {tag: [[step, value], ...]}, "text": {tag: [[step, text, html], ...]},
       "text_plugin_tags": [...], "file_version": float}
      html is what the text plugin renders from the markdown.
  tensorboard_events.py records FILE
      Every record of one file through tensorboard's TensorFlow-free TFRecord reader, which checks
      both masked CRC-32Cs: {"records": [{"step", "wall_time", "what", ...}]}, or
      {"error": "..."} and exit status 3 when a CRC or the framing is bad.
  tensorboard_events.py encode < SPEC.json
      The serialised Event protos (hex) that tensorboard's own protobuf classes produce for a list
      of {"kind": "scalar"|"text"|"file_version"|"start", "wall_time", "step", "tag", "value"|"text"},
      built as torch.utils.tensorboard's summary.scalar / summary.text / purge_step build them.
"""
import json
import sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import errors
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New
from tensorboard.plugins.text import text_plugin
from tensorboard.util import tensor_util


def read(logdir):
    acc = event_accumulator.EventAccumulator(
        logdir, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    out = {"scalars": {}, "text": {}, "file_version": acc.file_version}
    for tag in tags["scalars"]:
        out["scalars"][tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
    try:
        text_tags = sorted(acc.PluginTagToContent("text").keys())
    except KeyError:   # no text summaries at all
        text_tags = []
    out["text_plugin_tags"] = text_tags
    for tag in text_tags:
        rows = []
        for e in acc.Tensors(tag):
            array = tensor_util.make_ndarray(e.tensor_proto)
            value = array.item() if array.ndim == 0 else array.reshape(-1)[0]
            html = text_plugin.process_event(e.wall_time, e.step, array, True)["text"]
            rows.append([e.step, value.decode("utf-8"), html])
        out["text"][tag] = rows
    return out


def records(path):
    reader = PyRecordReader_New(path)
    rows = []
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            break
        event = event_pb2.Event.FromString(reader.record())
        row = {"step": event.step, "wall_time": event.wall_time, "what": event.WhichOneof("what")}
        if event.HasField("file_version"):
            row["file_version"] = event.file_version
        if event.HasField("session_log"):
            row["session_log"] = event_pb2.SessionLog.SessionStatus.Name(event.session_log.status)
        if event.HasField("summary"):
            row["values"] = [{"tag": v.tag, "value": v.WhichOneof("value"),
                              "plugin": v.metadata.plugin_data.plugin_name} for v in event.summary.value]
        rows.append(row)
    return {"records": rows}


def encode(spec):
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    out = []
    for item in spec:
        event = event_pb2.Event(wall_time=item["wall_time"], step=item["step"])
        kind = item["kind"]
        if kind == "file_version":
            event.file_version = "brain.Event:2"
        elif kind == "start":
            event.session_log.status = event_pb2.SessionLog.START
        elif kind == "scalar":
            event.summary.value.add(tag=item["tag"], simple_value=item["value"])
        elif kind == "text":
            smd = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
            tensor = TensorProto(dtype="DT_STRING", string_val=[item["text"].encode("utf-8")],
                                 tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
            event.summary.value.add(tag=item["tag"], metadata=smd, tensor=tensor)
        out.append(event.SerializeToString().hex())
    return out


def main():
    mode = sys.argv[1]
    if mode == "encode":
        print(json.dumps(encode(json.load(sys.stdin))))
        return
    path = sys.argv[2]
    try:
        result = read(path) if mode == "read" else records(path)
    except (errors.DataLossError, errors.OpError) as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e.message}"}))
        sys.exit(3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
