"""Scales every numeric field by a factor, in the stock agent's style with the *old*
repeated-entry field access of early generated code (for kv in point.fieldsDouble: kv.key,
kv.value; fieldsDouble.add(key=..., value=...); for t in point.tags: t.key).

Options: factor (DOUBLE, required), mark (STRING, optional: adds the tag scaled=<mark>).
It implements no snapshot() at all (the base class's is used), which the stock agent answers
by dying at the first snapshot.
"""
import sys

from kapacitor.udf import udf_pb2
from kapacitor.udf.agent import Agent, Handler


class ScaleHandler(Handler):
    def __init__(self, agent):
        self._agent = agent
        self._factor = None
        self._mark = None

    def info(self):
        response = udf_pb2.Response()
        response.info.wants = udf_pb2.STREAM
        response.info.provides = udf_pb2.STREAM
        opt = response.info.options.add(key="factor")
        opt.value.valueTypes.append(udf_pb2.DOUBLE)
        opt = response.info.options.add()
        opt.key = "mark"
        opt.value.valueTypes.append(udf_pb2.STRING)
        return response

    def init(self, init_req):
        for opt in init_req.options:
            if opt.name == "factor":
                self._factor = opt.values[0].doubleValue
            elif opt.name == "mark":
                self._mark = opt.values[0].stringValue
        response = udf_pb2.Response()
        if self._factor is None:
            response.init.success = False
            response.init.error = "factor is required"
        else:
            response.init.success = True
        return response

    def restore(self, restore_req):
        response = udf_pb2.Response()
        response.restore.success = True
        return response

    def point(self, point):
        response = udf_pb2.Response()
        out = response.point
        out.time = point.time
        out.name = point.name
        out.group = point.group
        out.dimensions.extend(point.dimensions)
        for tag in point.tags:
            out.tags.add(key=tag.key, value=tag.value)
        if self._mark:
            out.tags.add(key="scaled", value=self._mark)
        for kv in point.fieldsDouble:
            out.fieldsDouble.add(key=kv.key, value=kv.value * self._factor)
        for kv in point.fieldsInt:
            entry = out.fieldsDouble.add()
            entry.key = kv.key
            entry.value = kv.value * self._factor
        self._agent.write_response(response, flush=True)


if __name__ == "__main__":
    a = Agent(sys.stdin, sys.stdout)
    h = ScaleHandler(a)
    a.handler = h
    a.start()
    a.wait()
