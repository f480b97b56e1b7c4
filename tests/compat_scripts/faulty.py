"""A deliberately badly behaved script in the stock agent's style, for the failure-mode tests.

Usage: faulty.py [stream|batch]   (edge type in and out; stream by default)
Options:
  failEvery INT      point() raises ValueError on every Nth point (others are echoed)
  sleep DURATION     point() sleeps this long first (a slow handler)
  chatty             point() prints to stdout
  failBegin INT      begin_batch() raises on the Nth batch
  failEnd INT        end_batch() raises on the Nth batch, after writing begin and one point
  failInit           init() raises
  snapshot STRING    snapshot() behaviour: missing | none | str | raise | json
  failRestore        restore() raises
  fromThread         point() writes nothing itself; a timer thread of the script's own writes
                     the point 50 ms later (as scripts that emit on a schedule do)
"""
import json
import sys
import threading
import time

from kapacitor.udf import udf_pb2
from kapacitor.udf.agent import Agent, Handler

BATCH = len(sys.argv) > 1 and sys.argv[1] == "batch"


class FaultyHandler(Handler):
    def __init__(self, agent):
        self._agent = agent
        self.fail_every = 0
        self.sleep = 0
        self.chatty = False
        self.fail_begin = 0
        self.fail_end = 0
        self.snapshot_mode = "missing"
        self.fail_restore = False
        self.from_thread = False
        self.points = 0
        self.batches = 0
        self.restored = None

    def info(self):
        response = udf_pb2.Response()
        edge = udf_pb2.BATCH if BATCH else udf_pb2.STREAM
        response.info.wants = edge
        response.info.provides = edge
        opts = response.info.options
        opts["failEvery"].valueTypes.append(udf_pb2.INT)
        opts["sleep"].valueTypes.append(udf_pb2.DURATION)
        opts["chatty"].valueTypes.extend([])
        opts["failBegin"].valueTypes.append(udf_pb2.INT)
        opts["failEnd"].valueTypes.append(udf_pb2.INT)
        opts["failInit"].valueTypes.extend([])
        opts["snapshot"].valueTypes.append(udf_pb2.STRING)
        opts["failRestore"].valueTypes.extend([])
        opts["fromThread"].valueTypes.extend([])
        return response

    def init(self, init_req):
        for opt in init_req.options:
            if opt.name == "failEvery":
                self.fail_every = opt.values[0].intValue
            elif opt.name == "sleep":
                self.sleep = opt.values[0].durationValue / 1e9
            elif opt.name == "chatty":
                self.chatty = True
            elif opt.name == "failBegin":
                self.fail_begin = opt.values[0].intValue
            elif opt.name == "failEnd":
                self.fail_end = opt.values[0].intValue
            elif opt.name == "failInit":
                raise RuntimeError("init exploded on purpose")
            elif opt.name == "snapshot":
                self.snapshot_mode = opt.values[0].stringValue
            elif opt.name == "failRestore":
                self.fail_restore = True
            elif opt.name == "fromThread":
                self.from_thread = True
        response = udf_pb2.Response()
        response.init.success = True
        return response

    def snapshot(self):
        mode = self.snapshot_mode
        if mode == "missing":
            return Handler.snapshot(self)
        if mode == "none":
            return None
        if mode == "raise":
            raise KeyError("no snapshot for you")
        response = udf_pb2.Response()
        if mode == "str":
            response.snapshot.snapshot = ""
        else:
            response.snapshot.snapshot = json.dumps({"points": self.points})
        return response

    def restore(self, restore_req):
        if self.fail_restore:
            raise ValueError("restore exploded on purpose")
        self.restored = json.loads(restore_req.snapshot)
        self.points = self.restored["points"]
        response = udf_pb2.Response()
        response.restore.success = True
        return response

    def begin_batch(self, begin_req):
        self.batches += 1
        if self.batches == self.fail_begin:
            raise RuntimeError(f"begin_batch exploded on batch {self.batches}")

    def point(self, point):
        self.points += 1
        if self.sleep:
            time.sleep(self.sleep)
        if self.chatty:
            print("chatty: point number", self.points)
        if self.fail_every and self.points % self.fail_every == 0:
            raise ValueError(f"point {self.points} is cursed")
        if BATCH:
            return
        response = udf_pb2.Response()
        response.point.CopyFrom(point)
        response.point.fieldsInt["n"] = self.points
        if self.from_thread:
            threading.Timer(0.05, self._agent.write_response, args=(response,)).start()
            return
        self._agent.write_response(response)

    def end_batch(self, end_req):
        response = udf_pb2.Response()
        response.begin.name = end_req.name
        response.begin.group = end_req.group
        self._agent.write_response(response)
        response = udf_pb2.Response()
        response.point.time = end_req.tmax
        response.point.group = end_req.group
        response.point.fieldsInt["batch"] = self.batches
        self._agent.write_response(response)
        if self.batches == self.fail_end:
            raise RuntimeError(f"end_batch exploded on batch {self.batches}")
        response = udf_pb2.Response()
        response.end.CopyFrom(end_req)
        self._agent.write_response(response)


if __name__ == "__main__":
    agent = Agent()
    agent.handler = FaultyHandler(agent)
    agent.start()
    agent.wait()
