"""One summary point per batch: count and mean of every double field, in the stock agent's
style with the old repeated-entry field access. Batch in, batch out.

Options: prefix (STRING, default "mean_"). Its snapshot() returns None, which kills the stock
agent at the first snapshot.
"""
from kapacitor.udf import udf_pb2
from kapacitor.udf.agent import Agent, Handler


class SummaryHandler(Handler):
    def __init__(self, agent):
        self._agent = agent
        self._prefix = "mean_"
        self._sums = {}
        self._count = 0
        self._tags = []

    def info(self):
        response = udf_pb2.Response()
        response.info.wants = udf_pb2.BATCH
        response.info.provides = udf_pb2.BATCH
        response.info.options.add(key="prefix").value.valueTypes.append(udf_pb2.STRING)
        return response

    def init(self, init_req):
        for opt in init_req.options:
            if opt.name == "prefix":
                self._prefix = opt.values[0].stringValue
        response = udf_pb2.Response()
        response.init.success = True
        return response

    def snapshot(self):
        return None

    def begin_batch(self, begin_req):
        self._sums = {}
        self._count = 0
        self._tags = [(t.key, t.value) for t in begin_req.tags]

    def point(self, point):
        self._count += 1
        for kv in point.fieldsDouble:
            self._sums[kv.key] = self._sums.get(kv.key, 0.0) + kv.value

    def end_batch(self, end_req):
        response = udf_pb2.Response()
        response.begin.name = end_req.name
        response.begin.group = end_req.group
        for key, value in self._tags:
            response.begin.tags.add(key=key, value=value)
        response.begin.size = 1
        self._agent.write_response(response)

        response = udf_pb2.Response()
        response.point.time = end_req.tmax
        response.point.name = end_req.name
        response.point.group = end_req.group
        for key, value in self._tags:
            response.point.tags.add(key=key, value=value)
        response.point.fieldsInt.add(key="count", value=self._count)
        for key in sorted(self._sums):
            response.point.fieldsDouble.add(key=self._prefix + key,
                                            value=self._sums[key] / self._count)
        self._agent.write_response(response)

        response = udf_pb2.Response()
        response.end.CopyFrom(end_req)
        self._agent.write_response(response)


if __name__ == "__main__":
    agent = Agent()
    agent.handler = SummaryHandler(agent)
    agent.start()
    agent.wait()
