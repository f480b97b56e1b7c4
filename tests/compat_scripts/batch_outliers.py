"""Per batch, emits the points whose field lies more than `sigmas` standard deviations from
the batch mean. Stock agent style, map-style field access, batch in and batch out.

Options: field (STRING, required), sigmas (DOUBLE, default 2.0). Its snapshot() sets a *str*
('' as several published examples do), which kills the stock agent on Python 3.
"""
import math

from kapacitor.udf import udf_pb2
from kapacitor.udf.agent import Agent, Handler


class OutlierHandler(Handler):
    def __init__(self, agent):
        self._agent = agent
        self._field = None
        self._sigmas = 2.0
        self._points = []

    def info(self):
        response = udf_pb2.Response()
        response.info.wants = udf_pb2.BATCH
        response.info.provides = udf_pb2.BATCH
        response.info.options["field"].valueTypes.append(udf_pb2.STRING)
        response.info.options["sigmas"].valueTypes.append(udf_pb2.DOUBLE)
        return response

    def init(self, init_req):
        for opt in init_req.options:
            if opt.name == "field":
                self._field = opt.values[0].stringValue
            elif opt.name == "sigmas":
                self._sigmas = opt.values[0].doubleValue
        response = udf_pb2.Response()
        response.init.success = bool(self._field) and self._sigmas > 0
        if not response.init.success:
            response.init.error = "need a field and sigmas > 0"
        return response

    def snapshot(self):
        response = udf_pb2.Response()
        response.snapshot.snapshot = ''
        return response

    def restore(self, restore_req):
        response = udf_pb2.Response()
        response.restore.success = True
        return response

    def begin_batch(self, begin_req):
        self._points = []

    def point(self, point):
        if self._field in point.fieldsDouble:
            self._points.append((point.fieldsDouble[self._field], point))

    def end_batch(self, end_req):
        values = [v for v, _ in self._points]
        outliers = []
        if len(values) > 1:
            mean = sum(values) / len(values)
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
            if sd > 0:
                outliers = [p for v, p in self._points if abs(v - mean) > self._sigmas * sd]
        response = udf_pb2.Response()
        response.begin.name = end_req.name
        response.begin.group = end_req.group
        response.begin.tags.update(end_req.tags)
        response.begin.size = len(outliers)
        self._agent.write_response(response)
        for p in outliers:
            response = udf_pb2.Response()
            response.point.CopyFrom(p)
            self._agent.write_response(response)
        response = udf_pb2.Response()
        response.end.CopyFrom(end_req)
        self._agent.write_response(response, True)
        self._points = []


if __name__ == "__main__":
    agent = Agent()
    agent.handler = OutlierHandler(agent)
    agent.start()
    agent.wait()
