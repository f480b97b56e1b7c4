"""The oldest example style: `agent.py` and `udf_pb2.py` copied next to the script and
imported by their bare names. Echoes each point with a tag `via=bare-imports`."""
import udf_pb2
from agent import Agent, Handler


class EchoHandler(Handler):
    def __init__(self, agent):
        self._agent = agent

    def info(self):
        response = udf_pb2.Response()
        response.info.wants = udf_pb2.STREAM
        response.info.provides = udf_pb2.STREAM
        return response

    def init(self, init_req):
        response = udf_pb2.Response()
        response.init.success = True
        return response

    def point(self, point):
        response = udf_pb2.Response()
        response.point.CopyFrom(point)
        response.point.tags["via"] = "bare-imports"
        self._agent.write_response(response)


if __name__ == "__main__":
    a = Agent()
    a.handler = EchoHandler(a)
    a.start()
    a.wait()
