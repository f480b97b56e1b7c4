"""Imports both a real installed `kapacitor` package's module and the stock agent names; emits
each point with the string field `client` read from the real package."""
import kapacitor.client
from kapacitor.udf import udf_pb2
from kapacitor.udf.agent import Agent, Handler


class ClientHandler(Handler):
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
        response.point.fieldsString["client"] = kapacitor.client.MARK
        self._agent.write_response(response)


if __name__ == "__main__":
    a = Agent()
    a.handler = ClientHandler(a)
    a.start()
    a.wait()
