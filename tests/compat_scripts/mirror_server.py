"""Socket-mode script in the stock agent's style: a Server whose accepter runs one Agent per
connection; each point comes back with a field `seen` counting the points of its connection.

Usage: mirror_server.py SOCKET_PATH
"""
import logging
import sys

from kapacitor.udf import udf_pb2
from kapacitor.udf.agent import Agent, Handler, Server

logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s: %(message)s")
logger = logging.getLogger("mirror")


class MirrorHandler(Handler):
    def __init__(self, agent):
        self._agent = agent
        self._seen = 0

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
        self._seen += 1
        response = udf_pb2.Response()
        response.point.CopyFrom(point)
        response.point.fieldsInt["seen"] = self._seen
        self._agent.write_response(response, True)


class Accepter:
    connections = 0

    def accept(self, conn, addr):
        Accepter.connections += 1
        agent = Agent(conn, conn)
        agent.handler = MirrorHandler(agent)
        logger.info("connection %d", Accepter.connections)
        agent.start()
        agent.wait()
        logger.info("connection %d finished", Accepter.connections)


if __name__ == "__main__":
    server = Server(sys.argv[1], Accepter())
    logger.info("serving on %s", sys.argv[1])
    server.serve()
    logger.info("server stopped")
