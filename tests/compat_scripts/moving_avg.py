"""Moving average of one field per group, in the stock agent's style with map-style field access.

A test and benchmark fixture for `kapudf run script.py`: it is written the way scripts for
Kapacitor's Python agent are written (kapacitor.udf.agent, udf_pb2 messages, write_response),
and must run unchanged. Options: field (STRING, required), size (INT, required), as (STRING,
default "avg"). The snapshot is a JSON *str*, as many Python 2 era scripts produce.
"""
import json
import logging
import sys
from collections import deque

from kapacitor.udf import udf_pb2
from kapacitor.udf.agent import Agent, Handler

logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s: %(message)s")
logger = logging.getLogger("moving_avg")


class Window:
    def __init__(self, size):
        self.size = size
        self.values = deque()
        self.total = 0.0

    def add(self, value):
        self.values.append(value)
        self.total += value
        if len(self.values) > self.size:
            self.total -= self.values.popleft()
        return self.total / len(self.values)


class MovingAverageHandler(Handler):
    def __init__(self, agent):
        self._agent = agent
        self._field = None
        self._size = 0
        self._as = "avg"
        self._windows = {}

    def info(self):
        response = udf_pb2.Response()
        response.info.wants = udf_pb2.STREAM
        response.info.provides = udf_pb2.STREAM
        response.info.options["field"].valueTypes.append(udf_pb2.STRING)
        response.info.options["size"].valueTypes.append(udf_pb2.INT)
        response.info.options["as"].valueTypes.append(udf_pb2.STRING)
        return response

    def init(self, init_req):
        errors = []
        for opt in init_req.options:
            if opt.name == "field":
                self._field = opt.values[0].stringValue
            elif opt.name == "size":
                self._size = opt.values[0].intValue
            elif opt.name == "as":
                self._as = opt.values[0].stringValue
        if not self._field:
            errors.append("must supply field")
        if self._size <= 0:
            errors.append("size must be > 0")
        response = udf_pb2.Response()
        response.init.success = not errors
        response.init.error = "; ".join(errors)
        return response

    def snapshot(self):
        data = {}
        for group, window in self._windows.items():
            data[group] = {"size": window.size, "values": list(window.values)}
        response = udf_pb2.Response()
        response.snapshot.snapshot = json.dumps(data)
        return response

    def restore(self, restore_req):
        response = udf_pb2.Response()
        try:
            data = json.loads(restore_req.snapshot)
            for group, saved in data.items():
                window = Window(saved["size"])
                for v in saved["values"]:
                    window.add(v)
                self._windows[group] = window
            response.restore.success = True
        except Exception as e:
            response.restore.success = False
            response.restore.error = str(e)
        return response

    def begin_batch(self, begin_req):
        raise Exception("batches are not supported")

    def point(self, point):
        if self._field in point.fieldsDouble:
            value = point.fieldsDouble[self._field]
        elif self._field in point.fieldsInt:
            value = float(point.fieldsInt[self._field])
        else:
            return
        window = self._windows.get(point.group)
        if window is None:
            window = self._windows[point.group] = Window(self._size)
        response = udf_pb2.Response()
        out = response.point
        out.CopyFrom(point)
        out.ClearField("fieldsDouble")
        out.ClearField("fieldsInt")
        out.ClearField("fieldsString")
        out.ClearField("fieldsBool")
        out.fieldsDouble[self._as] = window.add(value)
        self._agent.write_response(response)

    def end_batch(self, end_req):
        raise Exception("batches are not supported")


if __name__ == "__main__":
    agent = Agent()
    agent.handler = MovingAverageHandler(agent)
    logger.info("starting agent, argv=%s", sys.argv[1:])
    agent.start()
    agent.wait()
    logger.info("agent finished")
